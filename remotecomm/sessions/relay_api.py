"""The manager's answers to the relay: check tokens, file logs, end sessions.

:class:`ManagerForRelay` implements
:class:`~remotecomm.relay.gateway.IManagerForRelay`; the relay calls it
directly in one process, or through the manager's HTTPS routes
(:mod:`remotecomm.web.relay_api`) from another.

- :meth:`ManagerForRelay.authenticate` (S173–S175, S206–S208): the token's
  hash must match the session's for that side, be used once, and come
  within the join window.  Refusals are audited with their source.
- :meth:`ManagerForRelay.file_log` (S178, S211, S269, S297): files each log
  once by its key; both started logs make the session active, both end logs
  end it.
- :meth:`ManagerForRelay.end_session` (S264–S266): asks the device to end
  its side (S265).
"""

from __future__ import annotations

from types import SimpleNamespace

from sqlalchemy import Connection
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from zope.interface import implementer

from remotecomm.clock import now_us
from remotecomm.relay.gateway import (Admission, AdmissionRefused, EndRequest, Heartbeat,
                                      IManagerForRelay, JoinRequest, LogRejected, PeerUnavailable,
                                      Refusal, SessionLog)
from remotecomm.sessions import lifecycle as lc
from remotecomm.sessions.messages import EndSession
from remotecomm.sessions.relays import RelayDirectory
from remotecomm.sessions.rows import copy_traffic, save_session, session_from_row
from remotecomm.store import sessions as session_rows
from remotecomm.store.audit import append_audit
from remotecomm.store.engine import Store

log = Logger()

ADMISSION_REFUSED = "relay-admission-refused"
# Audit rows for refused admissions, per minute, over all relays and sources; past the
# bound refusals are counted, and one row at the next refusal says how many went unwritten.
MAX_REFUSAL_ROWS_PER_MINUTE = 60
_TOKEN_COLUMN = {"device": "device_token_hash", "terminal": "terminal_token_hash"}


def _authenticate(connection: Connection, request: JoinRequest, at_us: int) -> Admission:
    side = request.side
    row = session_rows.load_session_by_session_id(connection, request.session_id)
    other = "terminal" if side == "device" else "device"
    if row is None:
        raise AdmissionRefused("unknown-session", "no such session")
    if request.token_hash != getattr(row, _TOKEN_COLUMN[side]):
        if request.token_hash == getattr(row, _TOKEN_COLUMN[other]):
            raise AdmissionRefused("wrong-side", f"this token is for the {other} side")
        raise AdmissionRefused("wrong-token", "the token does not match this session")
    if side in session_rows.connection_records(connection, row.request_id):
        raise AdmissionRefused("token-used", "this token was used already")
    revoked = session_rows.party_revoked(connection, row.device_id, row.user_id)
    if revoked is not None:
        raise AdmissionRefused("revoked", f"this session's {revoked.replace(' ', ' is ')}")
    if row.state not in (lc.APPROVED, lc.ACTIVE) or row.join_deadline_us <= at_us:
        raise AdmissionRefused("join-window-closed", "the session can no longer be joined")
    party_id = row.device_id if side == "device" else row.terminal_id
    session_rows.insert_connection_record(connection, row.request_id, side, party_id)
    return Admission(session_id=request.session_id, side=side, request_id=row.request_id,
                     party_id=party_id, app_id=row.app_id,
                     pairing_deadline_us=row.join_deadline_us,
                     lifetime_deadline_us=row.lifetime_deadline_us,
                     idle_timeout_us=row.idle_timeout_us)


def _file_log(connection: Connection, entry: SessionLog, at_us: int) -> str:
    row = session_rows.load_session(connection, entry.request_id)
    if row is None or row.session_id != entry.session_id:
        raise LogRejected(entry.key, f"log {entry.key} names no known session")
    records = session_rows.connection_records(connection, row.request_id)
    record = records.get(entry.side)
    if record is None:
        raise LogRejected(entry.key, f"log {entry.key} is for a side that never joined")
    if entry.kind == "ended" and record.ended_by == session_rows.MANAGER:
        # The manager ended this side for a lost relay; the relay's own log came after.
        if record.late_log_key is not None:
            return "duplicate"
        session_rows.record_late_end(connection, row.request_id, entry.side, key=entry.key,
                                     at_us=entry.at_us, reason=entry.reason,
                                     bytes_from_side=entry.bytes_from_side,
                                     bytes_to_side=entry.bytes_to_side)
        return "late"
    if (record.started_log_key if entry.kind == "started" else record.ended_log_key):
        return "duplicate"
    if entry.kind == "started":
        session_rows.record_connection_started(connection, row.request_id, entry.side,
                                               entry.at_us, entry.key)
        filed = dict(started_us=entry.at_us, started_log_key=entry.key)
    else:
        session_rows.record_connection_ended(
            connection, row.request_id, entry.side, at_us=entry.at_us, normal=entry.normal,
            reason=entry.reason, bytes_from_side=entry.bytes_from_side,
            bytes_to_side=entry.bytes_to_side, key=entry.key,
            refused_frames=entry.refused_frames, detail=entry.detail)
        filed = dict(ended_us=entry.at_us, ended_normally=entry.normal,
                     end_reason=entry.reason, bytes_from_side=entry.bytes_from_side,
                     bytes_to_side=entry.bytes_to_side, ended_log_key=entry.key,
                     refused_frames=entry.refused_frames, end_detail=entry.detail)
    # The records as they are now, without reading them again.
    records = dict(records, **{entry.side: SimpleNamespace(**{**record._asdict(), **filed})})
    copy_traffic(connection, row, records)
    before = session_from_row(row)
    after = before
    if entry.kind == "started" and before.state == lc.APPROVED and len(records) == 2 and all(
            r.started_log_key for r in records.values()):
        after = lc.activate(before)
    elif entry.kind == "ended" and len(records) == 2 and all(
            r.ended_log_key for r in records.values()):
        # The side that ended first (on a tie, the one that sent a refused frame) decides.
        in_order = sorted(records.values(), key=lambda r: (r.ended_us, -(r.refused_frames or 0),
                                                           r.side))
        after = lc.both_sides_ended(before, at_us, tuple(
            (r.side, r.end_reason, r.end_detail) for r in in_order))
    elif entry.kind == "ended" and len(records) == 1 and before.is_open:
        # Only one side ever joined: its end is the session's end.
        other = "terminal" if entry.side == "device" else "device"
        after = lc.end(before, entry.reason if entry.reason != "normal" else "expired", at_us,
                       f"only the {entry.side} joined; the {other} never did"
                       + (f" ({entry.detail})" if entry.detail else ""))
    if after is not before:
        save_session(connection, before, after)
    return after.state


