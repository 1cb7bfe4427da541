"""The envelope's WebSocket frames, read and written without autobahn's per-frame work.

Once a relay connection is open, nearly every frame on it is one envelope
frame: a final, binary WebSocket frame (RFC 6455, 5.2), masked from client
to server and unmasked the other way.  Autobahn reads each frame through a
dozen calls and objects (a header object, a native unmasker made for the
frame, lists for frame and message data, statistics); profiles of the
relay put most of its per-message time there (docs/performance.md).

:class:`EnvelopeFrameReading` reads those common frames itself, straight
from the received bytes, and leaves every other frame — ping, pong, close,
text, fragments, reserved bits, a length not minimally encoded, a frame
over the size limit, an unmasked client frame — to autobahn, which checks
and handles it as before.  Autobahn keeps the handshake, the closing
handshake, heartbeats and every protocol error.

:func:`server_frame` and :func:`client_frame` write one envelope frame.
"""

from __future__ import annotations

import random
import struct

from autobahn.websocket.xormasker import create_xor_masker

try:  # autobahn's native unmasker (NVX), used in place on a buffer of ours
    from _nvx_xormasker import ffi as _nvx_ffi, lib as _nvx_lib
except ImportError:  # pragma: no cover - autobahn without NVX: its own maskers copy more
    _nvx_ffi = _nvx_lib = None

# Up to this size unmasking with Python integers beats making autobahn's native unmasker
# (about 3 µs to make, then about 9 GB/s); measured on this machine kind.
_SMALL_PAYLOAD = 1024
_BINARY_FINAL = 0x82
_MEDIUM = struct.Struct("!H")
_LONG = struct.Struct("!Q")
_SHORT_HEADER = [bytes((_BINARY_FINAL, length)) for length in range(126)]
_MASKED_SHORT_HEADER = [bytes((_BINARY_FINAL, 0x80 | length)) for length in range(126)]
_MEDIUM_HEADER = struct.Struct("!BBH")
_LONG_HEADER = struct.Struct("!BBQ")


def unmask(payload: bytes | bytearray | memoryview, mask: bytes) -> bytes:
    """XOR ``payload`` with the 4-byte ``mask`` repeated (masking and unmasking are one),
    as bytes."""
    length = len(payload)
    if length > _SMALL_PAYLOAD:
        return create_xor_masker(mask, length).process(payload)
    key = (mask * ((length >> 2) + 1))[:length]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(key, "little")).to_bytes(
        length, "little")


def _unmask_in_place(buffer: bytearray, mask: bytes) -> bytes:
    """``buffer`` unmasked, as bytes (a large one unmasked where it is: one copy less)."""
    if len(buffer) > _SMALL_PAYLOAD and _nvx_lib is not None:
        masker = _nvx_lib.nvx_xormask_new(_nvx_ffi.from_buffer(mask))
        try:
            _nvx_lib.nvx_xormask_process(masker, _nvx_ffi.from_buffer(buffer), len(buffer))
        finally:
            _nvx_lib.nvx_xormask_free(masker)
        return bytes(buffer)
    return unmask(buffer, mask)


def _header(length: int, mask_bit: int, short: list) -> bytes:
    if length <= 125:
        return short[length]
    if length <= 0xFFFF:
        return _MEDIUM_HEADER.pack(_BINARY_FINAL, mask_bit | 126, length)
    return _LONG_HEADER.pack(_BINARY_FINAL, mask_bit | 127, length)


def server_frame(message: bytes) -> tuple[bytes, bytes]:
    """One unmasked, final, binary frame carrying ``message``: its header and the payload,
    for ``writeSequence`` (the payload is not copied)."""
    return _header(len(message), 0, _SHORT_HEADER), message


def client_frame(message: bytes) -> tuple[bytes, bytes]:
    """One masked, final, binary frame carrying ``message``, for ``writeSequence``: its
    header with a fresh mask (made as autobahn makes it) and the masked payload."""
    mask = random.getrandbits(32).to_bytes(4, "big")
    return _header(len(message), 0x80, _MASKED_SHORT_HEADER) + mask, unmask(message, mask)


