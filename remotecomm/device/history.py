"""The device's own session history: an append-only JSON-lines file.

Each line is written and flushed to disk (fsync) before the event is acted
on, so the device keeps who approved what even if it loses power right
after.  Secrets (tokens) are never written.
"""

from __future__ import annotations

import json
import os
from pathlib import Path


class History:
    """Appends events to ``path`` and reads them back."""

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)

    def append(self, event: str, at_us: int, **fields: object) -> None:
        """Write one event durably."""
        line = json.dumps({"at_us": at_us, "event": event, **fields}, sort_keys=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line.encode("utf-8") + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)

    def events(self) -> list[dict]:
        """Every event, oldest first (a torn last line is skipped)."""
        try:
            lines = self.path.read_text("utf-8").splitlines()
        except FileNotFoundError:
            return []
        events = []
        for line in lines:
            try:
                events.append(json.loads(line))
            except ValueError:
                continue
        return events
