"""The HTTP heads inside a stream, written and read the same way at both ends (h11).

A stream's ``open`` frame carries the request head and its first ``data``
frame the response head (docs/protocol.md).  Whatever is written here has
passed h11's checks of names, values, methods and status codes; whatever is
read here was parsed by an h11 connection, strictly and within a size bound.
Bodies never pass through: they travel as data frames, and the head's
framing headers (``Content-Length``; ``Transfer-Encoding`` is hop-by-hop) only
say how long the body is.

:data:`HOP_BY_HOP` is the one list of headers that never cross a hop: the
terminal drops them from what the browser sent, the device from what its app
answered, and each end drops the headers its ``Connection`` header names.
"""

from __future__ import annotations

from dataclasses import dataclass

import h11

MAX_HEAD = 64 * 1024
HOP_BY_HOP = frozenset({b"connection", b"keep-alive", b"proxy-authenticate",
                        b"proxy-authorization", b"proxy-connection", b"te", b"trailer",
                        b"transfer-encoding", b"upgrade"})

Headers = tuple[tuple[bytes, bytes], ...]


class BadHead(ValueError):
    """A head that cannot be written or was not read; the message says why."""


@dataclass(frozen=True)
class RequestHead:
    """Method, origin-form target and headers (names in lower case) of a request."""

    method: bytes
    target: bytes
    headers: Headers


@dataclass(frozen=True)
class ResponseHead:
    """Status, reason phrase and headers (names in lower case) of a response."""

    status: int
    reason: bytes
    headers: Headers


def end_to_end(headers) -> list[tuple[bytes, bytes]]:
    """``headers`` (lower-case names) without the hop-by-hop ones and those that
    ``Connection`` names."""
    named = {token.strip().lower() for name, value in headers if name == b"connection"
             for token in value.split(b",")}
    return [(name, value) for name, value in headers
            if name not in HOP_BY_HOP and name not in named]


def _write(start_line: bytes, headers) -> bytes:
    lines = [start_line] + [name + b": " + value for name, value in headers]
    head = b"\r\n".join(lines) + b"\r\n\r\n"
    if len(head) > MAX_HEAD:
        raise BadHead("the head is too large")
    return head


def encode_request(head: RequestHead) -> bytes:
    """The request head as it travels in an ``open`` frame."""
    try:
        event = h11.Request(method=head.method, target=head.target, headers=list(head.headers))
    except h11.LocalProtocolError as e:
        raise BadHead(f"the request head is invalid: {e}") from None
    return _write(event.method + b" " + event.target + b" HTTP/1.1", event.headers.raw_items())


def encode_response(head: ResponseHead) -> bytes:
    """The response head as it travels in the first ``data`` frame of the answer."""
    try:
        event = h11.Response(status_code=head.status, reason=head.reason,
                             headers=list(head.headers))
    except h11.LocalProtocolError as e:
        raise BadHead(f"the response head is invalid: {e}") from None
    return _write(b"HTTP/1.1 %d %s" % (event.status_code, event.reason),
                  event.headers.raw_items())


def _parse(connection: h11.Connection, data: bytes):
    if len(data) > MAX_HEAD or not data.endswith(b"\r\n\r\n"):
        raise BadHead("the head is incomplete or too large")
    try:
        connection.receive_data(data)
        event = connection.next_event()
    except h11.RemoteProtocolError as e:
        raise BadHead(f"malformed head: {e}") from None
    if connection.trailing_data[0]:
        raise BadHead("bytes after the head")
    return event


def decode_request(data: bytes) -> RequestHead:
    """Read a request head (strictly: one HTTP/1.1 request, nothing after it)."""
    event = _parse(h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD), data)
    if not isinstance(event, h11.Request) or event.http_version != b"1.1":
        raise BadHead("not an HTTP/1.1 request head")
    return RequestHead(event.method, event.target, tuple(event.headers))


_ANY_REQUEST = h11.Request(method=b"GET", target=b"/", headers=[(b"host", b"device")])


def decode_response(data: bytes) -> ResponseHead:
    """Read a final response head (no 1xx; nothing after it)."""
    connection = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD)
    connection.send(_ANY_REQUEST)
    connection.send(h11.EndOfMessage())
    event = _parse(connection, data)
    if not isinstance(event, h11.Response) or event.http_version != b"1.1":
        raise BadHead("not a final HTTP/1.1 response head")
    return ResponseHead(event.status_code, event.reason, tuple(event.headers))
