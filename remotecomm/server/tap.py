"""``twistd remotecomm``: options and the one place that builds the server."""

from __future__ import annotations

import sys

from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import MultiService, Service
from twisted.internet.defer import ensureDeferred, fail, succeed
from twisted.internet.endpoints import clientFromString, serverFromString
from twisted.logger import Logger
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.web.resource import NoResource

from remotecomm import __version__
from remotecomm.accounts.housekeeping import token_purge_service
from remotecomm.accounts.login import Accounts
from remotecomm.accounts.passwords import PasswordHasherPool
from remotecomm.accounts.throttle import LoginThrottle
from remotecomm.config import config_options
from remotecomm.clock import seconds_to_us
from remotecomm.metrics import MetricsResource, relay_registry
from remotecomm.relay.core import RelayCore
from remotecomm.relay.logs import LogOutbox, open_relay_store
from remotecomm.relay.placement import LocalRelayPlacement
from remotecomm.relay.websocket import SiteRoot, relay_resource
from remotecomm.server.config import ServerConfig, SessionsConfig, load_server_config
from remotecomm.sessions.broker import SessionBroker
from remotecomm.sessions.lifecycle import SessionPolicy
from remotecomm.sessions.relay_api import ManagerForRelay
from remotecomm.server.nvx import NativeHelpersMissing, check_native_helpers
from remotecomm.services import SequentialMultiService, StartStopService, exit_after_shutdown
from remotecomm.store.engine import SchemaTooNew, Store, migrate, open_sqlite
from remotecomm.tls import TLSSetupError, server_tls_options
from remotecomm.sessions.relay_http import ManagerClient, RelayApiRoutes, read_api_secret
from remotecomm.web.api import Api, Health
from remotecomm.web.json_api import Router, make_site
from remotecomm.xmpp.component import build_component
from remotecomm.xmpp.payloads import parse_approval_decision
from remotecomm.xmpp.stream import NotConnected

log = Logger()

