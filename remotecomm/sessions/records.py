"""The record of a session as its unit reads it (S311–S320, "the fields of session-related
information" in SYSTEM.md), built from the session row and its connection records.

Sources, each kept as it came: the manager's own row (who asked, from which unit and
terminal, for which device and app; the approving operator; the lifecycle's times and
reason), the relay's logs (per side: who connected, when, how it ended, bytes each way),
the terminal (its client and OS, sent with the request), and the device (what it pushed
when its side ended: operator, app and agent versions, its times, bytes, close code).  The session's start is the
first side's start, its end the last side's end.
"""

from __future__ import annotations

from sqlalchemy import Connection

from remotecomm.sessions.messages import SessionReport
from remotecomm.store import sessions as session_rows

_ROW_FIELDS = ("request_id", "state", "unit_id", "user_id", "terminal_id", "device_id",
               "app_id", "relay_node", "end_reason", "end_detail")
_TIMES = (("requested_at_us", "requested_us"), ("approval_deadline_us", "approval_deadline_us"),
          ("decided_at_us", "decided_us"), ("join_deadline_us", "join_deadline_us"),
          ("lifetime_deadline_us", "lifetime_deadline_us"), ("ended_at_us", "ended_us"))


def _side(record) -> dict:
    side = {"party_id": record.party_id, "started_at_us": record.started_us,
            "ended_at_us": record.ended_us, "ended_normally": record.ended_normally,
            "end_reason": record.end_reason, "end_detail": record.end_detail,
            "refused_frames": record.refused_frames,
            "bytes_from_side": record.bytes_from_side, "bytes_to_side": record.bytes_to_side}
    if record.started_us is not None and record.ended_us is not None:
        side["duration_us"] = record.ended_us - record.started_us
    if record.ended_by is not None:
        side["end_written_by"] = record.ended_by  # "manager": for a lost relay
    if record.late_log_key is not None:
        side["late_relay_log"] = {"ended_at_us": record.late_ended_us,
                                  "end_reason": record.late_end_reason,
                                  "bytes_from_side": record.late_bytes_from_side,
                                  "bytes_to_side": record.late_bytes_to_side}
    return side


_DEVICE_FIELDS = ("app_version", "agent_version", "firmware_version", "operator", "end_code",
                  "end_reason", "bytes_to_device", "bytes_from_device", "errors")


def _device(report) -> dict:
    seen = {name: getattr(report, name) for name in _DEVICE_FIELDS}
    seen.update(started_at_us=report.started_us, ended_at_us=report.ended_us,
                reported_at_us=report.reported_us, received_at_us=report.received_us)
    return {name: value for name, value in seen.items() if value is not None}


def session_record(row, connections: dict, device_report=None) -> dict:
    """The record of one session: its row, its sides, the terminal's description, and what
    the device reported (``device``: its own clock's times beside when we received them)."""
    record = {name: getattr(row, name) for name in _ROW_FIELDS}
    record["operator"] = row.approver  # who answered on the device (S143)
    record["approved_by_test_approver"] = bool(row.approved_by_test_approver)
    for name, column in _TIMES:
        record[name] = getattr(row, column)
    record["terminal"] = {name: getattr(row, name) for name in
                          ("client_name", "client_version", "os_name", "os_version")}
    sides = {side: _side(connection) for side, connection in sorted(connections.items())}
    record["connections"] = sides
    starts = [s["started_at_us"] for s in sides.values() if s["started_at_us"] is not None]
    ends = [s["ended_at_us"] for s in sides.values() if s["ended_at_us"] is not None]
    record["started_at_us"] = min(starts) if starts else None
    record["finished_at_us"] = max(ends) if ends and len(ends) == len(sides) else None
    record["duration_us"] = (record["finished_at_us"] - record["started_at_us"]
                             if record["started_at_us"] is not None
                             and record["finished_at_us"] is not None else None)
    record["ended_normally"] = (record["end_reason"] == "normal"
                                if record["state"] == "ended" else None)
    record["device"] = _device(device_report) if device_report is not None else None
    return {key: value for key, value in record.items() if value is not None}


def keep_device_report(connection: Connection, device_id: str, report: SessionReport,
                       received_us: int) -> bool | None:
    """Keep what a device reported of a session, once, its clock beside ours; ``None`` if
    the session is not this device's, else whether the report was new."""
    row = session_rows.load_session(connection, report.request_id)
    if row is None or row.device_id != device_id or row.session_id != report.session_id:
        return None
    values = {name: getattr(report, name) for name in report.__dataclass_fields__
              if name != "session_id"}
    return session_rows.record_device_report(
        connection, dict(values, device_id=device_id, received_us=received_us))


def unit_records(connection: Connection, unit_id: str, **filters) -> list[dict]:
    """The records of a unit's sessions, newest first (see ``session_records``)."""
    return [session_record(row, session_rows.connection_records(connection, row.request_id),
                           session_rows.device_report(connection, row.request_id))
            for row in session_rows.session_records(connection, unit_id, **filters)]


def one_record(connection: Connection, request_id: str, unit_id: str) -> dict | None:
    """One session's record, if it is of ``unit_id`` (else ``None``, like no session)."""
    row = session_rows.load_session(connection, request_id)
    if row is None or row.unit_id != unit_id:
        return None
    return session_record(row, session_rows.connection_records(connection, request_id),
                          session_rows.device_report(connection, request_id))
