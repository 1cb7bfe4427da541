"""Transaction functions for session rows and their connection records.

The store knows no lifecycle: it reads and writes rows and columns.
:mod:`remotecomm.sessions.rows` maps rows to the lifecycle's
:class:`~remotecomm.sessions.lifecycle.Session` and back.  Every update of a
session names the state it expects to replace, so two writers cannot both
move one session (the second gets :class:`Conflict`).
"""

from __future__ import annotations

from typing import Iterable

from sqlalchemy import Connection, bindparam, func, insert, or_, select, update

from remotecomm.store.schema import (devices, session_connections, session_device_reports, sessions,
                                     units, users)

# The statements of every token check and session log (several per session set-up) are
# built once: building a statement cost about twice what running it does.
_SESSION = select(sessions).where(sessions.c.request_id == bindparam("_request_id"))
_SESSION_BY_SESSION_ID = select(sessions).where(
    sessions.c.session_id == bindparam("_session_id"))
_UPDATE_SESSION = update(sessions).where(sessions.c.request_id == bindparam("_request_id"),
                                         sessions.c.state == bindparam("_state"))
_UPDATE_TRAFFIC = update(sessions).where(sessions.c.request_id == bindparam("_request_id"))
_CONNECTIONS = select(session_connections).where(
    session_connections.c.request_id == bindparam("_request_id"))
_INSERT_CONNECTION = insert(session_connections)
_UPDATE_CONNECTION = update(session_connections).where(
    session_connections.c.request_id == bindparam("_request_id"),
    session_connections.c.side == bindparam("_side"))
_PARTIES = select(devices.c.revoked_us, users.c.disabled).where(
    devices.c.device_id == bindparam("_device_id"), users.c.user_id == bindparam("_user_id"))


class Conflict(Exception):
    """The session changed under us (another event moved it first)."""


class TooMany(Exception):
    """A bound on open sessions was reached: ``args[0]`` says whose (``user``, ``device``)."""


def open_session_between(connection: Connection, device_id: str, terminal_id: str,
                         open_states: Iterable[str]) -> str | None:
    """The request ID of a session between this device and terminal in ``open_states``."""
    return connection.execute(
        select(sessions.c.request_id).where(sessions.c.device_id == device_id,
                                            sessions.c.terminal_id == terminal_id,
                                            sessions.c.state.in_(tuple(open_states)))
    ).scalar()


def device_for_request(connection: Connection, device_id: str, unit_id: str) -> dict | None:
    """The device, if it is registered, not revoked and in ``unit_id``."""
    row = connection.execute(
        select(devices.c.device_id, devices.c.online, devices.c.apps, devices.c.unit_id)
        .where(devices.c.device_id == device_id, devices.c.revoked_us.is_(None),
               devices.c.unit_id == unit_id)).first()
    return dict(row._mapping) if row else None


def insert_session(connection: Connection, values: dict, open_states: Iterable[str],
                   max_per_user: int | None = None, max_per_device: int | None = None) -> None:
    """Create the row of a new request, unless its device and terminal already have a
    session in ``open_states`` (then :class:`Conflict` names that session), or its user or
    device has as many open as allowed (:class:`TooMany`)."""
    states = tuple(open_states)
    existing = open_session_between(connection, values["device_id"], values["terminal_id"],
                                    states)
    if existing is not None:
        raise Conflict(existing)
    for whose, column, bound in (("user", sessions.c.user_id, max_per_user),
                                 ("device", sessions.c.device_id, max_per_device)):
        if bound is not None and connection.execute(
                select(func.count()).select_from(sessions).where(
                    column == values[column.name], sessions.c.state.in_(states))
        ).scalar() >= bound:
            raise TooMany(whose)
    connection.execute(insert(sessions).values(**values))


def load_session(connection: Connection, request_id: str):
    """The whole row of a session, or ``None``."""
    return connection.execute(_SESSION, {"_request_id": request_id}).first()


