"""Transaction functions for reports: a unit's sessions added up in SQL, grouped by a column
or by the period's days (their edges computed by the caller as UTC instants).

A session counts in the period holding its ``counted_at_us`` (its first
side's start, or its request if no side joined).  Sessions still open are
not added up; :func:`open_sessions_in` lists them apart.
"""

from __future__ import annotations

from sqlalchemy import Connection, and_, case, func, literal, select

from remotecomm.store.schema import session_device_reports, sessions, units

GROUPS = ("device", "app", "user", "day")
_COLUMNS = {"device": sessions.c.device_id, "app": sessions.c.app_id,
            "user": sessions.c.user_id}
MAX_OPEN_LISTED = 1000


def _key(group: str | None, days: list[tuple[str, int, int]]):
    if group is None:
        return literal("all")
    if group == "day":
        return case(*[(and_(sessions.c.counted_at_us >= start, sessions.c.counted_at_us < end),
                       literal(label)) for label, start, end in days], else_=literal("?"))
    return _COLUMNS[group]


def _in_period(unit_id: str, from_us: int, to_us: int):
    return and_(sessions.c.unit_id == unit_id, sessions.c.counted_at_us >= from_us,
                sessions.c.counted_at_us < to_us)


def session_totals(connection: Connection, unit_id: str, from_us: int, to_us: int,
                   group: str | None = None,
                   days: list[tuple[str, int, int]] = ()) -> list[dict]:
    """Per group (``key``): ended sessions, those that ran (have a duration), total duration
    and bytes each way."""
    key = _key(group, list(days)).label("key")
    query = (select(key, func.count().label("sessions"),
                    func.count(sessions.c.duration_us).label("sessions_run"),
                    func.coalesce(func.sum(sessions.c.duration_us), 0).label("duration_us"),
                    func.coalesce(func.sum(sessions.c.bytes_to_device), 0)
                    .label("bytes_to_device"),
                    func.coalesce(func.sum(sessions.c.bytes_from_device), 0)
                    .label("bytes_from_device"))
             .where(_in_period(unit_id, from_us, to_us), sessions.c.state == "ended")
             .group_by(key).order_by(key))
    return [dict(row._mapping) for row in connection.execute(query)]


def ends_by_reason(connection: Connection, unit_id: str, from_us: int, to_us: int,
                   group: str | None = None,
                   days: list[tuple[str, int, int]] = ()) -> list[tuple[str, str, int]]:
    """``(key, end reason, sessions)`` of the ended sessions."""
    key = _key(group, list(days)).label("key")
    query = (select(key, sessions.c.end_reason, func.count())
             .where(_in_period(unit_id, from_us, to_us), sessions.c.state == "ended")
             .group_by(key, sessions.c.end_reason))
    return [tuple(row) for row in connection.execute(query)]


def open_sessions_in(connection: Connection, unit_id: str, from_us: int,
                     to_us: int) -> list[dict]:
    """The sessions of the period that have not ended (at most :data:`MAX_OPEN_LISTED`)."""
    query = (select(sessions.c.request_id, sessions.c.state, sessions.c.device_id,
                    sessions.c.app_id, sessions.c.user_id, sessions.c.requested_us,
                    sessions.c.started_us)
             .where(_in_period(unit_id, from_us, to_us), sessions.c.state != "ended")
             .order_by(sessions.c.counted_at_us).limit(MAX_OPEN_LISTED))
    return [dict(row._mapping) for row in connection.execute(query)]


def missing_device_info(connection: Connection, unit_id: str, from_us: int, to_us: int) -> int:
    """Ended sessions of the period whose device took its token but whose report has not
    come (yet)."""
    query = (select(func.count()).select_from(sessions.outerjoin(
        session_device_reports, session_device_reports.c.request_id == sessions.c.request_id))
        .where(_in_period(unit_id, from_us, to_us), sessions.c.state == "ended",
               sessions.c.device_notified_us.is_not(None),
               session_device_reports.c.request_id.is_(None)))
    return connection.execute(query).scalar()


def unit_time_zone(connection: Connection, unit_id: str) -> str | None:
    """The IANA time zone of a unit, or ``None`` for no such unit."""
    return connection.execute(select(units.c.time_zone).where(units.c.unit_id == unit_id)
                              ).scalar()
