"""The payloads devices and the manager exchange over XMPP, and their codecs.

Namespace ``urn:remotecomm:device:1`` (the number is the protocol version;
``docs/protocol.md`` documents every payload).  Decoders take a parsed
element and either return a plain value or raise :class:`PayloadError`
carrying the XMPP error condition to answer with.  Nothing here touches a
stream.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from twisted.words.protocols.jabber.jid import JID, InvalidFormat
from twisted.words.xish import domish

from remotecomm.identifiers import APP_ID, DEVICE_ID, REQUEST_ID, SESSION_ID, TOKEN

NS_DEVICE = "urn:remotecomm:device:1"
NS_DEVICE_PREFIX = "urn:remotecomm:device:"
# Envelope versions of the relay protocol this manager speaks.
ENVELOPE_VERSIONS = (1,)
MAX_APPS = 32
_VERSION_TEXT = re.compile(r"[0-9A-Za-z.+~_-]{1,32}")


class PayloadError(Exception):
    """A payload was refused: ``condition`` is the XMPP stanza error condition to answer with."""

    def __init__(self, condition: str, text: str):
        super().__init__(text)
        self.condition = condition
        self.text = text


@dataclass(frozen=True)
class Hello:
    """A device agent introducing itself (sent after every (re)connect)."""

    agent_version: str
    envelope_version: int
    apps: tuple[str, ...]


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
    for app in hello.apps:
        element.addElement("app")["id"] = app
    return element


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
    if envelope_version not in ENVELOPE_VERSIONS:
        raise PayloadError("not-acceptable",
                           f"envelope version {envelope_version} is not supported (supported: "
                           f"{', '.join(map(str, ENVELOPE_VERSIONS))})")
    apps = []
    for child in element.elements():
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
                 apps=tuple(apps))


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


def _attribute(element: domish.Element, name: str, pattern: str | re.Pattern) -> str:
    value = element.getAttribute(name)
    matcher = pattern if isinstance(pattern, re.Pattern) else re.compile(pattern)
    if value is None or not matcher.fullmatch(value):
        raise PayloadError("bad-request", f"{element.name} needs a valid {name}")
    return value


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


def build_approval_request(request: ApprovalRequest) -> domish.Element:
    """The ``<approval-request/>`` payload."""
    element = domish.Element((NS_DEVICE, "approval-request"))
    element["request-id"] = request.request_id
    element["app"] = request.app_id
    element["user"] = request.user_id
    element["user-name"] = request.user_name
    element["unit"] = request.unit_id
    element["unit-name"] = request.unit_name
    element["expires-at-us"] = str(request.expires_at_us)
    return element


def parse_approval_request(iq: domish.Element) -> ApprovalRequest:
    """Decode an approval request."""
    element = _payload(iq, "approval-request")
    return ApprovalRequest(
        request_id=_attribute(element, "request-id", REQUEST_ID),
        app_id=_attribute(element, "app", APP_ID),
        user_id=_attribute(element, "user", _NAME),
        user_name=_attribute(element, "user-name", _NAME),
        unit_id=_attribute(element, "unit", _NAME),
        unit_name=_attribute(element, "unit-name", _NAME),
        expires_at_us=int(_attribute(element, "expires-at-us", _INSTANT)),
    )


@dataclass(frozen=True)
class ApprovalDecision:
    """S144: the device reports its operator's answer."""

    request_id: str
    approve: bool
    operator: str
    by_test_approver: bool


def build_approval_decision(decision: ApprovalDecision) -> domish.Element:
    """The ``<approval-decision/>`` payload."""
    element = domish.Element((NS_DEVICE, "approval-decision"))
    element["request-id"] = decision.request_id
    element["answer"] = "yes" if decision.approve else "no"
    element["operator"] = decision.operator
    element["test-approver"] = "true" if decision.by_test_approver else "false"
    return element


def parse_approval_decision(iq: domish.Element) -> ApprovalDecision:
    """Decode an approval decision."""
    element = _payload(iq, "approval-decision")
    answer = _attribute(element, "answer", r"yes|no")
    test = element.getAttribute("test-approver", "false")
    if test not in ("true", "false"):
        raise PayloadError("bad-request", "test-approver must be true or false")
    return ApprovalDecision(request_id=_attribute(element, "request-id", REQUEST_ID),
                            approve=answer == "yes",
                            operator=_attribute(element, "operator", _NAME),
                            by_test_approver=test == "true")


@dataclass(frozen=True)
class SessionReady:
    """S149: token, session ID and relay for the device side of an approved session."""

    request_id: str
    session_id: str
    token: str
    relay_url: str
    app_id: str
    join_deadline_us: int


def build_session_ready(ready: SessionReady) -> domish.Element:
    """The ``<session-ready/>`` payload."""
    element = domish.Element((NS_DEVICE, "session-ready"))
    element["request-id"] = ready.request_id
    element["session-id"] = ready.session_id
    element["token"] = ready.token
    element["relay-url"] = ready.relay_url
    element["app"] = ready.app_id
    element["join-deadline-us"] = str(ready.join_deadline_us)
    return element


def parse_session_ready(iq: domish.Element) -> SessionReady:
    """Decode a session-ready message."""
    element = _payload(iq, "session-ready")
    return SessionReady(
        request_id=_attribute(element, "request-id", REQUEST_ID),
        session_id=_attribute(element, "session-id", SESSION_ID),
        token=_attribute(element, "token", TOKEN),
        relay_url=_attribute(element, "relay-url", r"wss?://[^\s\"'<>]{1,250}"),
        app_id=_attribute(element, "app", APP_ID),
        join_deadline_us=int(_attribute(element, "join-deadline-us", _INSTANT)),
    )


@dataclass(frozen=True)
class EndSession:
    """S265: the manager asks the device to end its side of a session."""

    request_id: str
    session_id: str


def build_end_session(end: EndSession) -> domish.Element:
    """The ``<end-session/>`` payload."""
    element = domish.Element((NS_DEVICE, "end-session"))
    element["request-id"] = end.request_id
    element["session-id"] = end.session_id
    return element


def parse_end_session(iq: domish.Element) -> EndSession:
    """Decode an end-session request."""
    element = _payload(iq, "end-session")
    return EndSession(request_id=_attribute(element, "request-id", REQUEST_ID),
                      session_id=_attribute(element, "session-id", SESSION_ID))
