"""What the manager and a device say to each other about sessions, free of any transport.

These plain values are the vocabulary of S142–S149 and S265, shared by both
ends: the broker and the manager's answers to relays send and receive them,
the device agent acts on them, and :mod:`remotecomm.xmpp.payloads` alone
turns them into XMPP payloads and back.  Nothing here imports a transport.

=====================  ===============  ==========================================
message                direction        step
=====================  ===============  ==========================================
:class:`Hello`         device → manager  after every (re)connect: versions, apps, and
                                         the settings maintenance jobs may read and set
:class:`ApprovalRequest` manager → device S142: ask the operator
:class:`ApprovalDecision` device → manager S144: the operator's YES or NO
:class:`ApprovalCancelled` manager → device the terminal gave up: drop the card
:class:`SessionReady`  manager → device  S149: token, session ID, relay
:class:`EndSession`    manager → device  S265: end the device's side
:class:`SessionReport` device → manager  S313 (pushed when its side ends): what it saw
:class:`ReportRequest` manager → device  S312: send what you kept of these sessions;
                                         the answer is a :class:`KeptReports`
=====================  ===============  ==========================================

A side that will not take a message raises :class:`MessageRefused` with one
of :data:`REFUSALS`; the transport turns it into its own error (an XMPP
error condition).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from remotecomm.identifiers import SETTING_NAME, is_valid

# Envelope versions of the relay protocol this code speaks (the device's hello names one).
ENVELOPE_VERSIONS = (1,)
MAX_APPS = 32
SETTING_KINDS = ("int", "bool", "choice", "text")
MAX_SETTINGS = 64
MAX_CHOICES = 32
MAX_VALUE_LENGTH = 200
MAX_REPORTS_ASKED = 50  # request IDs in one ReportRequest (and reports in its answer)

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


class SettingError(ValueError):
    """A value a setting cannot take; the message says why."""


@dataclass(frozen=True)
class SettingSpec:
    """One setting a device declares: ``int`` (``minimum``–``maximum``), ``bool``,
    ``choice`` (one of ``choices``) or ``text`` (at most ``max_length`` characters)."""

    name: str
    kind: str
    minimum: int | None = None
    maximum: int | None = None
    choices: tuple[str, ...] = ()
    max_length: int | None = None

    def check(self, value: str) -> str:
        """``value`` (as text) if this setting can take it; else :class:`SettingError`."""
        if not isinstance(value, str) or len(value) > MAX_VALUE_LENGTH or \
                not value.isprintable():
            raise SettingError(f"{self.name}: not a value")
        if self.kind == "int":
            if not (value.lstrip("-").isdigit() and len(value) <= 12):
                raise SettingError(f"{self.name} takes a whole number")
            number = int(value)
            if (self.minimum is not None and number < self.minimum) or \
                    (self.maximum is not None and number > self.maximum):
                raise SettingError(f"{self.name} takes {self.minimum} to {self.maximum}")
        elif self.kind == "bool":
            if value not in ("true", "false"):
                raise SettingError(f"{self.name} takes true or false")
        elif self.kind == "choice":
            if value not in self.choices:
                raise SettingError(f"{self.name} takes one of {', '.join(self.choices)}")
        elif len(value) > (self.max_length or MAX_VALUE_LENGTH):
            raise SettingError(f"{self.name} takes at most {self.max_length} characters")
        return value

    def validate(self) -> "SettingSpec":
        """This spec, if its attributes fit its kind; else :class:`SettingError`."""
        if not is_valid(SETTING_NAME, self.name):
            raise SettingError(f"invalid setting name {self.name!r}")
        if self.kind not in SETTING_KINDS:
            raise SettingError(f"setting {self.name}: unknown kind {self.kind!r}")
        numbers = (self.minimum, self.maximum, self.max_length)
        if not all(n is None or (isinstance(n, int) and not isinstance(n, bool)
                                 and abs(n) < 10**12) for n in numbers):
            raise SettingError(f"setting {self.name}: limits must be whole numbers")
        choices_ok = len(self.choices) <= MAX_CHOICES and len(set(self.choices)) == len(
            self.choices) and all(isinstance(c, str) and re.fullmatch(r"[A-Za-z0-9._-]{1,40}", c)
                                  for c in self.choices)
        fits = ((self.kind == "choice") == bool(self.choices)
                and (self.kind == "int") == (self.minimum is not None
                                             and self.maximum is not None)
                and (self.kind != "int" or self.minimum <= self.maximum)
                and (self.kind == "text") == (self.max_length is not None)
                and (self.kind != "text" or 0 < self.max_length <= MAX_VALUE_LENGTH))
        if not choices_ok or not fits:
            raise SettingError(f"setting {self.name}: its attributes do not fit its kind")
        return self

    def to_json(self) -> dict:
        """The spec as the API shows it."""
        spec = {"name": self.name, "kind": self.kind}
        if self.kind == "int":
            spec.update(minimum=self.minimum, maximum=self.maximum)
        elif self.kind == "choice":
            spec["choices"] = list(self.choices)
        elif self.kind == "text":
            spec["max_length"] = self.max_length
        return spec

    @classmethod
    def from_json(cls, data: dict) -> "SettingSpec":
        """A spec from what :meth:`to_json` wrote (trusted: our own store)."""
        return cls(data["name"], data["kind"], data.get("minimum"), data.get("maximum"),
                   tuple(data.get("choices") or ()), data.get("max_length"))


@dataclass(frozen=True)
class Hello:
    """A device agent introducing itself (sent after every (re)connect)."""

    agent_version: str
    envelope_version: int
    apps: tuple[str, ...]
    firmware_version: str | None = None  # what the device's panel told its agent, if it did
    # The settings the device declares for maintenance jobs (config-get/-set), versioned.
    settings: tuple[SettingSpec, ...] = ()
    settings_version: int | None = None


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
class Credentials:
    """New XMPP credentials for the device (a rotation): ``version`` counts up from 1.  The
    device saves them before it answers; only then does the manager change the account's
    password and close the old connection."""

    version: int
    password: str


@dataclass(frozen=True)
class PanelLoginFailed:
    """Someone failed to log in at the device's panel as ``operator`` (the name they
    typed) at ``at_us`` (the device's clock); the manager audits it under the device's
    unit."""

    operator: str
    at_us: int


@dataclass(frozen=True)
class EndSession:
    """S265: the manager asks the device to end its side of a session."""

    request_id: str
    session_id: str


@dataclass(frozen=True)
class SessionReport:
    """S313, what the device saw of a session: pushed when its side ends, and sent again
    when the manager asks (:class:`ReportRequest`).

    Times are the device's own clock (the manager keeps them beside the time it received
    them); ``app_version`` is what the app said of itself (its ``Server`` header), if it
    answered at all; ``errors`` counts the streams the device refused or could not serve.
    A device whose agent stopped while the session ran does not know its end
    nor its bytes: ``ended_us``, ``end_code`` and the byte counts are then
    ``None`` and ``end_reason`` is ``agent-stopped``.
    """

    request_id: str
    session_id: str
    app_id: str
    agent_version: str
    operator: str
    started_us: int
    ended_us: int | None
    end_code: int | None
    end_reason: str
    bytes_to_device: int | None
    bytes_from_device: int | None
    reported_us: int
    app_version: str | None = None
    firmware_version: str | None = None
    errors: int | None = None


@dataclass(frozen=True)
class ReportRequest:
    """S312: the manager asks a device for what it kept of these sessions (at most
    :data:`MAX_REPORTS_ASKED`)."""

    request_ids: tuple[str, ...]

    def __post_init__(self) -> None:
        if not 0 < len(self.request_ids) <= MAX_REPORTS_ASKED:
            raise ValueError(f"ask for 1 to {MAX_REPORTS_ASKED} sessions")


@dataclass(frozen=True)
class KeptReports:
    """The device's answer to a :class:`ReportRequest`: the reports it kept; a session it
    was asked about and does not list is one it has nothing of."""

    reports: tuple[SessionReport, ...]
