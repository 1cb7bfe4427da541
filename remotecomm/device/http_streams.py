"""Serving a session's streams from the device's local apps (S235–S241).

Each stream is one HTTP exchange.  The terminal's ``open`` frame carries
the request head; ``data`` frames carry the request body; ``end`` closes
it.  The agent re-frames the request for the local app -- parsed, hop-by-hop
headers removed, Host/Origin/Referer rewritten to the app, body streamed --
and streams the answer back: the first ``data`` frame is the response head
(``Set-Cookie`` without ``Domain``), the following ones the body, then
``end``.  Each direction of a stream has a credit window (window frames add
to it).  A local app that is down or silent gives a 502/504 response on that
stream; the session stays usable.
"""

from __future__ import annotations

import re
from typing import Callable
from urllib.parse import urlsplit

from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.error import ConnectError
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.web.client import (Agent, HTTPConnectionPool, RequestTransmissionFailed, ResponseDone,
                                ResponseFailed, ResponseNeverReceived)
from twisted.web.http_headers import Headers
from twisted.web.iweb import UNKNOWN_LENGTH, IAgentEndpointFactory, IBodyProducer
from zope.interface import implementer

from remotecomm.relay import envelope as env
from remotecomm.streams.credit import ReceiveWindow, SendWindow
from remotecomm.streams.heads import (BadHead, ResponseHead, decode_request, encode_response,
                                      end_to_end)
from remotecomm.tcp import NoDelayEndpoint

log = Logger()

MAX_STREAMS = 64
MAX_HEADERS = 100
RESPONSE_TIMEOUT = 30.0
_TARGET = re.compile(rb"/[\x21-\x7e]*")
_METHODS = {b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"PATCH", b"OPTIONS"}


class BadRequest(ValueError):
    """The request head cannot be forwarded; the message says why."""


def parse_request_head(head: bytes) -> tuple[bytes, bytes, list[tuple[bytes, bytes]]]:
    """``(method, target, headers)`` of the stream's request head: parsed by h11
    (:mod:`remotecomm.streams.heads`), then held to what a session may ask of a local app."""
    try:
        request = decode_request(head)
    except BadHead as e:
        raise BadRequest(str(e)) from None
    if request.method not in _METHODS:
        raise BadRequest("method not allowed through the session")
    if not _TARGET.fullmatch(request.target):
        raise BadRequest("the target must be an absolute path")
    if len(request.headers) > MAX_HEADERS:
        raise BadRequest("too many headers")
    return request.method, request.target, list(request.headers)


