"""One side's connection to the relay: the device agent's and the terminal's.

:class:`RelayClient` opens the WebSocket to ``<relay URL>/<side>`` with the
session ID and token as headers and the envelope subprotocol, waits until
the relay says the side is established (S180, S213), hands every later
frame to ``on_frame``, and reports how the connection ended.  The
connection is set up in one place (:func:`relay_endpoint`) so that an HTTP
CONNECT proxy option fits there later.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit

from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol
from twisted.internet import ssl
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, wrapClientTLS
from twisted.logger import Logger

from remotecomm.relay import envelope as env
from remotecomm.relay.autobahn_logging import format_debug_lazily
from remotecomm.relay.frames import EnvelopeFrameReading, client_frame
from remotecomm.tcp import no_delay
from remotecomm.tls import load_ca

log = Logger()
format_debug_lazily()

MAX_MESSAGE = env.MAX_FRAME + env.MAX_HEAD
CONNECT_TIMEOUT = 10


@dataclass(frozen=True)
class RelayClosed(Exception):
    """The relay connection ended: close code (``None`` if it dropped), reason, clean."""

    code: int | None
    reason: str
    clean: bool

    def __str__(self) -> str:
        return f"{self.code} {self.reason}".strip()


def relay_endpoint(reactor, url: str, ca_certificate: Path | None,
                   bind_address: str | None = None):
    """The client endpoint for a ``ws://`` or ``wss://`` relay URL (TLS trusts only our CA);
    ``bind_address`` picks the local source address."""
    parts = urlsplit(url)
    secure = parts.scheme == "wss"
    port = parts.port or (443 if secure else 80)
    endpoint = TCP4ClientEndpoint(reactor, parts.hostname, port, timeout=CONNECT_TIMEOUT,
                                  bindAddress=(bind_address, 0) if bind_address else None)
    if not secure:
        return endpoint
    trust = load_ca(ca_certificate) if ca_certificate is not None else None
    return wrapClientTLS(ssl.optionsForClientTLS(parts.hostname, trustRoot=trust), endpoint)


class _Protocol(EnvelopeFrameReading, WebSocketClientProtocol):
    client: "RelayClient"
    masked_frames = False  # the relay's frames to its clients are unmasked (RFC 6455)

    def onOpen(self):
        self.client._opened(self)

    def onMessage(self, payload: bytes, isBinary: bool):
        self.client._message(payload, isBinary)

    def onClose(self, wasClean: bool, code, reason):
        self.client._closed(wasClean, code, reason)


class RelayClient:
    """A device's or terminal's WebSocket to the relay for one session."""

    def __init__(self, reactor, relay_url: str, side: str, session_id: str, token: str,
                 ca_certificate: Path | None, on_frame: Callable[[bytes], None],
                 bind_address: str | None = None):
        self._reactor = reactor
        self._url = relay_url.rstrip("/") + "/" + side
        self._side = side
        self._session_id = session_id
        self._token = token
        self._ca = ca_certificate
        self._on_frame = on_frame
        self._bind_address = bind_address
        self._protocol: _Protocol | None = None
        self._established: Deferred = Deferred()
        self.closed: Deferred = Deferred()
        self.is_established = False

    def connect(self) -> Deferred:
        """Connect; fires when the relay says this side is established."""
        factory = WebSocketClientFactory(self._url, protocols=[env.SUBPROTOCOL], headers={
            "X-Remotecomm-Session": self._session_id, "X-Remotecomm-Token": self._token})
        factory.protocol = type("RelayClientProtocol", (_Protocol,), {"client": self})
        factory.setProtocolOptions(
            maxFramePayloadSize=MAX_MESSAGE, maxMessagePayloadSize=MAX_MESSAGE,
            openHandshakeTimeout=CONNECT_TIMEOUT, closeHandshakeTimeout=2,
            autoPingInterval=20, autoPingTimeout=10, perMessageCompressionOffers=[])
        connecting = relay_endpoint(self._reactor, self._url, self._ca,
                                    self._bind_address).connect(factory)
        connecting.addErrback(self._failed)
        return self._established

    def _failed(self, failure) -> None:
        if not self._established.called:
            self._established.errback(failure)
        if not self.closed.called:
            self.closed.callback(RelayClosed(None, failure.getErrorMessage(), False))

    def _opened(self, protocol: _Protocol) -> None:
        self._protocol = protocol
        no_delay(protocol.transport)

    def _message(self, payload: bytes, is_binary: bool) -> None:
        if not self.is_established:
            try:
                frame = env.decode(payload)
            except env.EnvelopeError:
                frame = None
            if frame is not None and frame.kind == env.HELLO and (frame.info or {}).get(
                    "from") == "relay" and frame.info.get("established"):
                self.is_established = True
                self._established.callback(self)
                return
        self._on_frame(payload)

    def _closed(self, clean: bool, code, reason) -> None:
        ended = RelayClosed(code, reason or "", bool(clean))
        if not self._established.called:
            self._established.errback(ended)
        if not self.closed.called:
            self.closed.callback(ended)

    @property
    def transport(self):
        """The connection's transport once open (for producers and socket options)."""
        return self._protocol.transport if self._protocol is not None else None

    def send(self, message: bytes) -> None:
        """Send one envelope frame (dropped once the connection is closing: ``closed``
        says how it ended)."""
        protocol = self._protocol
        if protocol is not None and protocol.state == protocol.STATE_OPEN:
            if len(message) > MAX_MESSAGE:
                raise ValueError(f"an envelope frame of {len(message)} bytes is over the limit")
            protocol.transport.writeSequence(client_frame(message))

    def end(self) -> Deferred:
        """End this side normally (close code 1000); fires with how it closed."""
        if self._protocol is not None and not self.closed.called:
            self._protocol.sendClose(1000, "end")
        return self.closed