def load_session_by_session_id(connection: Connection, session_id: str):
    """The whole row of the session the relay knows as ``session_id``, or ``None``."""
    return connection.execute(_SESSION_BY_SESSION_ID, {"_session_id": session_id}).first()


def update_session(connection: Connection, request_id: str, expected_state: str,
                   changes: dict) -> None:
    """Write ``changes`` if the row is still in ``expected_state``; else :class:`Conflict`."""
    result = connection.execute(_UPDATE_SESSION, {"_request_id": request_id,
                                                  "_state": expected_state, **changes})
    if result.rowcount != 1:
        raise Conflict(request_id)


def record_session_traffic(connection: Connection, request_id: str, *,
                           started_us: int | None, duration_us: int | None,
                           bytes_to_device: int | None, bytes_from_device: int | None) -> None:
    """Copy what reports add up onto the session row; a session counts from its first
    side's start once it has one."""
    values = dict(started_us=started_us, duration_us=duration_us,
                  bytes_to_device=bytes_to_device, bytes_from_device=bytes_from_device)
    if started_us is not None:
        values["counted_at_us"] = started_us
    connection.execute(_UPDATE_TRAFFIC, {"_request_id": request_id, **values})


def deliver_terminal_token(connection: Connection, request_id: str, token_hash: str,
                           state: str) -> bool:
    """Store the terminal token's hash once, while the session is in ``state``; whether
    this call was the one that did."""
    result = connection.execute(
        update(sessions).where(sessions.c.request_id == request_id,
                               sessions.c.state == state,
                               sessions.c.terminal_token_delivered.is_(False))
        .values(terminal_token_hash=token_hash, terminal_token_delivered=True))
    return result.rowcount == 1


def sessions_in_states(connection: Connection, states: Iterable[str]) -> list:
    """Every session row in one of ``states`` (for re-arming timers after a restart)."""
    return list(connection.execute(select(sessions).where(sessions.c.state.in_(tuple(states)))))


def sessions_of_revoked_parties(connection: Connection, states: Iterable[str]) -> list:
    """Session rows in ``states`` whose device is revoked or whose user is disabled, each
    with ``device_revoked`` and ``user_disabled``."""
    return list(connection.execute(
        select(sessions, devices.c.revoked_us.is_not(None).label("device_revoked"),
               users.c.disabled.label("user_disabled"))
        .join(devices, devices.c.device_id == sessions.c.device_id)
        .join(users, users.c.user_id == sessions.c.user_id)
        .where(sessions.c.state.in_(tuple(states)),
               or_(devices.c.revoked_us.is_not(None), users.c.disabled.is_(True)))))


def party_revoked(connection: Connection, device_id: str, user_id: str) -> str | None:
    """``"device revoked"`` or ``"user disabled"`` when one of the session's parties may no
    longer take part; else ``None``."""
    row = connection.execute(_PARTIES, {"_device_id": device_id, "_user_id": user_id}).first()
    if row is None:  # a party without a row (never: sessions reference both) takes no part
        return None
    if row.revoked_us is not None:
        return "device revoked"
    return "user disabled" if row.disabled else None


def session_records(connection: Connection, unit_id: str, *, states: Iterable[str] | None = None,
                    device_id: str | None = None, app_id: str | None = None,
                    user_id: str | None = None, end_reason: str | None = None,
                    from_us: int | None = None, to_us: int | None = None,
                    before: tuple[int, str] | None = None, limit: int = 50) -> list:
    """A unit's session rows, newest request first, filtered; ``before`` is the
    ``(requested_us, request_id)`` of the last row of the previous page."""
    query = select(sessions).where(sessions.c.unit_id == unit_id)
    for column, value in ((sessions.c.device_id, device_id), (sessions.c.app_id, app_id),
                          (sessions.c.user_id, user_id), (sessions.c.end_reason, end_reason)):
        if value is not None:
            query = query.where(column == value)
    if states is not None:
        query = query.where(sessions.c.state.in_(tuple(states)))
    if from_us is not None:
        query = query.where(sessions.c.requested_us >= from_us)
    if to_us is not None:
        query = query.where(sessions.c.requested_us < to_us)
    if before is not None:
        query = query.where(or_(sessions.c.requested_us < before[0],
                                (sessions.c.requested_us == before[0])
                                & (sessions.c.request_id < before[1])))
    query = query.order_by(sessions.c.requested_us.desc(), sessions.c.request_id.desc())
    return list(connection.execute(query.limit(limit)))


