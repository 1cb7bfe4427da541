"""Live updates for portal pages by Server-Sent Events.

A page that follows something (a session waiting for its operator, the
unit's open sessions) says so (``data-watch``); ``portal.js`` opens
``/portal/events?watch=…`` and reloads the page when the stream says
``change``.  The server looks at what is watched once a second, through the
same services as the page, and compares a fingerprint of it; the page
itself is always rendered by the server, so live pages need no logic of
their own in the browser.

Bounds: streams per user and in all, each stream's lifetime (the browser's
EventSource reconnects), a comment now and then so that idle proxies keep
it open.
"""

from __future__ import annotations

from typing import Awaitable, Callable

from twisted.internet.defer import ensureDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.web import server

from remotecomm.service_errors import ServiceError

log = Logger()

CHECK_INTERVAL = 1.0
KEEPALIVE = 15.0
LIFETIME = 600.0
MAX_PER_USER = 8
MAX_STREAMS = 500
RETRY_MS = 2000

Fingerprint = Callable[[], Awaitable[str]]


class TooManyStreams(ServiceError):
    """A user (or everyone together) holds as many live streams as allowed."""


class LiveUpdates:
    """The open event streams of one portal."""

    def __init__(self, clock: IReactorTime, interval: float = CHECK_INTERVAL,
                 lifetime: float = LIFETIME, per_user: int = MAX_PER_USER,
                 total: int = MAX_STREAMS):
        self._clock = clock
        self._interval = interval
        self._lifetime = lifetime
        self._per_user = per_user
        self._total = total
        self._streams: dict[str, int] = {}

    @property
    def open_streams(self) -> int:
        return sum(self._streams.values())

    async def stream(self, request: server.Request, user_id: str,
                     fingerprint: Fingerprint, seen: str | None = None) -> None:
        """Answer ``request`` with an event stream that says ``change`` (and ends) once
        ``fingerprint`` gives something else than ``seen`` (what the page showed; by
        default what it gives first)."""
        if (self._streams.get(user_id, 0) >= self._per_user
                or self.open_streams >= self._total):
            raise TooManyStreams(429, "too-many-streams", "too many live pages are open")
        first = seen if seen is not None else await fingerprint()
        self._streams[user_id] = self._streams.get(user_id, 0) + 1
        _Stream(self, request, user_id, fingerprint, first).start()

    def _closed(self, user_id: str) -> None:
        left = self._streams.get(user_id, 0) - 1
        if left > 0:
            self._streams[user_id] = left
        else:
            self._streams.pop(user_id, None)


class _Stream:
    def __init__(self, owner: LiveUpdates, request: server.Request, user_id: str,
                 fingerprint: Fingerprint, first: str):
        self._owner = owner
        self._request = request
        self._user_id = user_id
        self._fingerprint = fingerprint
        self._last = first
        self._checking = False
        self._done = False
        self._clock = owner._clock
        self._opened = self._written = self._clock.seconds()
        self._loop = LoopingCall(self._tick)
        self._loop.clock = self._clock

    def start(self) -> None:
        request = self._request
        request.setHeader(b"content-type", b"text/event-stream; charset=utf-8")
        request.setHeader(b"cache-control", b"no-store")
        request.setHeader(b"x-accel-buffering", b"no")
        request.channel.setTimeout(None)  # the stream has its own lifetime
        request.notifyFinish().addBoth(lambda _: self._stop())
        request.write(f"retry: {RETRY_MS}\n\n".encode())
        # The first look at once: what the page shows may have changed before it asked.
        self._loop.start(self._owner._interval, now=True)

    def _tick(self) -> None:
        now = self._clock.seconds()
        if now - self._opened >= self._owner._lifetime:
            self._finish()
            return
        if now - self._written >= KEEPALIVE:
            self._write(b": still here\n\n")
        if not self._checking:
            self._checking = True
            ensureDeferred(self._check())

    async def _check(self) -> None:
        try:
            now = await self._fingerprint()
        except ServiceError as e:
            if e.status != 503:  # busy: look again next time; gone: say so and end
                self._write(b"event: change\ndata: gone\n\n")
                self._finish()
            return
        except Exception:
            log.failure("a live page's check failed")
            self._finish()
            return
        finally:
            self._checking = False
        if now != self._last and not self._done:
            self._last = now
            self._write(b"event: change\ndata: \n\n")
            self._finish()

    def _write(self, data: bytes) -> None:
        if not self._done:
            self._request.write(data)
            self._written = self._clock.seconds()

    def _finish(self) -> None:
        if not self._done:
            self._stop()
            self._request.finish()

    def _stop(self) -> None:
        if self._done:
            return
        self._done = True
        if self._loop.running:
            self._loop.stop()
        self._owner._closed(self._user_id)
