"""The agent downloads a firmware job's image from the manager (S125).

The job request names a one-time HTTPS reference (URL and token) with the
image's SHA-256 and size.  :class:`ImageFetcher` streams the image into a
partial file in the agent's data folder, hashing it as it arrives, never
taking more bytes than announced; a connection that breaks or stalls is
resumed with ``Range`` from the last byte received (a few times, with a
pause, never past the job's deadline).  The complete file is verified
against the SHA-256 before the device may take it; a wrong one is deleted
and reported as ``checksum-mismatch``.  Refusals by the manager (a used or
expired reference) are not retried.  Progress is reported in percent.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Callable

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.protocol import Protocol
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.web.client import Agent, HTTPConnectionPool, ResponseDone
from twisted.web.http_headers import Headers

from remotecomm.clock import now_us
from remotecomm.maintenance.messages import FirmwareImage
from remotecomm.tls import https_policy

log = Logger()

MAX_ATTEMPTS = 5         # connections per download (the first and its resumptions)
RETRY_PAUSE = 2.0        # seconds between them
ANSWER_TIMEOUT = 30.0    # for the manager's answer head
STALL_TIMEOUT = 30.0     # for the next bytes of the image
MAX_ERROR_BODY = 4096


class FetchFailed(Exception):
    """The image could not be had: ``code`` is the job's error code."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


class _ImageBody(Protocol):
    """Receives one answer's body into ``sink``: at most ``limit`` bytes, and never a pause
    of more than :data:`STALL_TIMEOUT` between them.  ``done`` fires ``True`` when the
    body ended complete."""

    def __init__(self, sink: Callable[[bytes], None], limit: int, clock: IReactorTime):
        self._sink = sink
        self._limit = limit
        self._clock = clock
        self._stall = None
        self.received = 0
        self.problem: str | None = None
        self.done: Deferred = Deferred()

    def connectionMade(self) -> None:
        self._stall = self._clock.callLater(STALL_TIMEOUT, self._stop, "the download stalled")

    def _stop(self, problem: str) -> None:
        self.problem = problem
        self.transport.stopProducing()

    def dataReceived(self, data: bytes) -> None:
        if self.problem is not None:
            return
        if self.received + len(data) > self._limit:
            self._stop("the manager sent more than the image's size")
            return
        self.received += len(data)
        self._sink(data)
        if self._stall is not None and self._stall.active():
            self._stall.reset(STALL_TIMEOUT)

    def connectionLost(self, reason) -> None:
        if self._stall is not None and self._stall.active():
            self._stall.cancel()
        self.done.callback(self.problem is None and reason.check(ResponseDone) is not None)


class _ErrorBody(Protocol):
    def __init__(self):
        self.data = b""
        self.done: Deferred = Deferred()

    def dataReceived(self, data: bytes) -> None:
        if len(self.data) < MAX_ERROR_BODY:
            self.data += data[:MAX_ERROR_BODY - len(self.data)]

    def connectionLost(self, reason) -> None:
        self.done.callback(self.data)


class ImageFetcher:
    """Downloads, resumes and verifies firmware images into ``folder``."""

    def __init__(self, reactor, folder: Path, ca_certificate: Path | None,
                 clock: IReactorTime | None = None):
        self._reactor = reactor
        self._clock = clock or reactor
        self.folder = folder
        self._ca = ca_certificate
        self._agent = None

    def clear(self) -> None:
        """Drop images left by an earlier run (their jobs are not run again)."""
        if self.folder.exists():
            for leftover in self.folder.iterdir():
                leftover.unlink(missing_ok=True)

    def path_of(self, job_id: str) -> Path:
        """Where a job's verified image lies."""
        return self.folder / f"{job_id}.bin"

    def discard(self, job_id: str) -> None:
        """The job is over: its image goes."""
        self.path_of(job_id).unlink(missing_ok=True)
        (self.folder / f"{job_id}.part").unlink(missing_ok=True)

    def _http(self) -> Agent:
        if self._agent is None:
            self._agent = Agent(self._reactor, contextFactory=https_policy(self._ca),
                                connectTimeout=ANSWER_TIMEOUT,
                                pool=HTTPConnectionPool(self._reactor, persistent=False))
        return self._agent

    async def fetch(self, job_id: str, image: Callable[[], FirmwareImage], deadline_us: int,
                    progress: Callable[[int], None]) -> Path:
        """Download job ``job_id``'s image (``image()`` is its latest reference) by
        ``deadline_us``; the verified file, or :class:`FetchFailed`."""
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        partial = self.folder / f"{job_id}.part"
        size = image().size
        hasher = hashlib.sha256()
        have = 0
        with open(partial, "wb") as file:
            def take(data: bytes) -> None:
                nonlocal have
                file.write(data)
                hasher.update(data)
                have += len(data)
                progress(have * 100 // size)

            def start_over() -> None:  # the manager sent the whole image again
                nonlocal hasher, have
                file.seek(0)
                file.truncate()
                hasher, have = hashlib.sha256(), 0

            for attempt in range(1, MAX_ATTEMPTS + 1):
                if now_us(self._clock) >= deadline_us:
                    break
                try:
                    await self._one_answer(image(), have, size, take, start_over)
                except FetchFailed:
                    partial.unlink(missing_ok=True)
                    raise
                except Exception as e:
                    log.info("job {job_id}: download attempt {attempt} failed: {error}",
                             job_id=job_id, attempt=attempt, error=str(e) or type(e).__name__)
                if have == size:
                    break
                await deferLater(self._clock, RETRY_PAUSE, lambda: None)
        if have != size:
            partial.unlink(missing_ok=True)
            raise FetchFailed("download-failed", f"got {have} of {size} bytes of the image")
        if hasher.hexdigest() != image().sha256:
            partial.unlink(missing_ok=True)
            raise FetchFailed("checksum-mismatch", "the image's SHA-256 is not the one the "
                                                   "job names; it was not installed")
        os.replace(partial, self.path_of(job_id))
        log.info("job {job_id}: firmware {version} downloaded and verified ({size} bytes)",
                 job_id=job_id, version=image().version, size=size)
        return self.path_of(job_id)

    async def _one_answer(self, image: FirmwareImage, have: int, size: int,
                          take: Callable[[bytes], None], start_over: Callable[[], None]) -> None:
        """One request for the rest of the image (all of it, if the answer is whole)."""
        headers = Headers({b"authorization": [b"Bearer " + image.token.encode("ascii")]})
        if have:
            headers.addRawHeader(b"range", b"bytes=%d-" % have)
        request = self._http().request(b"GET", image.url.encode("ascii"), headers)
        timer = self._clock.callLater(ANSWER_TIMEOUT, request.cancel)
        try:
            response = await request
        finally:
            if timer.active():
                timer.cancel()
        if response.code == 206:
            content_range = (response.headers.getRawHeaders(b"content-range") or [b""])[0]
            if not content_range.startswith(b"bytes %d-" % have):
                raise FetchFailed("download-failed", "the manager resumed at the wrong place")
        elif response.code == 200:
            if have:
                start_over()
                have = 0
        else:
            body = _ErrorBody()
            response.deliverBody(body)
            text = (await body.done).decode("utf-8", "replace")
            if response.code >= 500:
                raise OSError(f"HTTP {response.code}")
            raise FetchFailed("download-failed", f"the manager refused the download: HTTP "
                                                 f"{response.code} {text.strip()[:200]}")
        receiver = _ImageBody(take, size - have, self._clock)
        response.deliverBody(receiver)
        await receiver.done
