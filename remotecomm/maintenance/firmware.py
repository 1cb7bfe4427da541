"""Firmware images on the manager, and the one-time references devices download them by.

An image is uploaded once per unit (streamed to disk, hashed, capped: the
web layer hands :meth:`FirmwareImages.add` a ``finish`` that moves the
complete file into place) and installed by ``firmware`` jobs.  Each time a
firmware job goes out it gets a fresh download reference: a URL on the
manager naming the job, and a random token the device sends as ``Bearer``.
The store keeps only the token's hash.  The reference works while the job is
open and until its answer deadline; it may be resumed with ``Range`` as
often as needed, but once the image's last byte has gone out it is used,
and a second download is refused.  Refusals of a known job's reference are
audited.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from remotecomm.accounts.login import Caller
from remotecomm.clock import now_us
from remotecomm.maintenance import lifecycle as jl
from remotecomm.service_errors import ServiceError
from remotecomm.store import firmware as firmware_rows
from remotecomm.store.audit import append_audit
from remotecomm.store.engine import Store
from remotecomm.tokens import new_token, token_hash

log = Logger()

FIRMWARE_UPLOADED = "firmware-uploaded"
FIRMWARE_DELETED = "firmware-deleted"
DOWNLOAD_REFUSED = "firmware-download-refused"
DOWNLOAD_PATH = "/api/v1/firmware-downloads/"


class DownloadRefused(ServiceError):
    """A download the manager does not serve."""


class FirmwareError(ServiceError):
    """A request about firmware images refused."""


@dataclass(frozen=True)
class ImageDownload:
    """What a device may download now: the file and its size."""

    job_id: str
    path: Path
    size: int


def image_json(row) -> dict:
    """An image as the API shows it (times as epoch µs; the API adds ISO forms)."""
    return {"image_id": row.image_id, "unit_id": row.unit_id, "version": row.version,
            "size": row.size, "sha256": row.sha256, "uploaded_by": row.uploaded_by,
            "uploaded_us": row.uploaded_us}


class FirmwareImages:
    """The unit's firmware images and the download references of firmware jobs."""

    def __init__(self, store: Store, clock: IReactorTime, folder: Path, public_url: str):
        self._store = store
        self._clock = clock
        self.folder = folder
        self.incoming = folder / "incoming"
        self._download_base = public_url.rstrip("/") + DOWNLOAD_PATH
        # Jobs whose image is being sent now: how to end that download.
        self._downloading: dict[str, Callable[[], None]] = {}

    def path_of(self, image_id: str) -> Path:
        """Where an image's file lives."""
        return self.folder / "images" / f"{image_id}.bin"

    async def add(self, caller: Caller, version: str,
                  finish: Callable[[Path], tuple[int, str]]) -> dict:
        """Keep an uploaded image: ``finish(path)`` moves the complete file there and
        answers its size and SHA-256."""
        image_id = "fw-" + secrets.token_urlsafe(16)
        path = self.path_of(image_id)
        size, sha256 = finish(path)
        at = now_us(self._clock)
        values = dict(image_id=image_id, unit_id=caller.unit_id, version=version, size=size,
                      sha256=sha256, uploaded_by=caller.user_id, uploaded_us=at)

        def insert(connection):
            firmware_rows.insert_image(connection, values)
            append_audit(connection, at, FIRMWARE_UPLOADED, actor=caller.user_id,
                         source_address=caller.source_address, unit_id=caller.unit_id,
                         image_id=image_id, version=version, size=size, sha256=sha256)
            return firmware_rows.load_image(connection, image_id)

        try:
            row = await self._store.run(insert)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        log.info("firmware {version} ({size} bytes, {image_id}) uploaded by {user_id}",
                 version=version, size=size, image_id=image_id, user_id=caller.user_id)
        return image_json(row)

    async def list(self, caller: Caller) -> list[dict]:
        """The caller's unit's images, newest first."""
        return [image_json(row)
                for row in await self._store.run(firmware_rows.images_of, caller.unit_id)]

    async def delete(self, caller: Caller, image_id: str) -> dict:
        """Remove an image of the caller's unit and its file (not while a job installs it:
        ``409 image-in-use``); finished jobs keep its ID."""
        at = now_us(self._clock)

        def remove(connection):
            image = firmware_rows.load_image(connection, image_id, caller.unit_id)
            if image is None:
                return None, "not-found"
            if firmware_rows.image_in_use(connection, image_id, jl.OPEN_STATES):
                return image, "in-use"
            firmware_rows.delete_image(connection, image_id)
            append_audit(connection, at, FIRMWARE_DELETED, actor=caller.user_id,
                         source_address=caller.source_address, unit_id=caller.unit_id,
                         image_id=image_id, version=image.version)
            return image, None

        image, refused = await self._store.run(remove)
        if refused == "not-found":
            raise FirmwareError(404, "image-not-found", f"no firmware image {image_id} in "
                                                        f"unit {caller.unit_id}")
        if refused == "in-use":
            raise FirmwareError(409, "image-in-use", "a maintenance job is installing this "
                                                     "image: let it end (or withdraw it while "
                                                     "it is queued)")
        self.path_of(image_id).unlink(missing_ok=True)
        log.info("firmware image {image_id} ({version}) deleted by {user_id}",
                 image_id=image_id, version=image.version, user_id=caller.user_id)
        return image_json(image)

    async def image(self, caller: Caller, image_id: str):
        """One image of the caller's unit (``None``: none, or another unit's)."""
        return await self._store.run(firmware_rows.load_image, image_id, caller.unit_id)

    def new_reference(self, job_id: str) -> tuple[str, str]:
        """A fresh reference for a firmware job: its URL and token (stored hashed by
        :meth:`remember`)."""
        return self._download_base + job_id, new_token()

    async def remember(self, job_id: str, token: str, expires_us: int) -> None:
        """Make ``token`` the job's only working reference until ``expires_us``."""
        await self._store.run(firmware_rows.set_download, job_id, token_hash(token),
                              expires_us)

    async def open_download(self, job_id: str, token: str | None,
                            source: str | None = None) -> ImageDownload:
        """What a device may download with ``token``, or :class:`DownloadRefused`."""
        at = now_us(self._clock)

        def check(connection):
            row = firmware_rows.download_of(connection, job_id)
            if row is None or row.download_token_sha256 is None:
                return None, None
            if token is None or not hmac.compare_digest(token_hash(token),
                                                        row.download_token_sha256):
                reason = "wrong-token"
            elif row.state not in jl.OPEN_STATES:
                reason = "job-over"
            elif row.downloaded_us is not None:
                reason = "used"
            elif at >= row.download_expires_us:
                reason = "expired"
            else:
                return row, None
            append_audit(connection, at, DOWNLOAD_REFUSED, source_address=source,
                         unit_id=row.unit_id, job_id=job_id, device_id=row.device_id,
                         reason=reason)
            return row, reason

        row, reason = await self._store.run(check)
        if row is None:
            raise DownloadRefused(404, "not-found", "no such download")
        if reason is not None:
            log.warn("firmware download of job {job_id} refused: {reason}", job_id=job_id,
                     reason=reason)
            if reason == "wrong-token":
                raise DownloadRefused(403, "download-refused", "this reference is not valid")
            raise DownloadRefused(410, f"reference-{'used' if reason == 'used' else 'expired'}",
                                  "this reference was used already" if reason == "used"
                                  else "this reference is no longer valid")
        return ImageDownload(job_id, self.path_of(row.image_id), row.size)

    def start_download(self, job_id: str, stop: Callable[[], None]) -> Callable[[], None]:
        """One download of a job's image at a time: a reference works until the image's
        last byte went out, so that a broken download can resume with a byte range, but a
        new download with it ends the one still under way (``stop`` ends this one; a
        device retrying after a network break is not held up by a connection the manager
        has not seen break yet).  The function to call when this one is over, however it
        ended."""
        previous = self._downloading.get(job_id)
        if previous is not None:
            log.info("job {job_id}: a new download of the image ends the one under way",
                     job_id=job_id)
            previous()
        self._downloading[job_id] = stop

        def over() -> None:
            if self._downloading.get(job_id) is stop:
                del self._downloading[job_id]

        return over

    async def downloaded(self, job_id: str) -> None:
        """The image's last byte went out: its reference is used."""
        if await self._store.run(firmware_rows.mark_downloaded, job_id, now_us(self._clock)):
            log.info("job {job_id}: the device has the whole image", job_id=job_id)
