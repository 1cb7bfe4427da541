"""The manager's side of maintenance jobs (S121–S125): create, send, file results, time out.

Every job is a row first (:mod:`remotecomm.store.jobs`) and a message second:
the row is committed before the request goes out, so a manager that restarts
sends open jobs again by ID (when each device says hello after the
component's probe) and the device runs each ID at most once.  A device that
cannot be reached fails the job at once, unless the user asked to wait for
it (then the job goes out when the device says hello, within the wait).
Rules live in :mod:`remotecomm.maintenance.lifecycle`; this class sequences
them and knows no transport: ``devices`` sends messages and says who is
reachable.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import asdict

from twisted.internet.defer import ensureDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from remotecomm.accounts.login import Caller
from remotecomm.clock import now_us, seconds_to_us
from remotecomm.maintenance import lifecycle as jl
from remotecomm.maintenance.messages import (ANSWER_WITHIN_S, JobProgress, JobRequest, JobResult,
                                             parameters_error)
from remotecomm.service_errors import ServiceError
from remotecomm.sessions.messages import MessageRefused, SettingSpec
from remotecomm.store import firmware as firmware_rows, jobs as job_rows
from remotecomm.store.audit import append_audit
from remotecomm.store.engine import Store

log = Logger()

SWEEP_INTERVAL = 1.0
JOB_CREATED = "job-created"
JOB_FINISHED = "job-finished"
_LIFECYCLE_FIELDS = tuple(jl.Job.__dataclass_fields__)


class JobError(ServiceError):
    """A job request refused."""


def job_from_row(row) -> jl.Job:
    """The lifecycle view of a job row."""
    return jl.Job(**{name: getattr(row, name) for name in _LIFECYCLE_FIELDS})


def _save(connection, before: jl.Job, after: jl.Job) -> None:
    changes = {name: value for name, value in asdict(after).items()
               if value != getattr(before, name)}
    job_rows.update_job(connection, before.job_id, before.state, changes)


def job_json(row) -> dict:
    """A job as the API shows it (times as epoch µs; the API adds ISO forms)."""
    answer = {name: getattr(row, name) for name in (
        "job_id", "device_id", "user_id", "action", "state", "created_us", "wait_until_us",
        "sent_us", "finished_us", "error_code", "error")}
    answer["unit_id"] = row.unit_id
    if row.setting_key is not None:
        answer["key"] = row.setting_key
    if row.setting_value is not None:
        answer["value"] = row.setting_value
    if row.image_id is not None:
        answer["image_id"] = row.image_id
    if row.progress_phase is not None:
        answer["progress"] = {"phase": row.progress_phase, "percent": row.progress_percent}
    answer["result"] = json.loads(row.result) if row.result else None
    return {key: value for key, value in answer.items() if value is not None}


class JobService:
    """Creates jobs, sends them to devices, files their results, and ends the late ones."""

    def __init__(self, store: Store, clock: IReactorTime, devices, firmware=None):
        self._store = store
        self._clock = clock
        self._devices = devices  # is_reachable(device_id), send(device_id, message)
        self._firmware = firmware  # FirmwareImages: the images firmware jobs install
        self._sweeper = LoopingCall(lambda: ensureDeferred(self.sweep()))
        self._sweeper.clock = clock

    def start(self) -> None:
        """Look for passed deadlines every second."""
        self._sweeper.start(SWEEP_INTERVAL, now=True).addErrback(
            lambda f: log.failure("the job sweep stopped", f))

    def stop(self) -> None:
        if self._sweeper.running:
            self._sweeper.stop()

    async def create(self, caller: Caller, device_id: str, action: str, key: str | None,
                     value: str | None, wait_online: float | None = None,
                     image_id: str | None = None) -> dict:
        """A new job for a device of the caller's unit; sent at once if the device is
        reachable.  ``wait_online``: seconds to wait for an offline device (else an offline
        device fails the job at once, ``409 device-offline``).  A ``firmware`` job names
        an image of the unit (``image_id``)."""
        device = await self._store.run(job_rows.device_for_job, device_id, caller.unit_id)
        if device is None:
            raise JobError(404, "device-not-found", f"no device {device_id} in your unit")
        settings = {spec["name"]: SettingSpec.from_json(spec) for spec in device["settings"]}
        problem = parameters_error(action, key, value, settings)
        if problem is not None:
            raise JobError(400, "invalid-parameters", problem,
                           settings=[spec.to_json() for spec in settings.values()])
        if (action == "firmware") != (image_id is not None):
            raise JobError(400, "invalid-parameters", "a firmware job names an image "
                                                      "(image_id), and only it does")
        if image_id is not None:
            if self._firmware is None:
                raise JobError(503, "unavailable", "firmware is not served by this manager")
            if await self._firmware.image(caller, image_id) is None:
                raise JobError(404, "image-not-found", f"no firmware image {image_id} in "
                                                       f"your unit")
        at = now_us(self._clock)
        job = jl.create("job-" + secrets.token_urlsafe(16), at,
                        seconds_to_us(wait_online) if wait_online else None)
        reachable = self._devices.is_reachable(device_id)
        link_down = not getattr(self._devices, "link_up", True)
        if not reachable and job.wait_until_us is None:
            job = jl.unreachable(job, at, "the manager's link to the XMPP server is down"
                                 if link_down else f"device {device_id} is offline")

        def insert(connection):
            job_rows.insert_job(connection, dict(
                asdict(job), unit_id=caller.unit_id, device_id=device_id,
                user_id=caller.user_id, action=action, setting_key=key, setting_value=value,
                image_id=image_id))
            append_audit(connection, at, JOB_CREATED, actor=caller.user_id,
                         source_address=caller.source_address,
                         unit_id=caller.unit_id, job_id=job.job_id, device_id=device_id,
                         action=action, key=key, state=job.state)
            return job_rows.load_job(connection, job.job_id)

        row = await self._store.run(insert)
        log.info("job {job_id}: {user_id} asks {device_id} for {action} ({state})",
                 job_id=job.job_id, user_id=caller.user_id, device_id=device_id,
                 action=action, state=job.state)
        if job.state == jl.FAILED and link_down:
            raise JobError(503, "xmpp-link-down", "the manager cannot reach any device now "
                                                  "(its link to the XMPP server is down); ask "
                                                  "with wait_online to have it sent when it is "
                                                  "back", job=job_json(row))
        if job.state == jl.FAILED:
            raise JobError(409, "device-offline", f"device {device_id} is offline",
                           job=job_json(row))
        if reachable:
            await self._dispatch(job.job_id)
            row = await self._store.run(job_rows.load_job, job.job_id)
        return job_json(row)

    async def _transition(self, job_id: str, change) -> tuple[object, jl.Job | None]:
        """Apply ``change(job) -> job`` in one transaction; the row and the new job."""
        def run(connection):
            row = job_rows.load_job(connection, job_id)
            if row is None:
                return None, None
            before = job_from_row(row)
            try:
                after = change(before)
            except jl.InvalidJobTransition:
                return row, None
            if after is not before:
                _save(connection, before, after)
                if not after.is_open:
                    append_audit(connection, now_us(self._clock), JOB_FINISHED,
                                 unit_id=row.unit_id, job_id=job_id, device_id=row.device_id,
                                 action=row.action, state=after.state,
                                 error_code=after.error_code)
            return row, after

        return await self._store.run(run)

    async def _dispatch(self, job_id: str) -> None:
        """Send an open job (again) to its device; on no answer, wait or fail."""
        at = now_us(self._clock)
        loaded = await self._store.run(job_rows.load_job, job_id)
        if loaded is None:
            return
        within = seconds_to_us(ANSWER_WITHIN_S.get(loaded.action, 60))
        row, job = await self._transition(job_id, lambda job: jl.sent(job, at, within))
        if job is None:
            return
        image = {}
        if row.action == "firmware":
            image = await self._image_fields(row, job.answer_deadline_us)
            if image is None:
                await self._transition(job_id, lambda job: jl.refused(
                    job, now_us(self._clock), "the firmware image is gone", "image-gone"))
                return
        request = JobRequest(job_id=job_id, action=row.action,
                             deadline_us=job.answer_deadline_us, key=row.setting_key,
                             value=row.setting_value, **image)
        try:
            await self._devices.send(row.device_id, request)
        except Exception as e:
            condition = getattr(e, "condition", None)
            if condition is not None and condition not in ("service-unavailable",
                                                           "remote-server-timeout"):
                # The device answered, with an error: it will not run this job.
                why = f"the device refused the job: {condition} {getattr(e, 'text', '') or ''}"
                log.info("job {job_id}: {why}", job_id=job_id, why=why)
                await self._transition(job_id, lambda job: jl.refused(
                    job, now_us(self._clock), why.strip()))
                return
            why = str(e) or type(e).__name__
            log.info("job {job_id}: {device_id} did not take it: {why}", job_id=job_id,
                     device_id=row.device_id, why=why)
            await self._transition(job_id, lambda job: jl.unreachable(
                job, now_us(self._clock), f"the device did not take the job: {why}"))
            return
        await self._transition(job_id, jl.accepted)

    async def _image_fields(self, row, deadline_us: int) -> dict | None:
        """A fresh download reference for a firmware job, as the request's fields."""
        image = await self._store.run(firmware_rows.load_image, row.image_id)
        if image is None or self._firmware is None:
            return None
        url, token = self._firmware.new_reference(row.job_id)
        await self._firmware.remember(row.job_id, token, deadline_us)
        return dict(image_url=url, image_token=token, image_sha256=image.sha256,
                    image_size=image.size, image_version=image.version)

    async def on_progress(self, device_id: str, progress: JobProgress, source: str) -> None:
        """How far a device's job is: kept on the job (never going back); a job it was
        never given is refused."""
        changed = await self._store.run(
            firmware_rows.set_progress, progress.job_id, device_id, jl.OPEN_STATES,
            progress.phase, progress.percent,
            lambda phase, percent: JobProgress(progress.job_id, phase, percent).rank)
        if not changed:
            row = await self._store.run(job_rows.load_job, progress.job_id)
            if row is None or row.device_id != device_id:
                raise MessageRefused("not-found", "no such job for this device")

    async def on_result(self, device_id: str, result: JobResult, source: str) -> None:
        """A device's result: filed once; refused for a job it was never given."""
        row, job = await self._transition(result.job_id, lambda job: jl.finished(
            job, now_us(self._clock), result.outcome, result.error_code, result.error,
            result.result))
        if row is None or row.device_id != device_id:
            raise MessageRefused("not-found", "no such job for this device")
        if job is None:
            log.info("job {job_id}: a late result from {device_id} ignored ({state})",
                     job_id=result.job_id, device_id=device_id, state=row.state)
            return
        log.info("job {job_id}: {device_id} {outcome}{error}", job_id=result.job_id,
                 device_id=device_id, outcome=result.outcome,
                 error=f" ({result.error_code})" if result.error_code else "")

    async def device_returned(self, device_id: str) -> None:
        """A device said hello: send its open jobs (again, by ID)."""
        rows = await self._store.run(job_rows.open_jobs, jl.OPEN_STATES, device_id)
        for row in rows:
            await self._dispatch(row.job_id)

    async def sweep(self) -> int:
        """End the jobs whose deadline passed; how many."""
        at = now_us(self._clock)
        rows = await self._store.run(job_rows.open_jobs, jl.OPEN_STATES, None, at)
        ended = 0
        for row in rows:
            _, job = await self._transition(row.job_id, lambda job: jl.deadline_passed(job, at))
            if job is not None and not job.is_open:
                ended += 1
                log.info("job {job_id} on {device_id}: {state}", job_id=row.job_id,
                         device_id=row.device_id, state=job.state)
        return ended

    async def get(self, caller: Caller, job_id: str) -> dict:
        """One job of the caller's unit (another unit's looks like none)."""
        row = await self._store.run(job_rows.load_job, job_id)
        if row is None or row.unit_id != caller.unit_id:
            raise JobError(404, "job-not-found", "no such job")
        return job_json(row)

    async def list(self, caller: Caller, device_id: str | None = None) -> list[dict]:
        """The caller's unit's jobs (of one device), newest first."""
        rows = await self._store.run(job_rows.jobs_of, caller.unit_id, device_id)
        return [job_json(row) for row in rows]

    async def latest_results(self, caller: Caller, action: str) -> dict[str, dict]:
        """Per device of the caller's unit, what its newest finished ``action`` job
        answered (``result``, as the device sent it: untrusted) and when
        (``finished_us``)."""
        found = await self._store.run(job_rows.latest_results, caller.unit_id, action)
        answers = {}
        for device_id, (result, finished_us) in found.items():
            try:
                answers[device_id] = {"result": json.loads(result) if result else None,
                                      "finished_us": finished_us}
            except ValueError:
                continue
        return answers

    async def cancel(self, caller: Caller, job_id: str) -> dict:
        """Withdraw a queued job (one that has gone out cannot be taken back)."""
        await self.get(caller, job_id)
        row, job = await self._transition(job_id, lambda job: jl.cancel(
            job, now_us(self._clock)))
        if job is None:
            raise JobError(409, "job-not-queued", f"the job is {row.state}; only a queued "
                                                  f"job can be cancelled")
        return await self.get(caller, job_id)
