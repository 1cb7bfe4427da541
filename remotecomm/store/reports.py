"""Transaction functions for reports: a unit's sessions added up in SQL, grouped by a column
or by the period's days (their edges computed by the caller as UTC instants).

A session counts in the period holding its ``counted_at_us`` (its first
side's start, or its request if no side joined).  Sessions still open are
not added up; :func:`open_sessions_in` lists them apart.  Every column read
here is in the index ``ix_sessions_report``, so a report over a unit's
100,000 sessions scans that index and never the table.
"""

from __future__ import annotations

from sqlalchemy import Connection, and_, case, func, literal, select

from remotecomm.store.schema import sessions, units

GROUPS = ("device", "app", "user", "day")
_COLUMNS = {"device": sessions.c.device_id, "app": sessions.c.app_id,
            "user": sessions.c.user_id}
MAX_OPEN_LISTED = 1000


def _day_of(days: list[tuple[str, int, int]]):
    """The label of the day holding ``counted_at_us``: a balanced tree of CASEs over the
    days' start edges (a few comparisons per row, not one per day)."""
    if len(days) == 1:
        return literal(days[0][0])
    middle = len(days) // 2
    return case((sessions.c.counted_at_us < days[middle][1], _day_of(days[:middle])),
                else_=_day_of(days[middle:]))


def _key(group: str | None, days: list[tuple[str, int, int]]):
    if group is None:
        return literal("all")
    if group == "day":
        return _day_of(days)
    return _COLUMNS[group]


def _in_period(unit_id: str, from_us: int, to_us: int):
    return and_(sessions.c.unit_id == unit_id, sessions.c.counted_at_us >= from_us,
                sessions.c.counted_at_us < to_us)


def ended_figures(connection: Connection, unit_id: str, from_us: int, to_us: int,
                  group: str | None = None,
                  days: list[tuple[str, int, int]] = ()) -> list[dict]:
    """Per group (``key``) and end reason, over the ended sessions of the period: how many,
    how many ran (have a duration), total duration, bytes each way, and how many lack the
    device's report though the device took its token."""
    key = _key(group, list(days)).label("key")
    missing = case((and_(sessions.c.device_notified_us.is_not(None),
                         sessions.c.device_reported.is_(False)), 1), else_=0)
    query = (select(key, sessions.c.end_reason, func.count().label("sessions"),
                    func.count(sessions.c.duration_us).label("sessions_run"),
                    func.coalesce(func.sum(sessions.c.duration_us), 0).label("duration_us"),
                    func.coalesce(func.sum(sessions.c.bytes_to_device), 0)
                    .label("bytes_to_device"),
                    func.coalesce(func.sum(sessions.c.bytes_from_device), 0)
                    .label("bytes_from_device"),
                    func.sum(missing).label("missing_device_info"))
             .where(_in_period(unit_id, from_us, to_us), sessions.c.state == "ended")
             .group_by(key, sessions.c.end_reason))
    return [dict(row._mapping) for row in connection.execute(query)]


def open_sessions_in(connection: Connection, unit_id: str, from_us: int,
                     to_us: int) -> list[dict]:
    """The sessions of the period that have not ended (at most :data:`MAX_OPEN_LISTED`)."""
    query = (select(sessions.c.request_id, sessions.c.state, sessions.c.device_id,
                    sessions.c.app_id, sessions.c.user_id, sessions.c.requested_us,
                    sessions.c.started_us)
             .where(_in_period(unit_id, from_us, to_us), sessions.c.state != "ended")
             .order_by(sessions.c.counted_at_us).limit(MAX_OPEN_LISTED))
    return [dict(row._mapping) for row in connection.execute(query)]


def unit_time_zone(connection: Connection, unit_id: str) -> str | None:
    """The IANA time zone of a unit, or ``None`` for no such unit."""
    return connection.execute(select(units.c.time_zone).where(units.c.unit_id == unit_id)
                              ).scalar()


def unit_name(connection: Connection, unit_id: str) -> str | None:
    """The display name of a unit, or ``None`` for no such unit."""
    return connection.execute(select(units.c.name).where(units.c.unit_id == unit_id)).scalar()
