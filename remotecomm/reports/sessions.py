"""A unit's session report for a period (S318–S319): totals, groups, ends by reason, the
sessions still open apart, and how many lack the device's information.

Figures are added up by the store in SQL; here they are put together.  A
session counts wholly in the period where it started (its first side joined
the relay; a session no side joined counts at its request), so a period's
figures never change once its sessions have ended.
"""

from __future__ import annotations

from sqlalchemy import Connection

from remotecomm.reports.periods import Period, local_iso, zone
from remotecomm.store import reports as report_rows

FIGURES = ("sessions", "sessions_run", "duration_us", "average_duration_us",
           "bytes_to_device", "bytes_from_device")


def _figures(row: dict | None) -> dict:
    row = row or {}
    figures = {name: int(row.get(name) or 0) for name in FIGURES if name != "average_duration_us"}
    run = figures["sessions_run"]
    figures["average_duration_us"] = figures["duration_us"] // run if run else 0
    return {name: figures[name] for name in FIGURES}


def unit_report(connection: Connection, unit_id: str, period: Period,
                group_by: str | None) -> dict:
    """The report of ``unit_id`` over ``period``, grouped by ``group_by`` (device, app,
    user, day) or not."""
    days = period.days() if group_by == "day" else []
    start, end = period.start_us, period.end_us
    totals = report_rows.session_totals(connection, unit_id, start, end)
    ends = report_rows.ends_by_reason(connection, unit_id, start, end)
    report = {"unit_id": unit_id, "time_zone": period.tz.key, "from": local_iso(start, period.tz),
              "to": local_iso(end, period.tz), "group_by": group_by,
              "totals": dict(_figures(totals[0] if totals else None),
                             ends=_ends(ends, "all"))}
    if group_by is not None:
        rows = {row["key"]: row for row in report_rows.session_totals(
            connection, unit_id, start, end, group_by, days)}
        group_ends = report_rows.ends_by_reason(connection, unit_id, start, end, group_by, days)
        keys = [label for label, _, _ in days] if group_by == "day" else sorted(rows)
        report["groups"] = [dict(_figures(rows.get(key)), key=key,
                                 ends=_ends(group_ends, key)) for key in keys]
    report["open_sessions"] = [
        {"request_id": row["request_id"], "state": row["state"], "device_id": row["device_id"],
         "app_id": row["app_id"], "user_id": row["user_id"],
         "requested_at": local_iso(row["requested_us"], period.tz),
         "started_at": local_iso(row["started_us"], period.tz) if row["started_us"] else None}
        for row in report_rows.open_sessions_in(connection, unit_id, start, end)]
    report["missing_device_info"] = report_rows.missing_device_info(connection, unit_id,
                                                                    start, end)
    return report


def _ends(rows: list[tuple[str, str, int]], key: str) -> dict[str, int]:
    return {reason: count for row_key, reason, count in sorted(rows) if row_key == key}


def unit_zone(connection: Connection, unit_id: str):
    """The unit's time zone (UTC for a name this system does not know)."""
    return zone(report_rows.unit_time_zone(connection, unit_id) or "UTC")
