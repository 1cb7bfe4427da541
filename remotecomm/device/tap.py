"""``twistd device-agent``: options and the one place that builds the agent."""

from __future__ import annotations

from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import MultiService
from twisted.internet import ssl
from twisted.internet.endpoints import UNIXServerEndpoint, clientFromString
from twisted.logger import Logger
from twisted.words.protocols.jabber import client, sasl, xmlstream
from twisted.words.protocols.jabber.jid import JID

from remotecomm import __version__
from remotecomm.clock import now_us
from remotecomm.config import config_options
from remotecomm.device.approvals import Approvals, ManagerRequests, decision_sender
from remotecomm.device.config import DeviceAgentConfig, load_device_config
from remotecomm.device.credentials import AgentCredentials
from remotecomm.device.firmware import ImageFetcher
from remotecomm.device.history import History
from remotecomm.device.jobs import AgentJobs
from remotecomm.device.manager_link import ManagerLink
from remotecomm.device.panel_channel import PanelChannel
from remotecomm.device.relay_link import RelayLinks
from remotecomm.json_http import make_site
from remotecomm.relay import envelope as env
from remotecomm.sessions.messages import ENVELOPE_VERSIONS, Hello, PanelLoginFailed
from remotecomm.tls import TLSSetupError, load_ca
from remotecomm.unix_sockets import prepare_socket_folder
from remotecomm.xmpp.stream import UnknownIqHandler, XmppConnector, XmppStream, on_stream_error

log = Logger()

# After the XMPP server refused our password, wait this long before trying again.
AUTH_FAILURE_BACKOFF = 300.0
# A restart job takes the device's XMPP link away for this long.
RESTART_DOWN = 3.0


Options = config_options(load_device_config, "agent_config", "etc/device-agent.toml")


def _tls_options(config: DeviceAgentConfig):
    try:
        ca = load_ca(config.xmpp.ca_certificate)
    except TLSSetupError as e:
        raise SystemExit(f"device-agent: {e}") from None
    return ssl.optionsForClientTLS(config.xmpp.domain, trustRoot=ca)


PANEL_LOGIN_REPORTS_PER_MINUTE = 10


def panel_login_reporter(clock, components: tuple[str, ...], send):
    """Reports failed panel logins to the manager: at most
    :data:`PANEL_LOGIN_REPORTS_PER_MINUTE` a minute (a flood is logged, not forwarded)."""
    sent: list[float] = []

    def report(operator: str) -> bool:
        now = clock.seconds()
        sent[:] = [at for at in sent if now - at < 60]
        if len(sent) >= PANEL_LOGIN_REPORTS_PER_MINUTE:
            log.warn("failed panel login as {operator!r} not reported: over {bound} a minute",
                     operator=operator, bound=PANEL_LOGIN_REPORTS_PER_MINUTE)
            return False
        sent.append(now)
        for component in components:
            send(component, PanelLoginFailed(operator[:200], now_us(clock)))
        return True

    return report


def connect_xmpp(reactor, config: DeviceAgentConfig, factory) -> XmppConnector:
    """The agent's XMPP connection (one place, so a proxy option fits here later)."""
    endpoint = clientFromString(reactor, config.xmpp.server)
    return XmppConnector(reactor, endpoint, factory, max_delay=2.0)


