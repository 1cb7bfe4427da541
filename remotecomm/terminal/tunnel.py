"""The terminal's end of a session's streams (S231–S232, S243).

:class:`TerminalStreams` multiplexes HTTP exchanges over the session's relay
connection: it numbers streams, sends each request head in an ``open``
frame and the body in ``data`` frames within the stream's credit, and hands
what the device answers to the exchange that owns the stream -- first the
response head, then body chunks, then the end.  The exchange returns
credit (``window`` frames) as its local client takes the bytes, so a slow
client stalls only its own stream.

The device's hello names the approved app's origin (``app_origin``), which
the local port needs to rewrite ``Location`` headers.
"""

from __future__ import annotations

from typing import Callable, Protocol

from twisted.logger import Logger

from remotecomm.relay import envelope as env
from remotecomm.streams.credit import ReceiveWindow, SendWindow

log = Logger()

MAX_STREAMS = 64


class ExchangeHandler(Protocol):
    """What a stream reports to the local exchange that owns it."""

    def response_head(self, head: bytes) -> None: ...

    def response_data(self, data: bytes) -> None: ...

    def response_end(self) -> None: ...

    def response_reset(self, code: int, reason: str) -> None: ...

    def request_credit(self) -> None:
        """Credit arrived: the request body may flow again."""


class TerminalStream:
    """One HTTP exchange on the session, seen from the terminal."""

    def __init__(self, streams: "TerminalStreams", stream_id: int, handler: ExchangeHandler):
        self._streams = streams
        self.stream_id = stream_id
        self._handler = handler
        self.request_window = SendWindow(
            lambda piece: streams.send(env.encode_data(stream_id, piece)))
        self.response_window = ReceiveWindow()
        self._end_pending = False
        self._head_seen = False
        self.done = False

    # -- the request, towards the device -------------------------------------------

    def send_body(self, chunk: bytes) -> bool:
        """Send body bytes within credit; ``False`` means "stop reading until credit comes"."""
        if self.done:
            return False
        return self.request_window.send(chunk) and self.request_window.credit > 0

    def end_body(self) -> None:
        """No more request body."""
        if self.done:
            return
        if self.request_window.blocked:
            self._end_pending = True
        else:
            self._streams.send(env.encode_end(self.stream_id))

    def cancel(self, reason: str) -> None:
        """The local client went away: abandon the stream."""
        if not self.done:
            self._streams.send(env.encode_reset(self.stream_id, env.RESET_CANCELLED, reason))
            self._finish()

    def grant(self, count: int) -> None:
        """The local client took ``count`` response bytes: return that credit."""
        if self.done:
            return
        increment = self.response_window.consumed(count)
        if increment:
            self._streams.send(env.encode_window(self.stream_id, increment))

    # -- the response, from the device ---------------------------------------------

    def frame(self, frame: env.Frame) -> None:
        if frame.kind == env.DATA:
            if not self.response_window.received(len(frame.data)):
                self._streams.send(env.encode_reset(self.stream_id, env.RESET_PROTOCOL,
                                                    "more data than credit"))
                self._finish()
                self._handler.response_reset(env.RESET_PROTOCOL, "the device overran its credit")
                return
            if not self._head_seen:
                self._head_seen = True
                self._handler.response_head(frame.data)
            else:
                self._handler.response_data(frame.data)
        elif frame.kind == env.END:
            self._finish()
            if self._head_seen:
                self._handler.response_end()
            else:
                self._handler.response_reset(env.RESET_PROTOCOL, "the device sent no answer")
        elif frame.kind == env.WINDOW:
            if not self.request_window.grant(frame.increment):
                return
            if self._end_pending:
                self._end_pending = False
                self._streams.send(env.encode_end(self.stream_id))
            elif self.request_window.credit > 0:
                self._handler.request_credit()
        elif frame.kind == env.RESET:
            self._finish()
            self._handler.response_reset(frame.code, frame.reason)

    def _finish(self) -> None:
        if not self.done:
            self.done = True
            self.request_window.clear()
            self._streams.finished(self.stream_id)


class TerminalStreams:
    """The streams of one session on the terminal side."""

    def __init__(self, send: Callable[[bytes], None], session_id: str, app_id: str,
                 max_streams: int = MAX_STREAMS):
        self.send = send
        self.session_id = session_id
        self.app_id = app_id
        self.max_streams = max_streams
        self.app_origin: str | None = None
        self.device_hello: dict | None = None
        self.streams: dict[int, TerminalStream] = {}
        self._next_id = 1
        self.closed = False

    def open(self, head: bytes, handler: ExchangeHandler) -> TerminalStream | None:
        """Open a stream for a request head; ``None`` when the session is full or ended."""
        if self.closed or len(self.streams) >= self.max_streams or self._next_id > \
                env.MAX_STREAM_ID:
            return None
        stream = TerminalStream(self, self._next_id, handler)
        self._next_id += 1
        self.streams[stream.stream_id] = stream
        self.send(env.encode_open(stream.stream_id, self.app_id, self.session_id, head))
        return stream

    def message(self, message: bytes) -> None:
        """A frame from the relay (the device's side)."""
        try:
            frame = env.decode(message)
        except env.EnvelopeError as e:
            log.warn("bad frame from the device: {error}", error=str(e))
            return
        if frame.kind == env.HELLO:
            info = frame.info or {}
            self.device_hello = info
            origin = info.get("app_origin")
            if isinstance(origin, str) and origin.startswith(("http://", "https://")):
                self.app_origin = origin.rstrip("/")
            return
        stream = self.streams.get(frame.stream_id)
        if stream is not None:
            stream.frame(frame)

    def finished(self, stream_id: int) -> None:
        self.streams.pop(stream_id, None)

    def close(self) -> None:
        """The session ended: every open exchange is told so."""
        self.closed = True
        for stream in list(self.streams.values()):
            stream._finish()
            stream._handler.response_reset(env.RESET_UNAVAILABLE, "the session ended")
