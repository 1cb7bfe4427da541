"""Log output: structured events through ``twisted.logger``, optionally as JSON lines.

``twistd --logger remotecomm.logs.json_observer remotecomm …`` writes one JSON
object per line to standard output::

    {"time": "2026-11-26T12:00:00.123456Z", "level": "info",
     "namespace": "remotecomm.accounts.login", "message": "user alice logged in …",
     "user_id": "alice", "terminal_id": "t-…"}

Every structured field of the event (``request_id``, ``session_id``,
``user_id`` …) is a key of its own, so log tools can filter on them.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from typing import IO, Any

from twisted.logger import ILogObserver, formatEvent
from zope.interface import implementer


def _plain(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return repr(value)


def event_as_json(event: dict) -> str:
    """One log event as a single JSON line (without the newline)."""
    record: dict[str, Any] = {
        "time": datetime.fromtimestamp(event.get("log_time", 0), timezone.utc)
        .isoformat(timespec="microseconds").replace("+00:00", "Z"),
        "level": getattr(event.get("log_level"), "name", "info"),
        "namespace": event.get("log_namespace", "-"),
        "message": formatEvent(event),
    }
    failure = event.get("log_failure")
    if failure is not None:
        record["failure"] = failure.getTraceback()
    for key, value in event.items():
        if not key.startswith("log_") and key not in record and not key.startswith("_"):
            record[key] = _plain(value)
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"))


@implementer(ILogObserver)
class JsonLineObserver:
    """Writes each event as one JSON line to a text stream."""

    def __init__(self, stream: IO[str]):
        self._stream = stream

    def __call__(self, event: dict) -> None:
        self._stream.write(event_as_json(event) + "\n")
        self._stream.flush()


def json_observer() -> ILogObserver:
    """A log observer factory for twistd's ``--logger`` option: JSON lines on stdout."""
    return JsonLineObserver(sys.stdout)
