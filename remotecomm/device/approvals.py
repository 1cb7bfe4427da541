"""Approvals on the device (S142–S144, S149): the agent's part.

The manager's approval request arrives over XMPP and is acknowledged at
once; the agent keeps it pending until its panel (over the local channel)
reports the operator's YES or NO, records the answer in the device's
history, and reports it to the manager as a separate request.  A repeated
request ID is the same request: answered again, never asked twice.  A test
approver (an explicit config option) answers YES at once, marked as such.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.words.protocols.jabber import error
from twisted.words.protocols.jabber.xmlstream import TimeoutError
from twisted.words.xish import domish

from remotecomm.clock import now_us, seconds_to_us
from remotecomm.device.history import History, kept_reports
from remotecomm.maintenance.messages import JobRequest
from remotecomm.sessions.messages import (ApprovalCancelled, ApprovalDecision, ApprovalRequest,
                                          Credentials, EndSession, KeptReports, MessageRefused,
                                          ReportRequest, SessionReady, SessionReport)
from remotecomm.xmpp.compat import subprotocols
from remotecomm.xmpp.payloads import NS_DEVICE_PREFIX, PayloadError, decode, encode
from remotecomm.xmpp.stream import NotConnected, reply_error, reply_result

log = Logger()

MAX_PENDING = 32
# A request the manager never resolved is forgotten after this long (the manager's own
# deadline, usually 2 minutes, decides; this only bounds memory).
FORGET_AFTER = 600.0
SEND_ATTEMPTS = 5
SEND_RETRY_DELAY = 2.0


class ApprovalError(Exception):
    """A panel answer that cannot be taken: ``code`` says why (unknown, decided, expired)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class Pending:
    """One approval request as the device holds it."""

    request: ApprovalRequest
    component: str
    received_us: int
    decision: ApprovalDecision | None = None
    cancelled: bool = False


