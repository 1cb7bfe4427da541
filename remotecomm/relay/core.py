"""The relay's pairing core: admission, pairing by session ID, forwarding, ends.

Sans-IO: it knows a connection only through :class:`IRelayConnection`
(send, close, pause, resume, established) and gets time from an injected
clock.  The WebSocket endpoints (``remotecomm.relay.websocket``) are thin
adapters that feed it; tests feed it fakes.

- A side is forwarded nothing until the manager confirmed its token for
  that side and session (:meth:`RelayCore.join`); failures close it with a
  distinct code.
- Frames are checked (version, kind, stream, size) and forwarded as they
  are; before the partner joins, a few are held (then reading pauses).
- A side that closes normally ends the session normally (a terminal's end
  also asks the manager to end the device side, S264); a side that drops
  ends it abnormally and the relay closes the partner.  Every side gets a
  started log when admitted and an end log when it goes.

The legal states, one field each (a session is forgotten once both sides
are ``ended``)::

    session:  waiting ──second side admitted──▶ paired
                 │                                 │
                 └──── a side ends, or the relay ──┴──▶ ending (reason fixed)
                       ends the session (deadline,
                       idle, manager, shutdown)

    side:     joining ──started log written──▶ open ──relay closes it──▶ closing
                 │                               │                          │
                 └───────── connection gone ─────┴──────────────────────────┴──▶ ended

Frames are held only while ``waiting`` and forwarded only while ``paired``.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from typing import Callable

from twisted.internet.defer import Deferred, TimeoutError as DeferTimeout, ensureDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from zope.interface import Interface

from remotecomm.clock import now_us
from remotecomm.relay.envelope import EnvelopeError, check_frame
from remotecomm.relay.gateway import (Admission, AdmissionRefused, EndRequest, IManagerForRelay,
                                      JoinRequest, Refusal)
from remotecomm.tokens import looks_like_token, token_hash

log = Logger()

SIDES = ("device", "terminal")

# Close codes (docs/protocol.md).
CLOSE_NORMAL = 1000
CLOSE_SESSION_ENDED = 4001
CLOSE_BAD_FRAME = 4002
CLOSE_BAD_HANDSHAKE = 4400
CLOSE_TOKEN_REFUSED = 4401
CLOSE_PAIRING_TIMEOUT = 4408
CLOSE_PARTNER_DROPPED = 4410
CLOSE_MAX_LIFETIME = 4411
CLOSE_ADMISSION_TIMEOUT = 4412
CLOSE_IDLE = 4413
CLOSE_VERSION = 4426
CLOSE_ERROR = 4500
CLOSE_SHUTDOWN = 4503

# Every admission refusal a client cannot fix itself -- unknown session, wrong token, the
# other side's token, a used token, a closed join window, a revoked party, a side that has
# joined already -- closes with one code and one reason, so that a guesser learns nothing
# (not even whether a session ID exists); the manager's reason goes to the log and audit.
ADMISSION_REFUSED = "the relay did not admit this connection"

# Session states.
WAITING, PAIRED, ENDING = "waiting", "paired", "ending"
# Side states.
JOINING, OPEN, CLOSING, ENDED = "joining", "open", "closing", "ended"

HOLD_FRAMES = 32
HOLD_BYTES = 256 * 1024
END_GRACE = 10.0
ADMISSION_TIMEOUT = 5.0


class IRelayConnection(Interface):
    """What the core needs of one side's connection."""

    def send(message: bytes) -> None:
        """Send one envelope frame."""

    def close(code: int, reason: str) -> None:
        """Close with a close code and reason."""

    def pause() -> None:
        """Stop reading from this side."""

    def resume() -> None:
        """Read from this side again."""

    def established() -> None:
        """Tell the side it is admitted (S180, S213)."""

    def pair(partner) -> None:
        """From now on, when this side's outgoing buffer is full, stop reading from ``partner``."""


