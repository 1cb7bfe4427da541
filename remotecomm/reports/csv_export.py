"""Reports and session records as CSV: RFC 4180, UTF-8, a header row, times in ISO 8601 with
their offset, safe to open in a spreadsheet.

A cell that starts with ``=``, ``+``, ``-``, ``@`` (or a tab or carriage
return) could be run as a formula by a spreadsheet; it is written with a
leading apostrophe.  Every text a device, terminal or user chose passes
through :func:`safe_cell`.
"""

from __future__ import annotations

import csv
import io
import json

from remotecomm.reports.periods import local_iso
from remotecomm.sessions.lifecycle import END_REASONS

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value) -> str:
    """One cell's text, neutralised if a spreadsheet could read it as a formula."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def _write(rows: list[list]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    for row in rows:
        writer.writerow([safe_cell(cell) for cell in row])
    return out.getvalue().encode("utf-8")


def _seconds(microseconds) -> str | None:
    return None if microseconds is None else f"{microseconds / 1_000_000:.3f}"


_REPORT_COLUMNS = ("sessions", "sessions_run", "duration_s", "average_duration_s",
                   "bytes_to_device", "bytes_from_device")


def report_csv(report: dict) -> bytes:
    """A report as CSV: one row per group (or one for the whole unit), then a TOTAL row;
    a column per end reason."""
    key_name = report.get("group_by") or "unit"
    header = ["from", "to", key_name, *_REPORT_COLUMNS, *(f"ended_{r}" for r in END_REASONS),
              "missing_device_info"]

    def row(key: str, figures: dict, missing) -> list:
        return [report["from"], report["to"], key, figures["sessions"], figures["sessions_run"],
                _seconds(figures["duration_us"]), _seconds(figures["average_duration_us"]),
                figures["bytes_to_device"], figures["bytes_from_device"],
                *(figures["ends"].get(reason, 0) for reason in END_REASONS), missing]

    rows = [header]
    for group in report.get("groups") or []:
        rows.append(row(group["key"], group, ""))
    rows.append(row("TOTAL" if "groups" in report else report["unit_id"],
                    report["totals"], report["missing_device_info"]))
    return _write(rows)


# The columns of a session record, in order: (header, how to read it from the record).
_SIDE_FIELDS = ("party_id", "started_at_us", "ended_at_us", "ended_normally", "end_reason",
                "end_detail", "end_written_by", "refused_frames", "bytes_from_side",
                "bytes_to_side")
_DEVICE_FIELDS = ("operator", "app_version", "agent_version", "firmware_version",
                  "started_at_us", "ended_at_us", "end_code", "end_reason", "bytes_to_device",
                  "bytes_from_device", "errors", "reported_at_us", "received_at_us")
_RECORD_FIELDS = ("request_id", "state", "unit_id", "user_id", "terminal_id", "device_id",
                  "app_id", "operator", "approved_by_test_approver", "requested_at_us",
                  "decided_at_us", "started_at_us", "finished_at_us", "duration_us",
                  "ended_normally", "end_reason", "end_detail", "relay_node")
_TERMINAL_FIELDS = ("client_name", "client_version", "os_name", "os_version")


def _cell(name: str, value, tz):
    if name.endswith("_at_us"):
        return local_iso(value, tz) if value is not None else None
    if name == "duration_us":
        return _seconds(value)
    return value


def _header(name: str) -> str:
    return name.replace("_at_us", "_at").replace("duration_us", "duration_s")


def records_csv(records: list[dict], tz) -> bytes:
    """Session records as CSV, one row per session: the manager's fields, the terminal's,
    each side's (the relay's), the device's; times in ``tz`` with their offset."""
    header = [_header(n) for n in _RECORD_FIELDS] + [f"terminal_{n}" for n in _TERMINAL_FIELDS]
    for side in ("device", "terminal"):
        header += [f"{side}_side_{_header(n)}" for n in _SIDE_FIELDS]
    header += [f"device_report_{_header(n)}" for n in _DEVICE_FIELDS]
    rows = [header]
    for record in records:
        row = [_cell(n, record.get(n), tz) for n in _RECORD_FIELDS]
        row += [(record.get("terminal") or {}).get(n) for n in _TERMINAL_FIELDS]
        for side in ("device", "terminal"):
            seen = (record.get("connections") or {}).get(side) or {}
            row += [_cell(n, seen.get(n), tz) for n in _SIDE_FIELDS]
        seen = record.get("device") or {}
        row += [_cell(n, seen.get(n), tz) for n in _DEVICE_FIELDS]
        rows.append(row)
    return _write(rows)


def audit_csv(records: list[dict], tz) -> bytes:
    """Audit records as CSV: time (in ``tz``), kind, actor, source address, unit, and the
    details as JSON text."""
    rows = [["at", "kind", "actor", "source_address", "unit_id", "detail"]]
    for record in records:
        rows.append([local_iso(record["at_us"], tz), record["kind"], record["actor"],
                     record["source_address"], record["unit_id"],
                     json.dumps(record["detail"], sort_keys=True)])
    return _write(rows)
