"""The agent's side of a session in the relay (S171–S180, S291–S299).

When the manager's session-ready arrives (S149) the agent joins the relay's
device endpoint with the session ID and the device token, and once
established sends its hello.  Streams the terminal opens are served from
the session's approved app (``remotecomm.device.http_streams``).  When the
manager asks it to end the session (S265/S291) it closes its connection
normally (S292); the relay writes the device side's end log.
"""

from __future__ import annotations

from pathlib import Path

from twisted.internet.defer import ensureDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from remotecomm.clock import now_us
from remotecomm.device.history import History
from remotecomm.device.http_streams import HttpStreams, app_origin
from remotecomm.relay import envelope as env
from remotecomm.relay.client import RelayClient
from remotecomm.sessions.messages import SessionReady

log = Logger()

MAX_LINKS = 32


class RelayLinks:
    """The agent's relay connections, one per session."""

    def __init__(self, reactor, clock: IReactorTime, ca_certificate: Path, history: History,
                 hello: dict, apps: dict[str, str]):
        self._reactor = reactor
        self._apps = apps
        self._clock = clock
        self._ca = ca_certificate
        self._history = history
        self._hello = hello
        self.links: dict[str, RelayClient] = {}
        self.joined_us: dict[str, int] = {}  # sessions whose device side is established
        # S313 (push): told what the device saw of a session when its side ends.
        self.on_ended = lambda request_id, **seen: None
        self.firmware_version = lambda: None  # what the device's panel last said

    def join(self, ready: SessionReady) -> None:
        """S171/S172: join the relay for an approved session."""
        if ready.request_id in self.links or len(self.links) >= MAX_LINKS:
            return
        counted = {"to_device": 0, "from_device": 0}

        def send(message: bytes) -> None:
            counted["from_device"] += len(message)
            client.send(message)

        def received(message: bytes) -> None:
            counted["to_device"] += len(message)
            self._frame(streams, ready, message)

        streams = HttpStreams(self._reactor, self._clock, ready.session_id, ready.app_id,
                              self._apps, send)
        client = RelayClient(self._reactor, ready.relay_url, "device", ready.session_id,
                             ready.token, self._ca, received)
        client.counted = counted
        self.links[ready.request_id] = client
        ensureDeferred(self._run(client, streams, ready)).addErrback(
            lambda f: log.failure("relay link of {request_id} failed", f,
                                  request_id=ready.request_id))

    async def _run(self, client: RelayClient, streams: HttpStreams,
                   ready: SessionReady) -> None:
        try:
            await client.connect()
        except Exception as e:
            log.warn("could not join the relay for {request_id}: {error}",
                     request_id=ready.request_id, error=str(e))
            self._history.append("relay-failed", now_us(self._clock),
                                 request_id=ready.request_id, error=str(e)[:200])
            self.links.pop(ready.request_id, None)
            return
        log.info("joined the relay for {request_id} (session {session_id})",
                 request_id=ready.request_id, session_id=ready.session_id)
        self.joined_us[ready.request_id] = now_us(self._clock)
        self._history.append("relay-joined", now_us(self._clock), request_id=ready.request_id,
                             session_id=ready.session_id,
                             agent_version=self._hello.get("agent_version", "unknown"),
                             firmware_version=self.firmware_version())
        hello = dict(self._hello, app=ready.app_id)
        if ready.app_id in self._apps:
            # The terminal rewrites Location headers pointing at this origin.
            hello["app_origin"] = app_origin(self._apps[ready.app_id])
        client.send(env.encode_hello(hello))
        ended = await client.closed
        streams.close()
        self.links.pop(ready.request_id, None)
        started_us = self.joined_us.pop(ready.request_id, None)
        log.info("relay link of {request_id} ended: {code} {reason}",
                 request_id=ready.request_id, code=ended.code, reason=ended.reason)
        ended_us = now_us(self._clock)
        self._history.append("relay-ended", ended_us, request_id=ready.request_id,
                             code=ended.code, reason=ended.reason[:200])
        self.on_ended(ready.request_id, started_us=started_us or ended_us, ended_us=ended_us,
                      end_code=ended.code or 1006,
                      end_reason=(ended.reason or ("normal" if ended.code == 1000
                                                   else "dropped"))[:200],
                      bytes_to_device=client.counted["to_device"],
                      bytes_from_device=client.counted["from_device"],
                      app_version=streams.app_server,
                      errors=streams.errors)

    def _frame(self, streams: HttpStreams, ready: SessionReady, message: bytes) -> None:
        try:
            frame = env.decode(message)
        except env.EnvelopeError as e:
            log.warn("bad frame in {request_id}: {error}", request_id=ready.request_id,
                     error=str(e))
            streams.bad_frame(e)
            return
        if frame.kind == env.HELLO:
            log.info("terminal hello in {request_id}: {info}", request_id=ready.request_id,
                     info=frame.info)
        else:
            streams.frame(frame)

    def end(self, request_id: str) -> bool:
        """S292: end the device side of a session normally; whether it was connected."""
        client = self.links.get(request_id)
        if client is None:
            return False
        client.end()
        return True

    def end_by_operator(self, request_id: str, operator: str) -> bool:
        """S291: the device's operator ends a running session (the relay then ends the
        terminal side: ``ended-by-device``); whether it was running."""
        if request_id not in self.joined_us:
            return False
        self._history.append("ended-by-operator", now_us(self._clock), request_id=request_id,
                             operator=operator)
        log.info("operator {operator} ends session {request_id} on the device",
                 operator=operator, request_id=request_id)
        return self.end(request_id)
