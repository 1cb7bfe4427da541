"""Maintenance jobs on the device (S121–S125): the agent's part.

The manager's job request is acknowledged at once and kept for the device's
panel, which takes it over the panel channel (``GET /v1/jobs``), runs it and
reports the outcome (``POST /v1/jobs/{job_id}``); the agent records it in the
device's history, then sends the result to the manager (retried like the
operator's answers).  A ``restart`` the panel reports done also drops the
agent's links (its sessions end, its XMPP stream goes for a few seconds), so
its result reaches the manager once the device is back.  A job ID runs at most once: a
request for a job that finished is answered with its result again; one the agent had
taken before it restarted, without a result, is answered as failed (it may have run).

A ``firmware`` job is downloaded first (:mod:`remotecomm.device.firmware`,
progress sent to the manager as it goes); only a verified image is offered
to the panel, which reads it over the panel channel (``GET
/v1/jobs/{job_id}/image``), reports its install progress (``POST
/v1/jobs/{job_id}/progress``) and its outcome; a done install restarts the
device like a ``restart`` job.  A repeated request for a firmware job being
downloaded brings a fresh reference, which the download takes from then on.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from typing import Callable

from twisted.internet.defer import ensureDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from remotecomm.clock import now_us
from remotecomm.device.firmware import FetchFailed, ImageFetcher
from remotecomm.device.history import History
from remotecomm.maintenance.messages import (ERROR_CODES, MAX_RESULT_BYTES, JobProgress, JobRequest,
                                             JobResult)
from remotecomm.sessions.messages import MessageRefused

log = Logger()

MAX_PENDING_JOBS = 32
MAX_REMEMBERED = 1000  # finished jobs whose results the agent can send again
PROGRESS_EVERY = 1.0   # seconds between progress reports of one job (100 % always goes)
RESTARTING_ACTIONS = ("restart", "firmware")


class JobError(Exception):
    """A panel's report the agent cannot take: ``code`` says why."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