class ISessionLogs(Interface):
    """Where the core writes each side's started and end logs (the relay's durable outbox).

    Both return a Deferred that fires once the log is committed.
    """

    def started(admission: Admission, at_us: int) -> Deferred:
        """The side was admitted (S176, S209)."""

    def ended(admission: Admission, at_us: int, normal: bool, reason: str,
              bytes_from_side: int, bytes_to_side: int, refused_frames: int = 0,
              detail: str | None = None) -> Deferred:
        """The side's connection is gone (S267, S295); ``refused_frames`` and ``detail``
        say what went wrong on it, if anything."""


class _Side:
    __slots__ = ("connection", "admission", "state", "bytes_from_side", "bytes_to_side",
                 "refused_frames", "close_outcome", "close_detail", "partner")

    def __init__(self, connection, admission: Admission):
        self.connection = connection
        self.admission = admission
        self.state = JOINING
        self.bytes_from_side = 0
        self.bytes_to_side = 0
        self.refused_frames = 0
        self.close_outcome: tuple[bool, str] | None = None  # (normal, reason) once CLOSING
        self.close_detail: str | None = None  # the words the relay closed the side with
        self.partner: _Side | None = None  # set at pairing


class _Session:
    __slots__ = ("session_id", "request_id", "state", "end_reason", "sides", "held",
                 "held_bytes", "timers", "traffic_seen")

    def __init__(self, session_id: str, request_id: str):
        self.session_id = session_id
        self.request_id = request_id
        self.state = WAITING
        self.end_reason: str | None = None  # fixed when the session starts ENDING
        self.sides: dict[str, _Side] = {}
        self.held: list[tuple[str, bytes]] = []
        self.held_bytes = 0
        self.timers: dict[str, object] = {}
        self.traffic_seen = False  # a frame passed since the last idle check (not a state)

    def start_ending(self, reason: str) -> bool:
        """Move to ENDING with ``reason``; whether this call did (the first end decides)."""
        if self.state is ENDING:
            return False
        self.state = ENDING
        self.end_reason = reason
        return True


REFUSALS_PER_SOURCE = 10   # refused joins from one address within the window, then shed
CONNECTIONS_PER_SOURCE = 500  # WebSockets open at once from one address (a NAT holds many)
REFUSAL_WINDOW = 60.0
MAX_REFUSING_SOURCES = 10_000


class RefusalCounter:
    """Refused joins per source address within a window (bounded memory: the addresses
    that refused least recently are forgotten first)."""

    def __init__(self, clock: IReactorTime, limit: int = REFUSALS_PER_SOURCE,
                 window: float = REFUSAL_WINDOW, max_sources: int = MAX_REFUSING_SOURCES):
        self._clock = clock
        self.limit = limit
        self.window = window
        self.max_sources = max_sources
        self._times: OrderedDict[str, deque] = OrderedDict()

    def _recent(self, source: str) -> deque | None:
        times = self._times.get(source)
        if times is None:
            return None
        now = self._clock.seconds()
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self._times[source]
            return None
        return times

    def note(self, source: str) -> None:
        """One more refusal from ``source``."""
        times = self._recent(source)
        if times is None:
            times = self._times[source] = deque(maxlen=self.limit)
        times.append(self._clock.seconds())
        self._times.move_to_end(source)
        while len(self._times) > self.max_sources:
            self._times.popitem(last=False)

    def over(self, source: str) -> bool:
        """Whether ``source`` had its fill of refusals within the window."""
        times = self._recent(source)
        return times is not None and len(times) >= self.limit


