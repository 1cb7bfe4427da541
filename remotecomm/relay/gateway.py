"""The relay ↔ manager seam: what each asks the other, as interfaces and plain messages.

Both directions go through zope interfaces whose arguments and results are
the frozen dataclasses below, so running relay and manager in one process
(``--role both``) or apart (the HTTPS API of :mod:`remotecomm.relay.manager_api`
and :mod:`remotecomm.web.relay_api`) changes only the transport.  One
contract suite (``tests/relay/test_gateway_contract.py``) runs every call
over both.

==================================  =================  ==================================
call                                message in          answer (or error)
==================================  =================  ==================================
relay → manager (:class:`IManagerForRelay`)
-------------------------------------------------------------------------------------------
``authenticate`` (S173, S206)       :class:`JoinRequest` :class:`Admission` or
                                                         :class:`AdmissionRefused`
``record_refusal``                  :class:`Refusal`     ``None``
``file_log`` (S177, S210, S268,     :class:`SessionLog`  ``None``, or :class:`LogRejected`
S296)                                                    when it names no known session
``end_session`` (S264)              :class:`EndRequest`  ``None`` (the manager asks the
                                                         device, S265)
``heartbeat``                       :class:`Heartbeat`   ``None`` (registers the node, its
                                                         load and live byte counters)
manager → relay (:class:`IRelayForManager`)
-------------------------------------------------------------------------------------------
``allocate`` (S145–S147)            :class:`AllocationRequest` :class:`Allocation` (a fresh
                                                         session ID), or :class:`NodeDraining`
``end_session``                     :class:`EndOrder`    :class:`EndResult`
``drain``                           (nothing)            :class:`DrainReport`
``resume``                          (nothing)            :class:`DrainReport`
==================================  =================  ==================================

Every message has ``to_json()`` (plain JSON values) and ``from_json(data)``,
which checks each field against the one table of fields the dataclass
declares and raises :class:`MessageError` for anything else -- unknown
fields included.  Tokens never cross the seam: the relay sends the SHA-256
of the token a side presented (``token_hash``).  Failures of the other
party or of the transport are :class:`PeerUnavailable`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

from twisted.internet.defer import Deferred
from zope.interface import Interface

from remotecomm.identifiers import (APP_ID, DEVICE_ID, RELAY_NODE, REQUEST_ID, SESSION_ID,
                                    TERMINAL_ID, TOKEN_HASH, is_valid)

SIDES = ("device", "terminal")
LOG_KINDS = ("started", "ended")
_MAX_INT = 2**63

# -- errors ------------------------------------------------------------------------------


class GatewayError(Exception):
    """Base of the seam's errors."""


class MessageError(GatewayError):
    """A message does not have the shape the seam allows (field says which part)."""

    def __init__(self, field_name: str | None, reason: str):
        super().__init__(reason)
        self.field = field_name
        self.reason = reason


class AdmissionRefused(GatewayError):
    """The manager did not confirm a side's token: ``code`` is stable, ``reason`` for people."""

    def __init__(self, code: str, reason: str):
        super().__init__(reason)
        self.code = code
        self.reason = reason


class LogRejected(GatewayError):
    """The manager will never file this log (it names no session or side it knows)."""

    def __init__(self, key: str, reason: str):
        super().__init__(reason)
        self.key = key
        self.reason = reason


class NodeDraining(GatewayError):
    """The relay node takes no new sessions (it is draining, full, or shutting down)."""


class PeerUnavailable(GatewayError):
    """The other party did not take the call (down, slow, or it failed)."""


# -- the table of fields --------------------------------------------------------------------

Check = Callable[[Any], bool]


def _pattern(pattern: str) -> Check:
    return lambda value: is_valid(pattern, value)


def _text(max_length: int) -> Check:
    return lambda value: (isinstance(value, str) and 0 < len(value) <= max_length
                          and value.isprintable())


def _one_of(*choices: str) -> Check:
    return lambda value: value in choices


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < _MAX_INT


def _flag(value: Any) -> bool:
    return isinstance(value, bool)


