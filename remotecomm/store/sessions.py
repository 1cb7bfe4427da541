"""Transaction functions for session rows.

The lifecycle rules live in :mod:`remotecomm.sessions.lifecycle`; these
functions load and save its :class:`~remotecomm.sessions.lifecycle.Session`
together with the stamps and token hashes that only the store needs.
Every save checks the state it replaces, so two writers cannot both move
one session (the second gets :class:`Conflict`).
"""

from __future__ import annotations

from dataclasses import asdict

from sqlalchemy import Connection, insert, select, update

from remotecomm.sessions.lifecycle import OPEN_STATES, Session
from remotecomm.store.schema import devices, sessions, units, users

_LIFECYCLE_FIELDS = tuple(Session.__dataclass_fields__)


class Conflict(Exception):
    """The session changed under us (another event moved it first)."""


def session_from_row(row) -> Session:
    """The lifecycle view of a session row."""
    values = {field: getattr(row, field) for field in _LIFECYCLE_FIELDS}
    values["approved_by_test_approver"] = bool(values["approved_by_test_approver"])
    return Session(**values)


def open_session_between(connection: Connection, device_id: str,
                         terminal_id: str) -> str | None:
    """The request ID of a session between this device and terminal not yet fully ended."""
    return connection.execute(
        select(sessions.c.request_id).where(sessions.c.device_id == device_id,
                                            sessions.c.terminal_id == terminal_id,
                                            sessions.c.state.in_(OPEN_STATES))
    ).scalar()


def device_for_request(connection: Connection, device_id: str, unit_id: str) -> dict | None:
    """The device, if it is registered, not revoked and in ``unit_id``."""
    row = connection.execute(
        select(devices.c.device_id, devices.c.online, devices.c.apps, devices.c.unit_id)
        .where(devices.c.device_id == device_id, devices.c.revoked_us.is_(None),
               devices.c.unit_id == unit_id)).first()
    return dict(row._mapping) if row else None


def insert_session(connection: Connection, session: Session, *, unit_id: str, user_id: str,
                   terminal_id: str, device_id: str, app_id: str) -> None:
    """Create the row of a new request, stamped with who asked for what."""
    existing = open_session_between(connection, device_id, terminal_id)
    if existing is not None:
        raise Conflict(existing)
    connection.execute(insert(sessions).values(
        **asdict(session), unit_id=unit_id, user_id=user_id, terminal_id=terminal_id,
        device_id=device_id, app_id=app_id, terminal_token_delivered=False))


def load_session(connection: Connection, request_id: str):
    """The whole row of a session, or ``None``."""
    return connection.execute(select(sessions).where(sessions.c.request_id == request_id)).first()


def save_session(connection: Connection, before: Session, after: Session, **extra) -> None:
    """Store ``after`` (and ``extra`` columns) if the row is still in ``before``'s state."""
    changes = {field: getattr(after, field) for field in _LIFECYCLE_FIELDS
               if getattr(after, field) != getattr(before, field)}
    changes.update(extra)
    result = connection.execute(
        update(sessions).where(sessions.c.request_id == before.request_id,
                               sessions.c.state == before.state).values(**changes))
    if result.rowcount != 1:
        raise Conflict(before.request_id)


def deliver_terminal_token(connection: Connection, request_id: str, token_hash: str) -> bool:
    """Store the terminal token's hash, once; whether this call was the one that did."""
    result = connection.execute(
        update(sessions).where(sessions.c.request_id == request_id,
                               sessions.c.state == "approved",
                               sessions.c.terminal_token_delivered.is_(False))
        .values(terminal_token_hash=token_hash, terminal_token_delivered=True))
    return result.rowcount == 1


def open_sessions(connection: Connection) -> list:
    """Every session row that is not ended (for re-arming timers after a restart)."""
    return list(connection.execute(select(sessions).where(sessions.c.state.in_(OPEN_STATES))))


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
