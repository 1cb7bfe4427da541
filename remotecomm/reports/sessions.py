"""A unit's session report for a period (S318–S319): totals, groups, ends by reason, the
sessions still open apart, and how many lack the device's information.

Figures are added up by the store in SQL, per group and end reason, in one
scan of an index; here the few rows that come back are put together.  A
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
_SUMMED = ("sessions", "sessions_run", "duration_us", "bytes_to_device", "bytes_from_device")


def _figures(rows: list[dict]) -> dict:
    """One group's figures from its rows (one per end reason, summed by the store)."""
    figures = {name: sum(int(row[name] or 0) for row in rows) for name in _SUMMED}
    run = figures["sessions_run"]
    figures["average_duration_us"] = figures["duration_us"] // run if run else 0
    ends = {row["end_reason"]: int(row["sessions"]) for row in rows}
    return dict({name: figures[name] for name in FIGURES}, ends=dict(sorted(ends.items())))


def unit_report(connection: Connection, unit_id: str, period: Period,
                group_by: str | None) -> dict:
    """The report of ``unit_id`` over ``period``, grouped by ``group_by`` (device, app,
    user, day) or not."""
    days = period.days() if group_by == "day" else []
    start, end = period.start_us, period.end_us
    rows = report_rows.ended_figures(connection, unit_id, start, end, group_by, days)
    report = {"unit_id": unit_id, "time_zone": period.tz.key, "from": local_iso(start, period.tz),
              "to": local_iso(end, period.tz), "group_by": group_by,
              "totals": _figures(rows)}
    if group_by is not None:
        by_key: dict[str, list[dict]] = {}
        for row in rows:
            by_key.setdefault(row["key"], []).append(row)
        keys = [label for label, _, _ in days] if group_by == "day" else sorted(by_key)
        report["groups"] = [dict(_figures(by_key.get(key, [])), key=key) for key in keys]
    report["open_sessions"] = [
        {"request_id": row["request_id"], "state": row["state"], "device_id": row["device_id"],
         "app_id": row["app_id"], "user_id": row["user_id"],
         "requested_at": local_iso(row["requested_us"], period.tz),
         "started_at": local_iso(row["started_us"], period.tz) if row["started_us"] else None}
        for row in report_rows.open_sessions_in(connection, unit_id, start, end)]
    report["missing_device_info"] = sum(int(row["missing_device_info"] or 0) for row in rows)
    return report


def unit_zone(connection: Connection, unit_id: str):
    """The unit's time zone (UTC for a name this system does not know)."""
    return zone(report_rows.unit_time_zone(connection, unit_id) or "UTC")
