"""The manager's XMPP component (XEP-0114): which devices are online, and what they are.

:class:`DeviceDirectory` turns device presence and hellos into store
updates.  On every (re)connect of the component it sends each registered
device a directed presence (the "probe"): agents answer by announcing
themselves again, and devices that stay silent for ``settle_time`` seconds
are marked offline.  :func:`build_component` wires stream, handlers and
connector together.
"""

from __future__ import annotations

from dataclasses import dataclass

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.words.protocols.jabber import component as jabber_component
from twisted.words.xish import domish

from remotecomm.clock import now_us
from remotecomm.store import devices as device_queries
from remotecomm.store.engine import Store
from remotecomm.xmpp.compat import subprotocols
from remotecomm.xmpp.payloads import (NS_DEVICE_PREFIX, PayloadError, device_id_of,
                                      parse_hello, parse_presence, request_payload)
from remotecomm.xmpp.stream import (NotConnected, UnknownIqHandler, XmppConnector, XmppStream,
                                    on_stream_error, reply_error, reply_result)

log = Logger()

SETTLE_TIME = 10.0


class DeviceDirectory(subprotocols.XMPPHandler):
    """Device presence and hellos → the store; probes after every (re)connect."""

    def __init__(self, store: Store, clock: IReactorTime, devices_domain: str,
                 component_jid: str, settle_time: float = SETTLE_TIME):
        super().__init__()
        self._store = store
        self._clock = clock
        self._devices_domain = devices_domain
        self._component_jid = component_jid
        self._settle_time = settle_time
        self._resources: dict[str, set[str]] = {}
        self._settle_call = None

    def connectionInitialized(self) -> None:
        self.xmlstream.addObserver("/presence", self._on_presence)
        self.xmlstream.addObserver('/iq[@type="set"]', self._on_request)
        self.xmlstream.addObserver('/iq[@type="get"]', self._on_request)
        self._resources = {}
        self._store.run(device_queries.active_device_ids).addCallback(self._probe).addErrback(
            lambda f: log.failure("probing devices failed", f))

    def connectionLost(self, reason) -> None:
        if self._settle_call is not None and self._settle_call.active():
            self._settle_call.cancel()
        self._settle_call = None

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
        resources = self._resources.setdefault(update.device_id, set())
        was_online = bool(resources)
        if update.available:
            resources.add(update.resource)
        else:
            resources.discard(update.resource)
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

    def _on_request(self, iq: domish.Element) -> None:
        payload = next(iq.elements(), None)
        if payload is None or not (payload.uri or "").startswith(NS_DEVICE_PREFIX):
            return  # not ours: the fallback handler answers it
        iq.handled = True
        sender = device_id_of(iq.getAttribute("from"), self._devices_domain)
        if sender is None:
            reply_error(self.parent, iq, "forbidden", "only devices may send this")
            return
        try:
            name = request_payload(iq).name
            if (name, iq["type"]) != ("hello", "set"):
                raise PayloadError("feature-not-implemented", f"unknown request {name!r}")
            hello = parse_hello(iq)
        except PayloadError as e:
            log.warn("refused {payload} from {sender}: {reason}", payload=payload.name,
                     sender=iq.getAttribute("from"), reason=e.text)
            reply_error(self.parent, iq, e.condition, e.text)
            return
        self._store_hello(iq, sender[0], hello)

    def _store_hello(self, iq: domish.Element, device_id: str, hello) -> None:
        def stored(known: bool) -> None:
            if not known:
                reply_error(self.parent, iq, "forbidden", "this device is not registered")
                return
            log.info("device {device_id} says hello: agent {agent_version}, envelope "
                     "{envelope_version}, apps {apps}", device_id=device_id,
                     agent_version=hello.agent_version, envelope_version=hello.envelope_version,
                     apps=list(hello.apps))
            reply_result(self.parent, iq)

        def failed(failure) -> None:
            log.failure("storing hello of {device_id} failed", failure, device_id=device_id)
            reply_error(self.parent, iq, "internal-server-error", "try again", kind="wait")

        self._store.run(device_queries.record_hello, device_id, hello.agent_version,
                        hello.envelope_version, list(hello.apps),
                        now_us(self._clock)).addCallbacks(stored, failed)


@dataclass
class Component:
    """The wired component: its stream, its connector service and its device directory."""

    stream: XmppStream
    connector: XmppConnector
    directory: DeviceDirectory


def build_component(clock: IReactorTime, endpoint, component_jid: str, secret: str,
                    devices_domain: str, store: Store, on_fatal) -> Component:
    """Build the component; ``on_fatal(message)`` is called when the server refuses our secret."""
    factory = jabber_component.componentFactory(component_jid, secret)
    stream = XmppStream(factory, clock)
    directory = DeviceDirectory(store, clock, devices_domain, component_jid)
    directory.setHandlerParent(stream)
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
    return Component(stream=stream, connector=connector, directory=directory)
