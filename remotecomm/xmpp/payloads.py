"""The payloads devices and the manager exchange over XMPP: the codec of the session messages.

Namespace ``urn:remotecomm:device:1`` (the number is the protocol version;
``docs/protocol.md`` documents every payload).  The messages themselves are
transport-free values (:mod:`remotecomm.sessions.messages`); here
:func:`encode` turns one into its payload element and :func:`decode` reads
one back from a request IQ, both driven by one table of attributes
(:data:`_PAYLOADS`; only ``<hello/>`` and ``<kept-reports/>``, which have
children, are written by hand).  Decoders raise :class:`PayloadError` carrying the XMPP error
condition to answer with.  Nothing here touches a stream.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from twisted.words.protocols.jabber.jid import JID, InvalidFormat
from twisted.words.xish import domish

from remotecomm.identifiers import (APP_ID, DEVICE_ID, JOB_ID, REQUEST_ID, SESSION_ID, SETTING_NAME,
                                    TOKEN, TOKEN_HASH, VERSION_TEXT)
from remotecomm.json_http import MAX_JSON_DEPTH, json_depth
from remotecomm.maintenance.messages import (ACTIONS, ERROR_CODES, MAX_RESULT_BYTES,
                                             PROGRESS_PHASES, JobProgress, JobRequest, JobResult)
from remotecomm.sessions.messages import (ENVELOPE_VERSIONS, MAX_APPS, MAX_REPORTS_ASKED,
                                          MAX_SETTINGS, MAX_VALUE_LENGTH, ApprovalCancelled,
                                          ApprovalDecision, ApprovalRequest, Credentials,
                                          EndSession, Hello, KeptReports, MessageRefused,
                                          PanelLoginFailed, ReportRequest, SessionReady,
                                          SessionReport, SettingError, SettingSpec)

NS_DEVICE = "urn:remotecomm:device:1"
NS_DEVICE_PREFIX = "urn:remotecomm:device:"
_VERSION_TEXT = re.compile(VERSION_TEXT)

# The XMPP error condition for each reason a message is refused (sessions.messages).
REFUSAL_CONDITIONS = {"bad-request": "bad-request", "not-found": "item-not-found",
                      "not-allowed": "not-allowed", "forbidden": "forbidden",
                      "busy": "resource-constraint", "unsupported": "feature-not-implemented",
                      "too-many": "policy-violation"}


class PayloadError(Exception):
    """A payload was refused: ``condition`` is the XMPP stanza error condition to answer with."""

    def __init__(self, condition: str, text: str):
        super().__init__(text)
        self.condition = condition
        self.text = text

    @classmethod
    def from_refusal(cls, refusal: MessageRefused) -> "PayloadError":
        """The XMPP form of a transport-free refusal."""
        return cls(REFUSAL_CONDITIONS[refusal.code], refusal.text)


def request_payload(iq: domish.Element) -> domish.Element:
    """The single payload of a request IQ in our namespace, checked for its version."""
    children = list(iq.elements())
    if len(children) != 1:
        raise PayloadError("bad-request", "an IQ must carry exactly one payload element")
    child = children[0]
    if child.uri != NS_DEVICE and (child.uri or "").startswith(NS_DEVICE_PREFIX):
        raise PayloadError("feature-not-implemented",
                           f"protocol version {child.uri!r} is not supported; this side "
                           f"speaks {NS_DEVICE}")
    if child.uri != NS_DEVICE:
        raise PayloadError("feature-not-implemented", f"unknown payload {{{child.uri}}}{child.name}")
    return child


def _payload(iq: domish.Element, name: str) -> domish.Element:
    child = request_payload(iq)
    if child.name != name:
        raise PayloadError("feature-not-implemented", f"unknown request {child.name!r}")
    return child


def build_hello(hello: Hello) -> domish.Element:
    """The ``<hello/>`` payload."""
    element = domish.Element((NS_DEVICE, "hello"))
    element["agent-version"] = hello.agent_version
    element["envelope-version"] = str(hello.envelope_version)
    if hello.firmware_version is not None:
        element["firmware-version"] = hello.firmware_version
    if hello.settings_version is not None:
        element["settings-version"] = str(hello.settings_version)
    for app in hello.apps:
        element.addElement("app")["id"] = app
    for spec in hello.settings:
        setting = element.addElement("setting")
        setting["name"] = spec.name
        setting["kind"] = spec.kind
        for name, value in (("min", spec.minimum), ("max", spec.maximum),
                            ("max-length", spec.max_length)):
            if value is not None:
                setting[name] = str(value)
        if spec.choices:
            setting["choices"] = " ".join(spec.choices)
    return element


_WHOLE = re.compile(r"-?\d{1,12}")


def _setting(child: domish.Element) -> SettingSpec:
    name, kind = child.getAttribute("name") or "", child.getAttribute("kind") or ""
    numbers = {}
    for attribute in ("min", "max", "max-length"):
        raw = child.getAttribute(attribute)
        if raw is not None and not _WHOLE.fullmatch(raw):
            raise PayloadError("bad-request", f"setting {name}: {attribute} is not a number")
        numbers[attribute] = int(raw) if raw is not None else None
    try:
        return SettingSpec(name, kind, numbers["min"], numbers["max"],
                           tuple((child.getAttribute("choices") or "").split()),
                           numbers["max-length"]).validate()
    except SettingError as e:
        raise PayloadError("bad-request", str(e)) from None


def parse_hello(iq: domish.Element) -> Hello:
    """Decode a hello IQ; refuses unknown versions, bad app IDs and oversized lists."""
    element = _payload(iq, "hello")
    agent_version = element.getAttribute("agent-version")
    if not agent_version or not _VERSION_TEXT.fullmatch(agent_version):
        raise PayloadError("bad-request", "hello needs an agent-version")
    raw_envelope = element.getAttribute("envelope-version") or ""
    if not raw_envelope.isdigit() or len(raw_envelope) > 4:
        raise PayloadError("bad-request", "hello needs a numeric envelope-version")
    envelope_version = int(raw_envelope)
    firmware_version = element.getAttribute("firmware-version")
    if firmware_version is not None and not _VERSION_TEXT.fullmatch(firmware_version):
        raise PayloadError("bad-request", "hello's firmware-version is not a version")
    if envelope_version not in ENVELOPE_VERSIONS:
        raise PayloadError("not-acceptable",
                           f"envelope version {envelope_version} is not supported (supported: "
                           f"{', '.join(map(str, ENVELOPE_VERSIONS))})")
    raw_settings_version = element.getAttribute("settings-version")
    if raw_settings_version is not None and not (raw_settings_version.isdigit()
                                                 and len(raw_settings_version) <= 6):
        raise PayloadError("bad-request", "hello's settings-version is not a number")
    settings: list[SettingSpec] = []
    apps = []
    for child in element.elements():
        if child.uri == NS_DEVICE and child.name == "setting":
            setting = _setting(child)
            if any(s.name == setting.name for s in settings):
                raise PayloadError("bad-request", f"setting {setting.name!r} listed twice")
            settings.append(setting)
            if len(settings) > MAX_SETTINGS:
                raise PayloadError("policy-violation", f"at most {MAX_SETTINGS} settings")
            continue
        if child.uri != NS_DEVICE or child.name != "app":
            raise PayloadError("bad-request", f"unexpected element {child.name!r} in hello")
        app_id = child.getAttribute("id")
        if not app_id or not re.fullmatch(APP_ID, app_id):
            raise PayloadError("bad-request", f"invalid app ID {app_id!r}")
        if app_id in apps:
            raise PayloadError("bad-request", f"app ID {app_id!r} listed twice")
        apps.append(app_id)
    if len(apps) > MAX_APPS:
        raise PayloadError("policy-violation", f"at most {MAX_APPS} apps")
    return Hello(agent_version=agent_version, envelope_version=envelope_version,
                 apps=tuple(apps), firmware_version=firmware_version,
                 settings=tuple(settings),
                 settings_version=int(raw_settings_version)
                 if raw_settings_version is not None else None)


@dataclass(frozen=True)
class PresenceUpdate:
    """A device's directed presence to the component: which device, which resource, up or down."""

    device_id: str
    resource: str
    available: bool


