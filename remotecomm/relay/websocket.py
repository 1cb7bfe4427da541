"""The relay's WebSocket endpoints: thin autobahn adapters that feed the pairing core.

``/relay/device`` ("Cloud Hub") and ``/relay/terminal`` ("Web Agent") are
mounted in the manager's twisted.web site (which caps handshake headers;
a bare autobahn factory would not).  A client offers the subprotocol
``remotecomm.envelope.1`` and sends ``X-Remotecomm-Session`` and
``X-Remotecomm-Token`` headers; browsers (any ``Origin``, ``null`` included)
are refused with ``403`` before the handshake completes.
Limits are explicit: frame and message size, opening and closing handshake
timeouts, heartbeats, no compression.
"""

from __future__ import annotations

from autobahn.twisted.resource import WebSocketResource
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.types import ConnectionRequest
from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from twisted.web.resource import Resource
from zope.interface import implementer

from remotecomm.identifiers import SESSION_ID, is_valid
from remotecomm.relay import envelope as env
from remotecomm.relay.autobahn_logging import format_debug_lazily
from remotecomm.relay.core import (CLOSE_BAD_FRAME, CLOSE_BAD_HANDSHAKE, CLOSE_NORMAL,
                                   CLOSE_VERSION, IRelayConnection, RelayCore)
from remotecomm.relay.frames import EnvelopeFrameReading, server_frame
from remotecomm.tcp import no_delay

log = Logger()
format_debug_lazily()

SESSION_HEADER = "x-remotecomm-session"
TOKEN_HEADER = "x-remotecomm-token"
MAX_MESSAGE = env.MAX_FRAME + env.MAX_HEAD
OPEN_HANDSHAKE_TIMEOUT = 5
HEARTBEAT_INTERVAL = 20
HEARTBEAT_TIMEOUT = 10
MAX_CONNECTIONS = 20_000
# What autobahn's server protocol keeps of the opening handshake and reads only until the
# connection is open (checked against autobahn's code by tests/relay/test_websocket.py).
HANDSHAKE_ATTRIBUTES = ("http_headers", "http_request_data", "http_status_line",
                        "http_request_uri", "http_request_path", "http_request_params",
                        "http_request_host", "websocket_origin", "websocket_protocols",
                        "websocket_extensions", "http_response_data")


@implementer(IRelayConnection)
class RelayServerProtocol(EnvelopeFrameReading, WebSocketServerProtocol):
    """One side's WebSocket: parses the handshake, then hands everything to the core
    (envelope frames read by :class:`EnvelopeFrameReading`, the rest by autobahn)."""

    core: RelayCore
    side: str

    def onConnect(self, request: ConnectionRequest):
        self._refusal = None
        self._join = None
        headers = request.headers
        session_id = headers.get(SESSION_HEADER, "")
        token = headers.get(TOKEN_HEADER, "")
        chosen = env.SUBPROTOCOL if env.SUBPROTOCOL in request.protocols else None
        if chosen is None:
            offered = ", ".join(request.protocols) or "none"
            self._refusal = (CLOSE_VERSION, "unsupported-version",
                             f"unsupported envelope version ({offered}); this relay speaks "
                             f"{env.SUBPROTOCOL}")
        elif not is_valid(SESSION_ID, session_id) or not token or len(token) > 128:
            self._refusal = (CLOSE_BAD_HANDSHAKE, "bad-handshake",
                             "the session ID and token headers are required")
        else:
            self._join = (session_id, token)
        self._session_id = session_id if is_valid(SESSION_ID, session_id) else None
        return chosen

    def onOpen(self):
        self._forget_handshake()
        no_delay(self.transport)
        source = getattr(self.transport.getPeer(), "host", "unknown")
        self._source = source
        self.core.source_opened(source)
        if self._refusal is not None:
            code, audit_code, reason = self._refusal
            self.core.refuse(self, code, audit_code, reason, self._session_id, self.side, source)
            return
        (session_id, token), self._join = self._join, None
        self.core.join(self, session_id, self.side, token, source)

    def _forget_handshake(self) -> None:
        """Drop what autobahn kept of the opening handshake (its raw bytes and parsed
        headers, used only until now) and compact the attributes of the protocol and its
        transport: about 5 KiB of the 24 KiB a paired idle session held here (tracemalloc,
        docs/performance.md)."""
        attributes = self.__dict__
        for name in HANDSHAKE_ATTRIBUTES:
            attributes.pop(name, None)
        # A dict keeps its table when keys go, and both dicts grew past what they hold now
        # during the handshake: copies are smaller (about 2 KiB a connection together).
        self.__dict__ = dict(attributes)
        self.transport.__dict__ = dict(self.transport.__dict__)

    def onMessage(self, payload: bytes, isBinary: bool):
        if not isBinary:
            self.close(CLOSE_BAD_FRAME, "envelope frames are binary")
            return
        self.core.received(self, payload)

    heartbeat_lost = False

    def onAutoPingTimeout(self) -> None:
        # The side did not answer our ping in time: its end log says so.
        self.heartbeat_lost = True
        super().onAutoPingTimeout()

    def onClose(self, wasClean: bool, code, reason):
        if getattr(self, "_source", None) is not None:
            self.core.source_closed(self._source)
            self._source = None
        # A normal end request: the side itself closed, cleanly, with 1000.
        normal_request = (wasClean and not getattr(self, "closedByMe", True)
                          and getattr(self, "remoteCloseCode", None) == CLOSE_NORMAL)
        self.core.closed(self, normal_request,
                         lost_reason="heartbeat-timeout" if self.heartbeat_lost else None)

    # -- IRelayConnection ----------------------------------------------------------

    def send(self, message: bytes) -> None:
        """Forward one envelope frame as one unmasked binary WebSocket frame: its header
        and the payload go to the transport as they are (autobahn's ``sendMessage`` would
        copy the payload behind the header first and check again what the receiving side
        checked).  Nothing goes out once this side started closing."""
        if self.state == self.STATE_OPEN:
            self.transport.writeSequence(server_frame(message))

    def close(self, code: int, reason: str) -> None:
        self.sendClose(code, reason.encode("utf-8")[:120].decode("utf-8", "ignore"))

    def pause(self) -> None:
        self.transport.pauseProducing()

    def resume(self) -> None:
        self.transport.resumeProducing()

    def pair(self, partner: "RelayServerProtocol") -> None:
        # The HTTP channel registered itself as this transport's producer; from now on a
        # full outgoing buffer here pauses reading from the partner instead.
        self.transport.unregisterProducer()
        self.transport.registerProducer(_PartnerReading(partner.transport), True)

    def established(self) -> None:
        self.send(env.encode_hello({"from": "relay", "established": True}))


