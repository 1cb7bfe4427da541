"""``twistd remotecomm``: options and the one place that builds the server."""

from __future__ import annotations

import sys
from dataclasses import dataclass

from prometheus_client import CollectorRegistry
from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import MultiService, Service
from twisted.internet.defer import ensureDeferred, fail, succeed
from twisted.internet.endpoints import clientFromString, serverFromString
from twisted.logger import Logger
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.web.resource import NoResource

from remotecomm import __version__
from remotecomm.accounts.administration import AccountAdmin
from remotecomm.accounts.housekeeping import token_purge_service
from remotecomm.accounts.login import Accounts
from remotecomm.accounts.passwords import PasswordHasherPool
from remotecomm.accounts.throttle import LoginThrottle
from remotecomm.clock import seconds_to_us
from remotecomm.config import config_options
from remotecomm.fleet.listing import FleetListing
from remotecomm.fleet.registry import DeviceRegistry, panel_login_audit
from remotecomm.http_files import UploadRequest
from remotecomm.json_http import Router, make_site
from remotecomm.maintenance.firmware import FirmwareImages
from remotecomm.maintenance.messages import JobProgress, JobResult
from remotecomm.maintenance.service import JobService
from remotecomm.metrics import MetricsResource, manager_registry, relay_registry
from remotecomm.portal.resource import PORTAL_UPLOAD_PATH, Portal
from remotecomm.relay.core import RelayCore
from remotecomm.relay.gateway_http import read_api_secret
from remotecomm.relay.liveness import HeartbeatSender
from remotecomm.relay.logs import LogOutbox, open_relay_store
from remotecomm.relay.manager_api import ManagerClient, relay_node_routes
from remotecomm.relay.node import RelayNode
from remotecomm.relay.websocket import SiteRoot, relay_resource
from remotecomm.reports.mail import ReportMailer
from remotecomm.reports.service import UnitReports
from remotecomm.reports.smtp import SmtpSender
from remotecomm.scheduling import Job, Scheduler, every
from remotecomm.server.config import ServerConfig, SessionsConfig, load_server_config
from remotecomm.server.nvx import NativeHelpersMissing, check_native_helpers
from remotecomm.services import SequentialMultiService, StartStopService, exit_after_shutdown
from remotecomm.sessions.broker import SessionBroker
from remotecomm.sessions.collection import RecordCollector
from remotecomm.sessions.lifecycle import SessionPolicy
from remotecomm.sessions.messages import ApprovalDecision, PanelLoginFailed, SessionReport
from remotecomm.sessions.relay_api import ManagerForRelay
from remotecomm.sessions.relays import RelayDirectory
from remotecomm.store.engine import SchemaTooNew, Store, describe_database, migrate, open_database
from remotecomm.tls import TLSSetupError, server_tls_options
from remotecomm.web.api import Api, Health
from remotecomm.web.jobs_api import firmware_uploads
from remotecomm.web.relay_api import RelayNodeClient, manager_routes
from remotecomm.xmpp.component import build_component
from remotecomm.xmpp.prosody import ProsodyTools
from remotecomm.xmpp.stream import NotConnected

log = Logger()

# Exit status when the XMPP server refuses the component secret.
EXIT_XMPP_REFUSED = 3


LISTEN_BACKLOG = 1024  # connections the kernel queues before we accept them


def with_backlog(endpoint: str) -> str:
    """A TCP endpoint string with a listen queue of :data:`LISTEN_BACKLOG` unless it names
    its own: Twisted's default of 50 overflows when devices or terminals connect in a burst
    (hundreds at once after a relay restarts), and each connection dropped then waits a
    second for the kernel to try again."""
    kind, _, _ = endpoint.partition(":")
    if kind not in ("tcp", "tcp6") or "backlog=" in endpoint:
        return endpoint
    return f"{endpoint}:backlog={LISTEN_BACKLOG}"


def _refuse_to_start(message: str) -> None:
    sys.stderr.write(f"remotecomm: {message}\n")
    raise SystemExit(1)