@implementer(IManagerForRelay)
class ManagerForRelay:
    """The manager's side of the relay ↔ manager interface."""

    def __init__(self, store: Store, clock: IReactorTime, devices,
                 relays: RelayDirectory | None = None):
        self._store = store
        self._clock = clock
        self._devices = devices
        self._relays = relays
        self._refusal_minute = -1
        self._refusal_rows = 0
        self._refusals_unwritten = 0

    async def heartbeat(self, beat: Heartbeat) -> None:
        """A relay node is alive: the node table and its live counters."""
        if self._relays is None:
            raise PeerUnavailable("this manager keeps no relay node table")
        await self._relays.record_heartbeat(beat)

    async def authenticate(self, request: JoinRequest) -> Admission:
        """Confirm a joining side's token; raises ``AdmissionRefused`` (audited)."""
        at = now_us(self._clock)
        try:
            # Joins come in bursts: their checks share commits (Store.run_grouped).
            return await self._store.run_grouped(_authenticate, request, at)
        except AdmissionRefused as e:
            await self.record_refusal(Refusal(code=e.code, session_id=request.session_id,
                                              side=request.side,
                                              source_address=request.source_address))
            raise

    async def record_refusal(self, refusal: Refusal) -> None:
        """Audit a refused admission (never the token), under the session's unit when the
        session is known; at most :data:`MAX_REFUSAL_ROWS_PER_MINUTE` rows a minute (a
        flood is counted, and summed up in the next row written)."""
        at = now_us(self._clock)
        minute = at // 60_000_000
        if minute != self._refusal_minute:
            self._refusal_minute, self._refusal_rows = minute, 0
        if self._refusal_rows >= MAX_REFUSAL_ROWS_PER_MINUTE:
            self._refusals_unwritten += 1
            return
        self._refusal_rows += 1
        unwritten, self._refusals_unwritten = self._refusals_unwritten, 0

        def audit(connection):
            row = (session_rows.load_session_by_session_id(connection, refusal.session_id)
                   if refusal.session_id else None)
            extra = {"unwritten_before": unwritten} if unwritten else {}
            append_audit(connection, at, ADMISSION_REFUSED,
                         source_address=refusal.source_address,
                         unit_id=row.unit_id if row is not None else None,
                         session_id=refusal.session_id, side=refusal.side,
                         reason=refusal.code, **extra)

        await self._store.run(audit)

    async def file_log(self, entry: SessionLog) -> None:
        """File one session log (once per key); ``LogRejected`` if it names nothing known."""
        state = await self._store.run_grouped(_file_log, entry, now_us(self._clock))
        if state == "late":
            log.info("{kind} log of the {side} side of {request_id} came after the manager "
                     "ended that side for a lost relay: kept beside it ({key})",
                     kind=entry.kind, side=entry.side, request_id=entry.request_id,
                     key=entry.key)
            return
        if state == "duplicate":
            log.info("{kind} log of the {side} side of {request_id} was filed already "
                     "({key})", kind=entry.kind, side=entry.side,
                     request_id=entry.request_id, key=entry.key)
            return
        log.info("filed {kind} log of the {side} side of {request_id} (session {state})",
                 kind=entry.kind, side=entry.side, request_id=entry.request_id, state=state)

    async def end_session(self, request: EndRequest) -> None:
        """S264–S266: the terminal ended; ask the device to end its side (S265)."""
        row = await self._store.run(session_rows.load_session, request.request_id)
        if row is None or row.session_id != request.session_id:
            return
        log.info("session {request_id}: asking {device_id} to end its side",
                 request_id=row.request_id, device_id=row.device_id)
        try:
            await self._devices.send(row.device_id, EndSession(request_id=row.request_id,
                                                               session_id=row.session_id))
        except Exception as e:
            log.warn("session {request_id}: the device did not take the end request: {error}",
                     request_id=row.request_id, error=repr(e))
