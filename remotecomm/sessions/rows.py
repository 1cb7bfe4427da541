"""Session rows as lifecycle values: the mapping between the store and the state machine.

The store (:mod:`remotecomm.store.sessions`) knows columns, not states;
these transaction helpers load a row as a
:class:`~remotecomm.sessions.lifecycle.Session` and save a transition back,
guarded by the state it replaces.
"""

from __future__ import annotations

from dataclasses import asdict

from sqlalchemy import Connection

from remotecomm.sessions.lifecycle import ENDED, OPEN_STATES, Session
from remotecomm.store import sessions as session_rows

_LIFECYCLE_FIELDS = tuple(Session.__dataclass_fields__)


def session_from_row(row) -> Session:
    """The lifecycle view of a session row."""
    values = {field: getattr(row, field) for field in _LIFECYCLE_FIELDS}
    values["approved_by_test_approver"] = bool(values["approved_by_test_approver"])
    return Session(**values)


TERMINAL_FIELDS = ("client_name", "client_version", "os_name", "os_version")


def insert_session(connection: Connection, session: Session, *, unit_id: str, user_id: str,
                   terminal_id: str, device_id: str, app_id: str,
                   limits: tuple[int | None, int | None] = (None, None),
                   **terminal: str) -> None:
    """Create the row of a new request, stamped with who asked for what (and what the
    terminal said of itself: :data:`TERMINAL_FIELDS`); raises
    :class:`~remotecomm.store.sessions.Conflict` while the pair has an open session, and
    :class:`~remotecomm.store.sessions.TooMany` past ``limits`` (per user, per device)."""
    unknown = set(terminal) - set(TERMINAL_FIELDS)
    if unknown:
        raise ValueError(f"unknown terminal fields {sorted(unknown)}")
    session_rows.insert_session(connection, dict(
        asdict(session), unit_id=unit_id, user_id=user_id, terminal_id=terminal_id,
        device_id=device_id, app_id=app_id, terminal_token_delivered=False, **terminal),
        OPEN_STATES, *limits)


def load(connection: Connection, request_id: str) -> Session | None:
    """The session of ``request_id``, or ``None``."""
    row = session_rows.load_session(connection, request_id)
    return session_from_row(row) if row is not None else None


def save_session(connection: Connection, before: Session, after: Session, **extra) -> None:
    """Store ``after`` (and ``extra`` columns) if the row is still in ``before``'s state."""
    changes = {field: getattr(after, field) for field in _LIFECYCLE_FIELDS
               if getattr(after, field) != getattr(before, field)}
    changes.update(extra)
    session_rows.update_session(connection, before.request_id, before.state, changes)
    if after.state == ENDED and before.state != ENDED:
        session_rows.close_unstarted_connections(connection, after.request_id,
                                                 after.ended_us, after.end_reason)


def open_session_rows(connection: Connection) -> list:
    """Every session row that is not ended."""
    return session_rows.sessions_in_states(connection, OPEN_STATES)


def copy_traffic(connection: Connection, row, records: dict) -> None:
    """What reports add up, from the connection records: the first side's start, the
    duration once every side ended, the device side's bytes once it ended (written only
    when it changes what the session row holds)."""
    starts = [r.started_us for r in records.values() if r.started_us is not None]
    started = min(starts) if starts else None
    ends = [r.ended_us for r in records.values()]
    duration = max(ends) - started if started is not None and None not in ends else None
    device = records.get("device")
    device_ended = device is not None and device.ended_us is not None
    traffic = dict(started_us=started, duration_us=duration,
                   bytes_to_device=device.bytes_to_side if device_ended else None,
                   bytes_from_device=device.bytes_from_side if device_ended else None)
    if all(getattr(row, column) == value for column, value in traffic.items()):
        return
    session_rows.record_session_traffic(connection, row.request_id, **traffic)