class EnvelopeFrameReading:
    """Mixin for an autobahn WebSocket protocol: reads final binary frames itself once the
    connection is open and hands each payload to ``onMessage(payload, True)``.

    ``masked_frames`` says which frames this side receives: masked (a server) or not (a
    client); a frame the other way round goes to autobahn, which refuses it.  A frame that
    arrives in pieces is copied into a buffer of its size as they come (never more than
    the frame size limit), so that a 1 MiB frame costs one buffer, not its pieces as well.
    """

    masked_frames: bool = True
    _header_start = b""       # the first bytes of a frame whose header is not complete
    _partial: bytearray | None = None   # the payload of a frame being received
    _partial_filled = 0
    _partial_mask: bytes | None = None

    def dataReceived(self, data: bytes) -> None:
        # Autobahn's own version only adds a debug message nobody reads.
        self._dataReceived(data)

    def _dataReceived(self, data: bytes) -> None:
        if self._partial is not None:
            data = self._fill(data)
            if not data:
                return
        elif self._header_start:
            data = self._header_start + data
            self._header_start = b""
        if (self.state != self.STATE_OPEN or self.current_frame is not None or self.data
                or self.inside_message):
            # Autobahn is in a handshake, a frame or a close of its own: all of it is its.
            super()._dataReceived(data)
            return
        if self.autoPingTimeoutCall is not None and self.autoPingRestartOnAnyTraffic:
            self._cancelAutoPingTimeoutCall()
        self._read_frames(data)

    def _read_frames(self, data: bytes) -> None:
        mask_bit = 0x80 if self.masked_frames else 0
        mask_size = 4 if mask_bit else 0
        limit = self.maxFramePayloadSize
        end = len(data)
        position = 0
        while position < end:
            if end - position < 2:
                self._header_start = data[position:]
                return
            if data[position] != _BINARY_FINAL or data[position + 1] & 0x80 != mask_bit:
                break
            length = data[position + 1] & 0x7F
            extended = 2 if length == 126 else 8 if length == 127 else 0
            start = position + 2 + extended + mask_size  # where the payload begins
            if start > end:
                self._header_start = data[position:]  # the header's end is still to come
                return
            if extended == 2:
                length = _MEDIUM.unpack_from(data, position + 2)[0]
                if length < 126:
                    break
            elif extended:
                length = _LONG.unpack_from(data, position + 2)[0]
                if length < 0x10000:
                    break
            if 0 < limit < length:
                break
            mask = data[start - 4:start] if mask_bit else None
            stop = start + length
            if stop > end:
                self._begin_partial(data, start, length, mask)
                return
            position = stop
            if mask is None:
                self.onMessage(data[start:stop], True)
            else:
                self.onMessage(unmask(memoryview(data)[start:stop], mask), True)
            if self.state != self.STATE_OPEN:
                break
        if position < end:
            # Not an envelope frame, or the connection began to close: autobahn's turn.
            super()._dataReceived(data[position:] if position else data)

    def _begin_partial(self, data: bytes, start: int, length: int, mask: bytes | None) -> None:
        self._partial = bytearray(length)
        self._partial_mask = mask
        piece = memoryview(data)[start:]
        self._partial[:len(piece)] = piece
        self._partial_filled = len(piece)

    def _fill(self, data: bytes) -> bytes:
        """Copy the next piece of the partial frame's payload; once it is complete, hand it
        on (unless the connection began to close meanwhile).  What follows the frame."""
        buffer = self._partial
        needed = len(buffer) - self._partial_filled
        piece = memoryview(data)[:needed]
        buffer[self._partial_filled:self._partial_filled + len(piece)] = piece
        self._partial_filled += len(piece)
        if self._partial_filled < len(buffer):
            return b""
        mask, self._partial, self._partial_mask = self._partial_mask, None, None
        payload = _unmask_in_place(buffer, mask) if mask is not None else bytes(buffer)
        del buffer
        if self.state == self.STATE_OPEN:
            self.onMessage(payload, True)
        return data[needed:] if needed < len(data) else b""