def display_names(connection: Connection, user_id: str, unit_id: str) -> tuple[str, str]:
    """The display names of a user and a unit (for the approval screen)."""
    user_name = connection.execute(select(users.c.display_name)
                                   .where(users.c.user_id == user_id)).scalar()
    unit_name = connection.execute(select(units.c.name)
                                   .where(units.c.unit_id == unit_id)).scalar()
    return user_name or user_id, unit_name or unit_id


def mark_device_notified(connection: Connection, request_id: str, at_us: int) -> None:
    """The device acknowledged its token and session ID (S149)."""
    connection.execute(update(sessions).where(sessions.c.request_id == request_id)
                       .values(device_notified_us=at_us))


# -- connection records: one per side that joined through the relay -----------------------

UNSTARTED_DETAIL = "admitted, but the relay never established this side"
# Who wrote a side's end log: its relay, or the manager on a lost relay's behalf.
RELAY, MANAGER = "relay", "manager"

def connection_records(connection: Connection, request_id: str) -> dict:
    """The connection records of a session, by side."""
    return {row.side: row for row in connection.execute(_CONNECTIONS,
                                                        {"_request_id": request_id})}


def insert_connection_record(connection: Connection, request_id: str, side: str,
                             party_id: str) -> None:
    """A side was admitted (its token is now used)."""
    connection.execute(_INSERT_CONNECTION, dict(
        request_id=request_id, side=side, party_id=party_id, started_us=None,
        ended_us=None, ended_normally=None, end_reason=None, bytes_from_side=0,
        bytes_to_side=0, started_log_key=None, ended_log_key=None))


def close_unstarted_connections(connection: Connection, request_id: str, at_us: int,
                                reason: str) -> None:
    """The session ended: a side admitted (its token used) whose started log never came
    (the relay stopped before it was established) is closed with the session's reason;
    a started log filed late still fills it in."""
    connection.execute(update(session_connections).where(
        session_connections.c.request_id == request_id,
        session_connections.c.started_log_key.is_(None),
        session_connections.c.ended_us.is_(None))
        .values(ended_us=at_us, ended_normally=False, end_reason=reason,
                end_detail=UNSTARTED_DETAIL))


def record_connection_started(connection: Connection, request_id: str, side: str,
                              at_us: int, key: str) -> None:
    """File a side's started log."""
    connection.execute(_UPDATE_CONNECTION, dict(_request_id=request_id, _side=side,
                                                started_us=at_us, started_log_key=key))


def record_connection_ended(connection: Connection, request_id: str, side: str, *,
                            at_us: int, normal: bool, reason: str, bytes_from_side: int,
                            bytes_to_side: int, key: str, refused_frames: int | None = None,
                            detail: str | None = None) -> None:
    """File a side's end log (``refused_frames`` and ``detail``: what went wrong on it)."""
    connection.execute(_UPDATE_CONNECTION, dict(
        _request_id=request_id, _side=side, ended_us=at_us, ended_normally=normal,
        end_reason=reason, bytes_from_side=bytes_from_side, bytes_to_side=bytes_to_side,
        ended_log_key=key, refused_frames=refused_frames, end_detail=detail, ended_by=RELAY))


def manager_end_log_key(session_id: str, side: str) -> str:
    """The key of the end log the manager writes for a side of a lost relay (never one a
    relay uses, so the relay's own log stays apart)."""
    return f"{session_id}:{side}:ended-by-manager"


