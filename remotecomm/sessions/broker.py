"""The manager's side of starting a session (S141–S150, S201–S202).

:class:`SessionBroker` takes a terminal's request, asks the device over
XMPP, files the operator's answer, gets a session ID from the relay,
mints the device token (on YES) and the terminal token (on the first poll
that sees the approval), and ends sessions whose deadlines pass.  Rules
live in :mod:`remotecomm.sessions.lifecycle`; rows in the store; this class
only sequences them: every change is committed before anything is sent or
answered.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass

from twisted.internet.defer import ensureDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall, deferLater
from twisted.logger import Logger

from remotecomm.accounts.login import Caller
from remotecomm.accounts.permissions import allowed
from remotecomm.clock import now_us
from remotecomm.relay.gateway import AllocationRequest, EndOrder
from remotecomm.service_errors import ServiceError
from remotecomm.sessions import lifecycle as lc, records, rows
from remotecomm.sessions.messages import (ApprovalCancelled, ApprovalDecision, ApprovalRequest,
                                          EndSession, MessageRefused, SessionReady, SessionReport)
from remotecomm.sessions.relays import NoRelayAvailable, RelayDirectory
from remotecomm.store import sessions as session_queries
from remotecomm.store.audit import append_audit
from remotecomm.store.engine import Store
from remotecomm.tokens import new_token, token_hash

log = Logger()

NOTIFY_ATTEMPTS = 3
SWEEP_INTERVAL = 1.0  # seconds between looks for revoked parties and silent relays
SESSION_FORCE_ENDED = "session-force-ended"
NOTIFY_RETRY_DELAY = 2.0
APPROVAL_REFUSED = "approval-refused"


def new_request_id() -> str:
    """A fresh request ID (128 random bits, base64url) that never starts with ``-``, so that
    ``remotecomm session REQUEST_ID`` cannot take it for an option."""
    while True:
        candidate = secrets.token_urlsafe(16)
        if not candidate.startswith("-"):
            return candidate


class SessionError(ServiceError):
    """A session request or poll refused."""


@dataclass(frozen=True)
class RequestAccepted:
    """A request the device acknowledged: poll it by ``request_id``."""

    request_id: str
    approval_deadline_us: int


class SessionBroker:
    """Sequences a session from request to approval (and, on no answer, to its end)."""

    def __init__(self, store: Store, clock: IReactorTime, policy: lc.SessionPolicy,
                 allow_test_approver: bool, relays: RelayDirectory, devices):
        self._store = store
        self._clock = clock
        self._policy = policy
        self._allow_test_approver = allow_test_approver
        self._relays = relays
        self._devices = devices
        self._timers: dict[str, object] = {}
        self._sweeper = LoopingCall(self._sweep_once)
        self._sweeper.clock = clock

    # -- timers -----------------------------------------------------------------------

    def _arm(self, session: lc.Session) -> None:
        self._disarm(session.request_id)
        deadline = session.next_deadline_us() if session.is_open else None
        if deadline is None:
            return
        delay = max(0.0, (deadline - now_us(self._clock)) / 1_000_000)
        self._timers[session.request_id] = self._clock.callLater(
            delay, self._deadline_fired, session.request_id)

    def _disarm(self, request_id: str) -> None:
        call = self._timers.pop(request_id, None)
        if call is not None and call.active():
            call.cancel()

    def _deadline_fired(self, request_id: str) -> None:
        self._timers.pop(request_id, None)
        self._store.run(self._expire_in_transaction, request_id, now_us(self._clock)) \
            .addCallback(self._after_expiry).addErrback(
                lambda f: log.failure("deadline of {request_id} failed", f,
                                      request_id=request_id))

    @staticmethod
    def _expire_in_transaction(connection, request_id: str, at_us: int):
        row = session_queries.load_session(connection, request_id)
        if row is None:
            return None
        before = rows.session_from_row(row)
        after = lc.deadline_passed(before, at_us)
        if after is not before:
            rows.save_session(connection, before, after)
        return row, before, after

    def _after_expiry(self, outcome) -> None:
        if outcome is None:
            return
        row, before, after = outcome
        if after.is_open:
            self._arm(after)
            return
        if after is not before:
            log.info("session {request_id} ended: {reason}", request_id=after.request_id,
                     reason=after.end_reason)
            if before.state == lc.ACTIVE:
                # Its relay never ended it: make sure nothing of it keeps running.
                self.end_elsewhere(row, after.end_reason)

    async def start(self) -> None:
        """Re-arm the deadlines of open sessions from the store (after a restart)."""
        open_rows = await self._store.run(rows.open_session_rows)
        at = now_us(self._clock)
        for row in open_rows:
            before = rows.session_from_row(row)
            after = lc.restarted(before, at)
            if after is not before:
                await self._store.run(rows.save_session, before, after)
                log.info("session {request_id} ended at start: {reason}",
                         request_id=after.request_id, reason=after.end_reason)
            self._arm(after)
        log.info("re-armed {count} open sessions", count=len(open_rows))

    def stop(self) -> None:
        """Cancel every timer (their deadlines stay in the store)."""
        for request_id in list(self._timers):
            self._disarm(request_id)
        if self._sweeper.running:
            self._sweeper.stop()

    # -- the sweep: revoked devices, disabled users, lost relays ------------------------

    def start_sweep(self, interval: float = SWEEP_INTERVAL) -> None:
        """Every ``interval`` s, end the sessions of revoked devices and disabled users
        (``remotecomm-admin`` marks them in the store, from another process) and of relay
        nodes gone silent."""
        self._sweeper.start(interval, now=True)

    async def end_revoked(self) -> int:
        """End every open session whose device is revoked or whose user is disabled, as
        ``revoked``, on the relay and the device too; how many."""
        at = now_us(self._clock)

        def end_them(connection):
            ended = []
            for row in session_queries.sessions_of_revoked_parties(connection, lc.OPEN_STATES):
                before = rows.session_from_row(row)
                detail = "device revoked" if row.device_revoked else "user disabled"
                after = lc.end(before, "revoked", at, detail)
                try:
                    rows.save_session(connection, before, after)
                except session_queries.Conflict:
                    continue  # it moved meanwhile; the next sweep looks again
                ended.append((row, before.state, detail))
            return ended

        ended = await self._store.run(end_them)
        for row, state_before, detail in ended:
            self._disarm(row.request_id)
            log.info("session {request_id} ended: revoked ({detail})",
                     request_id=row.request_id, detail=detail)
            self._notify_ended(row, state_before, "revoked")
        return len(ended)

    async def end_lost_relays(self) -> int:
        """Sessions of relay nodes silent past the bound end ``relay-lost`` (once); the
        devices are told.  How many."""
        ended = await self._relays.end_sessions_of_lost_nodes()
        for row in ended:
            self._disarm(row.request_id)
            self._devices.send(row.device_id, EndSession(
                request_id=row.request_id, session_id=row.session_id)).addErrback(
                lambda f: None)  # a device that dropped its link knows already
        return len(ended)

    async def _sweep(self) -> None:
        for what, step in (("ending the sessions of revoked parties", self.end_revoked),
                           ("ending the sessions of lost relays", self.end_lost_relays)):
            try:
                await step()
            except Exception:
                log.failure("{what} failed", what=what)

    def _sweep_once(self):
        return ensureDeferred(self._sweep())

    def _notify_ended(self, row, state_before: str, reason: str) -> None:
        """Tell the device (and the relay, once it has the session) that a session the
        manager ended is over."""
        if state_before in (lc.PENDING, lc.ALLOCATING) or row.session_id is None:
            self._devices.send(row.device_id, ApprovalCancelled(request_id=row.request_id)) \
                .addErrback(lambda f: log.info(
                    "session {request_id}: the device did not take the cancel: {error}",
                    request_id=row.request_id, error=f.getErrorMessage()))
            return
        self.end_elsewhere(row, reason)

    # -- S141/S142: a terminal asks -----------------------------------------------------

    async def request_session(self, caller: Caller, device_id: str, app_id: str,
                              client: dict | None = None) -> RequestAccepted:
        """Create the request and have the device acknowledge it; ``client`` is what the
        terminal said of itself (``client_name``, ``client_version``, ``os_name``,
        ``os_version``), stored with the request."""
        device = await self._store.run(session_queries.device_for_request, device_id,
                                       caller.unit_id)
        if device is None:
            raise SessionError(404, "device-not-found", f"no device {device_id} in your unit")
        if not device["online"] or not self._devices.is_reachable(device_id):
            raise SessionError(409, "device-offline", f"device {device_id} is offline")
        if app_id not in json.loads(device["apps"]):
            raise SessionError(422, "unknown-app", f"device {device_id} has no app {app_id}",
                               apps=json.loads(device["apps"]))
        at = now_us(self._clock)
        session = lc.request(new_request_id(), at, self._policy)
        try:
            await self._store.run(rows.insert_session, session,
                                  unit_id=caller.unit_id, user_id=caller.user_id,
                                  terminal_id=caller.terminal_id, device_id=device_id,
                                  app_id=app_id, limits=(self._policy.max_open_per_user,
                                                         self._policy.max_open_per_device),
                                  **(client or {}))
        except session_queries.Conflict as e:
            raise SessionError(409, "session-exists",
                               f"a session between {device_id} and this terminal has not "
                               f"ended yet", request_id=str(e)) from None
        except session_queries.TooMany as e:
            if e.args[0] == "user":
                raise SessionError(429, "too-many-sessions",
                                   f"you have {self._policy.max_open_per_user} sessions open; "
                                   f"end one first") from None
            raise SessionError(429, "device-busy", f"{device_id} has "
                                                   f"{self._policy.max_open_per_device} "
                                                   f"sessions open; try later") from None
        self._arm(session)
        names = await self._store.run(session_queries.display_names, caller.user_id,
                                      caller.unit_id)
        request = ApprovalRequest(request_id=session.request_id, app_id=app_id,
                                  user_id=caller.user_id, user_name=names[0],
                                  unit_id=caller.unit_id, unit_name=names[1],
                                  expires_at_us=session.approval_deadline_us)
        log.info("session {request_id}: {user_id} asks {device_id} for {app_id}",
                 request_id=session.request_id, user_id=caller.user_id, device_id=device_id,
                 app_id=app_id)
        try:
            await self._devices.send(device_id, request)
        except Exception as e:
            log.warn("session {request_id}: approval request to {device_id} failed: {error}",
                     request_id=session.request_id, device_id=device_id, error=repr(e))
            await self._end(session.request_id, "device-offline", "the approval request failed")
            raise SessionError(409, "device-offline",
                               f"device {device_id} did not take the request") from None
        return RequestAccepted(request_id=session.request_id,
                               approval_deadline_us=session.approval_deadline_us)

    async def _end(self, request_id: str, reason: str, detail: str | None = None) -> None:
        def end(connection):
            before = rows.load(connection, request_id)
            if not before.is_open:
                return before
            after = lc.end(before, reason, now_us(self._clock), detail)
            rows.save_session(connection, before, after)
            return after

        session = await self._store.run(end)
        self._arm(session)

    # -- S144: the device answers -----------------------------------------------------

    async def on_decision(self, device_id: str, decision: ApprovalDecision,
                          source: str) -> None:
        """File the operator's answer; raises ``MessageRefused`` for an answer it cannot take."""
        at = now_us(self._clock)
        allow = self._allow_test_approver

        def decide(connection):
            row = session_queries.load_session(connection, decision.request_id)
            if row is None or row.device_id != device_id:
                return None, None, None
            before = rows.session_from_row(row)
            if before.state != lc.PENDING:
                return before, before, row
            after = lc.decide(before, decision.approve, decision.operator,
                              decision.by_test_approver, at, allow)
            rows.save_session(connection, before, after)
            if after.end_reason == "refused":
                append_audit(connection, at, APPROVAL_REFUSED, actor=decision.operator,
                             source_address=source, unit_id=row.unit_id,
                             request_id=row.request_id, device_id=device_id,
                             test_approver=decision.by_test_approver,
                             detail=after.end_detail or "operator said no")
            return before, after, row

        before, after, row = await self._store.run(decide)
        if after is None:
            raise MessageRefused("not-found", "no such request for this device")
        if before is after:
            if before.approver == decision.operator and before.decided_us is not None:
                return  # the same answer again: acknowledged, not acted on twice
            raise MessageRefused("not-allowed", "this request is no longer waiting for an answer")
        log.info("session {request_id}: {device_id} answered {answer} (operator {operator}"
                 "{test}) -> {state}", request_id=after.request_id, device_id=device_id,
                 answer="yes" if decision.approve else "no", operator=decision.operator,
                 test=", test approver" if decision.by_test_approver else "",
                 state=after.end_reason or after.state)
        self._arm(after)
        if after.state == lc.ALLOCATING:
            self._clock.callLater(0, self._allocate_and_notify, row)

    # -- S145–S149: relay, tokens, device ----------------------------------------------

    def _allocate_and_notify(self, row) -> None:
        ensureDeferred(self._allocate(row)).addErrback(
            lambda f: log.failure("session {request_id}: allocation failed", f,
                                  request_id=row.request_id))

    async def _allocate(self, row) -> None:
        try:
            allocation = await self._relays.allocate(AllocationRequest(
                request_id=row.request_id, device_id=row.device_id,
                terminal_id=row.terminal_id, app_id=row.app_id))
        except Exception as e:
            log.error("session {request_id}: the relay gave no session ID: {error}",
                      request_id=row.request_id, error=repr(e))
            await self._end(row.request_id, "error", ("no relay took the session: " + str(e))[:200]
                            if isinstance(e, NoRelayAvailable) else "the relay gave no session ID")
            return
        at = now_us(self._clock)
        device_token = new_token()

        def approve(connection):
            before = rows.load(connection, row.request_id)
            after = lc.allocated(before, at, self._policy)
            rows.save_session(
                connection, before, after, session_id=allocation.session_id,
                relay_node=allocation.relay_node, relay_url=allocation.relay_url,
                device_token_hash=token_hash(device_token))
            return after

        try:
            session = await self._store.run(approve)
        except (lc.InvalidTransition, session_queries.Conflict):
            return  # ended meanwhile (deadline): nothing to tell the device
        finally:
            self._relays.settle(allocation.relay_node)
        self._arm(session)
        await self._notify_device(row, allocation, device_token, session.join_deadline_us)

    async def _notify_device(self, row, allocation, device_token: str,
                             join_deadline_us: int) -> None:
        ready = SessionReady(request_id=row.request_id, session_id=allocation.session_id,
                             token=device_token, relay_url=allocation.relay_url,
                             app_id=row.app_id, join_deadline_us=join_deadline_us)
        for attempt in range(1, NOTIFY_ATTEMPTS + 1):
            try:
                await self._devices.send(row.device_id, ready)
            except Exception as e:
                log.warn("session {request_id}: telling {device_id} failed (attempt "
                         "{attempt}): {error}", request_id=row.request_id,
                         device_id=row.device_id, attempt=attempt, error=repr(e))
                await deferLater(self._clock, NOTIFY_RETRY_DELAY, lambda: None)
                continue
            await self._store.run(session_queries.mark_device_notified, row.request_id,
                                  now_us(self._clock))
            log.info("session {request_id}: device {device_id} has its token and session ID",
                     request_id=row.request_id, device_id=row.device_id)
            return
        await self._end(row.request_id, "device-offline", "the device did not take its token")

    # -- S201/S202: the terminal polls -----------------------------------------------

    async def poll(self, caller: Caller, request_id: str) -> dict:
        """The session's record, for anyone of its unit (another unit's session does not
        exist).  For the terminal that asked: on its first poll after approval, the
        terminal token too; a later poll before the session runs is ``already-delivered``."""
        record = await self._store.run(records.one_record, request_id, caller.unit_id)
        if record is None:
            raise SessionError(404, "session-not-found", "no such session request")
        if record["terminal_id"] != caller.terminal_id or record["user_id"] != caller.user_id \
                or record["state"] != lc.APPROVED:
            return record
        token = new_token()
        if not await self._store.run(session_queries.deliver_terminal_token, request_id,
                                     token_hash(token), lc.APPROVED):
            raise SessionError(409, "already-delivered",
                               "the terminal token of this session was already delivered",
                               state=record["state"])
        row = await self._store.run(session_queries.load_session, request_id)
        log.info("session {request_id}: terminal token delivered", request_id=request_id)
        record.update(session_id=row.session_id, relay_url=row.relay_url,
                      terminal_token=token)
        return record

    async def _own_row(self, caller: Caller, request_id: str):
        """The row of a request this caller made from this terminal (else not found)."""
        row = await self._store.run(session_queries.load_session, request_id)
        if row is None or row.terminal_id != caller.terminal_id or row.user_id != caller.user_id:
            raise SessionError(404, "session-not-found", "no such session request")
        return row

    # -- cancelling (Ctrl-C on `open`, DELETE) ---------------------------------------

    async def cancel(self, caller: Caller, request_id: str) -> dict:
        """The terminal gives up on a request that has not run yet: it ends ``cancelled``,
        the device drops the approval card (or its side), and a late YES is refused."""
        await self._own_row(caller, request_id)
        at = now_us(self._clock)

        def cancel(connection):
            row = session_queries.load_session(connection, request_id)
            before = rows.session_from_row(row)
            if before.state not in (lc.PENDING, lc.ALLOCATING, lc.APPROVED):
                return row, before, before
            after = lc.cancel(before, at)
            rows.save_session(connection, before, after)
            return row, before, after

        try:
            row, before, after = await self._store.run(cancel)
        except session_queries.Conflict:  # it moved meanwhile: answer where it is now
            row = await self._store.run(session_queries.load_session, request_id)
            before = after = rows.session_from_row(row)
        if before is after:
            if after.state == lc.ACTIVE:
                raise SessionError(409, "session-active", "the session is running: end it "
                                   f"with POST /api/v1/sessions/{request_id}/end")
            return {"request_id": request_id, "state": after.state,
                    "end_reason": after.end_reason}
        self._arm(after)
        log.info("session {request_id} cancelled by the terminal", request_id=request_id)
        self._clock.callLater(0, self._tell_device_cancelled, row, before.state)
        return {"request_id": request_id, "state": after.state, "end_reason": "cancelled"}

    def _tell_device_cancelled(self, row, state_before: str) -> None:
        self._notify_ended(row, state_before, "cancelled")

    # -- S313: what the device reports --------------------------------------------------

    async def on_session_report(self, device_id: str, report: SessionReport,
                                source: str) -> None:
        """Keep what a device saw of a session (once; its clock beside ours); raises
        ``MessageRefused`` for a session that is not this device's."""
        received = now_us(self._clock)
        kept = await self._store.run(records.keep_device_report, device_id, report, received)
        if kept is None:
            raise MessageRefused("not-found", "no such session of this device")
        if kept:
            log.info("session {request_id}: {device_id} reported its side ({end_reason}, "
                     "{bytes_to_device} B in, {bytes_from_device} B out)",
                     request_id=report.request_id, device_id=device_id,
                     end_reason=report.end_reason, bytes_to_device=report.bytes_to_device,
                     bytes_from_device=report.bytes_from_device)

    # -- force-end, listing -------------------------------------------------------------

    async def force_end(self, caller: Caller, request_id: str, source: str) -> dict:
        """End a session from anywhere: its own user (any terminal), or a unit admin of its
        unit.  Not yet running: it ends now (``cancelled`` for its user, ``revoked`` for an
        admin); running: the relay is told to end both sides, and the end logs end it."""
        row = await self._store.run(session_queries.load_session, request_id)
        if row is None or row.unit_id != caller.unit_id:
            raise SessionError(404, "session-not-found", "no such session")
        own = row.user_id == caller.user_id
        if not own and not allowed(caller.role, "sessions.end-any"):
            raise SessionError(403, "forbidden", "only the session's user or an admin "
                               "may end it")
        at = now_us(self._clock)

        def end(connection):
            current = session_queries.load_session(connection, request_id)
            before = rows.session_from_row(current)
            if before.state in (lc.PENDING, lc.ALLOCATING, lc.APPROVED):
                after = lc.end(before, "cancelled" if own else "revoked", at,
                               None if own else f"ended by unit admin {caller.user_id}")
                rows.save_session(connection, before, after)
            else:
                after = before
            if not own:
                append_audit(connection, at, SESSION_FORCE_ENDED, actor=caller.user_id,
                             source_address=source, unit_id=row.unit_id,
                             request_id=request_id, state=before.state)
            return current, before, after

        current, before, after = await self._store.run(end)
        if after is not before:
            self._arm(after)
            log.info("session {request_id} ended by {user_id}: {reason}",
                     request_id=request_id, user_id=caller.user_id, reason=after.end_reason)
            self._notify_ended(current, before.state, after.end_reason)
            return {"request_id": request_id, "state": after.state,
                    "end_reason": after.end_reason}
        if before.state == lc.ACTIVE:
            reason = "normal" if own else "revoked"
            log.info("session {request_id}: {user_id} asks its relay to end it ({reason})",
                     request_id=request_id, user_id=caller.user_id, reason=reason)
            self.end_elsewhere(current, reason)
            return {"request_id": request_id, "state": before.state, "ending": reason}
        return {"request_id": request_id, "state": before.state,
                "end_reason": before.end_reason}

    async def list_records(self, caller: Caller, **filters) -> list[dict]:
        """The records of the caller's unit, newest first (filters: ``states``,
        ``device_id``, ``app_id``, ``user_id``, ``end_reason``, ``from_us``, ``to_us``,
        ``before``, ``limit``)."""
        return await self._store.run(records.unit_records, caller.unit_id, **filters)

    def end_elsewhere(self, row, reason: str) -> None:
        """A session the manager ended: close it on its relay node and on the device
        (best effort; the stored end is what counts, and the relay's logs still file)."""
        if row.session_id is None:
            return
        if row.relay_node is not None:
            ensureDeferred(self._relays.end_session(
                row.relay_node, EndOrder(session_id=row.session_id, reason=reason))).addErrback(
                lambda f: log.info("session {request_id}: its relay did not take the end "
                                   "order: {error}", request_id=row.request_id,
                                   error=f.getErrorMessage()))
        self._devices.send(row.device_id, EndSession(request_id=row.request_id,
                                                     session_id=row.session_id)).addErrback(
            lambda f: log.info("session {request_id}: the device did not take the end "
                               "request: {error}", request_id=row.request_id,
                               error=f.getErrorMessage()))
