"""Transaction functions for scheduled runs: claiming a job's period, finishing it.

A run is one row per job and period (``scheduled_runs``).  Inserting the row
claims the period, so when several processes share the store, one of them
runs it, once.  A claim whose process died (no finish after ``lease_us``)
may be taken over.
"""

from __future__ import annotations

from sqlalchemy import Connection, delete, insert, select, update

from remotecomm.store.schema import scheduled_runs


def claim_period(connection: Connection, job: str, period_start_us: int, now_us: int,
                 lease_us: int) -> bool:
    """Claim ``job``'s period; whether this caller may run it now."""
    row = connection.execute(select(scheduled_runs).where(
        scheduled_runs.c.job == job, scheduled_runs.c.period_start_us == period_start_us)
    ).first()
    if row is None:
        # Two processes racing here: the second insert fails (primary key) and its
        # transaction rolls back; that caller did not claim the period.
        connection.execute(insert(scheduled_runs).values(
            job=job, period_start_us=period_start_us, started_us=now_us, finished_us=None,
            outcome=None))
        return True
    if row.finished_us is not None or row.started_us > now_us - lease_us:
        return False
    taken = connection.execute(update(scheduled_runs).where(
        scheduled_runs.c.job == job, scheduled_runs.c.period_start_us == period_start_us,
        scheduled_runs.c.started_us == row.started_us, scheduled_runs.c.finished_us.is_(None))
        .values(started_us=now_us))
    return taken.rowcount == 1


KEEP_RUNS_US = 7 * 86400 * 1_000_000


def finish_run(connection: Connection, job: str, period_start_us: int, now_us: int,
               outcome: str) -> None:
    """Record how a claimed run ended (and forget this job's runs older than a week)."""
    connection.execute(update(scheduled_runs).where(
        scheduled_runs.c.job == job, scheduled_runs.c.period_start_us == period_start_us)
        .values(finished_us=now_us, outcome=outcome[:200]))
    connection.execute(delete(scheduled_runs).where(
        scheduled_runs.c.job == job,
        scheduled_runs.c.period_start_us < period_start_us - KEEP_RUNS_US))


def last_run(connection: Connection, job: str):
    """The newest run of ``job`` (its row), or ``None``."""
    return connection.execute(select(scheduled_runs).where(scheduled_runs.c.job == job)
                              .order_by(scheduled_runs.c.period_start_us.desc())
                              .limit(1)).first()
