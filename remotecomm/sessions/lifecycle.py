"""The session lifecycle as a pure state machine: no reactor, no I/O, time passed in.

States (``docs/protocol.md`` shows the diagram)::

    pending ──YES──▶ allocating ──relay gave an ID──▶ approved ──(relay: joined)──▶ …
       │  └──NO──▶ ended(refused)      └──relay failed──▶ ended(error)
       └──approval deadline──▶ ended(approval-timeout)
    approved ──both sides joined (started logs)──▶ active ──both end logs──▶ ended(reason)
    approved ──join deadline──▶ ended(expired)
    allocating ──approval deadline + grace──▶ ended(error)
    active ──lifetime deadline + grace, no end logs──▶ ended(relay-lost)
    pending, allocating, approved ──the terminal cancels──▶ ended(cancelled)
    any non-ended ──device unreachable──▶ ended(device-offline)
    any non-ended ──device revoked, user disabled──▶ ended(revoked)

The manager enforces a deadline in every open state (:meth:`Session.next_deadline_us`),
whether or not a relay reports: a session always ends.

Each function takes a :class:`Session` and the current time and returns the
next one, or raises :class:`InvalidTransition`.  Deadlines are absolute
instants (UTC epoch microseconds) so that a restarted manager re-arms them
from the store.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

PENDING = "pending"
ALLOCATING = "allocating"
APPROVED = "approved"
ACTIVE = "active"
ENDED = "ended"
OPEN_STATES = (PENDING, ALLOCATING, APPROVED, ACTIVE)

# End reasons: the fixed list of DECISIONS.md.
END_REASONS = ("normal", "refused", "approval-timeout", "expired", "dropped-device",
               "dropped-terminal", "idle-timeout", "max-lifetime", "heartbeat-timeout",
               "revoked", "device-offline", "shutdown", "relay-restart", "relay-lost",
               "ended-by-device", "cancelled", "error")

# What each reason means, for people: the record's ``end_detail`` when nothing more
# specific is known ("normal" needs no words).
END_DETAILS = {
    "refused": "the device's operator said no",
    "approval-timeout": "the device's operator did not answer in time",
    "expired": "a side did not join the relay in time",
    "dropped-device": "the device's connection to the relay dropped",
    "dropped-terminal": "the terminal's connection to the relay dropped",
    "idle-timeout": "nothing passed through the session for the idle timeout",
    "max-lifetime": "the session reached its maximum lifetime",
    "heartbeat-timeout": "a side stopped answering the relay's pings",
    "revoked": "the user, terminal or device was disabled, or a unit admin ended it",
    "device-offline": "the device could not be reached",
    "shutdown": "the relay shut down",
    "relay-restart": "the relay restarted while the session ran",
    "relay-lost": "the session's relay stopped sending heartbeats",
    "ended-by-device": "the device's operator ended the session",
    "cancelled": "the requester gave up before the session ran",
    "error": "an error ended the session",
}

MAX_LIFETIME_CEILING_US = 12 * 3600 * 1_000_000
# How long past its maximum lifetime an active session may go without both end logs
# before the manager counts its relay as lost (the relay itself ends it at the lifetime).
LIFETIME_GRACE_US = 60 * 1_000_000
# How long past the approval deadline a relay may take to allocate an approved session.
ALLOCATION_GRACE_US = 30 * 1_000_000


class InvalidTransition(Exception):
    """The event does not apply to the session in its current state."""


@dataclass(frozen=True)
class SessionPolicy:
    """The rules of sessions (from ``[sessions]``): timing in microseconds, and how many may
    be open at once per user and per device."""

    approval_timeout_us: int
    join_window_us: int
    max_lifetime_us: int
    idle_timeout_us: int
    max_open_per_user: int = 10     # sessions not yet ended, per user (any terminal)
    max_open_per_device: int = 4    # … per device (any user)

    def __post_init__(self) -> None:
        if not 0 < self.max_lifetime_us <= MAX_LIFETIME_CEILING_US:
            raise ValueError("the maximum lifetime must be positive and at most 12 h")


@dataclass(frozen=True)
class Session:
    """What the state machine needs of a session row."""

    request_id: str
    state: str
    requested_us: int
    approval_deadline_us: int | None = None
    decided_us: int | None = None
    approver: str | None = None
    approved_by_test_approver: bool = False
    join_deadline_us: int | None = None
    lifetime_deadline_us: int | None = None
    idle_timeout_us: int | None = None
    ended_us: int | None = None
    end_reason: str | None = None
    end_detail: str | None = None

    @property
    def is_open(self) -> bool:
        """Not ended yet."""
        return self.state in OPEN_STATES

    def next_deadline_us(self) -> int | None:
        """The instant at which a timer must fire for this session (every open state has
        one; ``None`` once it ended)."""
        if self.state == PENDING:
            return self.approval_deadline_us
        if self.state == ALLOCATING:
            return self.approval_deadline_us + ALLOCATION_GRACE_US
        if self.state == APPROVED:
            return self.join_deadline_us
        if self.state == ACTIVE:
            return self.lifetime_deadline_us + LIFETIME_GRACE_US
        return None


def request(request_id: str, now_us: int, policy: SessionPolicy) -> Session:
    """S141/S142: a new request, waiting for the operator's answer."""
    return Session(request_id=request_id, state=PENDING, requested_us=now_us,
                   approval_deadline_us=now_us + policy.approval_timeout_us)


