"""Tests for remotecomm.reports.sessions (and the store's SQL): figures against hand-computed
ones, over a data set that crosses a daylight-saving change and a month boundary in two
time zones."""

from datetime import datetime, timezone
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from remotecomm.reports.periods import period, zone
from remotecomm.reports.sessions import unit_report
from remotecomm.store.accounts import insert_unit
from remotecomm.store.schema import sessions
from remotecomm.store.sessions import record_device_report
from remotecomm.testing.fakes import migrated_inline_store

S = 1_000_000


def utc_us(*args) -> int:
    return int(datetime(*args, tzinfo=timezone.utc).timestamp()) * S


# (unit, n, counted at (UTC), device, user, state, end reason, duration s, bytes to/from device)
SESSIONS = [
    # Berlin: 23:30 CEST on 24 Oct.
    ("berlin", 1, utc_us(2026, 10, 24, 21, 30), "mfp-1", "alice", "ended", "normal", 600,
     100, 1000),
    # 00:30 CEST on 25 Oct: still the 24th in UTC, the 25th in Berlin.
    ("berlin", 2, utc_us(2026, 10, 24, 22, 30), "mfp-2", "bob", "ended", "ended-by-device", 60,
     10, 20),
    # 23:30 CET on 25 Oct, the 25-hour day: refused, never ran (counts at its request).
    ("berlin", 3, utc_us(2026, 10, 25, 22, 30), "mfp-1", "alice", "ended", "refused", None,
     None, None),
    # The last second of October in Berlin, and the first of November.
    ("berlin", 4, utc_us(2026, 10, 31, 22, 59, 59), "mfp-1", "alice", "ended", "normal", 1, 1,
     2),
    ("berlin", 5, utc_us(2026, 10, 31, 23), "mfp-1", "alice", "ended", "normal", 30, 5, 5),
    # Still running: listed apart, not added up.
    ("berlin", 6, utc_us(2026, 10, 20, 8), "mfp-2", "alice", "active", None, None, None, None),
    # New York, same device names and user names, other IDs' unit: 19:00 EDT on 31 Oct,
    # then 23:30 EST on 1 Nov (the 25-hour day there).
    ("newyork", 7, utc_us(2026, 10, 31, 23), "mfp-1", "alice", "ended", "normal", 100, 7, 7),
    ("newyork", 8, utc_us(2026, 11, 2, 4, 30), "mfp-1", "alice", "ended", "idle-timeout", 900,
     9, 9),
]


