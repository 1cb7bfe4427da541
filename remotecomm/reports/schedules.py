"""Report schedules: daily, weekly on a weekday, or monthly on a day, at HH:MM unit time.

No cron: a fixed set that a person can read back.  Each occurrence sends the
report of the period just finished -- the day before (daily), the seven days
before (weekly), the calendar month before (monthly) -- cut in the unit's
time zone.  :func:`latest_occurrence` finds the most recent time a schedule
fired, so a manager that was down when it was due sends it once when it
comes back (only the latest occurrence: never a backlog).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from remotecomm.reports.periods import Period
from remotecomm.store.reports import GROUPS
from remotecomm.store.schema import REPORT_FREQUENCIES

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_AT = re.compile(r"([01]\d|2[0-3]):([0-5]\d)")


class ScheduleError(ValueError):
    """A schedule that cannot be: ``field`` names what is wrong."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class ReportSchedule:
    """When a unit's report goes out, and grouped how."""

    frequency: str
    at_time: str
    weekday: int | None = None       # weekly: 0 = Monday
    day_of_month: int | None = None  # monthly: 1–28 (every month has them)
    group_by: str | None = None

    def __post_init__(self) -> None:
        if self.frequency not in REPORT_FREQUENCIES:
            raise ScheduleError("frequency", f"frequency must be one of "
                                             f"{', '.join(REPORT_FREQUENCIES)}")
        if not isinstance(self.at_time, str) or not _AT.fullmatch(self.at_time):
            raise ScheduleError("at", "at must be HH:MM (00:00 to 23:59)")
        weekly, monthly = self.frequency == "weekly", self.frequency == "monthly"
        if weekly != (self.weekday is not None) or (
                weekly and self.weekday not in range(7)):
            raise ScheduleError("weekday", "a weekly schedule needs a weekday, and only it")
        if monthly != (self.day_of_month is not None) or (
                monthly and self.day_of_month not in range(1, 29)):
            raise ScheduleError("day", "a monthly schedule needs a day from 1 to 28, and "
                                       "only it")
        if self.group_by is not None and self.group_by not in GROUPS:
            raise ScheduleError("group_by", f"group_by must be one of {', '.join(GROUPS)}")

    def fires_on(self, day: date) -> bool:
        """Whether the schedule fires on this (local) day."""
        if self.frequency == "weekly":
            return day.weekday() == self.weekday
        if self.frequency == "monthly":
            return day.day == self.day_of_month
        return True

    def describe(self) -> str:
        """In words: ``weekly on monday at 06:00``."""
        when = {"daily": "daily", "weekly": f"weekly on {WEEKDAYS[self.weekday or 0]}",
                "monthly": f"monthly on day {self.day_of_month}"}[self.frequency]
        return f"{when} at {self.at_time}" + (f", by {self.group_by}" if self.group_by else "")


def _at(day: date, at_time: str, tz: ZoneInfo) -> datetime:
    hours, minutes = map(int, at_time.split(":"))
    return datetime(day.year, day.month, day.day, hours, minutes, tzinfo=tz)


def latest_occurrence(schedule: ReportSchedule, now: datetime, tz: ZoneInfo) -> datetime | None:
    """The most recent time (at or before ``now``) the schedule fired, in ``tz``."""
    today = now.astimezone(tz).date()
    for back in range(0, 32):
        day = today - timedelta(days=back)
        if schedule.fires_on(day):
            moment = _at(day, schedule.at_time, tz)
            if moment <= now:
                return moment
    return None


def period_before(schedule: ReportSchedule, occurrence: datetime, tz: ZoneInfo) -> Period:
    """The period an occurrence reports: the day, seven days or month before it."""
    day = occurrence.astimezone(tz).date()
    end = datetime(day.year, day.month, day.day, tzinfo=tz)
    if schedule.frequency == "daily":
        start_day = day - timedelta(days=1)
    elif schedule.frequency == "weekly":
        start_day = day - timedelta(days=7)
    else:
        end = datetime(day.year, day.month, 1, tzinfo=tz)
        previous = day.replace(day=1) - timedelta(days=1)
        start_day = previous.replace(day=1)
    return Period(datetime(start_day.year, start_day.month, start_day.day, tzinfo=tz), end, tz)
