"""What the manager and a device say to each other about sessions, free of any transport.

These plain values are the vocabulary of S142–S149 and S265, shared by both
ends: the broker and the manager's answers to relays send and receive them,
the device agent acts on them, and :mod:`remotecomm.xmpp.payloads` alone
turns them into XMPP payloads and back.  Nothing here imports a transport.

=====================  ===============  ==========================================
message                direction        step
=====================  ===============  ==========================================
:class:`Hello`         device → manager  after every (re)connect: versions, apps
:class:`ApprovalRequest` manager → device S142: ask the operator
:class:`ApprovalDecision` device → manager S144: the operator's YES or NO
:class:`ApprovalCancelled` manager → device the terminal gave up: drop the card
:class:`SessionReady`  manager → device  S149: token, session ID, relay
:class:`EndSession`    manager → device  S265: end the device's side
:class:`SessionReport` device → manager  S313 (pushed when its side ends): what it saw
=====================  ===============  ==========================================

A side that will not take a message raises :class:`MessageRefused` with one
of :data:`REFUSALS`; the transport turns it into its own error (an XMPP
error condition).
"""

from __future__ import annotations

from dataclasses import dataclass

# Envelope versions of the relay protocol this code speaks (the device's hello names one).
ENVELOPE_VERSIONS = (1,)
MAX_APPS = 32

# Why a message is refused (the transport maps each to its own error).
REFUSALS = ("bad-request", "not-found", "not-allowed", "forbidden", "busy", "unsupported",
            "too-many")


class MessageRefused(Exception):
    """A message that its receiver will not take: ``code`` (one of :data:`REFUSALS`)
    and a text for people."""

    def __init__(self, code: str, text: str):
        if code not in REFUSALS:
            raise ValueError(f"unknown refusal {code!r}")
        super().__init__(text)
        self.code = code
        self.text = text


@dataclass(frozen=True)
class Hello:
    """A device agent introducing itself (sent after every (re)connect)."""

    agent_version: str
    envelope_version: int
    apps: tuple[str, ...]


@dataclass(frozen=True)
class ApprovalRequest:
    """S142: the manager asks the device's operator to approve a session."""

    request_id: str
    app_id: str
    user_id: str
    user_name: str
    unit_id: str
    unit_name: str
    expires_at_us: int


@dataclass(frozen=True)
class ApprovalDecision:
    """S144: the device reports its operator's answer."""

    request_id: str
    approve: bool
    operator: str
    by_test_approver: bool


@dataclass(frozen=True)
class ApprovalCancelled:
    """The terminal gave up on a request: the device drops its approval card; a YES for it
    is refused from now on."""

    request_id: str


@dataclass(frozen=True)
class SessionReady:
    """S149: token, session ID and relay for the device side of an approved session."""

    request_id: str
    session_id: str
    token: str
    relay_url: str
    app_id: str
    join_deadline_us: int


@dataclass(frozen=True)
class EndSession:
    """S265: the manager asks the device to end its side of a session."""

    request_id: str
    session_id: str


@dataclass(frozen=True)
class SessionReport:
    """S313, pushed by the device when its side of a session ends: what the device saw.

    Times are the device's own clock (the manager keeps them beside the time it received
    them); ``app_version`` is what the app said of itself (its ``Server`` header), if it
    answered at all.
    """

    request_id: str
    session_id: str
    app_id: str
    agent_version: str
    operator: str
    started_us: int
    ended_us: int
    end_code: int
    end_reason: str
    bytes_to_device: int
    bytes_from_device: int
    reported_us: int
    app_version: str | None = None
