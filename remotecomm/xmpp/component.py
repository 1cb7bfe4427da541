"""The manager's XMPP component (XEP-0114): devices' presence, their requests, our messages.

- :class:`DeviceDirectory` turns presence into the online state, stores
  hellos, and probes registered devices after every (re)connect (silent ones
  are marked offline after ``settle_time``).
- :class:`DeviceRequests` decodes IQ requests in our namespace from device
  accounts into session messages, hands each to the handler registered for
  its type, and turns the outcome into a result or an error reply (after the
  handler has committed).  Handlers never see XML.
- :class:`DeviceMessenger` encodes a session message and sends it to a
  device's current connection.

:func:`build_component` wires them to one stream and one connector.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Awaitable, Callable

from twisted.internet.defer import Deferred, ensureDeferred, fail
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.words.protocols.jabber import component as jabber_component
from twisted.words.xish import domish

from remotecomm.clock import now_us
from remotecomm.sessions.messages import Hello, KeptReports, MessageRefused, ReportRequest
from remotecomm.store import devices as device_queries
from remotecomm.store.engine import Store
from remotecomm.xmpp.compat import subprotocols
from remotecomm.xmpp.payloads import (NS_DEVICE_PREFIX, PayloadError, decode, decode_kept_reports,
                                      device_id_of, encode, parse_presence)
from remotecomm.xmpp.stream import (NotConnected, UnknownIqHandler, XmppConnector, XmppStream,
                                    on_stream_error, reply_error, reply_result)

log = Logger()

SETTLE_TIME = 10.0

# handler(device_id, message, sender's full JID) -> awaitable; raises MessageRefused to
# answer with an error.
RequestHandler = Callable[[str, object, str], Awaitable[None]]


class DeviceDirectory(subprotocols.XMPPHandler):
    """Device presence → the store; hellos → the store; probes after every (re)connect."""

    def __init__(self, store: Store, clock: IReactorTime, devices_domain: str,
                 component_jid: str, settle_time: float = SETTLE_TIME):
        super().__init__()
        self._store = store
        self._clock = clock
        self._devices_domain = devices_domain
        self._component_jid = component_jid
        self._settle_time = settle_time
        self._resources: dict[str, list[str]] = {}
        self._settle_call = None
        self.on_hello = lambda device_id: None  # a device (re)introduced itself

    def full_jid(self, device_id: str) -> str | None:
        """The device's most recently announced connection, if it is online."""
        resources = self._resources.get(device_id)
        return f"{device_id}@{self._devices_domain}/{resources[-1]}" if resources else None

    def connectionInitialized(self) -> None:
        self.xmlstream.addObserver("/presence", self._on_presence)
        self._resources = {}
        self._store.run(device_queries.active_device_ids).addCallback(self._probe).addErrback(
            lambda f: log.failure("probing devices failed", f))

    def connectionLost(self, reason) -> None:
        if self._settle_call is not None and self._settle_call.active():
            self._settle_call.cancel()
        self._settle_call = None
        self._resources = {}

    def _probe(self, device_ids: list[str]) -> None:
        started_us = now_us(self._clock)
        for device_id in device_ids:
            presence = domish.Element((None, "presence"))
            presence["from"] = self._component_jid
            presence["to"] = f"{device_id}@{self._devices_domain}"
            try:
                self.parent.send(presence)
            except NotConnected:
                return
        log.info("component connected; probed {count} devices", count=len(device_ids))
        self._settle_call = self._clock.callLater(self._settle_time, self._settle, started_us)

    def _settle(self, started_us: int) -> None:
        self._settle_call = None

        def report(silent: list[str]) -> None:
            for device_id in silent:
                log.info("device {device_id} did not answer the probe: offline",
                         device_id=device_id)

        self._store.run(device_queries.mark_silent_devices_offline, started_us,
                        now_us(self._clock)).addCallback(report).addErrback(
            lambda f: log.failure("marking silent devices offline failed", f))

    def _on_presence(self, presence: domish.Element) -> None:
        update = parse_presence(presence, self._devices_domain)
        if update is None:
            return
        resources = self._resources.setdefault(update.device_id, [])
        was_online = bool(resources)
        if update.resource in resources:
            resources.remove(update.resource)
        if update.available:
            resources.append(update.resource)
        online = bool(resources)
        if not online:
            del self._resources[update.device_id]

        def recorded(known: bool) -> None:
            if not known:
                log.warn("presence from unregistered or revoked device {device_id} ignored",
                         device_id=update.device_id)
            elif online != was_online:
                log.info("device {device_id} is {state}", device_id=update.device_id,
                         state="online" if online else "offline")

        self._store.run(device_queries.set_device_presence, update.device_id, online,
                        now_us(self._clock)).addCallback(recorded).addErrback(
            lambda f: log.failure("recording presence of {device_id} failed", f,
                                  device_id=update.device_id))

    async def handle_hello(self, device_id: str, hello: Hello, source: str) -> None:
        """Store what the device says of itself."""
        known = await self._store.run(device_queries.record_hello, device_id,
                                      hello.agent_version, hello.envelope_version,
                                      list(hello.apps), now_us(self._clock),
                                      hello.firmware_version,
                                      [spec.to_json() for spec in hello.settings],
                                      hello.settings_version)
        if not known:
            raise MessageRefused("forbidden", "this device is not registered")
        log.info("device {device_id} says hello: agent {agent_version}, envelope "
                 "{envelope_version}, firmware {firmware}, apps {apps}", device_id=device_id,
                 agent_version=hello.agent_version, envelope_version=hello.envelope_version,
                 firmware=hello.firmware_version or "not said", apps=list(hello.apps))
        self._clock.callLater(0, self.on_hello, device_id)