class UnitReportTests(SynchronousTestCase):
    """Each figure is what a person would count by hand."""

    def setUp(self):
        self.store = migrated_inline_store(Path(self.mktemp()) / "manager.sqlite3")
        self.addCleanup(self.store.engine.dispose)
        self.store.run_sync(insert_unit, "berlin", "Berlin", "Europe/Berlin", 0)
        self.store.run_sync(insert_unit, "newyork", "New York", "America/New_York", 0)
        for unit, n, at, device, user, state, reason, seconds, to_device, from_device in SESSIONS:
            self.store.run_sync(lambda c: c.execute(sessions.insert().values(
                request_id=f"req-{n:018d}", state=state, unit_id=unit, user_id=user,
                terminal_id="t-1", device_id=device, app_id="web-server",
                terminal_token_delivered=True, approved_by_test_approver=False,
                requested_us=at - 10 * S, counted_at_us=at,
                started_us=at if seconds is not None else None,
                duration_us=seconds * S if seconds is not None else None,
                bytes_to_device=to_device, bytes_from_device=from_device,
                end_reason=reason, ended_us=at + (seconds or 0) * S if reason else None,
                device_notified_us=at if seconds is not None else None)))
        # The device reported session 1; sessions 2 and 4 still lack its information.
        self.store.run_sync(record_device_report, dict(
            request_id="req-000000000000000001", device_id="mfp-1", app_id="web-server",
            agent_version="0.1", operator="olga", started_us=0, reported_us=0, received_us=0,
            end_reason="normal"))

    def report(self, unit, from_, to, group_by=None):
        tz = zone("Europe/Berlin" if unit == "berlin" else "America/New_York")
        return self.store.run_sync(unit_report, unit, period(from_, to, tz, 0), group_by)

    def test_october_in_berlin(self):
        report = self.report("berlin", "2026-10-01", "2026-11-01")
        self.assertEqual((report["from"], report["to"]),
                         ("2026-10-01T00:00:00+02:00", "2026-11-01T00:00:00+01:00"))
        self.assertEqual(report["totals"], {
            "sessions": 4, "sessions_run": 3, "duration_us": 661 * S,
            "average_duration_us": 661 * S // 3, "bytes_to_device": 111,
            "bytes_from_device": 1022,
            "ends": {"ended-by-device": 1, "normal": 2, "refused": 1}})
        self.assertEqual([s["request_id"] for s in report["open_sessions"]],
                         ["req-000000000000000006"])
        self.assertEqual(report["missing_device_info"], 2)

    def test_by_day_across_the_clock_change(self):
        report = self.report("berlin", "2026-10-01", "2026-11-01", "day")
        days = {group["key"]: group for group in report["groups"]}
        self.assertEqual(len(days), 31)
        self.assertEqual({day: group["sessions"] for day, group in days.items()
                          if group["sessions"]},
                         {"2026-10-24": 1, "2026-10-25": 2, "2026-10-31": 1})
        self.assertEqual(days["2026-10-25"]["ends"], {"ended-by-device": 1, "refused": 1})
        self.assertEqual(days["2026-10-01"], {
            "key": "2026-10-01", "sessions": 0, "sessions_run": 0, "duration_us": 0,
            "average_duration_us": 0, "bytes_to_device": 0, "bytes_from_device": 0,
            "ends": {}})
        self.assertEqual(sum(g["sessions"] for g in report["groups"]),
                         report["totals"]["sessions"])

    def test_by_device_and_by_user(self):
        by_device = {g["key"]: g for g in self.report("berlin", "2026-10-01", "2026-11-01",
                                                       "device")["groups"]}
        self.assertEqual({key: (g["sessions"], g["sessions_run"], g["duration_us"])
                          for key, g in by_device.items()},
                         {"mfp-1": (3, 2, 601 * S), "mfp-2": (1, 1, 60 * S)})
        by_user = {g["key"]: g["sessions"] for g in self.report(
            "berlin", "2026-10-01", "2026-11-01", "user")["groups"]}
        self.assertEqual(by_user, {"alice": 3, "bob": 1})

    def test_the_same_instant_is_another_month_in_another_zone(self):
        """23:00 UTC on 31 Oct is November in Berlin, October in New York."""
        self.assertEqual(self.report("berlin", "2026-11-01", "2026-12-01")["totals"]["sessions"],
                         1)
        october = self.report("newyork", "2026-10-01", "2026-11-01")
        self.assertEqual((october["totals"]["sessions"], october["totals"]["duration_us"]),
                         (1, 100 * S))
        november = self.report("newyork", "2026-11-01", "2026-11-02", "day")
        self.assertEqual([(g["key"], g["sessions"], g["ends"]) for g in november["groups"]],
                         [("2026-11-01", 1, {"idle-timeout": 1})])

    def test_a_unit_sees_only_its_own_sessions(self):
        """Same device and user names in both units: each report counts its own."""
        berlin = self.report("berlin", "2026-10-01", "2026-12-01", "device")
        newyork = self.report("newyork", "2026-10-01", "2026-12-01", "device")
        self.assertEqual(berlin["totals"]["sessions"], 5)
        self.assertEqual(newyork["totals"]["sessions"], 2)
        self.assertEqual(newyork["groups"][0]["bytes_to_device"], 16)
        self.assertEqual(newyork["open_sessions"], [])
