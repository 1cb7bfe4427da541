"""Tests for remotecomm.device.history: the device's own history, durable and bounded."""

from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from remotecomm.device.history import History, kept_reports


class HistoryTests(SynchronousTestCase):
    def test_events_come_back_in_order_and_a_torn_line_is_skipped(self):
        history = History(Path(self.mktemp()) / "history.jsonl")
        history.append("approval-requested", 1, request_id="r1")
        history.append("approval-decided", 2, request_id="r1", operator="olga")
        with open(history.path, "a") as file:
            file.write('{"at_us": 3, "ev')  # power lost mid-line
        self.assertEqual([e["event"] for e in history.events()],
                         ["approval-requested", "approval-decided"])

    def test_a_full_file_is_rotated_and_at_most_two_are_kept(self):
        history = History(Path(self.mktemp()) / "history.jsonl", max_bytes=2000)
        for n in range(200):
            history.append("approval-requested", n, request_id=f"request-{n:04d}")
        files = sorted(p.name for p in history.path.parent.iterdir())
        self.assertEqual(files, ["history.jsonl", "history.jsonl.1"])
        self.assertLess(history.path.stat().st_size, 2000)
        self.assertLess(history.previous.stat().st_size, 2000 + 100)
        kept = [e["at_us"] for e in history.events()]
        self.assertEqual(kept, sorted(kept))  # oldest first, across both files
        self.assertEqual(kept[-1], 199)
        self.assertLess(len(kept), 200)  # the oldest are gone

    def test_a_sessions_report_is_rebuilt_across_a_rotation(self):
        history = History(Path(self.mktemp()) / "history.jsonl", max_bytes=300)
        history.append("approval-decided", 1, request_id="r1", operator="olga")
        history.append("session-ready", 2, request_id="r1", session_id="S" * 32,
                       app_id="web-server")
        history.append("relay-joined", 3, request_id="r1", agent_version="0.4",
                       firmware_version="4.2")
        self.assertTrue(history.previous.exists())
        history.append("relay-ended", 9, request_id="r1", code=1000, reason="normal")
        (report,) = kept_reports(history.events(), ("r1",), 10)
        self.assertEqual((report.operator, report.started_us, report.ended_us),
                         ("olga", 3, 9))
