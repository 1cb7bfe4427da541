"""Report periods, cut in a unit's time zone (DECISIONS.md: "Each unit has a time zone,
used only to cut billing and report periods").

A period is ``[from, to)`` as two instants.  Bounds are given as a date
(``2026-11-01``: midnight in the unit's zone) or an ISO 8601 date and time
with its offset; without bounds a report covers the current month of the
unit.  Days are cut with :mod:`zoneinfo`, so a day with a daylight-saving
change is 23 or 25 hours long; edges are UTC instants, and the store groups
by them (the same SQL on SQLite and PostgreSQL).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

MICROSECONDS = 1_000_000
MAX_DAYS = 400  # a report by day covers at most this many days


class PeriodError(ValueError):
    """A bound that cannot be read, or a period that is empty or too long; ``field`` names
    the bound."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def zone(name: str) -> ZoneInfo:
    """A unit's time zone (an IANA name); UTC for a name this system does not know."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def to_us(moment: datetime) -> int:
    """An aware datetime as UTC epoch microseconds."""
    return (moment - _EPOCH) // timedelta(microseconds=1)


def local_moment(instant_us: int, tz: ZoneInfo) -> datetime:
    """An instant as an aware datetime in ``tz``."""
    return (_EPOCH + timedelta(microseconds=instant_us)).astimezone(tz)


def local_iso(instant_us: int, tz: ZoneInfo) -> str:
    """An instant as ISO 8601 in the unit's zone, with its offset (``2026-11-01T00:00:00+01:00``)."""
    return local_moment(instant_us, tz).isoformat(timespec="seconds")


def _midnight(day: date, tz: ZoneInfo) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=tz)


def parse_bound(text: str, tz: ZoneInfo, field: str) -> datetime:
    """``2026-11-01`` (midnight in ``tz``) or a date and time with an offset."""
    if len(text) > 40:
        raise PeriodError(field, f"{field} is too long")
    try:
        if len(text) == 10:
            return _midnight(date.fromisoformat(text), tz)
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise PeriodError(field, f"{field} must be a date (2026-11-01) or a date and time "
                                 f"with its offset") from None
    if moment.tzinfo is None:
        raise PeriodError(field, f"{field} needs an offset (or give a date)")
    return moment.astimezone(tz)


@dataclass(frozen=True)
class Period:
    """``[start, end)`` in a unit's zone."""

    start: datetime
    end: datetime
    tz: ZoneInfo

    @property
    def start_us(self) -> int:
        return to_us(self.start)

    @property
    def end_us(self) -> int:
        return to_us(self.end)

    def days(self) -> list[tuple[str, int, int]]:
        """``(local date, start µs, end µs)`` of each day of the period in the unit's zone
        (the first and last may be partial); at most :data:`MAX_DAYS`."""
        days = []
        day = self.start.date()
        while _midnight(day, self.tz) < self.end:
            if len(days) >= MAX_DAYS:
                raise PeriodError("to", f"a report by day covers at most {MAX_DAYS} days")
            start = max(_midnight(day, self.tz), self.start)
            end = min(_midnight(day + timedelta(days=1), self.tz), self.end)
            days.append((day.isoformat(), to_us(start), to_us(end)))
            day += timedelta(days=1)
        return days


def month_of(instant_us: int, tz: ZoneInfo) -> Period:
    """The calendar month (in ``tz``) holding ``instant_us``."""
    local = local_moment(instant_us, tz)
    first = date(local.year, local.month, 1)
    following = date(first.year + first.month // 12, first.month % 12 + 1, 1)
    return Period(_midnight(first, tz), _midnight(following, tz), tz)


def period(from_text: str | None, to_text: str | None, tz: ZoneInfo, now_us: int) -> Period:
    """The period a report asks for: its bounds, or the current month of the unit (``from``
    alone: to the end of that month)."""
    default = month_of(now_us, tz)
    start = parse_bound(from_text, tz, "from") if from_text else default.start
    end = parse_bound(to_text, tz, "to") if to_text else default.end
    if to_text is None and from_text is not None:
        end = month_of(to_us(start), tz).end
    if end <= start:
        raise PeriodError("to", "to must come after from")
    if end - start > timedelta(days=MAX_DAYS + 1):
        raise PeriodError("to", f"a report covers at most {MAX_DAYS} days")
    return Period(start, end, tz)
