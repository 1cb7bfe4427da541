"""The maintenance routes of the REST API (S121–S125).

``POST /api/v1/devices/{device_id}/jobs`` asks a device of the caller's unit
for something -- ``{"action", "key", "value", "wait_online"}`` -- and
answers ``202`` with the job; ``GET`` on the same path lists that device's
jobs; ``GET /api/v1/jobs`` the unit's; ``GET /api/v1/jobs/{job_id}`` one;
``DELETE`` on it withdraws a job still queued.  Another unit's devices and
jobs look like none.

Firmware: ``POST /api/v1/firmware?version=V`` uploads an image (the raw
body, streamed to disk by :mod:`remotecomm.http_files`: refused from its
``Content-Length`` or without credentials before it is read), ``GET`` on it
lists the unit's images, and a ``{"action": "firmware", "image_id"}`` job
installs one.  ``GET /api/v1/firmware-downloads/{job_id}`` is the device's
one-time download reference (``Authorization: Bearer`` with the token the job
request carried; ``Range`` resumes).
"""

from __future__ import annotations

from pathlib import Path
from typing import Awaitable, Callable

from twisted.internet.defer import ensureDeferred
from twisted.web import server

from remotecomm.accounts.login import Caller
from remotecomm.http_files import StreamedUpload, UploadError, serve_file
from remotecomm.identifiers import (DEVICE_ID, IMAGE_ID, JOB_ID, SETTING_NAME, TOKEN, VERSION_TEXT,
                                    is_valid)
from remotecomm.json_http import ANSWERED, ApiError, Route, no_more_fields, read_json, take_str
from remotecomm.maintenance.firmware import DownloadRefused, FirmwareError, FirmwareImages
from remotecomm.maintenance.lifecycle import MAX_WAIT_ONLINE_US
from remotecomm.maintenance.messages import ACTIONS, MAX_FIRMWARE_BYTES
from remotecomm.maintenance.service import JobError, JobService
from remotecomm.sessions.messages import MAX_VALUE_LENGTH
from remotecomm.store.engine import StoreBusy
from remotecomm.web.answers import BUSY, with_iso_times

MAX_WAIT_SECONDS = MAX_WAIT_ONLINE_US // 1_000_000
UPLOAD_PATH = b"/api/v1/firmware"
MAX_RUNNING_UPLOADS = 4


def firmware_uploads(folder: Path, max_size: int = MAX_FIRMWARE_BYTES,
                     max_running: int = MAX_RUNNING_UPLOADS, portal_path: bytes | None = None):
    """The manager site's upload chooser: ``POST /api/v1/firmware`` (and the portal's
    ``portal_path``) streams into ``folder``; refused at once without credentials (a
    bearer token; the portal's session cookie), over the size, or past ``max_running``
    uploads at a time."""
    credentials = {UPLOAD_PATH: (b"authorization",
                                 "log in first: send 'Authorization: Bearer <token>'")}
    if portal_path is not None:
        credentials[portal_path] = (b"cookie", "log in to the portal first")

    def upload_for(method: bytes, path: bytes, headers, length: int | None, running: int):
        if method != b"POST" or path not in credentials:
            return None
        header, missing = credentials[path]
        if not headers.hasHeader(header):
            raise UploadError(missing, 401, "unauthenticated")
        if running >= max_running:
            raise UploadError(f"{max_running} uploads are running; try again later", 503,
                              "busy")
        return StreamedUpload(folder, max_size, None, length)

    return upload_for


def _download_token(request: server.Request) -> str | None:
    """The device's token: only in the Authorization header (no query, no cookie)."""
    if request.args or request.getHeader(b"cookie") is not None:
        raise ApiError(400, "ambiguous-credentials", "send the token only in the "
                                                     "Authorization header")
    scheme, _, value = (request.getHeader(b"authorization") or b"").partition(b" ")
    token = value.strip().decode("ascii", "replace")
    return token if scheme.lower() == b"bearer" and is_valid(TOKEN, token) else None