def _checked(check: Check, *, optional: bool = False, what: str, decode=None):
    """A dataclass field with its wire check (``optional`` fields may be ``None``);
    ``decode`` turns a checked JSON value into the field's value (nested messages)."""
    metadata = {"check": check, "optional": optional, "what": what, "decode": decode}
    if optional:
        return field(default=None, metadata=metadata)
    return field(metadata=metadata)


def _messages(cls, max_count: int):
    """A field holding a list of at most ``max_count`` messages of ``cls`` (a tuple)."""
    return _checked(lambda value: isinstance(value, list) and len(value) <= max_count,
                    what=f"a list of at most {max_count} {cls.KIND}s",
                    decode=lambda value: tuple(cls.from_json(item) for item in value))


def _url(*schemes: str) -> Check:
    return lambda value: (isinstance(value, str) and len(value) <= 250
                          and value.startswith(tuple(f"{scheme}://" for scheme in schemes))
                          and value.isprintable() and " " not in value)


_SESSION = dict(check=_pattern(SESSION_ID), what="a session ID")
_HTTP_URL = dict(check=_url("http", "https"), what="an http:// or https:// URL")
_WS_URL = dict(check=_url("ws", "wss"), what="a ws:// or wss:// URL")
_REQUEST = dict(check=_pattern(REQUEST_ID), what="a request ID")
_SIDE = dict(check=_one_of(*SIDES), what="'device' or 'terminal'")
_ADDRESS = dict(check=_text(100), what="an address of at most 100 characters")
_INSTANT = dict(check=_count, what="an instant (epoch microseconds)")
_REASON = dict(check=_text(64), what="a reason code of at most 64 characters")


def _plain(value):
    if isinstance(value, tuple):
        return [_plain(item) for item in value]
    if isinstance(value, _Message):
        return value.to_json()
    return value