def _require(session: Session, *states: str) -> None:
    if session.state not in states:
        raise InvalidTransition(f"session {session.request_id} is {session.state}, "
                                f"not {' or '.join(states)}")


def end(session: Session, reason: str, now_us: int, detail: str | None = None) -> Session:
    """End an open session for ``reason`` (one of :data:`END_REASONS`)."""
    if reason not in END_REASONS:
        raise ValueError(f"unknown end reason {reason!r}")
    _require(session, *OPEN_STATES)
    detail = detail or END_DETAILS.get(reason)
    return replace(session, state=ENDED, ended_us=now_us, end_reason=reason,
                   end_detail=detail[:200] if detail else None)


def decide(session: Session, approve: bool, operator: str, by_test_approver: bool,
           now_us: int, allow_test_approver: bool) -> Session:
    """S144: the operator's answer arrived from the device.

    An answer in time moves to ``allocating`` (YES) or ends ``refused`` (NO).
    An answer by a test approver is refused unless the manager allows it.
    An answer after the approval deadline is too late, whatever it says.
    """
    _require(session, PENDING)
    if now_us >= session.approval_deadline_us:
        return end(session, "approval-timeout", now_us, "the answer came after the deadline")
    decided = replace(session, decided_us=now_us, approver=operator,
                      approved_by_test_approver=by_test_approver)
    if by_test_approver and not allow_test_approver:
        return end(decided, "refused", now_us, "test-approver-not-allowed")
    if not approve:
        return end(decided, "refused", now_us)
    return replace(decided, state=ALLOCATING)


def allocated(session: Session, now_us: int, policy: SessionPolicy) -> Session:
    """S147/S148: the relay gave a session ID; the join window and the lifetime start."""
    _require(session, ALLOCATING)
    return replace(session, state=APPROVED, join_deadline_us=now_us + policy.join_window_us,
                   lifetime_deadline_us=now_us + policy.max_lifetime_us,
                   idle_timeout_us=policy.idle_timeout_us)


def activate(session: Session) -> Session:
    """S176–S179 and S209–S212 filed for both sides: the session runs."""
    _require(session, APPROVED)
    return replace(session, state=ACTIVE)


def both_sides_ended(session: Session, now_us: int,
                     sides: tuple[tuple[str, str, str | None], ...]) -> Session:
    """Both end logs are filed: the session is over (the rule of S261–S299).

    ``sides``: ``(side, reason, relay detail)`` in the order the sides
    ended.  Normal only if both sides ended normally; otherwise the first
    abnormal reason, with what the relay said of that side as its detail.  A
    session the manager already ended (expired) stays as it was.
    """
    if not session.is_open:
        return session
    side, reason, detail = next((s for s in sides if s[1] != "normal"), ("", "normal", None))
    return end(session, reason, now_us, f"{side} side: {detail}" if detail else None)


_DEADLINE_REASONS = {PENDING: ("approval-timeout", None),
                     ALLOCATING: ("error", "the relay did not allocate the session in time"),
                     APPROVED: ("expired", None),
                     ACTIVE: ("relay-lost", "no end logs by the maximum lifetime")}


def deadline_passed(session: Session, now_us: int) -> Session:
    """A timer fired: end the session if its deadline has really passed, else keep it."""
    deadline = session.next_deadline_us()
    if deadline is None or now_us < deadline:
        return session
    reason, detail = _DEADLINE_REASONS[session.state]
    return end(session, reason, now_us, detail)


def cancel(session: Session, now_us: int) -> Session:
    """The terminal gave up before the session ran (Ctrl-C while waiting, or a DELETE)."""
    _require(session, PENDING, ALLOCATING, APPROVED)
    return end(session, "cancelled", now_us)


def restarted(session: Session, now_us: int) -> Session:
    """The manager restarted: an interrupted allocation cannot be resumed safely."""
    if session.state == ALLOCATING:
        return end(session, "error", now_us, "the manager restarted while asking the relay")
    return deadline_passed(session, now_us)