# Exit status when the XMPP server refuses the component secret.
EXIT_XMPP_REFUSED = 3


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

    ``role`` picks what this process runs.  The relay reaches the manager through
    the same interface either way: in-process for ``both``, over the HTTPS API
    (:mod:`remotecomm.sessions.relay_http`) when they run apart.
    """
    try:
        check_native_helpers()
    except NativeHelpersMissing as e:
        _refuse_to_start(str(e))
    root = SequentialMultiService()
    # Started in this order, stopped one by one in reverse: the stores outlive their users.
    readiness: dict = {}
    manager_for_relay = None
    if role in ("both", "manager"):
        manager_for_relay, api_resource = _build_manager(config, reactor, root, readiness,
                                                         role)
    else:
        api_resource = Router(Health(readiness, reactor).routes())
    relay_root = None
    if role in ("both", "relay"):
        if manager_for_relay is None:
            manager_for_relay = _manager_client(config, reactor, root)
        relay_root, relay_core, outbox = _build_relay(config, reactor, root, readiness,
                                                      manager_for_relay)
    factory = make_site(SiteRoot(api_resource, relay_root or NoResource()))
    if config.tls.enabled:
        try:
            tls_options = server_tls_options(config.tls.certificate, config.tls.key,
                                             config.tls.profile)
        except TLSSetupError as e:
            _refuse_to_start(str(e))
        factory = TLSMemoryBIOFactory(tls_options, False, factory)

    web = StreamServerEndpointService(serverFromString(reactor, config.listen), factory)
    web.setName("web")
    web._raiseSynchronously = True  # a port in use must stop twistd, not just log
    web.setServiceParent(root)
    if config.metrics.enabled and relay_root is not None:
        metrics = StreamServerEndpointService(
            serverFromString(reactor, config.metrics.listen),
            make_site(MetricsResource(relay_registry(relay_core, outbox))))
        metrics.setName("metrics")
        metrics._raiseSynchronously = True
        metrics.setServiceParent(root)
    databases = []
    if role != "relay":
        databases.append(f"manager {config.database}")
    if role != "manager":
        databases.append(f"relay {config.relay.database}")
    log.info("remotecomm {version} ({role}) serving {listen} ({scheme}, TLS profile "
             "{profile}); autobahn native helpers active; databases: {databases}",
             version=__version__, role=role, listen=config.listen,
             scheme="https" if config.tls.enabled else "plain http (loopback only)",
             profile=config.tls.profile if config.tls.enabled else "none",
             databases=", ".join(databases))
    return root


def _build_manager(config: ServerConfig, reactor, root, readiness: dict, role: str):
    """The manager: its store, accounts, XMPP component, sessions and REST API."""
    engine = open_sqlite(config.database)
    try:
        migrate(engine)
    except SchemaTooNew as e:
        _refuse_to_start(f"{config.database}: {e}")
    store = Store(engine, reactor)
    hasher = PasswordHasherPool(reactor, config.accounts.password_hash)
    throttle = LoginThrottle(reactor, config.accounts.failures_per_account,
                             config.accounts.failures_per_address,
                             config.accounts.failure_window)
    accounts = Accounts(store, hasher, throttle, reactor, config.accounts.api_token_lifetime)
    StartStopService("store", store.start, store.stop).setServiceParent(root)
    StartStopService("password-hashing", hasher.start, hasher.stop).setServiceParent(root)
    token_purge_service(store, reactor).setServiceParent(root)
    readiness["store"] = store.check
    devices = Unreachable()
    component = None
    if config.xmpp.enabled:
        component = _build_component(config, store, reactor)
        devices = component.messenger
        readiness["xmpp"] = lambda: succeed(component.stream.connected)
    placement = LocalRelayPlacement(config.relay.node, config.relay.public_url)
    broker = SessionBroker(store, reactor, session_policy(config.sessions),
                           config.sessions.allow_test_approver, placement, devices)
    StartStopService("sessions", lambda: _log_errors(broker.start(), "re-arming sessions"),
                     broker.stop).setServiceParent(root)
    manager_for_relay = ManagerForRelay(store, reactor, devices)
    extra_routes = []
    if role == "manager":
        try:
            secret = read_api_secret(config.relay.api_secret_file)
        except (OSError, ValueError) as e:
            _refuse_to_start(f"the relay API needs its secret ({e}); run "
                             f"`remotecomm admin init`")
        extra_routes = RelayApiRoutes(manager_for_relay, secret).routes()
    if component is not None:
        component.requests.register("approval-decision", decision_handler(broker))
        component.connector.setServiceParent(root)
    if config.sessions.allow_test_approver:
        log.warn("this manager ACCEPTS answers from device test approvers "
                 "([sessions] allow_test_approver = true): for tests and benchmarks only")
    api = Api(accounts, store, reactor, readiness=readiness, broker=broker,
              extra_routes=extra_routes)
    return manager_for_relay, api.resource()


def _manager_client(config: ServerConfig, reactor, root) -> ManagerClient:
    """A relay-only process calls the manager over HTTPS."""
    try:
        secret = read_api_secret(config.relay.api_secret_file)
    except (OSError, ValueError) as e:
        _refuse_to_start(f"the relay API needs its secret ({e}): copy the manager's "
                         f"[relay] api_secret_file here")
    client = ManagerClient(reactor, config.relay.manager_url,
                           config.tls.ca_certificate if config.relay.manager_url.startswith(
                               "https:") else None, secret)
    StartStopService("manager-client", lambda: None, client.close).setServiceParent(root)
    log.info("relay calls the manager at {url}", url=config.relay.manager_url)
    return client


def _build_relay(config: ServerConfig, reactor, root, readiness: dict, manager_for_relay):
    """The relay: its own store, the log outbox and the WebSocket endpoints."""
    relay_store = open_relay_store(config.relay.database, reactor)
    StartStopService("relay-store", relay_store.start, relay_store.stop).setServiceParent(root)
    outbox = LogOutbox(relay_store, manager_for_relay, reactor, config.relay.node)
    relay_core = RelayCore(reactor, manager_for_relay, outbox)
    RelayService(relay_core, outbox).setServiceParent(root)
    readiness["relay-store"] = relay_store.check
    return relay_resource(relay_core), relay_core, outbox


def session_policy(sessions: SessionsConfig) -> SessionPolicy:
    """The lifecycle's timing rules from the ``[sessions]`` config."""
    return SessionPolicy(approval_timeout_us=seconds_to_us(sessions.approval_timeout),
                         join_window_us=seconds_to_us(sessions.join_window),
                         max_lifetime_us=seconds_to_us(sessions.max_lifetime),
                         idle_timeout_us=seconds_to_us(sessions.idle_timeout))


def decision_handler(broker: SessionBroker):
    """The XMPP handler of S144: the device's approval decision."""
    async def handle(device_id: str, iq) -> None:
        await broker.on_decision(device_id, parse_approval_decision(iq), iq.getAttribute("from"))
    return handle


class Unreachable:
    """The device messenger when XMPP is off: no device can be reached."""

    def is_reachable(self, device_id: str) -> bool:
        return False

    def send(self, device_id: str, payload):
        return fail(NotConnected("XMPP is disabled on this server"))


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