def device_id_of(sender: str | None, devices_domain: str) -> tuple[str, str] | None:
    """``(device ID, resource)`` for a full JID of a device account, else ``None``."""
    if not sender:
        return None
    try:
        jid = JID(sender)
    except (InvalidFormat, Exception):
        return None
    if jid.host != devices_domain or not jid.user or not jid.resource:
        return None
    if not re.fullmatch(DEVICE_ID, jid.user):
        return None
    return jid.user, jid.resource


def parse_presence(presence: domish.Element, devices_domain: str) -> PresenceUpdate | None:
    """The presence update a stanza means, or ``None`` for stanzas that mean nothing here.

    Only available and unavailable presence from a device's full JID counts;
    probes, subscriptions and errors are ignored.
    """
    kind = presence.getAttribute("type")
    if kind not in (None, "unavailable"):
        return None
    sender = device_id_of(presence.getAttribute("from"), devices_domain)
    if sender is None:
        return None
    return PresenceUpdate(device_id=sender[0], resource=sender[1], available=kind is None)


_NAME = re.compile(r"[^\x00-\x1f\x7f]{1,200}")
_INSTANT = re.compile(r"\d{1,19}")
_RELAY_URL = re.compile(r"wss?://[^\s\"'<>]{1,250}")
_DOWNLOAD_URL = re.compile(r"https?://[^\s\"'<>]{1,300}")