class Approvals:
    """Pending approval requests, the operator's answers, and the device's history of them."""

    def __init__(self, clock: IReactorTime, history: History, apps: set[str],
                 send_decision: Callable[[str, ApprovalDecision], Deferred],
                 test_approver: str | None = None,
                 on_ready: Callable[[SessionReady], None] = lambda ready: None,
                 on_end: Callable[[str], bool] = lambda request_id: False,
                 agent_version: str = "unknown"):
        self._clock = clock
        self._history = history
        self._apps = apps
        self._send_decision = send_decision
        self._test_approver = test_approver
        self._on_ready = on_ready
        self._on_end = on_end
        self._agent_version = agent_version
        self.firmware_version: str | None = None  # as the device's panel last said
        self._requests: OrderedDict[str, Pending] = OrderedDict()
        self.sessions: dict[str, SessionReady] = {}

    def _forget_old(self) -> None:
        horizon = now_us(self._clock) - seconds_to_us(FORGET_AFTER)
        for request_id, pending in list(self._requests.items()):
            if pending.received_us < horizon:
                del self._requests[request_id]

    def on_request(self, component: str, request: ApprovalRequest) -> None:
        """S142 arrived: keep it for the panel (or let the test approver answer)."""
        self._forget_old()
        if request.request_id in self._requests:
            return  # the same request again (manager fail-over): already being handled
        if request.app_id not in self._apps:
            raise MessageRefused("not-found", f"this device has no app {request.app_id!r}")
        if sum(1 for p in self._requests.values() if p.decision is None) >= MAX_PENDING:
            raise MessageRefused("busy", "too many approvals are waiting")
        self._history.append("approval-requested", now_us(self._clock),
                             request_id=request.request_id, app_id=request.app_id,
                             user_id=request.user_id, user_name=request.user_name,
                             unit_id=request.unit_id, unit_name=request.unit_name)
        self._requests[request.request_id] = Pending(request, component, now_us(self._clock))
        log.info("approval requested: {user_name} ({unit_name}) for {app_id}, request "
                 "{request_id}", user_name=request.user_name, unit_name=request.unit_name,
                 app_id=request.app_id, request_id=request.request_id)
        if self._test_approver is not None:
            self._clock.callLater(0, self.decide, request.request_id, True,
                                  self._test_approver, True)

    def describe(self, request_id: str) -> ApprovalRequest | None:
        """The approval request a session came from (who asked, from which unit, which app)."""
        pending = self._requests.get(request_id)
        return pending.request if pending is not None else None

    def pending(self) -> list[ApprovalRequest]:
        """Requests waiting for the operator, oldest first."""
        self._forget_old()
        return [p.request for p in self._requests.values() if p.decision is None
                and not p.cancelled and p.request.expires_at_us > now_us(self._clock)]

    def decide(self, request_id: str, approve: bool, operator: str,
               by_test_approver: bool = False) -> ApprovalDecision:
        """S143/S144: the operator answered; record it, then tell the manager."""
        pending = self._requests.get(request_id)
        if pending is None:
            raise ApprovalError("unknown-request", "no such approval request")
        if pending.cancelled:
            raise ApprovalError("cancelled", "the requester cancelled this request")
        if pending.decision is not None:
            raise ApprovalError("already-decided", "this request was already answered")
        if pending.request.expires_at_us <= now_us(self._clock):
            raise ApprovalError("expired", "this request has expired")
        decision = ApprovalDecision(request_id=request_id, approve=approve, operator=operator,
                                    by_test_approver=by_test_approver)
        self._history.append("approval-decided", now_us(self._clock), request_id=request_id,
                             answer="yes" if approve else "no", operator=operator,
                             test_approver=by_test_approver, app_id=pending.request.app_id,
                             user_id=pending.request.user_id)
        pending.decision = decision
        log.info("operator {operator} answered {answer} to request {request_id}{test}",
                 operator=operator, answer="yes" if approve else "no", request_id=request_id,
                 test=" (TEST APPROVER)" if by_test_approver else "")
        self._send_decision(pending.component, decision)
        return decision

    def on_cancel(self, cancel: ApprovalCancelled) -> None:
        """The requester gave up: the card leaves the panel; a YES is refused from now on."""
        pending = self._requests.get(cancel.request_id)
        if pending is None:
            raise MessageRefused("not-found", "no such approval request")
        if pending.cancelled:
            return  # the same message again
        pending.cancelled = True
        self._history.append("approval-cancelled", now_us(self._clock),
                             request_id=cancel.request_id)
        log.info("approval request {request_id} was cancelled by the requester",
                 request_id=cancel.request_id)

    def on_session_ready(self, component: str, ready: SessionReady) -> None:
        """S149: token and session ID for an approved request."""
        pending = self._requests.get(ready.request_id)
        if pending is None or pending.decision is None or not pending.decision.approve \
                or pending.cancelled:
            raise MessageRefused("not-found", "no approved request with this ID")
        if ready.request_id in self.sessions:
            return  # the same message again: already joining
        self._history.append("session-ready", now_us(self._clock),
                             request_id=ready.request_id, session_id=ready.session_id,
                             app_id=ready.app_id, relay_url=ready.relay_url)
        self.sessions[ready.request_id] = ready
        self._on_ready(ready)
        log.info("session {session_id} ready for request {request_id}: relay {relay_url}",
                 session_id=ready.session_id, request_id=ready.request_id,
                 relay_url=ready.relay_url)


    def session_ended(self, request_id: str, **seen) -> None:
        """S313 (push): the device side of a session ended; keep what the device saw in its
        history, then report it (``seen``: the fields of :class:`SessionReport` the relay
        link knows)."""
        pending = self._requests.get(request_id)
        ready = self.sessions.get(request_id)
        if pending is None or ready is None or pending.decision is None:
            return
        report = SessionReport(request_id=request_id, session_id=ready.session_id,
                               app_id=ready.app_id, agent_version=self._agent_version,
                               operator=pending.decision.operator,
                               reported_us=now_us(self._clock),
                               firmware_version=self.firmware_version, **seen)
        self._history.append("session-report", report.reported_us, **{
            name: value for name, value in vars(report).items() if name != "reported_us"})
        self._send_decision(pending.component, report)

    def kept_reports(self, asked: ReportRequest) -> KeptReports:
        """S312/S313 on request: what the device's history holds of the sessions asked
        about (the manager keeps each once, so answering twice changes nothing)."""
        return KeptReports(reports=tuple(kept_reports(
            self._history.events(), asked.request_ids, now_us(self._clock))))

    def on_end_session(self, end: EndSession) -> None:
        """S265/S291: the manager asks to end the device side of a session."""
        ready = self.sessions.get(end.request_id)
        if ready is None or ready.session_id != end.session_id:
            raise MessageRefused("not-found", "no such session on this device")
        self._history.append("end-requested", now_us(self._clock), request_id=end.request_id,
                             session_id=end.session_id)
        if not self._on_end(end.request_id):
            log.info("end of {request_id} requested; no relay link is open",
                     request_id=end.request_id)


