"""The relay envelope, version 1: how requests and responses travel through a session.

Every WebSocket message (binary) is one frame::

    0      1      2              6
    +------+------+--------------+---------------------------+
    | ver  | kind | stream ID    | body (kind-specific)      |
    | =1   |      | uint32, BE   |                           |
    +------+------+--------------+---------------------------+

One stream is one HTTP exchange (or, reserved, one raw byte stream); a
session carries many streams at once.  Kinds:

==========  ====  ==========================================================
open        1     app ID (1-byte length + ASCII), session ID (same), then the
                  inner request head, opaque to the relay
data        2     body bytes (at most :data:`MAX_DATA` per frame)
end         3     no more data in this direction
window      4     uint32 credit increment (per-stream flow control)
reset       5     uint16 code + UTF-8 reason: the stream is abandoned
raw-open    6     reserved: like open, for an upgraded raw byte stream
hello       7     stream 0 only: UTF-8 JSON about the sender (agent version …)
==========  ====  ==========================================================

The relay only calls :func:`check_frame` (version, kind, stream, size); it
never decodes bodies.  Endpoints use :func:`decode` and the ``encode_*``
functions.  :func:`decode` raises nothing but :class:`EnvelopeError`.
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass

from remotecomm.identifiers import APP_ID, SESSION_ID

VERSION = 1
SUBPROTOCOL = f"remotecomm.envelope.{VERSION}"
SUBPROTOCOL_PREFIX = "remotecomm.envelope."

OPEN, DATA, END, WINDOW, RESET, RAW_OPEN, HELLO = range(1, 8)
KIND_NAMES = {OPEN: "open", DATA: "data", END: "end", WINDOW: "window", RESET: "reset",
              RAW_OPEN: "raw-open", HELLO: "hello"}

HEADER = struct.Struct("!BBI")
MAX_DATA = 1024 * 1024           # body bytes in one data frame
MAX_HEAD = 64 * 1024             # inner request head in an open frame
MAX_FRAME = HEADER.size + MAX_DATA  # the WebSocket message limit follows from this
INITIAL_WINDOW = 4 * MAX_DATA    # credit each direction of a stream starts with
MAX_STREAM_ID = 2**32 - 1

# Reset codes (documented in docs/protocol.md).
RESET_REFUSED = 1        # the device will not serve this stream (unknown or unapproved app)
RESET_UNAVAILABLE = 2    # the local app is down or did not answer
RESET_PROTOCOL = 3       # a malformed frame on this stream
RESET_NOT_IMPLEMENTED = 4  # e.g. raw streams
RESET_CANCELLED = 5      # the sender gave up (client went away)

# The two IDs an open frame carries, in the shapes every boundary checks.
_IDS = {"app ID": re.compile(APP_ID.encode("ascii")),
        "session ID": re.compile(SESSION_ID.encode("ascii"))}


class EnvelopeError(ValueError):
    """A frame is malformed; the message says how.  ``stream_id`` is the frame's stream
    when its header was sound (so the receiver can reset that stream), else ``None``."""

    stream_id: int | None = None


@dataclass(frozen=True)
class Frame:
    """A decoded frame; fields beyond ``kind`` and ``stream_id`` depend on the kind."""

    kind: int
    stream_id: int
    app_id: str | None = None
    session_id: str | None = None
    data: bytes = b""
    increment: int = 0
    code: int = 0
    reason: str = ""
    info: dict | None = None


def check_frame(message: bytes) -> tuple[int, int]:
    """The relay's check: a known kind of this version, stream 0 only for hello, size.

    Returns ``(kind, stream_id)``; raises :class:`EnvelopeError`.
    """
    if len(message) < HEADER.size:
        raise EnvelopeError("frame shorter than its header")
    if len(message) > MAX_FRAME + MAX_HEAD:
        raise EnvelopeError("frame too large")
    version, kind, stream_id = HEADER.unpack_from(message)
    if version != VERSION:
        raise EnvelopeError(f"envelope version {version} (this side speaks {VERSION})")
    if kind not in KIND_NAMES:
        raise EnvelopeError(f"unknown frame kind {kind}")
    if (kind == HELLO) != (stream_id == 0):
        raise EnvelopeError("stream 0 is for hello frames only")
    return kind, stream_id


def _take_id(body: bytes, offset: int, what: str) -> tuple[str, int]:
    if offset >= len(body):
        raise EnvelopeError(f"open frame without {what}")
    length = body[offset]
    value = body[offset + 1:offset + 1 + length]
    if len(value) != length or not _IDS[what].fullmatch(value):
        raise EnvelopeError(f"open frame with an invalid {what}")
    return value.decode("ascii"), offset + 1 + length


def decode(message: bytes) -> Frame:
    """Decode a whole frame (endpoints only)."""
    kind, stream_id = check_frame(message)
    try:
        return _decode_body(kind, stream_id, message[HEADER.size:])
    except EnvelopeError as e:
        e.stream_id = stream_id
        raise


def _decode_body(kind: int, stream_id: int, body: bytes) -> Frame:
    if kind in (OPEN, RAW_OPEN):
        app_id, offset = _take_id(body, 0, "app ID")
        session_id, offset = _take_id(body, offset, "session ID")
        if len(body) - offset > MAX_HEAD:
            raise EnvelopeError("request head too large")
        return Frame(kind, stream_id, app_id=app_id, session_id=session_id,
                     data=bytes(body[offset:]))
    if kind == DATA:
        if len(body) > MAX_DATA:
            raise EnvelopeError("data frame too large")
        return Frame(kind, stream_id, data=bytes(body))
    if kind == END:
        if body:
            raise EnvelopeError("end frame with a body")
        return Frame(kind, stream_id)
    if kind == WINDOW:
        if len(body) != 4:
            raise EnvelopeError("window frame needs a 4-byte increment")
        increment = struct.unpack("!I", body)[0]
        if increment == 0:
            raise EnvelopeError("window increment of 0")
        return Frame(kind, stream_id, increment=increment)
    if kind == RESET:
        if len(body) < 2 or len(body) > 2 + 256:
            raise EnvelopeError("reset frame needs a code and at most 256 bytes of reason")
        try:
            reason = body[2:].decode("utf-8")
        except UnicodeDecodeError:
            raise EnvelopeError("reset reason is not UTF-8") from None
        return Frame(kind, stream_id, code=struct.unpack("!H", body[:2])[0], reason=reason)
    try:
        info = json.loads(body.decode("utf-8")) if body else {}
    except (UnicodeDecodeError, ValueError):
        raise EnvelopeError("hello is not UTF-8 JSON") from None
    if not isinstance(info, dict) or len(body) > 4096:
        raise EnvelopeError("hello must be a JSON object of at most 4096 bytes")
    return Frame(kind, stream_id, info=info)


def _header(kind: int, stream_id: int) -> bytes:
    if not 0 <= stream_id <= MAX_STREAM_ID:
        raise ValueError("stream ID out of range")
    return HEADER.pack(VERSION, kind, stream_id)


def _id(value: str, what: str) -> bytes:
    raw = value.encode("ascii")
    if not _IDS[what].fullmatch(raw):
        raise ValueError(f"invalid {what} {value!r}")
    return bytes([len(raw)]) + raw


def encode_open(stream_id: int, app_id: str, session_id: str, head: bytes,
                raw: bool = False) -> bytes:
    """An open (or reserved raw-open) frame."""
    if len(head) > MAX_HEAD:
        raise ValueError("request head too large")
    return _header(RAW_OPEN if raw else OPEN, stream_id) + _id(app_id, "app ID") + _id(session_id, "session ID") + head


def encode_data(stream_id: int, data: bytes) -> bytes:
    """A data frame (split larger bodies)."""
    if len(data) > MAX_DATA:
        raise ValueError("data frame too large")
    return _header(DATA, stream_id) + data


def encode_end(stream_id: int) -> bytes:
    """An end frame."""
    return _header(END, stream_id)


def encode_window(stream_id: int, increment: int) -> bytes:
    """A window update granting ``increment`` more bytes."""
    if not 0 < increment <= 2**32 - 1:
        raise ValueError("window increment out of range")
    return _header(WINDOW, stream_id) + struct.pack("!I", increment)


def encode_reset(stream_id: int, code: int, reason: str = "") -> bytes:
    """A reset frame."""
    reason_bytes = reason.encode("utf-8")[:256]
    while True:
        try:
            reason_bytes.decode("utf-8")
            break
        except UnicodeDecodeError:
            reason_bytes = reason_bytes[:-1]
    return _header(RESET, stream_id) + struct.pack("!H", code) + reason_bytes


def encode_hello(info: dict) -> bytes:
    """A hello frame on stream 0."""
    body = json.dumps(info, separators=(",", ":")).encode("utf-8")
    if len(body) > 4096:
        raise ValueError("hello too large")
    return _header(HELLO, 0) + body