ROLES = ("both", "manager", "relay")


class Options(config_options(load_server_config, "server_config", "etc/remotecomm.toml")):
    """``twistd remotecomm --config FILE [--role both|manager|relay]``."""

    optParameters = [["role", None, "both",
                      "both (default): manager and relay in one process; manager: the REST "
                      "API, XMPP and sessions; relay: only the relay, calling the manager "
                      "at [relay] manager_url"]]

    def postOptions(self) -> None:
        if self["role"] not in ROLES:
            from twisted.python import usage
            raise usage.UsageError(f"--role must be one of {', '.join(ROLES)}")
        super().postOptions()


def build_service(config: ServerConfig, reactor, role: str = "both") -> MultiService:
    """Open the stores, build the objects, wire them, and return them as one service.

    ``role`` picks what this process runs.  Relay and manager reach each other
    through the interfaces of :mod:`remotecomm.relay.gateway` either way:
    in-process for ``both``, over the HTTPS API (:mod:`remotecomm.web.relay_api`,
    :mod:`remotecomm.relay.manager_api`) when they run apart.
    """
    try:
        check_native_helpers()
    except NativeHelpersMissing as e:
        _refuse_to_start(str(e))
    root = SequentialMultiService()
    # Started in this order, stopped one by one in reverse: the stores outlive their users.
    readiness: dict = {}
    notices: dict = {}  # shown by /readyz beside the checks (dead letters)
    secret = _api_secret(config) if role != "both" else None
    relay = None

    def connect_node(name: str, api_url: str):
        """The manager's way to one relay node: this process's own, or over HTTPS."""
        if relay is not None and name == relay.node.node:
            return relay.node
        return _relay_node_client(config, reactor, api_url, secret or _api_secret(config))

    manager = (_build_manager(config, reactor, root, readiness, connect_node)
               if role != "relay" else None)
    if role != "manager":
        gateway = manager.for_relay if manager is not None else _manager_client(
            config, reactor, root, secret)
        relay = _build_relay(config, reactor, root, readiness, gateway)
        notices["dead_letters"] = lambda: relay.outbox.dead
    if manager is not None:
        routes = (manager_routes(manager.for_relay, secret, manager.store, reactor)
                  if role == "manager" else [])
        api_resource, portal = _build_sessions(config, reactor, root, readiness, manager,
                                               routes, notices)
    else:
        portal = None
        api_resource = Router(Health(readiness, reactor, notices).routes()
                              + relay_node_routes(relay.node, secret))
    factory = make_site(SiteRoot(api_resource, relay.resource if relay else NoResource(),
                                 portal))
    if manager is not None:
        factory.requestFactory = UploadRequest
        factory.upload_for = firmware_uploads(manager.firmware.incoming,
                                              portal_path=PORTAL_UPLOAD_PATH)
    if config.tls.enabled:
        try:
            tls_options = server_tls_options(config.tls.certificate, config.tls.key,
                                             config.tls.profile)
        except TLSSetupError as e:
            _refuse_to_start(str(e))
        factory = TLSMemoryBIOFactory(tls_options, False, factory)

    web = StreamServerEndpointService(serverFromString(reactor, with_backlog(config.listen)),
                                      factory)
    web.setName("web")
    web._raiseSynchronously = True  # a port in use must stop twistd, not just log
    web.setServiceParent(root)
    if config.metrics.enabled and relay is not None:
        metrics = StreamServerEndpointService(
            serverFromString(reactor, config.metrics.listen),
            make_site(MetricsResource(_registry(relay, manager))))
        metrics.setName("metrics")
        metrics._raiseSynchronously = True
        metrics.setServiceParent(root)
    databases = []
    if role != "relay":
        databases.append(f"manager {describe_database(config.database)}")
    if role != "manager":
        databases.append(f"relay {config.relay.database}")
    log.info("remotecomm {version} ({role}) serving {listen} ({scheme}, TLS profile "
             "{profile}); autobahn native helpers active; databases: {databases}",
             version=__version__, role=role, listen=config.listen,
             scheme="https" if config.tls.enabled else "plain http (loopback only)",
             profile=config.tls.profile if config.tls.enabled else "none",
             databases=", ".join(databases))
    return root


