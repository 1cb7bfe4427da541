"""Time as the product stores it: UTC epoch microseconds.

No code reads the wall clock directly: everything takes an injected
``IReactorTime`` (the reactor in production, a ``Clock`` in tests) and asks
it through :func:`now_us`.
"""

from datetime import datetime, timezone

from twisted.internet.interfaces import IReactorTime

MICROSECONDS = 1_000_000


def now_us(clock: IReactorTime) -> int:
    """The clock's current time as integer UTC epoch microseconds."""
    return int(clock.seconds() * MICROSECONDS)


def seconds_to_us(seconds: float) -> int:
    """A duration in seconds as integer microseconds."""
    return int(seconds * MICROSECONDS)


def iso_from_us(instant_us: int | None) -> str | None:
    """An instant as an ISO 8601 UTC string (``2026-11-26T12:00:00Z``)."""
    if instant_us is None:
        return None
    moment = datetime.fromtimestamp(instant_us / MICROSECONDS, tz=timezone.utc)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")
