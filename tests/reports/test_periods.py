"""Tests for remotecomm.reports.periods: periods and days cut in a unit's time zone."""

from datetime import datetime, timezone

from twisted.trial.unittest import SynchronousTestCase

from remotecomm.reports.periods import MAX_DAYS, PeriodError, local_iso, month_of, period, zone

BERLIN = zone("Europe/Berlin")
NEW_YORK = zone("America/New_York")


def utc_us(*args) -> int:
    return int(datetime(*args, tzinfo=timezone.utc).timestamp()) * 1_000_000


class PeriodTests(SynchronousTestCase):
    """Bounds, defaults and days, daylight-saving changes included."""

    def test_dates_are_midnight_in_the_units_zone(self):
        october = period("2026-10-01", "2026-11-01", BERLIN, 0)
        self.assertEqual((october.start_us, october.end_us),
                         (utc_us(2026, 9, 30, 22), utc_us(2026, 10, 31, 23)))
        self.assertEqual(local_iso(october.start_us, BERLIN), "2026-10-01T00:00:00+02:00")
        self.assertEqual(local_iso(october.end_us, BERLIN), "2026-11-01T00:00:00+01:00")

    def test_a_day_with_a_clock_change_is_25_or_23_hours(self):
        days = dict((label, (start, end)) for label, start, end in
                    period("2026-10-24", "2026-10-27", BERLIN, 0).days())
        self.assertEqual([label for label in days], ["2026-10-24", "2026-10-25", "2026-10-26"])
        start, end = days["2026-10-25"]
        self.assertEqual((end - start) // 3_600_000_000, 25)
        spring = period("2026-03-29", "2026-03-30", BERLIN, 0).days()
        self.assertEqual((spring[0][2] - spring[0][1]) // 3_600_000_000, 23)
        [(label, start, end)] = period("2026-11-01", "2026-11-02", NEW_YORK, 0).days()
        self.assertEqual((start, end), (utc_us(2026, 11, 1, 4), utc_us(2026, 11, 2, 5)))

    def test_the_default_is_the_current_month_of_the_unit(self):
        # 2026-10-31 23:30 UTC is already November in Berlin, still October in New York.
        now = utc_us(2026, 10, 31, 23, 30)
        self.assertEqual(local_iso(period(None, None, BERLIN, now).start_us, BERLIN),
                         "2026-11-01T00:00:00+01:00")
        self.assertEqual(local_iso(period(None, None, NEW_YORK, now).start_us, NEW_YORK),
                         "2026-10-01T00:00:00-04:00")
        self.assertEqual(month_of(now, NEW_YORK).end.isoformat(), "2026-11-01T00:00:00-04:00")
        december = period("2026-12-15", None, BERLIN, now)
        self.assertEqual(december.end.isoformat(), "2027-01-01T00:00:00+01:00")

    def test_instants_with_offsets_are_taken_as_given(self):
        asked = period("2026-10-01T12:00:00Z", "2026-10-01T13:30:00+01:00", BERLIN, 0)
        self.assertEqual(asked.end_us - asked.start_us, 30 * 60 * 1_000_000)

    def test_bad_bounds_say_which(self):
        for from_, to, field in (("yesterday", None, "from"), ("2026-10-01", "2026-09-01", "to"),
                                 ("2026-10-01T12:00:00", None, "from"),
                                 ("2020-01-01", "2026-01-01", "to"), ("x" * 50, None, "from")):
            with self.assertRaises(PeriodError) as e:
                period(from_, to, BERLIN, 0)
            self.assertEqual(e.exception.field, field, (from_, to))

    def test_days_are_bounded(self):
        self.assertEqual(len(period("2025-01-01", "2026-01-01", BERLIN, 0).days()), 365)
        self.assertLessEqual(MAX_DAYS, 400)

    def test_an_unknown_zone_is_utc(self):
        self.assertEqual(zone("Mars/Olympus").key, "UTC")
