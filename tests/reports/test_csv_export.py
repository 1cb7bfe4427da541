"""Tests for remotecomm.reports.csv_export: RFC 4180, the same figures as JSON, no formulas."""

import csv
import io

from hypothesis import given, strategies as st
from twisted.trial.unittest import SynchronousTestCase

from remotecomm.reports.csv_export import records_csv, report_csv, safe_cell
from remotecomm.reports.periods import zone
from remotecomm.sessions.lifecycle import END_REASONS

FIGURES = {"sessions": 4, "sessions_run": 3, "duration_us": 661_000_000,
           "average_duration_us": 220_333_333, "bytes_to_device": 111,
           "bytes_from_device": 1022, "ends": {"normal": 2, "refused": 1, "ended-by-device": 1}}
REPORT = {"unit_id": "berlin", "time_zone": "Europe/Berlin",
          "from": "2026-10-01T00:00:00+02:00", "to": "2026-11-01T00:00:00+01:00",
          "group_by": "device", "totals": FIGURES,
          "groups": [dict(FIGURES, key="=HYPERLINK(\"http://evil\")")],
          "open_sessions": [], "missing_device_info": 2}


def parse(body: bytes) -> list[dict]:
    return list(csv.DictReader(io.StringIO(body.decode("utf-8"), newline="")))


class ReportCsvTests(SynchronousTestCase):
    """A report as CSV carries the JSON's figures, row by row."""

    def test_rows_match_the_json(self):
        body = report_csv(REPORT)
        self.assertTrue(body.startswith(b"from,to,device,sessions,"))
        self.assertIn(b"\r\n", body)
        group, total = parse(body)
        self.assertEqual(total["device"], "TOTAL")
        for row, figures in ((group, REPORT["groups"][0]), (total, REPORT["totals"])):
            self.assertEqual((int(row["sessions"]), int(row["sessions_run"]),
                              float(row["duration_s"]), float(row["average_duration_s"]),
                              int(row["bytes_to_device"]), int(row["bytes_from_device"])),
                             (figures["sessions"], figures["sessions_run"],
                              figures["duration_us"] / 1e6,
                              round(figures["average_duration_us"] / 1e6, 3),
                              figures["bytes_to_device"], figures["bytes_from_device"]))
            self.assertEqual({reason: int(row[f"ended_{reason}"]) for reason in END_REASONS
                              if int(row[f"ended_{reason}"])}, figures["ends"])
        self.assertEqual((total["from"], total["missing_device_info"]),
                         ("2026-10-01T00:00:00+02:00", "2"))

    def test_a_formula_in_a_name_is_neutralised(self):
        group, _ = parse(report_csv(REPORT))
        self.assertEqual(group["device"], "'=HYPERLINK(\"http://evil\")")

    def test_an_ungrouped_report_is_one_row_for_the_unit(self):
        ungrouped = {key: value for key, value in REPORT.items() if key != "groups"}
        [row] = parse(report_csv(dict(ungrouped, group_by=None)))
        self.assertEqual(row["unit"], "berlin")


class RecordsCsvTests(SynchronousTestCase):
    """Session records as CSV: every field a column, times with their offset."""

    RECORD = {"request_id": "R" * 22, "state": "ended", "end_reason": "normal",
              "unit_id": "berlin", "user_id": "alice", "device_id": "mfp-1",
              "app_id": "web-server", "operator": "+olga", "requested_at_us": 1_793_000_000_000_000,
              "duration_us": 1_500_000, "approved_by_test_approver": False,
              "terminal": {"client_name": "remotecomm-cli", "os_name": "@Linux"},
              "connections": {"device": {"party_id": "mfp-1", "bytes_to_side": 5,
                                         "refused_frames": 0, "end_written_by": "manager"}},
              "device": {"operator": "olga", "firmware_version": "4.2.1", "errors": 1}}

    def test_fields_and_times(self):
        [row] = parse(records_csv([self.RECORD], zone("Europe/Berlin")))
        self.assertEqual(row["requested_at"], "2026-10-26T08:33:20+01:00")
        self.assertEqual((row["duration_s"], row["operator"], row["terminal_os_name"],
                          row["device_side_bytes_to_side"], row["device_side_refused_frames"],
                          row["device_report_firmware_version"], row["terminal_side_party_id"],
                          row["approved_by_test_approver"], row["device_side_end_written_by"]),
                         ("1.500", "'+olga", "'@Linux", "5", "0", "4.2.1", "", "false",
                          "manager"))


class SafeCellTests(SynchronousTestCase):
    @given(st.text(max_size=30))
    def test_no_cell_starts_like_a_formula(self, text):
        """A risky first character gets an apostrophe before it; nothing else changes."""
        risky = text.startswith(("=", "+", "-", "@", "\t", "\r"))
        self.assertEqual(safe_cell(text), "'" + text if risky else text)
