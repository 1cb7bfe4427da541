"""Transaction functions for firmware images and the download references of firmware jobs."""

from __future__ import annotations

from sqlalchemy import Connection, insert, select, update

from remotecomm.store.schema import firmware_images, jobs


def insert_image(connection: Connection, values: dict) -> None:
    """Store a new image's row (its file is already in place)."""
    connection.execute(insert(firmware_images).values(**values))


def load_image(connection: Connection, image_id: str, unit_id: str | None = None):
    """The image's row (of ``unit_id``, if given), or ``None``."""
    query = select(firmware_images).where(firmware_images.c.image_id == image_id)
    if unit_id is not None:
        query = query.where(firmware_images.c.unit_id == unit_id)
    return connection.execute(query).first()


def image_in_use(connection: Connection, image_id: str, open_states) -> bool:
    """Whether a job in ``open_states`` installs the image."""
    return connection.execute(select(jobs.c.job_id).where(
        jobs.c.image_id == image_id, jobs.c.state.in_(tuple(open_states)))).first() is not None


def delete_image(connection: Connection, image_id: str) -> None:
    """Remove an image's row (finished jobs keep its ID)."""
    connection.execute(firmware_images.delete().where(firmware_images.c.image_id == image_id))


def images_of(connection: Connection, unit_id: str, limit: int = 100) -> list:
    """A unit's images, newest first."""
    return list(connection.execute(
        select(firmware_images).where(firmware_images.c.unit_id == unit_id)
        .order_by(firmware_images.c.uploaded_us.desc()).limit(limit)))


def set_download(connection: Connection, job_id: str, token_sha256: str,
                 expires_us: int) -> None:
    """Give a firmware job a new download reference (the one before it stops working)."""
    connection.execute(update(jobs).where(jobs.c.job_id == job_id).values(
        download_token_sha256=token_sha256, download_expires_us=expires_us,
        downloaded_us=None))


def download_of(connection: Connection, job_id: str):
    """A firmware job's download: the job's reference and state with its image, or
    ``None``."""
    return connection.execute(
        select(jobs.c.job_id, jobs.c.unit_id, jobs.c.device_id, jobs.c.state,
               jobs.c.download_token_sha256, jobs.c.download_expires_us, jobs.c.downloaded_us,
               firmware_images.c.image_id, firmware_images.c.size, firmware_images.c.sha256)
        .join(firmware_images, firmware_images.c.image_id == jobs.c.image_id)
        .where(jobs.c.job_id == job_id)).first()


def mark_downloaded(connection: Connection, job_id: str, at_us: int) -> bool:
    """The image's last byte went out: the reference is used (``False``: it was already)."""
    result = connection.execute(update(jobs).where(jobs.c.job_id == job_id,
                                                   jobs.c.downloaded_us.is_(None))
                                .values(downloaded_us=at_us))
    return result.rowcount == 1


def set_progress(connection: Connection, job_id: str, device_id: str, open_states,
                 phase: str, percent: int, rank_of) -> bool:
    """Record how far an open job of ``device_id`` is, never going back (``rank_of(phase,
    percent)`` orders reports); whether it changed."""
    row = connection.execute(select(jobs.c.progress_phase, jobs.c.progress_percent)
                             .where(jobs.c.job_id == job_id, jobs.c.device_id == device_id,
                                    jobs.c.state.in_(tuple(open_states)))).first()
    if row is None:
        return False
    if row.progress_phase is not None and \
            rank_of(row.progress_phase, row.progress_percent) >= rank_of(phase, percent):
        return False
    connection.execute(update(jobs).where(jobs.c.job_id == job_id).values(
        progress_phase=phase, progress_percent=percent))
    return True