@dataclass
class _ManagerParts:
    store: Store
    accounts: Accounts
    devices: object
    component: object
    relays: RelayDirectory
    for_relay: ManagerForRelay
    firmware: FirmwareImages
    mailer: ReportMailer | None = None


@dataclass
class _RelayParts:
    resource: object
    core: RelayCore
    outbox: LogOutbox
    node: RelayNode


def _api_secret(config: ServerConfig) -> str:
    """The relay ↔ manager API's shared secret (both sides of a split need it)."""
    try:
        return read_api_secret(config.relay.api_secret_file)
    except (OSError, ValueError) as e:
        _refuse_to_start(f"the relay API needs its secret ({e}); run `remotecomm admin init` "
                         f"on the manager and copy its [relay] api_secret_file to the relay")


def _build_manager(config: ServerConfig, reactor, root, readiness: dict,
                   connect_node) -> _ManagerParts:
    """The manager's store, accounts, XMPP component, relay node table and its answers to
    relays."""
    engine = open_database(config.database)
    try:
        migrate(engine)
    except SchemaTooNew as e:
        _refuse_to_start(f"{describe_database(config.database)}: {e}")
    store = Store(engine, reactor)
    hasher = PasswordHasherPool(reactor, config.accounts.password_hash)
    throttle = LoginThrottle(store, reactor, config.accounts.failures_per_account,
                             config.accounts.failures_per_address,
                             config.accounts.failure_window)
    accounts = Accounts(store, hasher, throttle, reactor, config.accounts.api_token_lifetime)
    StartStopService("store", store.start, store.stop).setServiceParent(root)
    StartStopService("password-hashing", hasher.start, hasher.stop).setServiceParent(root)
    token_purge_service(store, reactor, config.accounts.failure_window).setServiceParent(root)
    readiness["store"] = store.check
    devices = Unreachable()
    component = None
    if config.xmpp.enabled:
        component = _build_component(config, store, reactor)
        devices = component.messenger
        readiness["xmpp"] = lambda: succeed(component.stream.connected)
    relays = RelayDirectory(store, reactor, connect_node, config.relay.lost_after)
    StartStopService("relay-directory", lambda: None, relays.close).setServiceParent(root)
    return _ManagerParts(store=store, accounts=accounts, devices=devices, component=component,
                         relays=relays, for_relay=ManagerForRelay(store, reactor, devices,
                                                                  relays),
                         firmware=FirmwareImages(store, reactor, config.data_dir / "firmware",
                                                 config.public_url))


