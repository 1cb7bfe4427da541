"""What every REST module answers alike: times as ISO 8601 beside epoch microseconds, and
the answer when the store is too busy."""

from __future__ import annotations

from remotecomm.clock import iso_from_us
from remotecomm.json_http import ApiError

# The answer when the store's queue is full.
BUSY = ApiError(503, "busy", "the server is busy; try again shortly", headers={"Retry-After": "1"})


def with_iso_times(answer: dict) -> dict:
    """Every ``…_us`` instant also as ISO 8601, in nested objects too: ``requested_at_us`` →
    ``requested_at``, ``approval_deadline_us`` → ``approval_deadline_at``."""
    for key in [k for k in answer if k.endswith("_us") and isinstance(answer[k], int)
                and not k.startswith(("duration", "idle"))]:
        stem = key[:-3]
        answer[stem if stem == "at" or stem.endswith("_at") else stem + "_at"] = \
            iso_from_us(answer[key])
    for value in answer.values():
        if isinstance(value, dict):
            with_iso_times(value)
    return answer