def app_origin(url: str) -> str:
    """``scheme://host:port`` of a local app's base URL."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _origin(url: str) -> bytes:
    return app_origin(url).encode("ascii")


def rewrite_request_headers(headers: list[tuple[bytes, bytes]],
                            base_url: str) -> tuple[Headers, int | None]:
    """Headers for the local app, and the body length the head declared (``None``: unknown)."""
    out = Headers()
    length = None
    origin = _origin(base_url)
    for name, value in end_to_end(headers):
        if name == b"host":
            continue
        if name == b"content-length":
            if not value.isdigit() or (length is not None and int(value) != length):
                raise BadRequest("invalid Content-Length")
            length = int(value)
            continue
        if name == b"origin":
            value = origin
        elif name == b"referer":
            value = origin + b"/" + (value.split(b"/", 3)[3] if value.count(b"/") >= 3 else b"")
        out.addRawHeader(name, value)
    out.setRawHeaders(b"host", [urlsplit(base_url).netloc.encode("ascii")])
    return out, length


def strip_cookie_domain(value: bytes) -> bytes:
    """A ``Set-Cookie`` value without its ``Domain`` attribute (the cookie stays host-only)."""
    parts = [p for p in value.split(b";") if not p.strip().lower().startswith(b"domain=")]
    return b";".join(parts)


def response_head(code: int, phrase: bytes, headers: Headers,
                  length: int | None = None) -> bytes:
    """The response head sent back as the stream's first data frame.

    ``length`` is the body length the app declared (Twisted's client keeps
    ``Content-Length`` out of the headers it hands over).
    """
    fields = []
    for name, values in headers.getAllRawHeaders():
        lower = name.lower()
        for value in values:
            fields.append((lower, strip_cookie_domain(value) if lower == b"set-cookie"
                           else value))
    fields = end_to_end(fields)
    if length is not None:
        fields.append((b"content-length", b"%d" % length))
    return encode_response(ResponseHead(code, phrase or b"", tuple(fields)))


def error_response(code: int, phrase: bytes, text: str) -> tuple[bytes, bytes]:
    """Head and body of an error the agent answers itself (502, 504, 400)."""
    body = text.encode("utf-8") + b"\n"
    head = encode_response(ResponseHead(code, phrase, (
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", b"%d" % len(body)), (b"cache-control", b"no-store"))))
    return head, body


@implementer(IBodyProducer)
class _StreamBody:
    """The request body as it arrives in data frames, handed to the local request."""

    def __init__(self, length: int | None, grant: Callable[[int], None]):
        self.length = UNKNOWN_LENGTH if length is None else length
        self._grant = grant
        self._consumer = None
        self._early: list[bytes] = []
        self._paused = False
        self._owed = 0
        self._finished: Deferred = Deferred()
        self._stopped = False
        self.received = 0

    def startProducing(self, consumer):
        self._consumer = consumer
        for chunk in self._early:
            self._write(chunk)
        self._early = []
        return self._finished

    def _write(self, chunk: bytes) -> None:
        self._consumer.write(chunk)
        if self._paused:
            self._owed += len(chunk)
        else:
            self._grant(len(chunk))

    def data(self, chunk: bytes) -> None:
        if self._stopped:
            return
        self.received += len(chunk)
        if self._consumer is None:
            self._early.append(chunk)
        else:
            self._write(chunk)

    def end(self) -> None:
        if not self._finished.called and not self._stopped:
            self._finished.callback(None)

    def pauseProducing(self):
        self._paused = True

    def resumeProducing(self):
        self._paused = False
        owed, self._owed = self._owed, 0
        if owed:
            self._grant(owed)

    def stopProducing(self):
        # IBodyProducer: after this, the Deferred of startProducing must never fire (the
        # client stops when the app answered before the body's end frame, or gave up).
        self._stopped = True
        self._early = []


class _ResponseReader(Protocol):
    """Streams the local app's response body back, within the stream's credit."""

    def __init__(self, stream: "HttpStream"):
        self._stream = stream

    def dataReceived(self, data: bytes) -> None:
        self._stream.response_data(data, self.transport)

    def connectionLost(self, reason) -> None:
        self._stream.response_finished(reason)


class HttpStream:
    """One request/response exchange between the terminal and a local app."""

    def __init__(self, streams: "HttpStreams", stream_id: int, base_url: str):
        self._streams = streams
        self.stream_id = stream_id
        self._base_url = base_url
        self._send = streams.send
        self.response_window = SendWindow(
            lambda piece: self._send(env.encode_data(stream_id, piece)))
        self.request_window = ReceiveWindow()
        self._transport = None
        self._body: _StreamBody | None = None
        self._request: Deferred | None = None
        self._timeout = None
        self._response_done = False
        self._responded = False
        self._timed_out = False
        self._clock = None
        self._method = b""
        self.done = False

    def open(self, head: bytes, agent: Agent, clock) -> None:
        try:
            method, target, headers = parse_request_head(head)
            local_headers, length = rewrite_request_headers(headers, self._base_url)
        except BadRequest as e:
            self._answer_error(400, b"Bad Request", f"bad request: {e}")
            return
        self._method = method
        self._body = _StreamBody(length, self._grant)
        url = self._base_url.rstrip("/").encode("ascii") + target
        self._request = agent.request(method, url, local_headers,
                                      self._body if method not in (b"GET", b"HEAD") or length
                                      else None)
        self._clock = clock
        self._request.addCallbacks(self._response, self._request_failed)

    def _give_up(self) -> None:
        self._timed_out = True
        self._request.cancel()

    def _grant(self, count: int) -> None:
        """The local app took ``count`` request bytes: return the credit (in batches)."""
        increment = self.request_window.consumed(count)
        if increment and not self.done:
            self._send(env.encode_window(self.stream_id, increment))

    def data(self, chunk: bytes) -> None:
        if not self.request_window.received(len(chunk)):
            self._send(env.encode_reset(self.stream_id, env.RESET_PROTOCOL,
                                        "more data than credit"))
            self.reset()
            return
        if self._body is not None:
            self._body.data(chunk)

    def end(self) -> None:
        """The request body is complete: the local app now has 30 s to answer."""
        if self._body is not None:
            self._body.end()
            if not self._responded and not self.done and self._timeout is None:
                self._timeout = self._clock.callLater(RESPONSE_TIMEOUT, self._give_up)

    def window(self, increment: int) -> None:
        if not self.response_window.grant(increment):
            return
        if self._response_done:
            self._send(env.encode_end(self.stream_id))
            self._finish()
        elif self._transport is not None:
            self._transport.resumeProducing()

    def reset(self) -> None:
        """The terminal abandoned the stream."""
        self._finish()
        if self._request is not None and not self._responded:
            # (``called`` is already true while the request waits on its connection.)
            self._request.cancel()
        if self._transport is not None:
            self._transport.stopProducing()

    def _response(self, response) -> None:
        self._responded = True
        if self._timeout is not None and self._timeout.active():
            self._timeout.cancel()
        if self.done:
            return
        server = response.headers.getRawHeaders(b"server")
        if server:  # the app's own word on what it is (for the device's session report)
            self._streams.app_server = server[0].decode("latin-1")[:64]
        length = None if self._method == b"HEAD" or response.length is UNKNOWN_LENGTH \
            else response.length
        self._send_limited(response_head(response.code, response.phrase, response.headers,
                                         length))
        response.deliverBody(_ResponseReader(self))

    def _request_failed(self, failure) -> None:
        if self.done:
            return
        if self._timed_out:
            self._answer_error(504, b"Gateway Timeout", "the device's app did not answer in time")
        elif failure.check(ConnectError, ResponseFailed, ResponseNeverReceived,
                           RequestTransmissionFailed):
            self._answer_error(502, b"Bad Gateway", "the device's app is not answering")
        else:
            log.failure("stream {stream_id} failed", failure, stream_id=self.stream_id)
            self._answer_error(502, b"Bad Gateway", "the device's app failed")

    def _answer_error(self, code: int, phrase: bytes, text: str) -> None:
        self._streams.errors += 1
        head, body = error_response(code, phrase, text)
        self._send_limited(head)
        self._send_limited(body)
        self._send(env.encode_end(self.stream_id))
        self._finish()

    def _send_limited(self, chunk: bytes) -> None:
        """Send within credit; the rest waits for window frames."""
        self.response_window.send(chunk)

    def response_data(self, data: bytes, transport) -> None:
        self._transport = transport
        if not self.response_window.send(data):
            transport.pauseProducing()

    def response_finished(self, reason) -> None:
        if self.done:
            return
        if reason.check(ResponseDone):
            self._response_done = True
            if not self.response_window.blocked:
                self._send(env.encode_end(self.stream_id))
                self._finish()
        else:
            self._streams.errors += 1
            self._send(env.encode_reset(self.stream_id, env.RESET_UNAVAILABLE,
                                        "the device's app broke off its answer"))
            self._finish()

    def _finish(self) -> None:
        if not self.done:
            self.done = True
            self.response_window.clear()
            if self._timeout is not None and self._timeout.active():
                self._timeout.cancel()
            self._streams.finished(self.stream_id)


@implementer(IAgentEndpointFactory)
class _NoDelayEndpoints:
    """Connections to the local apps, with TCP_NODELAY."""

    def __init__(self, reactor):
        self._reactor = reactor

    def endpointForURI(self, uri):
        return NoDelayEndpoint(TCP4ClientEndpoint(self._reactor, uri.host.decode("ascii"),
                                                  uri.port, timeout=10))


class HttpStreams:
    """The streams of one session, served from the approved app only."""

    def __init__(self, reactor, clock, session_id: str, app_id: str, apps: dict[str, str],
                 send: Callable[[bytes], None]):
        self.clock = clock
        self.send = send
        self._session_id = session_id
        self._app_id = app_id
        self._apps = apps
        # Connections to the app are kept for the session's next requests (a new TCP
        # connection per request cost more than the request itself); closed at its end.
        self._pool = HTTPConnectionPool(reactor, persistent=True)
        self._pool.maxPersistentPerHost = MAX_STREAMS // 4
        self._pool.cachedConnectionTimeout = 30
        self._agent = Agent.usingEndpointFactory(reactor, _NoDelayEndpoints(reactor),
                                                 pool=self._pool)
        self.streams: dict[int, HttpStream] = {}
        self.app_server: str | None = None  # the app's Server header, once it answered
        self.errors = 0  # streams refused, failed or broken off (the device's report)

    def frame(self, frame: env.Frame) -> None:
        """A frame from the terminal."""
        stream = self.streams.get(frame.stream_id)
        if frame.kind in (env.OPEN, env.RAW_OPEN):
            self._open(frame)
        elif stream is None:
            return  # a late frame of a finished stream
        elif frame.kind == env.DATA:
            stream.data(frame.data)
        elif frame.kind == env.END:
            stream.end()
        elif frame.kind == env.WINDOW:
            stream.window(frame.increment)
        elif frame.kind == env.RESET:
            stream.reset()

    def bad_frame(self, error: env.EnvelopeError) -> None:
        """A frame the device could not read: its stream (when known) is reset at once, so
        the terminal's side never waits for an answer that cannot come."""
        if error.stream_id:
            self.streams.pop(error.stream_id, None)
            self._refuse(error.stream_id, env.RESET_PROTOCOL, f"bad frame: {error}"[:200])
        else:
            self.errors += 1

    def _refuse(self, stream_id: int, code: int, reason: str) -> None:
        self.errors += 1
        self.send(env.encode_reset(stream_id, code, reason))

    def _open(self, frame: env.Frame) -> None:
        if frame.stream_id in self.streams:
            return self._refuse(frame.stream_id, env.RESET_PROTOCOL, "stream ID in use")
        if frame.kind == env.RAW_OPEN:
            return self._refuse(frame.stream_id, env.RESET_NOT_IMPLEMENTED,
                                "raw streams are not supported yet")
        if frame.session_id != self._session_id:
            return self._refuse(frame.stream_id, env.RESET_PROTOCOL, "wrong session ID")
        if frame.app_id != self._app_id or frame.app_id not in self._apps:
            return self._refuse(frame.stream_id, env.RESET_REFUSED,
                                f"app {frame.app_id!r} is not approved for this session")
        if len(self.streams) >= MAX_STREAMS:
            return self._refuse(frame.stream_id, env.RESET_REFUSED, "too many streams")
        stream = HttpStream(self, frame.stream_id, self._apps[frame.app_id])
        self.streams[frame.stream_id] = stream
        stream.open(frame.data, self._agent, self.clock)

    def finished(self, stream_id: int) -> None:
        self.streams.pop(stream_id, None)

    def close(self) -> Deferred:
        """The session ended: abandon every stream and close the kept connections."""
        for stream in list(self.streams.values()):
            stream.reset()
        return self._pool.closeCachedConnections()