@dataclass(frozen=True)
class _Attribute:
    """One field of a message as one XML attribute: its name, shape and how it reads."""

    field: str
    name: str
    pattern: str | re.Pattern
    # text | optional-text (absent: None) | instant (int) | optional-instant (absent: None)
    # | yes-no (bool) | true-false (bool, absent: false) | id-list (a tuple of IDs matching
    # ``pattern``, space-separated, 1 to MAX_REPORTS_ASKED of them) | body (the element's
    # text, optional, at most MAX_RESULT_BYTES: a JSON result)
    kind: str = "text"


# The one table of the flat session payloads: message class → element name and attributes.
_PAYLOADS: dict[type, tuple[str, tuple[_Attribute, ...]]] = {
    ApprovalRequest: ("approval-request", (
        _Attribute("request_id", "request-id", REQUEST_ID),
        _Attribute("app_id", "app", APP_ID),
        _Attribute("user_id", "user", _NAME),
        _Attribute("user_name", "user-name", _NAME),
        _Attribute("unit_id", "unit", _NAME),
        _Attribute("unit_name", "unit-name", _NAME),
        _Attribute("expires_at_us", "expires-at-us", _INSTANT, "instant"))),
    ApprovalDecision: ("approval-decision", (
        _Attribute("request_id", "request-id", REQUEST_ID),
        _Attribute("approve", "answer", r"yes|no", "yes-no"),
        _Attribute("operator", "operator", _NAME),
        _Attribute("by_test_approver", "test-approver", r"true|false", "true-false"))),
    ApprovalCancelled: ("approval-cancelled", (
        _Attribute("request_id", "request-id", REQUEST_ID),)),
    SessionReady: ("session-ready", (
        _Attribute("request_id", "request-id", REQUEST_ID),
        _Attribute("session_id", "session-id", SESSION_ID),
        _Attribute("token", "token", TOKEN),
        _Attribute("relay_url", "relay-url", _RELAY_URL),
        _Attribute("app_id", "app", APP_ID),
        _Attribute("join_deadline_us", "join-deadline-us", _INSTANT, "instant"))),
    EndSession: ("end-session", (
        _Attribute("request_id", "request-id", REQUEST_ID),
        _Attribute("session_id", "session-id", SESSION_ID))),
    SessionReport: ("session-report", (
        _Attribute("request_id", "request-id", REQUEST_ID),
        _Attribute("session_id", "session-id", SESSION_ID),
        _Attribute("app_id", "app", APP_ID),
        _Attribute("agent_version", "agent-version", _VERSION_TEXT),
        _Attribute("operator", "operator", _NAME),
        _Attribute("started_us", "started-us", _INSTANT, "instant"),
        _Attribute("ended_us", "ended-us", _INSTANT, "optional-instant"),
        _Attribute("end_code", "end-code", r"\d{1,5}", "optional-instant"),
        _Attribute("end_reason", "end-reason", _NAME),
        _Attribute("bytes_to_device", "bytes-to-device", _INSTANT, "optional-instant"),
        _Attribute("bytes_from_device", "bytes-from-device", _INSTANT, "optional-instant"),
        _Attribute("reported_us", "reported-us", _INSTANT, "instant"),
        _Attribute("app_version", "app-version", _NAME, "optional-text"),
        _Attribute("firmware_version", "firmware-version", _VERSION_TEXT, "optional-text"),
        _Attribute("errors", "errors", r"\d{1,9}", "optional-instant"))),
    Credentials: ("credentials", (
        _Attribute("version", "version", r"[1-9]\d{0,8}", "instant"),
        _Attribute("password", "password", r"[A-Za-z0-9_-]{16,128}"))),
    PanelLoginFailed: ("panel-login-failed", (
        _Attribute("operator", "operator", _NAME),
        _Attribute("at_us", "at-us", _INSTANT, "instant"))),
    ReportRequest: ("report-request", (
        _Attribute("request_ids", "request-ids", REQUEST_ID, "id-list"),)),
    JobRequest: ("job-request", (
        _Attribute("job_id", "job-id", JOB_ID),
        _Attribute("action", "action", "|".join(ACTIONS)),
        _Attribute("deadline_us", "deadline-us", _INSTANT, "instant"),
        _Attribute("key", "key", SETTING_NAME, "optional-text"),
        _Attribute("value", "value", r"[^\x00-\x1f\x7f]{1,%d}" % MAX_VALUE_LENGTH,
                   "optional-text"),
        _Attribute("image_url", "image-url", _DOWNLOAD_URL, "optional-text"),
        _Attribute("image_token", "image-token", TOKEN, "optional-text"),
        _Attribute("image_sha256", "image-sha256", TOKEN_HASH, "optional-text"),
        _Attribute("image_size", "image-size", r"\d{1,12}", "optional-instant"),
        _Attribute("image_version", "image-version", _VERSION_TEXT, "optional-text"))),
    JobProgress: ("job-progress", (
        _Attribute("job_id", "job-id", JOB_ID),
        _Attribute("phase", "phase", "|".join(PROGRESS_PHASES)),
        _Attribute("percent", "percent", r"\d{1,3}", "instant"))),
    JobResult: ("job-result", (
        _Attribute("job_id", "job-id", JOB_ID),
        _Attribute("outcome", "outcome", r"done|failed"),
        _Attribute("finished_us", "finished-us", _INSTANT, "instant"),
        _Attribute("error_code", "error-code", "|".join(ERROR_CODES), "optional-text"),
        _Attribute("error", "error", _NAME, "optional-text"),
        _Attribute("result", "", r"(?s).*", "body"))),
}
_BY_NAME = {name: (cls, attributes) for cls, (name, attributes) in _PAYLOADS.items()}
PAYLOAD_NAMES = frozenset(_BY_NAME) | {"hello", "kept-reports"}
_OPTIONAL = ("optional-text", "optional-instant", "body")


