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
from twisted.internet.task import deferLater
from twisted.logger import Logger

from remotecomm.accounts.login import Caller
from remotecomm.clock import now_us
from remotecomm.relay.gateway import AllocationRequest, IRelayForManager
from remotecomm.sessions import lifecycle as lc, rows
from remotecomm.sessions.messages import (ApprovalDecision, ApprovalRequest, MessageRefused,
                                          SessionReady)
from remotecomm.store import sessions as session_queries
from remotecomm.store.audit import append_audit
from remotecomm.store.engine import Store
from remotecomm.tokens import new_token, token_hash

log = Logger()

NOTIFY_ATTEMPTS = 3
NOTIFY_RETRY_DELAY = 2.0
APPROVAL_REFUSED = "approval-refused"


class SessionError(Exception):
    """A session request or poll refused: HTTP status, stable code, message, extra fields."""

    def __init__(self, status: int, code: str, message: str, **extra):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra


@dataclass(frozen=True)
class RequestAccepted:
    """A request the device acknowledged: poll it by ``request_id``."""

    request_id: str
    approval_deadline_us: int


class SessionBroker:
    """Sequences a session from request to approval (and, on no answer, to its end)."""

    def __init__(self, store: Store, clock: IReactorTime, policy: lc.SessionPolicy,
                 allow_test_approver: bool, relays: IRelayForManager, devices):
        self._store = store
        self._clock = clock
        self._policy = policy
        self._allow_test_approver = allow_test_approver
        self._relays = relays
        self._devices = devices
        self._timers: dict[str, object] = {}

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
    def _expire_in_transaction(connection, request_id: str, at_us: int) -> lc.Session | None:
        row = session_queries.load_session(connection, request_id)
        if row is None:
            return None
        before = rows.session_from_row(row)
        after = lc.deadline_passed(before, at_us)
        if after is not before:
            rows.save_session(connection, before, after)
        return after

    def _after_expiry(self, session: lc.Session | None) -> None:
        if session is None:
            return
        if session.is_open:
            self._arm(session)
        else:
            log.info("session {request_id} ended: {reason}", request_id=session.request_id,
                     reason=session.end_reason)

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

    # -- S141/S142: a terminal asks -----------------------------------------------------

    async def request_session(self, caller: Caller, device_id: str,
                              app_id: str) -> RequestAccepted:
        """Create the request and have the device acknowledge it."""
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
        session = lc.request(secrets.token_urlsafe(16), at, self._policy)
        try:
            await self._store.run(rows.insert_session, session,
                                  unit_id=caller.unit_id, user_id=caller.user_id,
                                  terminal_id=caller.terminal_id, device_id=device_id,
                                  app_id=app_id)
        except session_queries.Conflict as e:
            raise SessionError(409, "session-exists",
                               f"a session between {device_id} and this terminal has not "
                               f"ended yet", request_id=str(e)) from None
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
            await self._end(row.request_id, "error", "the relay gave no session ID")
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
        """Where the request stands; on the first poll after approval, the terminal token."""
        row = await self._store.run(session_queries.load_session, request_id)
        if row is None or row.terminal_id != caller.terminal_id or row.user_id != caller.user_id:
            raise SessionError(404, "session-not-found", "no such session request")
        session = rows.session_from_row(row)
        answer = {"request_id": request_id, "state": lc.outcome(session),
                  "device_id": row.device_id, "app_id": row.app_id,
                  "requested_at_us": row.requested_us}
        if session.state in (lc.PENDING, lc.ALLOCATING):
            answer["approval_deadline_us"] = session.approval_deadline_us
            return answer
        if session.approver is not None:
            answer["operator"] = session.approver
        if session.state == lc.ENDED:
            answer["ended_at_us"] = session.ended_us
            answer["code"] = session.end_detail if session.end_detail == \
                "test-approver-not-allowed" else answer["state"]
            return answer
        token = new_token()
        if not await self._store.run(session_queries.deliver_terminal_token, request_id,
                                     token_hash(token), lc.APPROVED):
            raise SessionError(409, "already-delivered",
                               "the terminal token of this session was already delivered")
        log.info("session {request_id}: terminal token delivered", request_id=request_id)
        answer.update(session_id=row.session_id, relay_url=row.relay_url, terminal_token=token,
                      join_deadline_us=session.join_deadline_us,
                      lifetime_deadline_us=session.lifetime_deadline_us)
        return answer
