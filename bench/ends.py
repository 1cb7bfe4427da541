"""Both ends of every path the benchmark measures, as one small interface.

An :class:`End` sends chunks, hands received bytes to ``on_data`` and says
whether its transport can take more (``writable``, with ``when_writable``).
The scenarios only use that interface, so each path -- direct TCP, socat,
the transit relay over TCP or WebSocket, websockify, a direct WebSocket,
and our relay (envelope data frames on one stream) -- is measured the same
way by the same code.
"""

from __future__ import annotations

from typing import Callable

from autobahn.twisted.websocket import (WebSocketClientFactory, WebSocketClientProtocol,
                                        WebSocketServerFactory, WebSocketServerProtocol)
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint
from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import Factory, Protocol
from zope.interface import implementer

from remotecomm.relay import envelope as env

MAX_WS_MESSAGE = 2 * 1024 * 1024


@implementer(IPushProducer)
class _Writability:
    """Registered on a transport: tracks whether its send buffer is full."""

    def __init__(self):
        self.paused = False
        self._waiting: list[Deferred] = []

    def pauseProducing(self):
        self.paused = True

    def resumeProducing(self):
        self.paused = False
        waiting, self._waiting = self._waiting, []
        for d in waiting:
            d.callback(None)

    def stopProducing(self):
        self.paused = True

    def wait(self) -> Deferred:
        d: Deferred = Deferred()
        if self.paused:
            self._waiting.append(d)
        else:
            d.callback(None)
        return d


class End:
    """One end of a measured path."""

    on_data: Callable[[bytes], None] = staticmethod(lambda data: None)
    closed: Deferred

    def send(self, data: bytes) -> None:
        raise NotImplementedError

    def when_writable(self) -> Deferred:
        return self._writability.wait()

    @property
    def writable(self) -> bool:
        return not self._writability.paused

    def close(self) -> None:
        raise NotImplementedError


# -- raw TCP ---------------------------------------------------------------------------


class TcpEnd(Protocol, End):
    """A TCP connection (TCP_NODELAY); an optional handshake line is answered first."""

    def __init__(self, expect_ok: bool = False, greeting: bytes = b""):
        self._writability = _Writability()
        self._expect_ok = expect_ok
        self._greeting = greeting
        self._buffer = b""
        self.ready: Deferred = Deferred()
        self.closed = Deferred()

    def connectionMade(self):
        self.transport.setTcpNoDelay(True)
        self.transport.registerProducer(self._writability, True)
        if self._greeting:
            self.transport.write(self._greeting)
        if not self._expect_ok:
            self.ready.callback(self)

    def dataReceived(self, data: bytes):
        if self._expect_ok and not self.ready.called:
            self._buffer += data
            if b"\n" not in self._buffer:
                return
            line, _, rest = self._buffer.partition(b"\n")
            if line != b"ok":
                self.transport.loseConnection()
                self.ready.errback(RuntimeError(f"transit relay said {line!r}"))
                return
            self.ready.callback(self)
            data = rest
            if not data:
                return
        self.on_data(data)

    def connectionLost(self, reason=None):
        if not self.ready.called:
            self.ready.errback(RuntimeError("connection lost before it was ready"))
        if not self.closed.called:
            self.closed.callback(None)

    def send(self, data: bytes) -> None:
        self.transport.write(data)

    def close(self) -> None:
        self.transport.loseConnection()


async def tcp_connect(reactor, port: int, *, greeting: bytes = b"", expect_ok: bool = False,
                      host: str = "127.0.0.1", bind: str | None = None) -> TcpEnd:
    end = TcpEnd(expect_ok, greeting)
    endpoint = TCP4ClientEndpoint(reactor, host, port, timeout=10,
                                  bindAddress=(bind, 0) if bind else None)
    await endpoint.connect(Factory.forProtocol(lambda: end))
    return await end.ready


class TcpListener:
    """Accepts TCP connections and hands each :class:`TcpEnd` to a waiting caller."""

    def __init__(self, reactor):
        self._reactor = reactor
        self._waiting: list[Deferred] = []
        self._accepted: list[TcpEnd] = []
        self.port = None

    async def listen(self, port: int = 0) -> int:
        def build():
            end = TcpEnd()
            end.ready.addCallback(self._arrived)
            return end
        self.port = await TCP4ServerEndpoint(self._reactor, port, backlog=1024,
                                             interface="127.0.0.1").listen(
            Factory.forProtocol(build))
        return self.port.getHost().port

    def _arrived(self, end: TcpEnd) -> TcpEnd:
        if self._waiting:
            self._waiting.pop(0).callback(end)
        else:
            self._accepted.append(end)
        return end

    def accept(self) -> Deferred:
        d: Deferred = Deferred()
        if self._accepted:
            d.callback(self._accepted.pop(0))
        else:
            self._waiting.append(d)
        return d

    async def stop(self) -> None:
        if self.port is not None:
            await self.port.stopListening()


