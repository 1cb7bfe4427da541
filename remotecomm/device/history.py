"""The device's own session history: an append-only JSON-lines file.

Each line is written and flushed to disk (fsync) before the event is acted
on, so the device keeps who approved what even if it loses power right
after.  Secrets (tokens) are never written.

The history is also what the device reports when the manager asks (S312,
S313): :func:`kept_reports` rebuilds a session's report from its events --
the report written when its side ended or, when the agent stopped while the
session ran, what it knew until then (its end is then unknown).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from remotecomm.sessions.messages import SessionReport

# The events a session's report is rebuilt from.
_REPORT_EVENTS = ("approval-decided", "session-ready", "relay-joined", "relay-ended",
                  "session-report")


MAX_BYTES = 4 * 1024 * 1024  # a history file this big is rotated (one older one is kept)


class History:
    """Appends events to ``path`` and reads them back.

    The file is bounded: once it holds ``max_bytes`` it becomes ``path.1`` (replacing
    the one before) and a new file starts, so an appliance that runs for years keeps at
    most twice ``max_bytes`` -- thousands of sessions, far more than the manager's
    collection window asks about -- and reads no more than that when asked.
    """

    def __init__(self, path: Path, max_bytes: int = MAX_BYTES):
        self.path = path
        self.previous = path.with_name(path.name + ".1")
        self._max_bytes = max_bytes
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)

    def append(self, event: str, at_us: int, **fields: object) -> None:
        """Write one event durably (then rotate the file if it is full)."""
        line = json.dumps({"at_us": at_us, "event": event, **fields}, sort_keys=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line.encode("utf-8") + b"\n")
            os.fsync(fd)
            full = os.fstat(fd).st_size >= self._max_bytes
        finally:
            os.close(fd)
        if full:
            os.replace(self.path, self.previous)

    def events(self) -> list[dict]:
        """Every event kept, oldest first (a torn line is skipped)."""
        events = []
        for path in (self.previous, self.path):
            try:
                lines = path.read_text("utf-8").splitlines()
            except FileNotFoundError:
                continue
            for line in lines:
                try:
                    events.append(json.loads(line))
                except ValueError:
                    continue
        return events


def kept_reports(events: list[dict], request_ids: tuple[str, ...],
                 reported_us: int) -> list[SessionReport]:
    """What the device kept of each of ``request_ids`` (in that order; a session it never
    joined is left out)."""
    wanted = set(request_ids)
    by_request: dict[str, dict[str, dict]] = {}
    for event in events:
        if event.get("request_id") in wanted and event.get("event") in _REPORT_EVENTS:
            by_request.setdefault(event["request_id"], {})[event["event"]] = event
    reports = []
    for request_id in request_ids:
        seen = by_request.get(request_id, {})
        report = _report(request_id, seen, reported_us)
        if report is not None:
            reports.append(report)
    return reports


def _report(request_id: str, seen: dict[str, dict], reported_us: int) -> SessionReport | None:
    written = seen.get("session-report")
    if written is not None and "session_id" in written:
        fields = {name: written.get(name) for name in SessionReport.__dataclass_fields__}
        fields.update(request_id=request_id, reported_us=reported_us)
        try:
            return SessionReport(**fields)
        except TypeError:
            return None
    ready, joined = seen.get("session-ready"), seen.get("relay-joined")
    decided = seen.get("approval-decided")
    if ready is None or joined is None or decided is None:
        return None
    ended = seen.get("relay-ended")
    return SessionReport(
        request_id=request_id, session_id=ready["session_id"], app_id=ready["app_id"],
        agent_version=joined.get("agent_version", "unknown"), operator=decided["operator"],
        started_us=joined["at_us"], ended_us=ended["at_us"] if ended else None,
        end_code=ended.get("code") if ended else None,
        end_reason=(ended.get("reason") or "dropped") if ended else "agent-stopped",
        bytes_to_device=None, bytes_from_device=None, reported_us=reported_us,
        firmware_version=joined.get("firmware_version"))