@implementer(IPushProducer)
class _PartnerReading:
    """The partner's reading, as a producer for this side's transport.

    ``stopProducing`` does nothing: when this side's connection goes, the core
    closes the partner with a proper close code.
    """

    def __init__(self, transport):
        self._transport = transport

    def pauseProducing(self) -> None:
        self._transport.pauseProducing()

    def resumeProducing(self) -> None:
        self._transport.resumeProducing()

    def stopProducing(self) -> None:
        pass


class RelayEndpointResource(WebSocketResource):
    """A WebSocket endpoint in the site, without the HTTP channel's idle timeout; a browser
    (any ``Origin`` header) is answered ``403`` and never upgraded."""

    def __init__(self, factory: WebSocketServerFactory, core: RelayCore, side: str):
        super().__init__(factory)
        self._core = core
        self._side = side

    def render(self, request):
        if request.args or request.getHeader(b"cookie") is not None:
            # The session ID and token come from their headers only; a second place for them
            # is refused before anything else.
            request.setResponseCode(400)
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            request.setHeader(b"connection", b"close")
            return b"send the session ID and token only in their X-Remotecomm-* headers\n"
        source = getattr(request.getClientAddress(), "host", "unknown")
        if self._core.shed(source):
            request.setResponseCode(429)
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            request.setHeader(b"retry-after", b"60")
            request.setHeader(b"connection", b"close")
            return (b"too many refused joins or open connections from this address; "
                    b"try again later\n")
        if request.getHeader(b"origin") is not None:
            session = (request.getHeader(SESSION_HEADER.encode()) or b"").decode(
                "ascii", "replace")
            self._core.refused_before_upgrade(
                "origin-refused", session if is_valid(SESSION_ID, session) else None,
                self._side, getattr(request.getClientAddress(), "host", "unknown"))
            request.setResponseCode(403)
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            request.setHeader(b"connection", b"close")
            return b"browsers may not connect to the relay\n"
        request.channel.setTimeout(None)  # the WebSocket has its own heartbeats
        return super().render(request)


def relay_protocol_options() -> dict:
    """The relay's WebSocket options, explicit limits included (the conformance test runs
    the same ones)."""
    return dict(maxFramePayloadSize=MAX_MESSAGE, maxMessagePayloadSize=MAX_MESSAGE,
                openHandshakeTimeout=OPEN_HANDSHAKE_TIMEOUT, closeHandshakeTimeout=2,
                autoPingInterval=HEARTBEAT_INTERVAL, autoPingTimeout=HEARTBEAT_TIMEOUT,
                maxConnections=MAX_CONNECTIONS,
                perMessageCompressionAccept=lambda offers: None,
                requireMaskedClientFrames=True, failByDrop=False)


def relay_factory(core: RelayCore, side: str) -> WebSocketServerFactory:
    """The autobahn factory of one side's endpoint, with explicit limits."""
    factory = WebSocketServerFactory()
    factory.protocol = type(f"Relay{side.title()}Protocol", (RelayServerProtocol,),
                            {"core": core, "side": side})
    factory.setProtocolOptions(**relay_protocol_options())
    return factory


def relay_resource(core: RelayCore) -> Resource:
    """``/relay`` with its two endpoints."""
    relay = Resource()
    for side in ("device", "terminal"):
        relay.putChild(side.encode("ascii"),
                       RelayEndpointResource(relay_factory(core, side), core, side))
    return relay


class SiteRoot(Resource):
    """The site's root: ``/relay/…`` to the relay endpoints, ``/portal…`` to the portal (a
    manager's), every other path to the API."""

    def __init__(self, api: Resource, relay: Resource, portal: Resource | None = None):
        super().__init__()
        self._api = api
        self._relay = relay
        self._portal = portal

    def getChildWithDefault(self, name: bytes, request):
        if name == b"relay":
            return self._relay
        if name == b"portal" and self._portal is not None:
            return self._portal
        return self._api

    def render(self, request):
        return self._api.render(request)
