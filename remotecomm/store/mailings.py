"""Transaction functions for reports by e-mail: recipients, schedules, and the mail outbox.

A mailing moves ``queued`` → ``sending`` (claimed by one process, with a
lease in ``next_attempt_us``) → ``sent``, or back to ``queued`` with a later
``next_attempt_us`` after a failed attempt, or to ``failed`` when its
attempts run out.  A schedule's occurrence is queued once
(``uq_report_mailings_occurrence``).
"""

from __future__ import annotations

import json

from sqlalchemy import Connection, delete, func, insert, or_, select, update

from remotecomm.store.schema import report_mailings, report_recipients, report_schedules

# -- recipients ------------------------------------------------------------------------------

def recipients_of(connection: Connection, unit_id: str) -> list[str]:
    """A unit's report recipients, sorted."""
    return list(connection.execute(select(report_recipients.c.address).where(
        report_recipients.c.unit_id == unit_id).order_by(report_recipients.c.address)).scalars())


def add_recipient(connection: Connection, unit_id: str, address: str, at_us: int,
                  added_by: str) -> bool:
    """Register a recipient; whether it is new."""
    if address in recipients_of(connection, unit_id):
        return False
    connection.execute(insert(report_recipients).values(unit_id=unit_id, address=address,
                                                         added_us=at_us, added_by=added_by))
    return True


def remove_recipient(connection: Connection, unit_id: str, address: str) -> bool:
    """Unregister a recipient; whether there was one."""
    return connection.execute(delete(report_recipients).where(
        report_recipients.c.unit_id == unit_id,
        report_recipients.c.address == address)).rowcount == 1


# -- schedules -------------------------------------------------------------------------------

def schedules_of(connection: Connection, unit_id: str | None = None) -> list[dict]:
    """A unit's schedules (every unit's with ``None``), oldest first."""
    query = select(report_schedules).order_by(report_schedules.c.schedule_id)
    if unit_id is not None:
        query = query.where(report_schedules.c.unit_id == unit_id)
    return [dict(row._mapping) for row in connection.execute(query)]


def add_schedule(connection: Connection, values: dict) -> int:
    """Store a schedule; its ID."""
    return connection.execute(insert(report_schedules).values(**values)).inserted_primary_key[0]


def remove_schedule(connection: Connection, unit_id: str, schedule_id: int) -> bool:
    """Delete one of a unit's schedules; whether there was one."""
    return connection.execute(delete(report_schedules).where(
        report_schedules.c.unit_id == unit_id,
        report_schedules.c.schedule_id == schedule_id)).rowcount == 1


# -- the outbox ------------------------------------------------------------------------------

def queue_mailing(connection: Connection, values: dict) -> int | None:
    """Queue a report to send; its ID, or ``None`` if this schedule's occurrence is queued
    already (a schedule sends each period once)."""
    if values.get("schedule_id") is not None:
        exists = connection.execute(select(report_mailings.c.mailing_id).where(
            report_mailings.c.schedule_id == values["schedule_id"],
            report_mailings.c.occurrence_us == values["occurrence_us"])).first()
        if exists is not None:
            return None
    values = dict(values, state="queued", attempts=0)
    return connection.execute(insert(report_mailings).values(**values)).inserted_primary_key[0]


def claim_due_mailing(connection: Connection, now_us: int, lease_us: int):
    """The oldest mailing due now, claimed for ``lease_us`` (its row), or ``None``.  A
    ``sending`` mailing whose lease ran out (its process died) is due again."""
    row = connection.execute(select(report_mailings).where(
        or_(report_mailings.c.state == "queued", report_mailings.c.state == "sending"),
        report_mailings.c.next_attempt_us <= now_us)
        .order_by(report_mailings.c.next_attempt_us, report_mailings.c.mailing_id)
        .limit(1)).first()
    if row is None:
        return None
    claimed = connection.execute(update(report_mailings).where(
        report_mailings.c.mailing_id == row.mailing_id, report_mailings.c.state == row.state,
        report_mailings.c.next_attempt_us == row.next_attempt_us)
        .values(state="sending", next_attempt_us=now_us + lease_us,
                attempts=report_mailings.c.attempts + 1))
    if claimed.rowcount != 1:
        return None
    return connection.execute(select(report_mailings).where(
        report_mailings.c.mailing_id == row.mailing_id)).first()


def mailing_sent(connection: Connection, mailing_id: int, at_us: int,
                 recipients: list[str]) -> None:
    """The mail went out to ``recipients``."""
    connection.execute(update(report_mailings).where(report_mailings.c.mailing_id == mailing_id)
                       .values(state="sent", sent_us=at_us, last_error=None,
                               recipients=json.dumps(recipients)))


def mailing_attempt_failed(connection: Connection, mailing_id: int, error: str,
                           retry_at_us: int | None) -> None:
    """An attempt failed: queue it again at ``retry_at_us``, or give up (``None``)."""
    values = {"last_error": error[:300]}
    if retry_at_us is None:
        values["state"] = "failed"
    else:
        values.update(state="queued", next_attempt_us=retry_at_us)
    connection.execute(update(report_mailings).where(report_mailings.c.mailing_id == mailing_id)
                       .values(**values))


def mailings_of(connection: Connection, unit_id: str, limit: int = 50) -> list[dict]:
    """A unit's most recent mailings."""
    return [dict(row._mapping) for row in connection.execute(
        select(report_mailings).where(report_mailings.c.unit_id == unit_id)
        .order_by(report_mailings.c.mailing_id.desc()).limit(limit))]


def pending_mailings(connection: Connection) -> int:
    """How many mailings wait to be sent (queued or being sent)."""
    return connection.execute(select(func.count()).select_from(report_mailings).where(
        report_mailings.c.state.in_(("queued", "sending")))).scalar()
