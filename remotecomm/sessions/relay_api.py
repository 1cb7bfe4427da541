"""What the manager does for the relay: check tokens, file logs, end sessions.

The relay calls these through an interface whose arguments and results are
plain, serialisable values (in-process now; over an authenticated HTTPS API
when relay and manager run apart).

- :meth:`ManagerForRelay.authenticate` (S173–S175, S206–S208): the side's
  token must match the session's hash for that side, be used once, and come
  within the join window.  Refusals are audited with their source.
- :meth:`ManagerForRelay.file_log` (S178, S211, S269, S297): files each log
  once by its key; both started logs make the session active, both end logs
  end it.
- :meth:`ManagerForRelay.end_session` (S264–S266): asks the device to end
  its side (S265).
"""

from __future__ import annotations

from sqlalchemy import insert, select, update
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from remotecomm.accounts.tokens import looks_like_token, token_hash
from remotecomm.clock import now_us
from remotecomm.relay.core import AdmissionRefused
from remotecomm.sessions import lifecycle as lc
from remotecomm.store import sessions as session_queries
from remotecomm.store.audit import append_audit
from remotecomm.store.engine import Store
from remotecomm.store.schema import session_connections, sessions
from remotecomm.xmpp.payloads import EndSession, build_end_session

log = Logger()

ADMISSION_REFUSED = "relay-admission-refused"
_TOKEN_COLUMN = {"device": "device_token_hash", "terminal": "terminal_token_hash"}


def _authenticate(connection, request: dict, at_us: int) -> dict:
    side = request["side"]
    row = connection.execute(select(sessions).where(
        sessions.c.session_id == request["session_id"])).first()
    token = request["token"]
    digest = token_hash(token) if looks_like_token(token) else None
    other = "terminal" if side == "device" else "device"
    if row is None:
        raise AdmissionRefused("unknown-session", "no such session")
    if digest is None or (digest != getattr(row, _TOKEN_COLUMN[side])):
        if digest is not None and digest == getattr(row, _TOKEN_COLUMN[other]):
            raise AdmissionRefused("wrong-side", f"this token is for the {other} side")
        raise AdmissionRefused("wrong-token", "the token does not match this session")
    if connection.execute(select(session_connections.c.side).where(
            session_connections.c.request_id == row.request_id,
            session_connections.c.side == side)).first():
        raise AdmissionRefused("token-used", "this token was used already")
    if row.state not in (lc.APPROVED, lc.ACTIVE) or row.join_deadline_us <= at_us:
        raise AdmissionRefused("join-window-closed", "the session can no longer be joined")
    party_id = row.device_id if side == "device" else row.terminal_id
    connection.execute(insert(session_connections).values(
        request_id=row.request_id, side=side, party_id=party_id, started_us=None,
        ended_us=None, ended_normally=None, end_reason=None, bytes_from_side=0,
        bytes_to_side=0, started_log_key=None, ended_log_key=None))
    return {"request_id": row.request_id, "party_id": party_id, "app_id": row.app_id,
            "pairing_deadline_us": row.join_deadline_us,
            "lifetime_deadline_us": row.lifetime_deadline_us,
            "idle_timeout_us": row.idle_timeout_us}


def _file_log(connection, body: dict, at_us: int) -> str:
    row = connection.execute(select(sessions).where(
        sessions.c.request_id == body["request_id"])).first()
    if row is None or row.session_id != body["session_id"]:
        raise ValueError(f"log {body['key']} names no known session")
    where = (session_connections.c.request_id == row.request_id,
             session_connections.c.side == body["side"])
    record = connection.execute(select(session_connections).where(*where)).first()
    if record is None:
        raise ValueError(f"log {body['key']} for a side that never joined")
    if (record.started_log_key if body["kind"] == "started" else record.ended_log_key):
        return "duplicate"
    if body["kind"] == "started":
        connection.execute(update(session_connections).where(*where).values(
            started_us=body["at_us"], started_log_key=body["key"]))
    else:
        connection.execute(update(session_connections).where(*where).values(
            ended_us=body["at_us"], ended_normally=bool(body["normal"]),
            end_reason=body["reason"], bytes_from_side=int(body["bytes_from_side"]),
            bytes_to_side=int(body["bytes_to_side"]), ended_log_key=body["key"]))
    records = {r.side: r for r in connection.execute(
        select(session_connections).where(session_connections.c.request_id == row.request_id))}
    before = session_queries.session_from_row(row)
    after = before
    if body["kind"] == "started" and before.state == lc.APPROVED and len(records) == 2 and all(
            r.started_log_key for r in records.values()):
        after = lc.activate(before)
    elif body["kind"] == "ended" and len(records) == 2 and all(
            r.ended_log_key for r in records.values()):
        after = lc.both_sides_ended(before, at_us, records["device"].end_reason,
                                    records["terminal"].end_reason)
    elif body["kind"] == "ended" and len(records) == 1 and before.is_open:
        # Only one side ever joined: its end is the session's end.
        after = lc.end(before, body["reason"] if body["reason"] != "normal" else "expired",
                       at_us)
    if after is not before:
        session_queries.save_session(connection, before, after)
    return after.state


class ManagerForRelay:
    """The manager's side of the relay ↔ manager interface."""

    def __init__(self, store: Store, clock: IReactorTime, devices):
        self._store = store
        self._clock = clock
        self._devices = devices

    async def authenticate(self, request: dict) -> dict:
        """Confirm a joining side's token; raises ``AdmissionRefused`` (audited)."""
        at = now_us(self._clock)
        try:
            return await self._store.run(_authenticate, request, at)
        except AdmissionRefused as e:
            await self.record_refusal(dict(request, code=e.code))
            raise

    async def record_refusal(self, request: dict) -> None:
        """Audit a refused admission (never the token)."""
        await self._store.run(append_audit, now_us(self._clock), ADMISSION_REFUSED,
                              source_address=request.get("source_address"),
                              session_id=request.get("session_id"), side=request.get("side"),
                              reason=request.get("code"))

    async def file_log(self, body: dict) -> None:
        """File one session log (once per key)."""
        state = await self._store.run(_file_log, body, now_us(self._clock))
        if state == "duplicate":
            log.info("{kind} log of the {side} side of {request_id} was filed already "
                     "({key})", kind=body["kind"], side=body["side"],
                     request_id=body["request_id"], key=body["key"])
            return
        log.info("filed {kind} log of the {side} side of {request_id} (session {state})",
                 kind=body["kind"], side=body["side"], request_id=body["request_id"],
                 state=state)

    async def end_session(self, request: dict) -> None:
        """S264–S266: the terminal ended; ask the device to end its side (S265)."""
        row = await self._store.run(session_queries.load_session, request["request_id"])
        if row is None or row.session_id != request["session_id"]:
            return
        log.info("session {request_id}: asking {device_id} to end its side",
                 request_id=row.request_id, device_id=row.device_id)
        try:
            await self._devices.send(row.device_id, build_end_session(
                EndSession(request_id=row.request_id, session_id=row.session_id)))
        except Exception as e:
            log.warn("session {request_id}: the device did not take the end request: {error}",
                     request_id=row.request_id, error=repr(e))