class _Message:
    """JSON for the frozen dataclasses of the seam, driven by each field's metadata."""

    KIND: ClassVar[str] = "message"

    def to_json(self) -> dict:
        """The message as a dict of plain JSON values."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_json(cls, data: object):
        """Check ``data`` field by field; raises :class:`MessageError`."""
        if not isinstance(data, dict):
            raise MessageError(None, f"a {cls.KIND} must be a JSON object")
        fields = dataclasses.fields(cls)
        unknown = set(data) - {f.name for f in fields}
        if unknown:
            raise MessageError(sorted(unknown)[0],
                               f"unknown field(s) in a {cls.KIND}: {', '.join(sorted(unknown))}")
        values = {}
        for f in fields:
            value = data.get(f.name)
            if value is None and f.metadata["optional"]:
                values[f.name] = None
                continue
            if not f.metadata["check"](value):
                raise MessageError(f.name, f"the field {f.name!r} of a {cls.KIND} must be "
                                           f"{f.metadata['what']}")
            decode = f.metadata["decode"]
            values[f.name] = decode(value) if decode is not None else value
        message = cls(**values)
        message.check_whole()
        return message

    def check_whole(self) -> None:
        """Rules across fields (each message that has some overrides this)."""


# -- relay → manager ------------------------------------------------------------------------


@dataclass(frozen=True)
class JoinRequest(_Message):
    """A side asks to join (S172, S204): check its token for that side and session."""

    KIND: ClassVar[str] = "join request"

    session_id: str = _checked(**_SESSION)
    side: str = _checked(**_SIDE)
    token_hash: str = _checked(_pattern(TOKEN_HASH), what="a SHA-256 hex digest")
    source_address: str | None = _checked(optional=True, **_ADDRESS)


@dataclass(frozen=True)
class Admission(_Message):
    """What the manager confirmed about a joining side (S175, S208)."""

    KIND: ClassVar[str] = "admission"

    session_id: str = _checked(**_SESSION)
    side: str = _checked(**_SIDE)
    request_id: str = _checked(**_REQUEST)
    party_id: str = _checked(_text(128), what="a device or terminal ID")
    app_id: str = _checked(_pattern(APP_ID), what="an app ID")
    pairing_deadline_us: int = _checked(**_INSTANT)
    lifetime_deadline_us: int = _checked(**_INSTANT)
    idle_timeout_us: int | None = _checked(_count, optional=True, what="microseconds")


@dataclass(frozen=True)
class Refusal(_Message):
    """A side the relay refused before (or instead of) a token check: for the audit table."""

    KIND: ClassVar[str] = "refusal"

    code: str = _checked(**_REASON)
    session_id: str | None = _checked(optional=True, **_SESSION)
    side: str | None = _checked(optional=True, **_SIDE)
    source_address: str | None = _checked(optional=True, **_ADDRESS)


@dataclass(frozen=True)
class SessionLog(_Message):
    """One side's started or ended log (S176, S209, S267, S295), filed once by ``key``.

    An ended log also says whether the side ended normally, why, and the bytes
    it sent and received through the relay.
    """

    KIND: ClassVar[str] = "session log"

    key: str = _checked(_text(160), what="an idempotency key")
    kind: str = _checked(_one_of(*LOG_KINDS), what="'started' or 'ended'")
    session_id: str = _checked(**_SESSION)
    request_id: str = _checked(**_REQUEST)
    side: str = _checked(**_SIDE)
    party_id: str = _checked(_text(128), what="a device or terminal ID")
    at_us: int = _checked(**_INSTANT)
    relay_node: str = _checked(_pattern(RELAY_NODE), what="a relay node name")
    normal: bool | None = _checked(_flag, optional=True, what="true or false")
    reason: str | None = _checked(optional=True, **_REASON)
    bytes_from_side: int | None = _checked(_count, optional=True, what="a byte count")
    bytes_to_side: int | None = _checked(_count, optional=True, what="a byte count")
    # What went wrong on this side, if anything: frames the relay refused from it, and the
    # words it closed the side with (optional: relays before 0.3 do not send them).
    refused_frames: int | None = _checked(_count, optional=True, what="a frame count")
    detail: str | None = _checked(_text(200), optional=True,
                                  what="a text of at most 200 characters")

    def check_whole(self) -> None:
        ended_fields = (self.normal, self.reason, self.bytes_from_side, self.bytes_to_side)
        if self.kind == "ended" and any(value is None for value in ended_fields):
            raise MessageError("normal", "an ended log needs normal, reason, "
                                         "bytes_from_side and bytes_to_side")
        if self.kind == "started" and any(value is not None for value in ended_fields + (
                self.refused_frames, self.detail)):
            raise MessageError("normal", "a started log has no end fields")
        if self.key != log_key(self.session_id, self.side, self.kind):
            raise MessageError("key", "the key must be session_id:side:kind")


def log_key(session_id: str, side: str, kind: str) -> str:
    """The idempotency key of a session log."""
    return f"{session_id}:{side}:{kind}"


@dataclass(frozen=True)
class EndRequest(_Message):
    """S264: a side ended normally; the manager asks the device to end its side (S265)."""

    KIND: ClassVar[str] = "end request"

    session_id: str = _checked(**_SESSION)
    request_id: str = _checked(**_REQUEST)
    side: str = _checked(**_SIDE)


@dataclass(frozen=True)
class SessionCounters(_Message):
    """Bytes one side of a live session sent and received through the relay, so far."""

    KIND: ClassVar[str] = "session counter"

    session_id: str = _checked(**_SESSION)
    side: str = _checked(**_SIDE)
    bytes_from_side: int = _checked(_count, what="a byte count")
    bytes_to_side: int = _checked(_count, what="a byte count")


MAX_COUNTERS = 300  # per heartbeat; sessions that changed later go in the next one
# Sessions a relay node holds at once unless its config says otherwise; the manager also
# orders by it the nodes whose heartbeats name no capacity (relays before 0.4).
DEFAULT_CAPACITY = 10_000
NODE_STATES = ("active", "draining")


@dataclass(frozen=True)
class Heartbeat(_Message):
    """A relay node says it is alive (its first one registers it): how the manager reaches
    it, how devices and terminals reach it, its load, and live byte counters."""

    KIND: ClassVar[str] = "heartbeat"

    relay_node: str = _checked(_pattern(RELAY_NODE), what="a relay node name")
    api_url: str = _checked(**_HTTP_URL)
    public_url: str = _checked(**_WS_URL)
    state: str = _checked(_one_of(*NODE_STATES), what="'active' or 'draining'")
    open_sessions: int = _checked(_count, what="a count")
    counters: tuple = _messages(SessionCounters, MAX_COUNTERS)
    # How many sessions the node takes at once (``None``: relays before 0.4 set no bound).
    capacity: int | None = _checked(_count, optional=True, what="a count")


class IManagerForRelay(Interface):
    """What a relay asks the manager; every method returns a Deferred (or is a coroutine)."""

    def authenticate(request: JoinRequest) -> Deferred:
        """Fires with an :class:`Admission`, or fails with :class:`AdmissionRefused`
        (audited by the manager) or :class:`PeerUnavailable`."""

    def record_refusal(refusal: Refusal) -> Deferred:
        """Audit a side the relay refused itself."""

    def file_log(log: SessionLog) -> Deferred:
        """File one log (once per key; a repeat is acknowledged and ignored); fails with
        :class:`LogRejected` for a log the manager will never file."""

    def end_session(request: EndRequest) -> Deferred:
        """The terminal ended normally: ask the device to end its side."""

    def heartbeat(beat: Heartbeat) -> Deferred:
        """The node is alive (registers it the first time); store its live counters."""


# -- manager → relay ------------------------------------------------------------------------


@dataclass(frozen=True)
class AllocationRequest(_Message):
    """S145: the manager asks a relay node for connection information for an approved request."""

    KIND: ClassVar[str] = "allocation request"

    request_id: str = _checked(**_REQUEST)
    device_id: str = _checked(_pattern(DEVICE_ID), what="a device ID")
    terminal_id: str = _checked(_pattern(TERMINAL_ID), what="a terminal ID")
    app_id: str = _checked(_pattern(APP_ID), what="an app ID")


@dataclass(frozen=True)
class Allocation(_Message):
    """S146–S147: a fresh session ID and the node (and its public URL) that serves it."""

    KIND: ClassVar[str] = "allocation"

    session_id: str = _checked(**_SESSION)
    relay_node: str = _checked(_pattern(RELAY_NODE), what="a relay node name")
    relay_url: str = _checked(**_WS_URL)


@dataclass(frozen=True)
class EndOrder(_Message):
    """The manager ends a session on the relay (revoked, disabled, forced), both sides."""

    KIND: ClassVar[str] = "end order"

    session_id: str = _checked(**_SESSION)
    reason: str = _checked(**_REASON)


@dataclass(frozen=True)
class EndResult(_Message):
    """Whether the relay had that session open (and is now closing its sides)."""

    KIND: ClassVar[str] = "end result"

    session_id: str = _checked(**_SESSION)
    was_open: bool = _checked(_flag, what="true or false")


@dataclass(frozen=True)
class DrainReport(_Message):
    """What a node says after a drain (it takes no new sessions) or a resume (it takes them
    again): its name and the sessions running on it."""

    KIND: ClassVar[str] = "drain report"

    relay_node: str = _checked(_pattern(RELAY_NODE), what="a relay node name")
    open_sessions: int = _checked(_count, what="a count")


class IRelayForManager(Interface):
    """What the manager asks a relay node; every method returns a Deferred."""

    def allocate(request: AllocationRequest) -> Deferred:
        """Fires with an :class:`Allocation` (a new session ID for every call), or fails
        with :class:`NodeDraining` or :class:`PeerUnavailable`."""

    def end_session(order: EndOrder) -> Deferred:
        """Close both sides of the session with ``order.reason``; fires with an
        :class:`EndResult`."""

    def drain() -> Deferred:
        """Take no new sessions from now on; fires with a :class:`DrainReport`."""

    def resume() -> Deferred:
        """Take new sessions again after a drain; fires with a :class:`DrainReport`."""
