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

from remotecomm.identifiers import APP_ID, DEVICE_ID

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