def _build_sessions(config: ServerConfig, reactor, root, readiness: dict,
                    manager: _ManagerParts, extra_routes: list, notices: dict):
    """The session broker, the XMPP handlers it needs, the REST API and the portal."""
    broker = SessionBroker(manager.store, reactor, session_policy(config.sessions),
                           config.sessions.allow_test_approver, manager.relays,
                           manager.devices)
    def start_sessions() -> None:
        _log_errors(broker.start(), "re-arming sessions")
        broker.start_sweep()

    StartStopService("sessions", start_sessions, broker.stop).setServiceParent(root)
    collector = RecordCollector(manager.store, reactor, manager.devices,
                                window=config.records.collect_window)
    scheduler = Scheduler(manager.store, reactor)
    if config.records.collect_every:
        async def collect_everywhere(period_start_us: int) -> str:
            return (await collector.collect()).summary()

        scheduler.add(Job("collect-session-reports", every(config.records.collect_every),
                          collect_everywhere))
    sender = None
    if config.mail.enabled:
        mail = config.mail
        sender = SmtpSender(reactor, host=mail.smtp_host, port=mail.smtp_port,
                            from_address=mail.from_address, username=mail.username,
                            password_file=mail.password_file,
                            require_starttls=mail.require_starttls,
                            ca_certificate=mail.ca_certificate, timeout=mail.timeout)
        try:
            sender.check()
        except ValueError as e:
            _refuse_to_start(f"{config.config_path}: {e}")
        sender = sender.send
    manager.mailer = ReportMailer(manager.store, reactor, sender, config.mail.from_address,
                                  send_grace=config.mail.send_grace)
    scheduler.add(Job("report-mail", every(60), manager.mailer.run, claimed=False))
    StartStopService("scheduler", scheduler.start, scheduler.stop).setServiceParent(root)
    jobs = JobService(manager.store, reactor, manager.devices, manager.firmware)
    StartStopService("jobs", jobs.start, jobs.stop).setServiceParent(root)
    if manager.component is not None:
        manager.component.requests.register(ApprovalDecision, broker.on_decision)
        manager.component.requests.register(SessionReport, broker.on_session_report)
        manager.component.requests.register(JobResult, jobs.on_result)
        manager.component.requests.register(JobProgress, jobs.on_progress)
        manager.component.requests.register(PanelLoginFailed,
                                            panel_login_audit(manager.store, reactor))

        def device_returned(device_id: str) -> None:
            _log_errors(collector.device_returned(device_id), "collecting at a hello")
            _log_errors(jobs.device_returned(device_id), "sending jobs at a hello")

        manager.component.directory.on_hello = device_returned
        manager.component.connector.setServiceParent(root)
    if config.sessions.allow_test_approver:
        log.warn("this manager ACCEPTS answers from device test approvers "
                 "([sessions] allow_test_approver = true): for tests and benchmarks only")
    registry = DeviceRegistry(manager.store, reactor,
                              config.xmpp if config.xmpp.enabled else None,
                              config.tls.ca_certificate,
                              ProsodyTools(config.xmpp.prosody_dir / "prosody.cfg.lua",
                                           config.xmpp.prosodyctl),
                              devices=manager.devices)
    api = Api(manager.accounts, manager.store, reactor, readiness=readiness, broker=broker,
              extra_routes=extra_routes, notices=notices, collector=collector,
              mailer=manager.mailer, jobs=jobs, firmware=manager.firmware,
              registry=registry, relays=manager.relays,
              devices_link_up=lambda: getattr(manager.devices, "link_up", False))
    portal = Portal(manager.accounts, FleetListing(
        manager.store, lambda: getattr(manager.devices, "link_up", False)), reactor,
        sessions=broker, reports=UnitReports(manager.store, reactor, manager.mailer),
        admin=AccountAdmin(manager.store, manager.accounts.hasher, reactor), jobs=jobs,
        firmware=manager.firmware, registry=registry)
    return api.resource(), portal


def _manager_client(config: ServerConfig, reactor, root, secret: str) -> ManagerClient:
    """A relay-only process calls the manager over HTTPS (kept-alive connections close at
    shutdown)."""
    log.info("relay calls the manager at {url}", url=config.relay.manager_url)
    client = ManagerClient(reactor, config.relay.manager_url,
                           _seam_ca(config, config.relay.manager_url), secret)
    StartStopService("manager-client", lambda: None, client.close).setServiceParent(root)
    return client


def _relay_node_client(config: ServerConfig, reactor, api_url: str,
                       secret: str) -> RelayNodeClient:
    """The manager calls a relay node of another process over HTTPS (the relay directory
    closes it at shutdown)."""
    log.info("manager calls relay node at {url}", url=api_url)
    return RelayNodeClient(reactor, api_url, _seam_ca(config, api_url), secret)


def _seam_ca(config: ServerConfig, url: str):
    """The seam trusts only the deployment's CA (nothing to trust for plain loopback)."""
    return config.tls.ca_certificate if url.startswith("https:") else None