def _write(attribute: _Attribute, value) -> str | None:
    if attribute.kind == "yes-no":
        return "yes" if value else "no"
    if attribute.kind == "true-false":
        return "true" if value else "false"
    if attribute.kind == "id-list":
        return " ".join(value)
    return str(value)


def _read(element: domish.Element, attribute: _Attribute):
    if attribute.kind == "body":
        text = "".join(str(child) for child in element.children if isinstance(child, str))
        if not text:
            return None
        if len(text.encode("utf-8")) > MAX_RESULT_BYTES:
            raise PayloadError("policy-violation", f"{element.name}: the result is too large")
        if json_depth(text.encode("utf-8")) > MAX_JSON_DEPTH:
            raise PayloadError("policy-violation", f"{element.name}: the result nests too deep")
        try:
            json.loads(text)
        except (ValueError, RecursionError):
            raise PayloadError("bad-request", f"{element.name}: the result is not JSON") \
                from None
        return text
    value = element.getAttribute(attribute.name)
    if value is None and attribute.kind == "true-false":
        value = "false"
    if value is None and attribute.kind in _OPTIONAL:
        return None
    pattern = attribute.pattern
    matcher = pattern if isinstance(pattern, re.Pattern) else re.compile(pattern)
    if attribute.kind == "id-list":
        items = (value or "").split(" ")
        if not 0 < len(items) <= MAX_REPORTS_ASKED or len(set(items)) != len(items) or \
                not all(matcher.fullmatch(item) for item in items):
            raise PayloadError("bad-request", f"{element.name} needs 1 to {MAX_REPORTS_ASKED} "
                                              f"distinct IDs in {attribute.name}")
        return tuple(items)
    if value is None or not matcher.fullmatch(value):
        raise PayloadError("bad-request", f"{element.name} needs a valid {attribute.name}")
    if attribute.kind in ("instant", "optional-instant"):
        return int(value)
    if attribute.kind == "yes-no":
        return value == "yes"
    if attribute.kind == "true-false":
        return value == "true"
    return value