def build_service(config: DeviceAgentConfig, reactor, links=None) -> MultiService:
    """Build the agent's services from its validated config.

    ``links`` replaces the agent's relay connections (an object with the
    ``join(ready)`` and ``end(request_id)`` of :class:`RelayLinks`): the
    benchmark's bench devices speak the real XMPP device protocol but join the
    relay with their own clients.
    """
    config.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    root = MultiService()

    credentials = AgentCredentials(config.data_dir / "credentials.json", config.xmpp.password)
    factory = client.XMPPClientFactory(JID(config.jid), credentials.password,
                                       configurationForTLS=_tls_options(config))
    credentials.on_change = lambda password: setattr(factory.authenticator, "password",
                                                     password)
    stream = XmppStream(factory, reactor)
    hello = Hello(agent_version=__version__, envelope_version=max(ENVELOPE_VERSIONS),
                  apps=tuple(sorted(config.apps)))
    link = ManagerLink(reactor, config.xmpp.components, hello)
    link.setHandlerParent(stream)
    history = History(config.data_dir / "history.jsonl")
    if links is None:
        links = RelayLinks(reactor, reactor, config.xmpp.ca_certificate, history,
                           {"from": "device", "device_id": config.device_id,
                            "agent_version": __version__, "envelope_version": env.VERSION,
                            "apps": sorted(config.apps)}, config.apps)
    approvals = Approvals(reactor, history, set(config.apps), decision_sender(stream, reactor),
                          test_approver=config.test_approver, on_ready=links.join,
                          on_end=links.end, agent_version=__version__)
    links.on_ended = approvals.session_ended
    links.firmware_version = lambda: approvals.firmware_version

    def described(version: str, settings: tuple, settings_version: int | None) -> None:
        if version != approvals.firmware_version:
            log.info("the device runs firmware {version}", version=version)
        approvals.firmware_version = version
        link.describe(version, settings, settings_version)

    # Firmware images come from the manager's HTTPS port, which chains to the same CA as
    # the XMPP server and the relay.
    fetcher = ImageFetcher(reactor, config.data_dir / "firmware", config.xmpp.ca_certificate)
    jobs = AgentJobs(reactor, history, decision_sender(stream, reactor), fetcher)

    def restart_links() -> None:
        """A restart job: the device's sessions end and its XMPP link goes away for a few
        seconds, as a real device's would."""
        log.info("the device restarts: its sessions end, its link returns in {delay:g} s",
                 delay=RESTART_DOWN)
        for request_id in list(getattr(links, "links", {})):
            links.end(request_id)
        connector.hold_off(RESTART_DOWN)
        if stream.xmlstream is not None and stream.xmlstream.transport is not None:
            stream.xmlstream.transport.loseConnection()

    jobs.on_restart = restart_links
    ManagerRequests(approvals, link.is_component, jobs, credentials).setHandlerParent(stream)
    UnknownIqHandler().setHandlerParent(stream)
    if config.test_approver is not None:
        log.warn("TEST APPROVER ACTIVE: every session request is answered YES at once as "
                 "{name!r} (marked as a test approval). Never use this on a real device.",
                 name=config.test_approver)
    if config.panel is not None:
        prepare_socket_folder(config.panel.socket)
        if config.panel.socket.exists():
            config.panel.socket.unlink()  # left over from an earlier run
        channel = PanelChannel(approvals, config.panel.secret, links,
                               on_description=described, jobs=jobs,
                               on_login_failed=panel_login_reporter(
                                   reactor, config.xmpp.components,
                                   decision_sender(stream, reactor)))
        panel_service = StreamServerEndpointService(
            UNIXServerEndpoint(reactor, str(config.panel.socket), mode=0o600, wantPID=False),
            make_site(channel.resource()))
        panel_service.setName("panel-channel")
        panel_service.setServiceParent(root)
    elif config.test_approver is None:
        log.warn("no [panel] configured: approval requests cannot be answered")
    connector = connect_xmpp(reactor, config, factory)
    connector.setName("xmpp")
    connector.setServiceParent(root)

    fallbacks = {"left": 1}  # after a refused login: the other known password, once

    def initialized(xs) -> None:
        connector.initialized()
        fallbacks["left"] = 1
        log.info("connected to XMPP as {jid}", jid=config.jid)

    def initialization_failed(failure) -> None:
        other = credentials.other_password(factory.authenticator.password)
        if failure.check(sasl.SASLError) and other is not None and fallbacks["left"] > 0:
            # A rotation the XMPP server never got (or got before we saved it): the other
            # known password, once, soon.
            fallbacks["left"] -= 1
            log.warn("the XMPP server refused the password of {jid}; trying the other known "
                     "one", jid=config.jid)
            factory.authenticator.password = other
            connector.hold_off(RESTART_DOWN)
        elif failure.check(sasl.SASLError):
            log.error("the XMPP server refused the password of {jid}; next attempt in "
                      "{delay:g} s", jid=config.jid, delay=AUTH_FAILURE_BACKOFF,
                      event="xmpp-auth-failed")
            connector.hold_off(AUTH_FAILURE_BACKOFF)
        else:
            log.error("XMPP stream setup failed: {reason}", reason=failure.getErrorMessage(),
                      event="xmpp-setup-failed")
        if stream.xmlstream is not None and stream.xmlstream.transport is not None:
            stream.xmlstream.transport.loseConnection()

    def lost(_) -> None:
        log.info("XMPP connection of {jid} lost", jid=config.jid)

    factory.addBootstrap(xmlstream.STREAM_AUTHD_EVENT, initialized)
    factory.addBootstrap(xmlstream.INIT_FAILED_EVENT, initialization_failed)
    factory.addBootstrap(xmlstream.STREAM_END_EVENT, lost)
    on_stream_error(factory, lambda e: log.warn(
        "XMPP stream error: {condition}", condition=getattr(e, "condition", str(e))))

    log.info("device agent {version} for device {device_id}: XMPP {server} as {jid}, "
             "apps {apps}", version=__version__, device_id=config.device_id,
             server=config.xmpp.server, jid=config.jid, apps=sorted(config.apps))
    return root


def makeService(options: Options) -> MultiService:
    """twistd's entry point."""
    from twisted.internet import reactor

    return build_service(options["agent_config"], reactor)