def _build_relay(config: ServerConfig, reactor, root, readiness: dict,
                 gateway) -> _RelayParts:
    """The relay: its own store, the log outbox, the WebSocket endpoints, the node."""
    relay_store = open_relay_store(config.relay.database, reactor)
    StartStopService("relay-store", relay_store.start, relay_store.stop).setServiceParent(root)
    outbox = LogOutbox(relay_store, gateway, reactor, config.relay.node)
    relay_core = RelayCore(reactor, gateway, outbox,
                           connections_per_source=config.relay.max_connections_per_address)
    RelayService(relay_core, outbox).setServiceParent(root)
    readiness["relay-store"] = relay_store.check
    node = RelayNode(relay_core, config.relay.node, config.relay.public_url,
                     capacity=config.relay.capacity)
    heartbeats = HeartbeatSender(node, gateway, reactor, config.relay.api_url,
                                 config.relay.heartbeat_interval,
                                 on_manager_back=outbox.retry_now)
    StartStopService("relay-heartbeat", heartbeats.start, heartbeats.stop).setServiceParent(root)
    return _RelayParts(resource=relay_resource(relay_core), core=relay_core, outbox=outbox,
                       node=node)


def session_policy(sessions: SessionsConfig) -> SessionPolicy:
    """The lifecycle's timing rules from the ``[sessions]`` config."""
    return SessionPolicy(approval_timeout_us=seconds_to_us(sessions.approval_timeout),
                         join_window_us=seconds_to_us(sessions.join_window),
                         max_lifetime_us=seconds_to_us(sessions.max_lifetime),
                         idle_timeout_us=seconds_to_us(sessions.idle_timeout),
                         max_open_per_user=sessions.max_open_per_user,
                         max_open_per_device=sessions.max_open_per_device)


class Unreachable:
    """The device messenger when XMPP is off: no device can be reached."""

    link_up = False

    def is_reachable(self, device_id: str) -> bool:
        return False

    def send(self, device_id: str, payload):
        return fail(NotConnected("XMPP is disabled on this server"))

    async def ask_kept_reports(self, device_id: str, asked):
        raise NotConnected("XMPP is disabled on this server")


class RelayService(Service):
    """Starts the relay (closing what an earlier run left open) and stops it in order."""

    SHUTDOWN_FLUSH = 5.0

    def __init__(self, core: RelayCore, outbox: LogOutbox):
        self._core = core
        self._outbox = outbox
        self.setName("relay")

    def startService(self) -> None:
        super().startService()
        _log_errors(self._outbox.close_left_open("relay-restart"), "closing left-open sessions")

    def stopService(self):
        super().stopService()
        self._core.shutdown()

        async def flush() -> None:
            if not await self._outbox.flush(self.SHUTDOWN_FLUSH):
                log.warn("some session logs are not filed yet; they are kept and sent at "
                         "the next start")

        return ensureDeferred(flush())


def _registry(relay: _RelayParts, manager: _ManagerParts | None) -> CollectorRegistry:
    """What ``/metrics`` shows: the relay's counters, and the manager's in one process."""
    registry = relay_registry(relay.core, relay.outbox, node=relay.node)
    if manager is not None and manager.mailer is not None:
        manager_registry(registry, manager.mailer)
    return registry


def _log_errors(coroutine, what: str) -> None:
    ensureDeferred(coroutine).addErrback(lambda f: log.failure("{what} failed", f, what=what))


def _build_component(config: ServerConfig, store: Store, reactor):
    try:
        secret = config.xmpp.secret_file.read_text().strip()
    except FileNotFoundError:
        _refuse_to_start(f"missing {config.xmpp.secret_file}: run `remotecomm admin init` first")
    if not secret:
        _refuse_to_start(f"{config.xmpp.secret_file} is empty")

    def fatal(message: str) -> None:
        log.critical("{message}; stopping", message=message)
        exit_after_shutdown(reactor, EXIT_XMPP_REFUSED)

    endpoint = clientFromString(reactor, config.xmpp.component_endpoint)
    component = build_component(reactor, endpoint, config.xmpp.component_domain, secret,
                                config.xmpp.devices_domain, store, fatal)
    component.connector.setName("xmpp-component")
    return component


def makeService(options: Options) -> MultiService:
    """twistd's entry point."""
    from twisted.internet import reactor

    return build_service(options["server_config"], reactor, options["role"])