def encode(message) -> domish.Element:
    """The XMPP payload element of a message of :mod:`remotecomm.sessions.messages`."""
    if isinstance(message, Hello):
        return build_hello(message)
    if isinstance(message, KeptReports):
        element = domish.Element((NS_DEVICE, "kept-reports"))
        for report in message.reports:
            element.addChild(encode(report))
        return element
    name, attributes = _PAYLOADS[type(message)]
    element = domish.Element((NS_DEVICE, name))
    for attribute in attributes:
        value = getattr(message, attribute.field)
        if attribute.kind == "body":
            if value is not None:
                element.addContent(value)
        elif value is not None or attribute.kind not in _OPTIONAL:
            element[attribute.name] = _write(attribute, value)
    return element


def _flat(element: domish.Element):
    cls, attributes = _BY_NAME[element.name]
    values = {attribute.field: _read(element, attribute) for attribute in attributes}
    try:
        return cls(**values)
    except ValueError as e:  # the message's own checks across its fields
        raise PayloadError("bad-request", f"{element.name}: {e}") from None


def decode(iq: domish.Element):
    """The message an IQ request carries, checked field by field; raises
    :class:`PayloadError` (unknown payloads: ``feature-not-implemented``)."""
    element = request_payload(iq)
    if element.name == "hello":
        return parse_hello(iq)
    if element.name not in _BY_NAME:
        raise PayloadError("feature-not-implemented", f"unknown request {element.name!r}")
    return _flat(element)


def decode_kept_reports(result: domish.Element, asked: ReportRequest) -> KeptReports:
    """The device's answer to ``asked`` (a result IQ), checked: only session reports, at
    most one per session asked about, and none about a session it was not asked about."""
    children = list(result.elements())
    if len(children) != 1 or children[0].uri != NS_DEVICE or \
            children[0].name != "kept-reports":
        raise PayloadError("bad-request", "the answer must carry one kept-reports element")
    reports = []
    for child in children[0].elements():
        if child.uri != NS_DEVICE or child.name != "session-report":
            raise PayloadError("bad-request", f"unexpected element {child.name!r} in "
                                              f"kept-reports")
        report = _flat(child)
        if report.request_id not in asked.request_ids or \
                any(r.request_id == report.request_id for r in reports):
            raise PayloadError("bad-request", f"a report of {report.request_id} was not "
                                              f"asked for (or came twice)")
        reports.append(report)
    return KeptReports(reports=tuple(reports))
