"""Jobs that run once per period (DECISIONS.md: scheduled runs are idempotent per period).

A :class:`Job` names a function and how time is cut into its periods
(:func:`every` for fixed lengths; report schedules cut calendar periods in a
unit's time zone).  The :class:`Scheduler` looks at the clock every
``check_every`` seconds and, for each job whose current period has no run
yet, claims the period in the store (one row per job and period) and runs
it; the outcome is stored with the row.  So a restarted manager does not run
a period twice, several managers sharing a store run it once, and a run
whose process died is taken over after ``lease``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Awaitable, Callable

from twisted.internet.defer import ensureDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from remotecomm.clock import now_us, seconds_to_us
from remotecomm.store import schedule as runs
from remotecomm.store.engine import Store

log = Logger()

CHECK_EVERY = 30.0
LEASE = 3600.0


def every(seconds: float) -> Callable[[int], int]:
    """Periods of ``seconds``, aligned to the epoch (UTC): the start of the one holding an
    instant."""
    length = seconds_to_us(seconds)
    if length <= 0:
        raise ValueError("a period must be longer than zero")
    return lambda at_us: at_us - at_us % length


@dataclass(frozen=True)
class Job:
    """``run(period_start_us)`` once per period that ``period_of`` cuts; ``run`` returns a
    short outcome text for the stored run.

    A job that is idempotent by itself (``claimed=False``: the report mailer, whose
    mailings are claimed row by row) runs at every look instead, one run at a time per
    process, and stores no run.
    """

    name: str
    period_of: Callable[[int], int]
    run: Callable[[int], Awaitable[str]]
    claimed: bool = True


class Scheduler:
    """Runs each job once per period, claimed through the store."""

    def __init__(self, store: Store, clock: IReactorTime, jobs: tuple[Job, ...] = (), *,
                 check_every: float = CHECK_EVERY, lease: float = LEASE):
        self._store = store
        self._clock = clock
        self._jobs = list(jobs)
        self._lease_us = seconds_to_us(lease)
        self._check_every = check_every
        self._loop = LoopingCall(lambda: ensureDeferred(self.check()))
        self._loop.clock = clock
        self._running: set[str] = set()

    def add(self, job: Job) -> None:
        """Schedule one more job."""
        self._jobs.append(job)

    def start(self) -> None:
        """Look now, then every ``check_every`` seconds."""
        self._loop.start(self._check_every, now=True).addErrback(
            lambda f: log.failure("the scheduler stopped", f))

    def stop(self) -> None:
        """Look no more (a run under way finishes)."""
        if self._loop.running:
            self._loop.stop()

    async def check(self) -> list[str]:
        """Run every job whose current period has not run; the names of those run."""
        ran = []
        for job in list(self._jobs):
            if job.name in self._running:
                continue
            if await self._run_if_due(job):
                ran.append(job.name)
        return ran

    async def _run_if_due(self, job: Job) -> bool:
        at = now_us(self._clock)
        period = job.period_of(at)
        if not job.claimed:
            self._running.add(job.name)
            try:
                await job.run(period)
            except Exception:
                log.failure("scheduled {job} failed", None, job=job.name)
            finally:
                self._running.discard(job.name)
            return True
        try:
            claimed = await self._store.run(runs.claim_period, job.name, period, at,
                                            self._lease_us)
        except Exception as e:
            log.info("could not claim {job} for period {period}: {error}", job=job.name,
                     period=period, error=repr(e))
            return False
        if not claimed:
            return False
        self._running.add(job.name)
        try:
            outcome = await job.run(period)
        except Exception as e:
            log.failure("scheduled {job} failed", None, job=job.name)
            outcome = f"failed: {e!r}"
        finally:
            self._running.discard(job.name)
        log.info("scheduled {job} ran: {outcome}", job=job.name, outcome=outcome)
        await self._store.run(runs.finish_run, job.name, period, now_us(self._clock), outcome)
        return True