class AgentJobs:
    """Jobs from the manager, waiting for the panel; results back to the manager."""

    def __init__(self, clock: IReactorTime, history: History,
                 send: Callable[[str, object], object], fetcher: ImageFetcher | None = None):
        self._clock = clock
        self._history = history
        self._send = send
        self._fetcher = fetcher
        self._pending: OrderedDict[str, tuple[str, JobRequest]] = OrderedDict()
        self._downloaded: set[str] = set()       # firmware jobs whose image is ready
        self._progress_sent: dict[str, tuple[float, JobProgress]] = {}
        self._finished: OrderedDict[str, JobResult] = OrderedDict()
        self._taken_before: set[str] = set()
        # A restart job the panel reports done: drop the device's links for a few seconds
        # (the result goes out once the agent's link is back).
        self.on_restart: Callable[[], None] = lambda: None
        self._load()
        if fetcher is not None:
            fetcher.clear()

    def _load(self) -> None:
        """What the history says of earlier jobs: results to repeat, jobs taken and lost."""
        for event in self._history.events():
            kind = event.get("event")
            if kind == "job-received":
                self._taken_before.add(event.get("job_id"))
            elif kind == "job-finished":
                try:
                    result = JobResult(event["job_id"], event["outcome"], event["at_us"],
                                       event.get("error_code"), event.get("error"),
                                       event.get("result"))
                except (KeyError, ValueError):
                    continue
                self._remember(result)

    def _remember(self, result: JobResult) -> None:
        self._finished[result.job_id] = result
        self._taken_before.discard(result.job_id)
        while len(self._finished) > MAX_REMEMBERED:
            self._finished.popitem(last=False)

    def on_request(self, component: str, request: JobRequest) -> None:
        """The manager's job request: keep it for the panel (or answer a repeat)."""
        if request.job_id in self._pending:
            if request.action == "firmware":
                self._pending[request.job_id] = (component, request)  # its newest reference
            return
        if request.job_id in self._finished:
            self._send(component, self._finished[request.job_id])
            return
        if request.job_id in self._taken_before:
            self._finish(component, JobResult(
                request.job_id, "failed", now_us(self._clock), "device-error",
                "the agent restarted while this job ran; it is not run twice"))
            return
        if len(self._pending) >= MAX_PENDING_JOBS:
            raise MessageRefused("busy", "too many jobs are waiting")
        self._history.append("job-received", now_us(self._clock), job_id=request.job_id,
                             action=request.action, key=request.key)
        self._taken_before.add(request.job_id)
        self._pending[request.job_id] = (component, request)
        if request.action == "firmware":
            if self._fetcher is None:
                del self._pending[request.job_id]
                self._finish(component, JobResult(
                    request.job_id, "failed", now_us(self._clock), "unknown-action",
                    "this agent installs no firmware"))
                return
            ensureDeferred(self._download(request.job_id)).addErrback(
                lambda f: log.failure("job {job_id}: download", f, job_id=request.job_id))
            return
        log.info("job {job_id}: {action} for the panel", job_id=request.job_id,
                 action=request.action)

    async def _download(self, job_id: str) -> None:
        """Fetch a firmware job's image; then the panel may take the job."""
        request = self._pending[job_id][1]
        log.info("job {job_id}: downloading firmware {version} ({size} bytes)", job_id=job_id,
                 version=request.image_version, size=request.image_size)
        try:
            await self._fetcher.fetch(job_id, lambda: self._pending[job_id][1].image
                                      if job_id in self._pending else request.image,
                                      request.deadline_us,
                                      lambda percent: self._progress(job_id, "download",
                                                                     percent))
        except FetchFailed as e:
            entry = self._pending.pop(job_id, None)
            if entry is not None:
                self._finish(entry[0], JobResult(job_id, "failed", now_us(self._clock),
                                                 e.code, e.message[:200]))
            return
        if job_id not in self._pending:  # expired while it downloaded
            self._fetcher.discard(job_id)
            return
        self._downloaded.add(job_id)
        log.info("job {job_id}: firmware ready for the panel", job_id=job_id)

    def _progress(self, job_id: str, phase: str, percent: int) -> None:
        """Tell the manager how far a job is: forward only, at most once a second within a
        phase (a new phase and 100 % always go)."""
        entry = self._pending.get(job_id)
        if entry is None:
            return
        at = self._clock.seconds()
        last = self._progress_sent.get(job_id)
        progress = JobProgress(job_id, phase, percent)
        if last is not None and (progress.rank <= last[1].rank or (
                percent < 100 and phase == last[1].phase and at - last[0] < PROGRESS_EVERY)):
            return
        self._progress_sent[job_id] = (at, progress)
        self._send(entry[0], progress)

    def install_progress(self, job_id: str, percent: int) -> None:
        """The panel's progress installing a firmware job's image."""
        if job_id not in self._downloaded or job_id not in self._pending:
            raise JobError("unknown-job", "no such firmware job is installing")
        self._progress(job_id, "install", percent)

    def image_of(self, job_id: str):
        """A firmware job's verified image for the panel: its path and request, or
        :class:`JobError`."""
        if job_id not in self._downloaded or job_id not in self._pending:
            raise JobError("unknown-job", "no such firmware job is waiting")
        return self._fetcher.path_of(job_id), self._pending[job_id][1]

    def waiting(self) -> list[JobRequest]:
        """Jobs for the panel, oldest first (those past their deadline fail as expired)."""
        at = now_us(self._clock)
        for job_id, (component, request) in list(self._pending.items()):
            if request.deadline_us <= at:
                del self._pending[job_id]
                self._forget(job_id)
                self._finish(component, JobResult(job_id, "failed", at, "expired",
                                                  "the panel did not take the job in time"))
        return [request for job_id, (_, request) in self._pending.items()
                if request.action != "firmware" or job_id in self._downloaded]

    def _forget(self, job_id: str) -> None:
        self._progress_sent.pop(job_id, None)
        if job_id in self._downloaded:
            self._downloaded.discard(job_id)
            self._fetcher.discard(job_id)

    def report(self, job_id: str, outcome: str, result: object = None,
               error_code: str | None = None, error: str | None = None) -> None:
        """The panel ran a job: record it, then tell the manager."""
        entry = self._pending.get(job_id)
        if entry is None or (entry[1].action == "firmware" and job_id not in self._downloaded):
            raise JobError("unknown-job", "no such job is waiting")
        del self._pending[job_id]
        component, _ = entry
        try:
            text = json.dumps(result, sort_keys=True) if outcome == "done" else None
            if text is not None and len(text.encode("utf-8")) > MAX_RESULT_BYTES:
                raise ValueError(f"the result exceeds {MAX_RESULT_BYTES} bytes")
            if outcome == "failed" and error_code not in ERROR_CODES:
                raise ValueError(f"error_code must be one of {', '.join(ERROR_CODES)}")
            finished = JobResult(job_id, outcome, now_us(self._clock), error_code,
                                 error[:200] if error else None, text)
        except (ValueError, TypeError) as e:
            self._pending[job_id] = entry
            raise JobError("invalid-result", str(e)) from None
        self._forget(job_id)
        if entry[1].action in RESTARTING_ACTIONS and outcome == "done":
            self._history.append("restarting", now_us(self._clock), job_id=job_id)
            self.on_restart()
        self._finish(component, finished)

    def _finish(self, component: str, result: JobResult) -> None:
        self._history.append("job-finished", result.finished_us, job_id=result.job_id,
                             outcome=result.outcome, error_code=result.error_code,
                             error=result.error, result=result.result)
        self._remember(result)
        log.info("job {job_id}: {outcome}", job_id=result.job_id, outcome=result.outcome)
        self._send(component, result)