class JobRoutes:
    """Maintenance jobs for the caller's unit."""

    def __init__(self, jobs: JobService | None,
                 caller: Callable[[server.Request], Awaitable[tuple[Caller, str]]],
                 firmware: FirmwareImages | None = None,
                 source: Callable[[server.Request], str] = lambda request: "unknown"):
        self._jobs = jobs
        self._caller = caller
        self._firmware = firmware
        self._source = source

    def routes(self) -> list[Route]:
        """The routes to add to the API's router."""
        return [Route("/api/v1/devices/{device_id}/jobs", post=self.create,
                      get=self.device_jobs),
                Route("/api/v1/jobs", get=self.unit_jobs),
                Route("/api/v1/jobs/{job_id}", get=self.one, delete=self.cancel),
                Route("/api/v1/firmware", post=self.upload, get=self.images),
                Route("/api/v1/firmware/{image_id}", delete=self.delete_image),
                Route("/api/v1/firmware-downloads/{job_id}", get=self.download)]

    async def _call(self, name: str, *args):
        """The job service's method ``name`` with ``args``, its errors as API errors."""
        if self._jobs is None:
            raise ApiError(503, "unavailable", "maintenance is not available on this server")
        try:
            return await getattr(self._jobs, name)(*args)
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
        image_id = body.pop("image_id", None)
        no_more_fields(body)
        if image_id is not None and (not isinstance(image_id, str)
                                     or not is_valid(IMAGE_ID, image_id)):
            raise ApiError(400, "invalid-field", "image_id is not an image ID",
                           field="image_id")
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
        job = await self._call("create", caller, device_id, action, key, value,
                               wait or None, image_id)
        return 202, with_iso_times(job)

    async def device_jobs(self, request: server.Request, device_id: str):
        """One device's jobs, newest first."""
        caller, _ = await self._caller(request)
        found = await self._call("list", caller, device_id)
        return 200, {"unit_id": caller.unit_id, "device_id": device_id,
                     "jobs": [with_iso_times(job) for job in found]}

    async def unit_jobs(self, request: server.Request):
        """The unit's jobs, newest first."""
        caller, _ = await self._caller(request)
        found = await self._call("list", caller)
        return 200, {"unit_id": caller.unit_id, "jobs": [with_iso_times(job) for job in found]}

    async def one(self, request: server.Request, job_id: str):
        """One job: its state and, once done, its result."""
        caller, _ = await self._caller(request)
        if not is_valid(JOB_ID, job_id):
            raise ApiError(404, "job-not-found", "no such job")
        return 200, with_iso_times(await self._call("get", caller, job_id))

    async def cancel(self, request: server.Request, job_id: str):
        """Withdraw a queued job."""
        caller, _ = await self._caller(request)
        if not is_valid(JOB_ID, job_id):
            raise ApiError(404, "job-not-found", "no such job")
        return 200, with_iso_times(await self._call("cancel", caller, job_id))

    def _firmware_images(self) -> FirmwareImages:
        if self._firmware is None:
            raise ApiError(503, "unavailable", "firmware is not served by this manager")
        return self._firmware

    async def upload(self, request: server.Request):
        """Keep an uploaded firmware image (the raw body) as ``?version=V``."""
        upload: StreamedUpload | None = getattr(request, "upload", None)
        caller, _ = await self._caller(request)
        images = self._firmware_images()
        versions = request.args.get(b"version", [])
        version = versions[0].decode("ascii", "replace") if len(versions) == 1 else ""
        if set(request.args) - {b"version"} or not is_valid(VERSION_TEXT, version):
            raise ApiError(400, "invalid-field", "name the image's version once: "
                                                 "?version=1.2.3 (letters, digits, . + ~ _ -)",
                           field="version")
        if upload is None:
            raise ApiError(400, "invalid-upload", "send the image as the request body")
        try:
            image = await images.add(caller, version, upload.finish)
        except UploadError as e:
            raise ApiError(e.status, e.code, e.message) from None
        except StoreBusy:
            raise BUSY from None
        return 201, with_iso_times(image)

    async def images(self, request: server.Request):
        """The unit's firmware images, newest first."""
        caller, _ = await self._caller(request)
        try:
            found = await self._firmware_images().list(caller)
        except StoreBusy:
            raise BUSY from None
        return 200, {"unit_id": caller.unit_id, "images": [with_iso_times(i) for i in found]}

    async def delete_image(self, request: server.Request, image_id: str):
        """Remove one of the unit's images (not while a job installs it)."""
        caller, _ = await self._caller(request)
        if not is_valid(IMAGE_ID, image_id):
            raise ApiError(404, "image-not-found", "no such firmware image")
        try:
            return 200, with_iso_times(await self._firmware_images().delete(caller, image_id))
        except FirmwareError as e:
            raise ApiError(e.status, e.code, e.message) from None
        except StoreBusy:
            raise BUSY from None

    async def download(self, request: server.Request, job_id: str):
        """A device downloads the image of its firmware job (one-time reference)."""
        images = self._firmware_images()
        token = _download_token(request)
        if not is_valid(JOB_ID, job_id):
            raise ApiError(404, "not-found", "no such download")
        try:
            found = await images.open_download(job_id, token, self._source(request))
        except DownloadRefused as e:
            raise ApiError(e.status, e.code, e.message) from None
        except StoreBusy:
            raise BUSY from None
        over = images.start_download(job_id, request.channel.transport.abortConnection)
        request.notifyFinish().addBoth(lambda _: over())
        serve_file(request, found.path, found.size,
                   on_complete=lambda: ensureDeferred(images.downloaded(job_id)))
        return 200, ANSWERED
