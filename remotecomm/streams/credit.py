"""Per-stream flow control, the same at both ends (like HTTP/2's WINDOW_UPDATE).

Each direction of a stream starts with :data:`~remotecomm.relay.envelope.INITIAL_WINDOW`
bytes of credit.  The sender keeps a :class:`SendWindow`: it sends data
frames while it has credit, splits a chunk at the edge and keeps the rest
until ``window`` frames add credit.  The receiver keeps a
:class:`ReceiveWindow`: it refuses data beyond the credit it gave, and
returns credit as its consumer takes the bytes, in batches so that a large
transfer costs few window frames.
"""

from __future__ import annotations

from typing import Callable

from remotecomm.relay.envelope import INITIAL_WINDOW, MAX_DATA

WINDOW_BATCH = 64 * 1024  # credit is returned in window frames of at least this much


class SendWindow:
    """Credit to send one direction of a stream; what does not fit waits."""

    def __init__(self, send_piece: Callable[[bytes], None], initial: int = INITIAL_WINDOW):
        self._send_piece = send_piece
        self.credit = initial
        self._waiting: list[bytes] = []

    @property
    def blocked(self) -> bool:
        """Bytes are waiting for credit (the producer of them should pause)."""
        return bool(self._waiting)

    def send(self, chunk: bytes) -> bool:
        """Send ``chunk`` within credit (pieces of at most one data frame); whether the
        whole chunk went out."""
        if self._waiting:
            self._waiting.append(chunk)
            return False
        while chunk and self.credit > 0:
            piece = chunk[:min(self.credit, MAX_DATA)]
            chunk = chunk[len(piece):]
            self.credit -= len(piece)
            self._send_piece(piece)
        if chunk:
            self._waiting.append(chunk)
            return False
        return True

    def grant(self, increment: int) -> bool:
        """A window frame arrived: send what waited; whether nothing waits any more."""
        self.credit += increment
        waiting, self._waiting = self._waiting, []
        for chunk in waiting:
            self.send(chunk)
        return not self._waiting

    def clear(self) -> None:
        """The stream is over: drop what waited."""
        self._waiting = []


class ReceiveWindow:
    """Credit given to the peer for one direction of a stream."""

    def __init__(self, initial: int = INITIAL_WINDOW, batch: int = WINDOW_BATCH):
        self.credit = initial
        self._batch = batch
        self._consumed = 0

    def received(self, count: int) -> bool:
        """``count`` bytes arrived; ``False`` if the peer sent more than its credit."""
        self.credit -= count
        return self.credit >= 0

    def consumed(self, count: int) -> int:
        """Our consumer took ``count`` bytes: the increment to grant now (0: not yet)."""
        if count <= 0:
            return 0
        self._consumed += count
        if self._consumed < self._batch:
            return 0
        increment, self._consumed = self._consumed, 0
        self.credit += increment
        return increment
