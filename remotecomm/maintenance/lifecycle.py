"""The life of a maintenance job, as a pure state machine (like the sessions' lifecycle).

::

    queued ──send──▶ sent ──device acknowledged──▶ running ──result──▶ done | failed
      │                │                              │
      │ device offline, no waiting: failed            └─ no result by the deadline: timed-out
      │ waiting for it to come online, past the wait: failed (device-offline)
      └─ cancel (only while queued): cancelled

A job whose device could not be reached goes back to ``queued`` while its
wait lasts; after a manager restart, open jobs are sent again by ID and the
device runs each ID at most once.  Sending a ``running`` job again (at a
hello) changes nothing: the device has it, so neither its deadline moves nor
does a failed re-send fail it -- its result comes, or its deadline passes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

QUEUED, SENT, RUNNING = "queued", "sent", "running"
DONE, FAILED, TIMED_OUT, CANCELLED = "done", "failed", "timed-out", "cancelled"
OPEN_STATES = (QUEUED, SENT, RUNNING)
STATES = OPEN_STATES + (DONE, FAILED, TIMED_OUT, CANCELLED)

ANSWER_WITHIN_US = 60 * 1_000_000         # from sending to the result
MAX_WAIT_ONLINE_US = 24 * 3600 * 1_000_000  # how long a job may wait for its device


class InvalidJobTransition(Exception):
    """The event does not apply to the job in its state."""


@dataclass(frozen=True)
class Job:
    """What the state machine needs of a job row."""

    job_id: str
    state: str
    created_us: int
    wait_until_us: int | None = None     # waiting for the device to come online until
    sent_us: int | None = None
    answer_deadline_us: int | None = None
    finished_us: int | None = None
    error_code: str | None = None
    error: str | None = None
    result: str | None = None

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_STATES

    def next_deadline_us(self) -> int | None:
        """When this job must be looked at again, if ever."""
        if self.state in (SENT, RUNNING):
            return self.answer_deadline_us
        if self.state == QUEUED:
            return self.wait_until_us
        return None


def _require(job: Job, *states: str) -> None:
    if job.state not in states:
        raise InvalidJobTransition(f"job {job.job_id} is {job.state}, not {'/'.join(states)}")


def create(job_id: str, now_us: int, wait_online_us: int | None = None) -> Job:
    """A new job, queued; it may wait ``wait_online_us`` for its device (capped at 24 h)."""
    wait = min(wait_online_us, MAX_WAIT_ONLINE_US) if wait_online_us else None
    return Job(job_id, QUEUED, now_us, wait_until_us=now_us + wait if wait else None)


def sent(job: Job, now_us: int, answer_within_us: int = ANSWER_WITHIN_US) -> Job:
    """The request went to the device (again, after a restart or its return)."""
    _require(job, *OPEN_STATES)
    if job.state == RUNNING:
        return job
    return replace(job, state=SENT, sent_us=now_us, answer_deadline_us=now_us + answer_within_us)


def accepted(job: Job) -> Job:
    """The device acknowledged the request: it runs it."""
    if job.state == RUNNING:
        return job
    _require(job, SENT)
    return replace(job, state=RUNNING)


def unreachable(job: Job, now_us: int, why: str) -> Job:
    """The device could not be reached: wait for it while allowed, else fail (a job the
    device acknowledged runs on: its result is sent when the device is back)."""
    _require(job, *OPEN_STATES)
    if job.state == RUNNING:
        return job
    if job.wait_until_us is not None and now_us < job.wait_until_us:
        return replace(job, state=QUEUED, sent_us=None, answer_deadline_us=None)
    return replace(job, state=FAILED, finished_us=now_us, error_code="device-offline",
                   error=why[:300])


def refused(job: Job, now_us: int, why: str, code: str = "device-refused") -> Job:
    """The device answered the request with an error (or the job cannot be sent at all:
    ``code`` says why): the job failed (no waiting helps)."""
    _require(job, *OPEN_STATES)
    return replace(job, state=FAILED, finished_us=now_us, error_code=code, error=why[:300])


def finished(job: Job, now_us: int, outcome: str, error_code: str | None,
             error: str | None, result: str | None) -> Job:
    """The device's result: ``done`` or ``failed``."""
    _require(job, *OPEN_STATES)
    return replace(job, state=DONE if outcome == "done" else FAILED, finished_us=now_us,
                   error_code=error_code, error=error, result=result)


def deadline_passed(job: Job, now_us: int) -> Job:
    """A deadline came: no answer in time (``timed-out``), or the wait is over."""
    deadline = job.next_deadline_us()
    if deadline is None or now_us < deadline:
        return job
    if job.state == QUEUED:
        return replace(job, state=FAILED, finished_us=now_us, error_code="device-offline",
                       error="the device did not come online in time")
    return replace(job, state=TIMED_OUT, finished_us=now_us, error_code="timed-out",
                   error="the device did not answer in time")


def cancel(job: Job, now_us: int) -> Job:
    """The user withdrew a job that has not gone out."""
    _require(job, QUEUED)
    return replace(job, state=CANCELLED, finished_us=now_us)