# -- WebSocket (autobahn, one message per chunk) ---------------------------------------


class _WsMixin(End):
    """An autobahn connection as an end (an optional handshake message first)."""

    def _setup(self):
        self._writability = _Writability()
        self.ready: Deferred = Deferred()
        self.closed = Deferred()

    def onOpen(self):
        if hasattr(self.transport, "setTcpNoDelay"):
            self.transport.setTcpNoDelay(True)
        self.transport.registerProducer(self._writability, True)
        greeting = getattr(self.factory, "greeting", b"")
        if greeting:
            self.sendMessage(greeting, isBinary=True)
        if not self.factory_expect_ok():
            self.ready.callback(self)

    def factory_expect_ok(self) -> bool:
        return getattr(self.factory, "expect_ok", False)

    def onMessage(self, payload: bytes, isBinary: bool):
        if self.factory_expect_ok() and not self.ready.called:
            if payload.rstrip(b"\n") != b"ok":
                self.ready.errback(RuntimeError(f"transit relay said {payload!r}"))
                return
            self.ready.callback(self)
            return
        self.on_data(payload)

    def onClose(self, wasClean, code, reason):
        if not self.ready.called:
            self.ready.errback(RuntimeError(f"WebSocket closed: {code} {reason}"))
        if not self.closed.called:
            self.closed.callback(None)

    def send(self, data: bytes) -> None:
        self.sendMessage(data, isBinary=True)

    def close(self) -> None:
        self.sendClose(1000)


class WsClientEnd(_WsMixin, WebSocketClientProtocol):
    def __init__(self):
        super().__init__()
        self._setup()


class WsServerEnd(_WsMixin, WebSocketServerProtocol):
    def __init__(self):
        super().__init__()
        self._setup()

    def onConnect(self, request):
        return request.protocols[0] if request.protocols else None


def _options(factory):
    compression = ({"perMessageCompressionOffers": []}
                   if isinstance(factory, WebSocketClientFactory)
                   else {"perMessageCompressionAccept": lambda offers: None})
    factory.setProtocolOptions(maxFramePayloadSize=MAX_WS_MESSAGE,
                               maxMessagePayloadSize=MAX_WS_MESSAGE, autoPingInterval=0,
                               **compression)


async def ws_connect(reactor, url: str, port: int, *, greeting: bytes = b"",
                     expect_ok: bool = False, protocols: list[str] | None = None,
                     bind: str | None = None) -> WsClientEnd:
    factory = WebSocketClientFactory(url, protocols=protocols or [])
    factory.protocol = WsClientEnd
    factory.greeting, factory.expect_ok = greeting, expect_ok
    _options(factory)
    endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port, timeout=10,
                                  bindAddress=(bind, 0) if bind else None)
    end = await endpoint.connect(factory)
    return await end.ready


class _ListeningWsFactory(WebSocketServerFactory):
    protocol = WsServerEnd
    listener: "WsListener"

    def buildProtocol(self, addr):
        end = super().buildProtocol(addr)
        end.ready.addCallback(self.listener._arrived)
        return end


class WsListener(TcpListener):
    """A plain WebSocket server whose connections become ends (the direct-WS baseline)."""

    async def listen(self, port: int = 0) -> int:
        factory = _ListeningWsFactory("ws://127.0.0.1")
        factory.listener = self
        _options(factory)
        self.port = await TCP4ServerEndpoint(self._reactor, port, backlog=1024,
                                             interface="127.0.0.1").listen(factory)
        return self.port.getHost().port


# -- our relay: envelope data frames on one stream --------------------------------------


class EnvelopeEnd(End):
    """A bench device's or bench terminal's relay connection, sending data frames on stream
    1 and handing the data of received frames to ``on_data``."""

    def __init__(self):
        self.client = None           # the RelayClient, set by whoever connects it
        self._writability = _Writability()
        self._stream = 1

    @property
    def closed(self) -> Deferred:
        return self.client.closed

    def attach(self) -> "EnvelopeEnd":
        """Call once the client is established."""
        self.client.transport.registerProducer(self._writability, True)
        return self

    def frame(self, message: bytes) -> None:
        kind = message[1]
        if kind == env.DATA:
            self.on_data(message[env.HEADER.size:])

    def send(self, data: bytes) -> None:
        self.client.send(env.encode_data(self._stream, data))

    def close(self) -> None:
        self.client.end()
