"""Tests for remotecomm.reports.schedules: when a schedule fires and which period it sends."""

from datetime import datetime

from twisted.trial.unittest import SynchronousTestCase

from remotecomm.reports.periods import zone
from remotecomm.reports.schedules import (ReportSchedule, ScheduleError, latest_occurrence,
                                          period_before)

BERLIN = zone("Europe/Berlin")


def at(*args):
    return datetime(*args, tzinfo=BERLIN)


class OccurrenceTests(SynchronousTestCase):
    """The most recent firing, in the unit's time, across a clock change."""

    def test_daily(self):
        daily = ReportSchedule("daily", "06:00")
        self.assertEqual(latest_occurrence(daily, at(2026, 10, 26, 5, 59), BERLIN),
                         at(2026, 10, 25, 6, 0))
        self.assertEqual(latest_occurrence(daily, at(2026, 10, 26, 6, 0), BERLIN),
                         at(2026, 10, 26, 6, 0))
        # The day before the occurrence, 25 hours long on the clock change.
        period = period_before(daily, at(2026, 10, 26, 6, 0), BERLIN)
        self.assertEqual((period.start, period.end), (at(2026, 10, 25), at(2026, 10, 26)))
        self.assertEqual(period.end_us - period.start_us, 25 * 3600 * 1_000_000)

    def test_weekly_and_monthly(self):
        weekly = ReportSchedule("weekly", "07:30", weekday=0)  # Mondays
        occurrence = latest_occurrence(weekly, at(2026, 11, 1, 12, 0), BERLIN)  # a Sunday
        self.assertEqual(occurrence, at(2026, 10, 26, 7, 30))
        period = period_before(weekly, occurrence, BERLIN)
        self.assertEqual((period.start, period.end), (at(2026, 10, 19), at(2026, 10, 26)))
        monthly = ReportSchedule("monthly", "00:15", day_of_month=1)
        occurrence = latest_occurrence(monthly, at(2026, 11, 20, 0, 0), BERLIN)
        self.assertEqual(occurrence, at(2026, 11, 1, 0, 15))
        period = period_before(monthly, occurrence, BERLIN)
        self.assertEqual((period.start, period.end), (at(2026, 10, 1), at(2026, 11, 1)))
        january = period_before(monthly, at(2027, 1, 1, 0, 15), BERLIN)
        self.assertEqual((january.start, january.end), (at(2026, 12, 1), at(2027, 1, 1)))

    def test_bad_schedules_say_which_field(self):
        for args, field in ((("hourly", "06:00"), "frequency"), (("daily", "6:00"), "at"),
                            (("daily", "24:00"), "at"), (("weekly", "06:00"), "weekday"),
                            (("weekly", "06:00", 7), "weekday"),
                            (("daily", "06:00", 1), "weekday"),
                            (("monthly", "06:00", None, 29), "day"),
                            (("monthly", "06:00", None, 1, "week"), "group_by")):
            with self.assertRaises(ScheduleError) as e:
                ReportSchedule(*args)
            self.assertEqual(e.exception.field, field, args)

    def test_described_in_words(self):
        self.assertEqual(ReportSchedule("weekly", "06:00", weekday=4, group_by="device")
                         .describe(), "weekly on friday at 06:00, by device")