def end_connections_for_lost_relay(connection: Connection, request_id: str, session_id: str,
                                   at_us: int, reason: str, detail: str) -> list[str]:
    """The manager writes the end log of every side whose relay never sent one, on the
    lost relay's behalf (``ended_by`` manager; bytes as its last heartbeat counted them);
    the sides it wrote."""
    sides = [row.side for row in connection_records(connection, request_id).values()
             if row.ended_log_key is None]
    for side in sides:
        connection.execute(_UPDATE_CONNECTION, dict(
            _request_id=request_id, _side=side, ended_us=at_us, ended_normally=False,
            end_reason=reason, end_detail=detail, refused_frames=None,
            ended_log_key=manager_end_log_key(session_id, side), ended_by=MANAGER))
    return sides


def record_late_end(connection: Connection, request_id: str, side: str, *, key: str,
                    at_us: int, reason: str, bytes_from_side: int, bytes_to_side: int) -> None:
    """Keep a relay's own end log that came after the manager ended the side for it, beside
    the manager's (which stays the side's end)."""
    connection.execute(_UPDATE_CONNECTION, dict(
        _request_id=request_id, _side=side, late_log_key=key, late_ended_us=at_us,
        late_end_reason=reason, late_bytes_from_side=bytes_from_side,
        late_bytes_to_side=bytes_to_side))


# -- what devices reported (S313) -----------------------------------------------------------

def record_device_report(connection: Connection, values: dict) -> bool:
    """Keep a device's report of a session; whether it is new (a repeat changes nothing)."""
    exists = connection.execute(select(session_device_reports.c.request_id).where(
        session_device_reports.c.request_id == values["request_id"])).first()
    if exists is not None:
        return False
    connection.execute(insert(session_device_reports).values(**values))
    connection.execute(update(sessions).where(sessions.c.request_id == values["request_id"])
                       .values(device_reported=True))
    return True


def device_report(connection: Connection, request_id: str):
    """The device's report of a session, or ``None``."""
    return connection.execute(select(session_device_reports).where(
        session_device_reports.c.request_id == request_id)).first()


def sessions_missing_device_reports(connection: Connection, *, ended_since_us: int,
                                    max_asks: int, unit_id: str | None = None,
                                    device_id: str | None = None,
                                    limit: int = 1000) -> list[tuple[str, str]]:
    """``(request_id, device_id)`` of ended sessions whose device took its token (so it has
    something to report) but whose report never came, asked about fewer than ``max_asks``
    times, that ended at or after ``ended_since_us``; oldest first."""
    query = (select(sessions.c.request_id, sessions.c.device_id)
             .outerjoin(session_device_reports,
                        session_device_reports.c.request_id == sessions.c.request_id)
             .where(sessions.c.state == "ended", sessions.c.device_notified_us.is_not(None),
                    sessions.c.ended_us >= ended_since_us,
                    sessions.c.device_report_asks < max_asks,
                    session_device_reports.c.request_id.is_(None)))
    if unit_id is not None:
        query = query.where(sessions.c.unit_id == unit_id)
    if device_id is not None:
        query = query.where(sessions.c.device_id == device_id)
    query = query.order_by(sessions.c.ended_us, sessions.c.request_id).limit(limit)
    return [(row.request_id, row.device_id) for row in connection.execute(query)]


def note_device_report_not_kept(connection: Connection, request_ids: list[str],
                                at_us: int) -> None:
    """The device was asked about these sessions and had nothing: count the ask."""
    if request_ids:
        connection.execute(update(sessions).where(sessions.c.request_id.in_(request_ids))
                           .values(device_report_asks=sessions.c.device_report_asks + 1,
                                   device_report_asked_us=at_us))


def device_report_count(connection: Connection, request_ids: list[str]) -> int:
    """How many of these sessions have a device report."""
    if not request_ids:
        return 0
    return connection.execute(select(func.count()).select_from(session_device_reports).where(
        session_device_reports.c.request_id.in_(request_ids))).scalar()
