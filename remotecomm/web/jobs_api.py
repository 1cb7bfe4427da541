"""The maintenance routes of the REST API (S121–S125).

``POST /api/v1/devices/{device_id}/jobs`` asks a device of the caller's unit
for something -- ``{"action", "key", "value", "wait_online"}`` -- and
answers ``202`` with the job; ``GET`` on the same path lists that device's
jobs; ``GET /api/v1/jobs`` the unit's; ``GET /api/v1/jobs/{job_id}`` one;
``DELETE`` on it withdraws a job still queued.  Another unit's devices and
jobs look like none.
"""

from __future__ import annotations

from typing import Awaitable, Callable

from twisted.web import server

from remotecomm.accounts.login import Caller
from remotecomm.identifiers import DEVICE_ID, JOB_ID, SETTING_NAME, is_valid
from remotecomm.json_http import ApiError, Route, no_more_fields, read_json, take_str
from remotecomm.maintenance.lifecycle import MAX_WAIT_ONLINE_US
from remotecomm.maintenance.messages import ACTIONS
from remotecomm.maintenance.service import JobError, JobService
from remotecomm.sessions.messages import MAX_VALUE_LENGTH
from remotecomm.store.engine import StoreBusy
from remotecomm.web.answers import BUSY, with_iso_times

MAX_WAIT_SECONDS = MAX_WAIT_ONLINE_US // 1_000_000


class JobRoutes:
    """Maintenance jobs for the caller's unit."""

    def __init__(self, jobs: JobService | None,
                 caller: Callable[[server.Request], Awaitable[tuple[Caller, str]]]):
        self._jobs = jobs
        self._caller = caller

    def routes(self) -> list[Route]:
        """The routes to add to the API's router."""
        return [Route("/api/v1/devices/{device_id}/jobs", post=self.create,
                      get=self.device_jobs),
                Route("/api/v1/jobs", get=self.unit_jobs),
                Route("/api/v1/jobs/{job_id}", get=self.one, delete=self.cancel)]

    async def _call(self, call, *args):
        if self._jobs is None:
            raise ApiError(503, "unavailable", "maintenance is not available on this server")
        try:
            return await call(*args)
        except JobError as e:
            extra = {k: with_iso_times(v) if isinstance(v, dict) else v
                     for k, v in e.extra.items()}
            raise ApiError(e.status, e.code, e.message, **extra) from None
        except StoreBusy:
            raise BUSY from None

    async def create(self, request: server.Request, device_id: str):
        """Ask a device of the caller's unit to run an action."""
        caller, _ = await self._caller(request)
        body = read_json(request)
        action = take_str(body, "action", "|".join(ACTIONS))
        key = body.pop("key", None)
        value = body.pop("value", None)
        wait = body.pop("wait_online", None)
        no_more_fields(body)
        if key is not None and not is_valid(SETTING_NAME, key):
            raise ApiError(400, "invalid-field", "key is not a setting name", field="key")
        if value is not None and (not isinstance(value, str) or not value.isprintable()
                                  or not 0 < len(value) <= MAX_VALUE_LENGTH):
            raise ApiError(400, "invalid-field", f"value: text of 1 to {MAX_VALUE_LENGTH} "
                                                 f"characters", field="value")
        if wait is True:
            wait = MAX_WAIT_SECONDS
        if wait is not None and wait is not False and (
                not isinstance(wait, int) or isinstance(wait, bool)
                or not 1 <= wait <= MAX_WAIT_SECONDS):
            raise ApiError(400, "invalid-field", f"wait_online: true, or 1 to "
                                                 f"{MAX_WAIT_SECONDS} seconds",
                           field="wait_online")
        if not is_valid(DEVICE_ID, device_id):
            raise ApiError(404, "device-not-found", f"no device {device_id} in your unit")
        job = await self._call(self._jobs.create, caller, device_id, action, key, value,
                               wait or None)
        return 202, with_iso_times(job)

    async def device_jobs(self, request: server.Request, device_id: str):
        """One device's jobs, newest first."""
        caller, _ = await self._caller(request)
        found = await self._call(self._jobs.list, caller, device_id)
        return 200, {"unit_id": caller.unit_id, "device_id": device_id,
                     "jobs": [with_iso_times(job) for job in found]}

    async def unit_jobs(self, request: server.Request):
        """The unit's jobs, newest first."""
        caller, _ = await self._caller(request)
        found = await self._call(self._jobs.list, caller)
        return 200, {"unit_id": caller.unit_id, "jobs": [with_iso_times(job) for job in found]}

    async def one(self, request: server.Request, job_id: str):
        """One job: its state and, once done, its result."""
        caller, _ = await self._caller(request)
        if not is_valid(JOB_ID, job_id):
            raise ApiError(404, "job-not-found", "no such job")
        return 200, with_iso_times(await self._call(self._jobs.get, caller, job_id))

    async def cancel(self, request: server.Request, job_id: str):
        """Withdraw a queued job."""
        caller, _ = await self._caller(request)
        if not is_valid(JOB_ID, job_id):
            raise ApiError(404, "job-not-found", "no such job")
        return 200, with_iso_times(await self._call(self._jobs.cancel, caller, job_id))