class ManagerRequests(subprotocols.XMPPHandler):
    """The manager's requests to this device, accepted only from its configured components."""

    def __init__(self, approvals: Approvals, is_component: Callable[[str | None], str | None],
                 jobs=None, credentials=None):
        super().__init__()
        self._approvals = approvals
        self._is_component = is_component
        self._jobs = jobs  # the agent's AgentJobs (maintenance), if it takes jobs
        self._credentials = credentials  # AgentCredentials, if the manager may rotate them

    def connectionInitialized(self) -> None:
        self.xmlstream.addObserver('/iq[@type="set"]', self._on_request)

    def _on_request(self, iq: domish.Element) -> None:
        payload = next(iq.elements(), None)
        if payload is None or not (payload.uri or "").startswith(NS_DEVICE_PREFIX):
            return
        iq.handled = True
        component = self._is_component(iq.getAttribute("from"))
        try:
            if component is None:
                raise PayloadError("forbidden", "requests are accepted from the manager only")
            message = decode(iq)
            if isinstance(message, ApprovalRequest):
                self._approvals.on_request(component, message)
            elif isinstance(message, SessionReady):
                self._approvals.on_session_ready(component, message)
            elif isinstance(message, EndSession):
                self._approvals.on_end_session(message)
            elif isinstance(message, ApprovalCancelled):
                self._approvals.on_cancel(message)
            elif isinstance(message, JobRequest) and self._jobs is not None:
                self._jobs.on_request(component, message)
            elif isinstance(message, Credentials) and self._credentials is not None:
                self._credentials.on_credentials(message)
            elif isinstance(message, ReportRequest):
                reply_result(self.parent, iq, encode(self._approvals.kept_reports(message)))
                return
            else:
                raise PayloadError("feature-not-implemented",
                                   f"unknown request {payload.name!r}")
        except MessageRefused as refusal:
            self._refuse(iq, PayloadError.from_refusal(refusal))
            return
        except PayloadError as e:
            self._refuse(iq, e)
            return
        reply_result(self.parent, iq)

    def _refuse(self, iq: domish.Element, e: PayloadError) -> None:
        log.warn("refused {payload} from {sender}: {reason}", payload=next(iq.elements()).name,
                 sender=iq.getAttribute("from"), reason=e.text)
        reply_error(self.parent, iq, e.condition, e.text)


def decision_sender(stream, clock: IReactorTime) -> Callable[[str, object], Deferred]:
    """Sends messages to the manager (decisions, session reports, job results), retrying on
    ``wait`` errors and timeouts."""
    async def send(component: str, message) -> None:
        what = (f"{type(message).__name__} of "
                f"{getattr(message, 'request_id', None) or getattr(message, 'job_id', '?')}")
        for attempt in range(1, SEND_ATTEMPTS + 1):
            try:
                await stream.request_iq(component, encode(message))
                return
            except error.StanzaError as e:
                if e.type != "wait":
                    log.error("the manager refused the {what}: {condition} {text}", what=what,
                              condition=e.condition, text=e.text or "")
                    return
            except (TimeoutError, NotConnected):
                pass
            log.info("{what} not delivered (attempt {attempt}); retrying", what=what,
                     attempt=attempt)
            await deferLater(clock, SEND_RETRY_DELAY, lambda: None)
        log.error("the {what} could not be delivered", what=what)

    def start(component: str, message) -> Deferred:
        return ensureDeferred(send(component, message)).addErrback(
            lambda failure: log.failure("sending {what} failed", failure,
                                        what=type(message).__name__))

    return start
