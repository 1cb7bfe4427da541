"""Transaction functions for maintenance jobs and the settings devices declare.

The store knows no lifecycle: :mod:`remotecomm.maintenance.service` maps rows
to :class:`~remotecomm.maintenance.lifecycle.Job` values and back; every
update names the state it replaces (a second writer gets :class:`Conflict`).
"""

from __future__ import annotations

import json
from typing import Iterable

from sqlalchemy import Connection, func, insert, or_, select, update

from remotecomm.store.schema import devices, jobs


class Conflict(Exception):
    """The job changed under us."""


def insert_job(connection: Connection, values: dict) -> None:
    """Store a new job."""
    connection.execute(insert(jobs).values(**values))


def load_job(connection: Connection, job_id: str):
    """The job's row, or ``None``."""
    return connection.execute(select(jobs).where(jobs.c.job_id == job_id)).first()


def update_job(connection: Connection, job_id: str, expected_state: str, changes: dict) -> None:
    """Write ``changes`` if the job is still in ``expected_state``; else :class:`Conflict`."""
    if not changes:
        return
    result = connection.execute(update(jobs).where(jobs.c.job_id == job_id,
                                                   jobs.c.state == expected_state)
                                .values(**changes))
    if result.rowcount != 1:
        raise Conflict(job_id)


def jobs_of(connection: Connection, unit_id: str, device_id: str | None = None,
            limit: int = 100) -> list:
    """A unit's (or one of its devices') jobs, newest first."""
    query = select(jobs).where(jobs.c.unit_id == unit_id)
    if device_id is not None:
        query = query.where(jobs.c.device_id == device_id)
    return list(connection.execute(query.order_by(jobs.c.created_us.desc(),
                                                  jobs.c.job_id.desc()).limit(limit)))


def latest_results(connection: Connection, unit_id: str, action: str) -> dict[str, tuple]:
    """Per device of the unit, the newest finished ``done`` job of ``action``: its result
    (JSON text) and when it finished."""
    done = (jobs.c.unit_id == unit_id, jobs.c.action == action, jobs.c.state == "done")
    newest = (select(jobs.c.device_id, func.max(jobs.c.finished_us).label("at"))
              .where(*done).group_by(jobs.c.device_id).subquery())
    rows = connection.execute(
        select(jobs.c.device_id, jobs.c.result, jobs.c.finished_us)
        .join(newest, (jobs.c.device_id == newest.c.device_id)
              & (jobs.c.finished_us == newest.c.at))
        .where(*done))
    return {row.device_id: (row.result, row.finished_us) for row in rows}


def open_jobs(connection: Connection, states: Iterable[str], device_id: str | None = None,
              due_before_us: int | None = None) -> list:
    """Jobs in ``states`` (of one device), or those with a deadline before ``due_before_us``."""
    query = select(jobs).where(jobs.c.state.in_(tuple(states)))
    if device_id is not None:
        query = query.where(jobs.c.device_id == device_id)
    if due_before_us is not None:
        query = query.where(or_(jobs.c.answer_deadline_us < due_before_us,
                                jobs.c.wait_until_us < due_before_us))
    return list(connection.execute(query.order_by(jobs.c.created_us)))


def device_for_job(connection: Connection, device_id: str, unit_id: str) -> dict | None:
    """A device of ``unit_id`` that is not revoked: online state and declared settings."""
    row = connection.execute(select(devices.c.device_id, devices.c.online, devices.c.settings,
                                    devices.c.settings_version)
                             .where(devices.c.device_id == device_id,
                                    devices.c.unit_id == unit_id,
                                    devices.c.revoked_us.is_(None))).first()
    if row is None:
        return None
    return {"device_id": row.device_id, "online": bool(row.online),
            "settings": json.loads(row.settings or "[]"),
            "settings_version": row.settings_version}