class DeviceRequests(subprotocols.XMPPHandler):
    """Decodes devices' IQ requests in our namespace, routes them to handlers, answers them."""

    def __init__(self, devices_domain: str):
        super().__init__()
        self._devices_domain = devices_domain
        self._handlers: dict[type, RequestHandler] = {}

    def register(self, message_type: type, handler: RequestHandler) -> None:
        """Handle IQ sets that carry a ``message_type`` (a session message) with ``handler``."""
        self._handlers[message_type] = handler

    def connectionInitialized(self) -> None:
        self.xmlstream.addObserver('/iq[@type="set"]', self._on_request)
        self.xmlstream.addObserver('/iq[@type="get"]', self._on_request)

    def _on_request(self, iq: domish.Element) -> None:
        payload = next(iq.elements(), None)
        if payload is None or not (payload.uri or "").startswith(NS_DEVICE_PREFIX):
            return  # not ours: the fallback handler answers it
        iq.handled = True
        sender = device_id_of(iq.getAttribute("from"), self._devices_domain)
        try:
            if sender is None:
                raise PayloadError("forbidden", "only devices may send this")
            message = decode(iq)
            handler = self._handlers.get(type(message)) if iq["type"] == "set" else None
            if handler is None:
                raise PayloadError("feature-not-implemented",
                                   f"unknown request {payload.name!r}")
        except PayloadError as e:
            self._refuse(iq, e)
            return
        d = ensureDeferred(handler(sender[0], message, iq.getAttribute("from")))
        d.addCallbacks(lambda _: reply_result(self.parent, iq), lambda f: self._failed(iq, f))

    def _failed(self, iq: domish.Element, failure) -> None:
        if failure.check(MessageRefused):
            self._refuse(iq, PayloadError.from_refusal(failure.value))
            return
        log.failure("handling {payload} from {sender} failed", failure,
                    payload=next(iq.elements()).name, sender=iq.getAttribute("from"))
        reply_error(self.parent, iq, "internal-server-error", "try again", kind="wait")

    def _refuse(self, iq: domish.Element, error: PayloadError) -> None:
        log.warn("refused a request from {sender}: {reason}", sender=iq.getAttribute("from"),
                 reason=error.text)
        reply_error(self.parent, iq, error.condition, error.text)


class DeviceMessenger:
    """Sends session messages to a device's current connection, as IQ sets with a timeout."""

    def __init__(self, stream: XmppStream, directory: DeviceDirectory):
        self._stream = stream
        self._directory = directory

    @property
    def link_up(self) -> bool:
        """Whether the manager's own link to the XMPP server is up."""
        return self._stream.connected

    def is_reachable(self, device_id: str) -> bool:
        """Whether the device has a connection we know of."""
        return self._stream.connected and self._directory.full_jid(device_id) is not None

    def send(self, device_id: str, message) -> Deferred:
        """Send ``message``; fires with the result IQ, fails if the device is unreachable."""
        jid = self._directory.full_jid(device_id)
        if jid is None:
            return fail(NotConnected(f"device {device_id} is not connected"))
        return self._stream.request_iq(jid, encode(message))

    async def ask_kept_reports(self, device_id: str, asked: ReportRequest) -> KeptReports:
        """S312: ask a device what it kept of some sessions; its answer, checked (raises
        :class:`PayloadError` for an answer that is not one)."""
        result = await self.send(device_id, asked)
        return decode_kept_reports(result, asked)


@dataclass
class Component:
    """The wired component: stream, connector, and the handlers others plug into."""

    stream: XmppStream
    connector: XmppConnector
    directory: DeviceDirectory
    requests: DeviceRequests
    messenger: DeviceMessenger


def build_component(clock: IReactorTime, endpoint, component_jid: str, secret: str,
                    devices_domain: str, store: Store, on_fatal) -> Component:
    """Build the component; ``on_fatal(message)`` is called when the server refuses our secret."""
    factory = jabber_component.componentFactory(component_jid, secret)
    stream = XmppStream(factory, clock)
    directory = DeviceDirectory(store, clock, devices_domain, component_jid)
    directory.setHandlerParent(stream)
    requests = DeviceRequests(devices_domain)
    requests.register(Hello, directory.handle_hello)
    requests.setHandlerParent(stream)
    UnknownIqHandler().setHandlerParent(stream)
    connector = XmppConnector(clock, endpoint, factory, max_delay=2.0)
    factory.addBootstrap("//event/stream/authd", lambda _: connector.initialized())

    def stream_error(error: Exception) -> None:
        condition = getattr(error, "condition", "unknown")
        if condition == "not-authorized" and not stream.connected:
            on_fatal(f"the XMPP server refused the component secret for {component_jid} "
                     f"(stream error not-authorized)")
        else:
            log.error("XMPP stream error from the server: {condition}", condition=condition)

    on_stream_error(factory, stream_error)
    return Component(stream=stream, connector=connector, directory=directory,
                     requests=requests, messenger=DeviceMessenger(stream, directory))