class RelayCore:
    """Maps session IDs to their two sides, and everything that happens between them."""

    def __init__(self, clock: IReactorTime, gateway: IManagerForRelay, outbox: ISessionLogs, *,
                 end_grace: float = END_GRACE,
                 connections_per_source: int = CONNECTIONS_PER_SOURCE):
        self._clock = clock
        self._connections_per_source = connections_per_source
        self._gateway = gateway
        self._outbox = outbox
        self._end_grace = end_grace
        self.sessions: dict[str, _Session] = {}
        self._by_connection: dict[object, tuple[_Session, str]] = {}
        self._joining: set = set()
        self._abandoned: set = set()
        self.admitting = 0
        self.accepting = True
        # Plain counters, read by the /metrics collector (the hot path only adds to them).
        self.setups = 0
        self.frames_forwarded = 0
        self.bytes_forwarded = {"device": 0, "terminal": 0}  # by the side they came from
        self.refusals = 0
        self.refusals_shed = 0  # connections turned away unexamined: their address guessed
        self._refused_by_source = RefusalCounter(clock)
        self._open_by_source: dict[str, int] = {}
        self.on_admitted: Callable[[float], None] = lambda seconds: None

    # -- joining ----------------------------------------------------------------------

    def refuse(self, connection, close_code: int, audit_code: str, reason: str,
               session_id: str | None, side: str, source: str) -> None:
        """A side refused before any token check (version, headers): audited."""
        connection.close(close_code, reason)
        self.refused_before_upgrade(audit_code, session_id, side, source)

    def shed(self, source: str) -> bool:
        """Whether a new connection from ``source`` is turned away before its handshake is
        examined: it was refused :data:`REFUSALS_PER_SOURCE` times within the window
        (guessing is slowed to that rate; nothing more reaches the manager or the audit),
        or it holds as many open as allowed already (``[relay] max_connections_per_address``,
        :data:`CONNECTIONS_PER_SOURCE` by default)."""
        if self._refused_by_source.over(source) or \
                self._open_by_source.get(source, 0) >= self._connections_per_source:
            self.refusals_shed += 1
            return True
        return False

    def source_opened(self, source: str) -> None:
        """A WebSocket from ``source`` opened (counted until it closes)."""
        self._open_by_source[source] = self._open_by_source.get(source, 0) + 1

    def source_closed(self, source: str) -> None:
        """A WebSocket from ``source`` closed."""
        left = self._open_by_source.get(source, 0) - 1
        if left > 0:
            self._open_by_source[source] = left
        else:
            self._open_by_source.pop(source, None)

    def refused_before_upgrade(self, audit_code: str, session_id: str | None, side: str,
                               source: str) -> None:
        """A side refused before it became a WebSocket at all (a browser's Origin: the HTTP
        handshake was answered 403): counted and audited like every refusal."""
        self.refusals += 1
        self._refused_by_source.note(source)
        log.info("{side} refused at the handshake: {code}", side=side, code=audit_code)
        self._audit(Refusal(code=audit_code, session_id=session_id, side=side,
                            source_address=source))

    def _audit(self, refusal: Refusal) -> None:
        ensureDeferred(self._gateway.record_refusal(refusal)).addErrback(
            lambda f: log.failure("auditing a refused admission failed", f))

    def join(self, connection, session_id: str, side: str, token: str,
             source: str) -> Deferred:
        """S172–S180 / S204–S214: check the token with the manager, then admit or close."""
        return ensureDeferred(self._join(connection, session_id, side, token, source))

    async def _join(self, connection, session_id, side, token, source) -> None:
        started = self._clock.seconds()
        if not self.accepting:
            connection.close(CLOSE_SHUTDOWN, "the relay is shutting down")
            return
        if not looks_like_token(token):
            # Not one of ours: refused here, so that it never reaches the manager.
            self.refusals += 1
            self._refused_by_source.note(source)
            log.info("{side} refused for session {session_id}: wrong-token", side=side,
                     session_id=session_id)
            connection.close(CLOSE_TOKEN_REFUSED, ADMISSION_REFUSED)
            self._audit(Refusal(code="wrong-token", session_id=session_id, side=side,
                                source_address=source))
            return
        self.admitting += 1
        self._joining.add(connection)
        try:
            d = ensureDeferred(self._gateway.authenticate(JoinRequest(
                session_id=session_id, side=side, token_hash=token_hash(token),
                source_address=source)))
            d.addTimeout(ADMISSION_TIMEOUT, self._clock)
            admission = await d
        except AdmissionRefused as e:
            self.refusals += 1
            self._refused_by_source.note(source)
            log.info("{side} refused for session {session_id}: {code}", side=side,
                     session_id=session_id, code=e.code)
            connection.close(CLOSE_TOKEN_REFUSED, ADMISSION_REFUSED)
            return
        except Exception as e:
            log.error("admission of {side} failed: {error}", side=side, error=repr(e))
            connection.close(CLOSE_ADMISSION_TIMEOUT if isinstance(e, DeferTimeout)
                             else CLOSE_ERROR, "the relay could not check the token")
            return
        finally:
            self.admitting -= 1
            self._joining.discard(connection)
            gone = connection in self._abandoned
            self._abandoned.discard(connection)
        if gone:
            # It went away while the manager checked its token: nothing to admit.
            log.info("{side} of session {session_id} left during admission", side=side,
                     session_id=session_id)
            return
        if (admission.session_id, admission.side) != (session_id, side):
            log.error("the manager admitted {side} of {session_id} for another session",
                      side=side, session_id=session_id)
            connection.close(CLOSE_ERROR, "the relay could not check the token")
            return
        await self._admit(connection, admission)
        self.on_admitted(self._clock.seconds() - started)

    async def _admit(self, connection, admission: Admission) -> None:
        session = self.sessions.get(admission.session_id)
        if session is None:
            session = self.sessions[admission.session_id] = _Session(admission.session_id,
                                                                     admission.request_id)
        if session.state is ENDING:
            connection.close(CLOSE_SESSION_ENDED, "the session has ended")
            return
        if admission.side in session.sides:
            log.info("{side} of session {session_id} joined already: refused",
                     side=admission.side, session_id=admission.session_id)
            connection.close(CLOSE_TOKEN_REFUSED, ADMISSION_REFUSED)
            return
        side = session.sides[admission.side] = _Side(connection, admission)
        self._by_connection[connection] = (session, admission.side)
        await self._outbox.started(admission, now_us(self._clock))
        if side.state is ENDED:  # it went away while the log was being written
            return
        if session.state is ENDING:  # the session ended while the log was being written
            self._close(session, admission.side, CLOSE_SESSION_ENDED, "the session has ended",
                        False, session.end_reason)
            return
        side.state = OPEN
        connection.established()
        log.info("{side} side of session {request_id} established", side=admission.side,
                 request_id=admission.request_id)
        if len(session.sides) == 2 and all(s.state is OPEN for s in session.sides.values()):
            self._pair(session)
        else:
            self._arm(session, "pairing", admission.pairing_deadline_us, self._pairing_expired)
        self._arm(session, "lifetime", admission.lifetime_deadline_us, self._lifetime_over)

    def _arm(self, session: _Session, name: str, deadline_us: int, fire: Callable) -> None:
        if name in session.timers:
            return
        delay = max(0.0, (deadline_us - now_us(self._clock)) / 1_000_000)
        session.timers[name] = self._clock.callLater(delay, fire, session)

    def _disarm(self, session: _Session, name: str) -> None:
        call = session.timers.pop(name, None)
        if call is not None and call.active():
            call.cancel()

    def _pair(self, session: _Session) -> None:
        self._disarm(session, "pairing")
        self.setups += 1
        device, terminal = session.sides["device"], session.sides["terminal"]
        device.partner, terminal.partner = terminal, device
        session.state = PAIRED
        held, session.held, session.held_bytes = session.held, [], 0
        for from_side, message in held:
            self._forward(session.sides[from_side], message)
        idle_us = device.admission.idle_timeout_us
        if idle_us:
            session.timers["idle"] = self._clock.callLater(idle_us / 1_000_000, self._idle_check,
                                                           session, idle_us / 1_000_000)
        device.connection.pair(terminal.connection)
        terminal.connection.pair(device.connection)
        for side in session.sides.values():
            side.connection.resume()
        log.info("session {request_id} paired", request_id=session.request_id)

    # -- forwarding -------------------------------------------------------------------

    def received(self, connection, message: bytes) -> None:
        """A frame from a side: check it, then forward it (or hold it until pairing)."""
        entry = self._by_connection.get(connection)
        if entry is None:
            connection.close(CLOSE_BAD_FRAME, "frame before admission")
            return
        session, side_name = entry
        try:
            check_frame(message)
        except EnvelopeError as e:
            session.sides[side_name].refused_frames += 1
            self._close(session, side_name, CLOSE_BAD_FRAME, f"bad frame: {e}", False, "error")
            return
        side = session.sides[side_name]
        side.bytes_from_side += len(message)
        session.traffic_seen = True
        if session.state is PAIRED:
            self._forward(side, message)
            return
        if session.state is ENDING:
            return  # the session is over: nothing more goes anywhere
        session.held.append((side_name, message))
        session.held_bytes += len(message)
        if len(session.held) >= HOLD_FRAMES or session.held_bytes >= HOLD_BYTES:
            connection.pause()

    def _forward(self, side: _Side, message: bytes) -> None:
        partner = side.partner
        partner.bytes_to_side += len(message)
        self.frames_forwarded += 1
        self.bytes_forwarded[side.admission.side] += len(message)
        partner.connection.send(message)

    # -- ends -------------------------------------------------------------------------

    def closed(self, connection, normal_request: bool, lost_reason: str | None = None) -> None:
        """A side's connection is gone; ``normal_request``: it closed with 1000 itself;
        ``lost_reason``: why it was lost when the relay knows (``heartbeat-timeout``)."""
        entry = self._by_connection.pop(connection, None)
        if entry is None:
            if connection in self._joining:
                self._abandoned.add(connection)
            return
        session, side_name = entry
        side = session.sides[side_name]
        partner_name = "terminal" if side_name == "device" else "device"
        partner = session.sides.get(partner_name)
        if side.close_outcome is not None:
            normal, reason = side.close_outcome
        elif normal_request and side_name == "device" and session.state is not ENDING:
            # S291: the device ended first (its operator pressed End): not the terminal.
            normal, reason = True, "ended-by-device"
        elif normal_request:
            normal, reason = True, "normal"
        else:
            normal, reason = False, lost_reason or f"dropped-{side_name}"
        first_end = session.start_ending(reason)
        self._end_log(side, normal, reason)
        if first_end:
            if partner is not None and partner.state is not ENDED:
                if normal and side_name == "terminal":
                    self._request_device_end(session)
                elif normal:
                    self._close(session, partner_name, CLOSE_SESSION_ENDED,
                                "ended-by-device: the device's operator ended the session",
                                True, reason)
                else:
                    self._close(session, partner_name, CLOSE_PARTNER_DROPPED,
                                f"the {side_name} side dropped", False, reason)
        if all(s.state is ENDED for s in session.sides.values()):
            self._forget(session)

    def _request_device_end(self, session: _Session) -> None:
        """S264: the terminal ended normally; the manager asks the device (S265)."""
        def manager_failed(failure) -> None:
            # The manager cannot tell the device (it is down or unreachable): the relay
            # ends the device's side itself, still as the normal end the terminal asked for.
            log.warn("asking the manager to end {request_id} failed ({error}); the relay "
                     "ends the device side itself", request_id=session.request_id,
                     error=failure.getErrorMessage())
            if self._device_still_there(session):
                self._close(session, "device", CLOSE_SESSION_ENDED, "the terminal ended "
                            "the session", True, "normal")

        ensureDeferred(self._gateway.end_session(EndRequest(
            session_id=session.session_id, request_id=session.request_id,
            side="terminal"))).addErrback(manager_failed)

        def too_late(session: _Session) -> None:
            session.timers.pop("end-grace", None)
            if self._device_still_there(session):
                self._close(session, "device", CLOSE_SESSION_ENDED,
                            "the session ended (device did not close in time)", False, "error")

        session.timers["end-grace"] = self._clock.callLater(self._end_grace, too_late, session)

    @staticmethod
    def _device_still_there(session: _Session) -> bool:
        device = session.sides.get("device")
        return device is not None and device.state is not ENDED

    def _close(self, session: _Session, side_name: str, code: int, reason: str, normal: bool,
               log_reason: str) -> None:
        side = session.sides[side_name]
        if side.close_outcome is None:
            side.close_outcome = (normal, log_reason)
            side.close_detail = reason[:200]
            side.state = CLOSING
        side.connection.close(code, reason)

    def _end_log(self, side: _Side, normal: bool, reason: str) -> None:
        if side.state is ENDED:
            return
        side.state = ENDED
        a = side.admission
        self._outbox.ended(a, now_us(self._clock), normal, reason, side.bytes_from_side,
                           side.bytes_to_side, side.refused_frames,
                           side.close_detail).addErrback(
            lambda f: log.failure("writing the end log of {request_id} failed", f,
                                  request_id=a.request_id))
        log.info("{side} side of session {request_id} ended ({reason})", side=a.side,
                 request_id=a.request_id, reason=reason)

    def _forget(self, session: _Session) -> None:
        for name in list(session.timers):
            self._disarm(session, name)
        self.sessions.pop(session.session_id, None)

    def _pairing_expired(self, session: _Session) -> None:
        session.timers.pop("pairing", None)
        if session.state is not PAIRED:
            for name in list(session.sides):
                self._close(session, name, CLOSE_PAIRING_TIMEOUT,
                            "the other side did not join in time", False, "expired")

    def _idle_check(self, session: _Session, period: float) -> None:
        """Every idle period: a session that forwarded nothing for a whole period ends.

        A flag set per frame keeps the forwarding path free of clock reads; a
        session ends after one to two idle periods without traffic.
        """
        session.timers.pop("idle", None)
        if session.traffic_seen:
            session.traffic_seen = False
            session.timers["idle"] = self._clock.callLater(period, self._idle_check, session,
                                                           period)
            return
        self._end_all(session, CLOSE_IDLE, "the session was idle too long", "idle-timeout")

    def _lifetime_over(self, session: _Session) -> None:
        session.timers.pop("lifetime", None)
        self._end_all(session, CLOSE_MAX_LIFETIME, "the session reached its maximum lifetime",
                      "max-lifetime")

    def _end_all(self, session: _Session, code: int, message: str, reason: str,
                 normal: bool = False) -> None:
        session.start_ending(reason)
        for name, side in session.sides.items():
            if side.state is not ENDED:
                self._close(session, name, code, message, normal, reason)

    def end_session(self, session_id: str, reason: str) -> bool:
        """The manager ends a session (its user ended it elsewhere: ``normal``; revoked,
        cancelled): close both sides with ``reason``.

        Whether this relay had any side of that session connected.
        """
        session = self.sessions.get(session_id)
        if session is None:
            return False
        log.info("session {request_id} ended by the manager: {reason}",
                 request_id=session.request_id, reason=reason)
        self._end_all(session, CLOSE_SESSION_ENDED, f"the session was ended ({reason})", reason,
                      normal=reason == "normal")
        return True

    def shutdown(self) -> None:
        """SIGTERM: admit nobody, end every session as "shutdown" (logs written now)."""
        self.accepting = False
        for session in list(self.sessions.values()):
            session.start_ending("shutdown")
            for side in list(session.sides.values()):
                if side.state is ENDED:
                    continue
                self._end_log(side, False, "shutdown")
                side.connection.close(CLOSE_SHUTDOWN, "the relay is shutting down")
            self._forget(session)
        self._by_connection.clear()

    def connection_count(self) -> int:
        """Admitted connections."""
        return len(self._by_connection)
