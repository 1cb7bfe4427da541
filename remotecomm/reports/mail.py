"""Reports by e-mail (S320's e-mail variant): composing the message, and the mail outbox.

A unit's report goes to its registered recipients as one message: the
summary in the body (plain text and HTML) and the CSV attached.  Mailings
are rows of an outbox (:mod:`remotecomm.store.mailings`): "send now" and each
schedule's occurrence queue one; :class:`ReportMailer` claims the due ones,
builds the report in a transaction that changes nothing, then sends it, and
records the outcome -- retried with backoff when the SMTP server fails, and
each failure counted and audited.  A schedule's occurrence is queued once
(so a manager that was down sends it once when it returns), ``send_grace``
after its time, so that devices' information can arrive first; the report
still never waits for it: ``missing_device_info`` says how much is missing.
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass
from datetime import timezone
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Callable

from sqlalchemy import Connection
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from remotecomm.clock import now_us, seconds_to_us
from remotecomm.reports.csv_export import report_csv
from remotecomm.reports.periods import Period, local_iso, local_moment, to_us, zone
from remotecomm.reports.schedules import ReportSchedule, latest_occurrence, period_before
from remotecomm.reports.sessions import unit_report
from remotecomm.store import mailings as rows
from remotecomm.store.audit import append_audit
from remotecomm.store.engine import Store
from remotecomm.store.reports import unit_name, unit_time_zone

log = Logger()

# After a failed attempt, wait this long before the next (then give up).
RETRY_DELAYS = (60, 300, 900, 3600, 4 * 3600)
SEND_LEASE = 600.0  # a claimed mailing whose process died is due again after this
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

MAIL_SENT = "report-mail-sent"
MAIL_FAILED = "report-mail-failed"


def _plain(text: str) -> str:
    return _CONTROL.sub(" ", text)[:200]


def _duration(microseconds: int) -> str:
    seconds = microseconds // 1_000_000
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def summary_lines(report: dict) -> list[tuple[str, str]]:
    """The report's summary as (label, value) pairs, for the body of the message."""
    totals = report["totals"]
    ends = ", ".join(f"{reason} {count}" for reason, count in totals["ends"].items()) or "none"
    lines = [("Period", f"{report['from']} to {report['to']} ({report['time_zone']})"),
             ("Sessions", str(totals["sessions"])),
             ("Sessions that ran", str(totals["sessions_run"])),
             ("Total duration", _duration(totals["duration_us"])),
             ("Average duration", _duration(totals["average_duration_us"])),
             ("Bytes to devices", str(totals["bytes_to_device"])),
             ("Bytes from devices", str(totals["bytes_from_device"])),
             ("Ends", ends),
             ("Still open", str(len(report["open_sessions"])))]
    if report["missing_device_info"]:
        lines.append(("Device information", f"missing for {report['missing_device_info']} "
                                            f"session(s); not collected yet"))
    return lines


def compose(report: dict, unit_name: str, from_address: str, recipients: list[str],
            at_us: int) -> bytes:
    """The message for ``recipients``: summary as text and HTML, the report's CSV attached."""
    unit = _plain(unit_name)
    period = f"{report['from'][:10]} to {report['to'][:10]}"
    message = EmailMessage()
    message["Subject"] = f"Remote sessions of {unit}: {period}"
    message["From"] = from_address
    message["To"] = ", ".join(recipients)
    message["Date"] = format_datetime(local_moment(at_us, timezone.utc))
    message["Message-ID"] = make_msgid("report", from_address.rpartition("@")[2])
    lines = summary_lines(report)
    width = max(len(label) for label, _ in lines)
    text = [f"Remote sessions of {unit} ({report['unit_id']})", ""]
    text += [f"{label + ':':<{width + 1}} {value}" for label, value in lines]
    text += ["", "The attached CSV has the figures"
             + (f" by {report['group_by']}." if report.get("group_by") else ".")]
    message.set_content("\n".join(text) + "\n")
    cells = "".join(f"<tr><th align='left'>{html.escape(label)}</th>"
                    f"<td>{html.escape(value)}</td></tr>" for label, value in lines)
    message.add_alternative(
        f"<html><body><h1>Remote sessions of {html.escape(unit)}</h1>"
        f"<table>{cells}</table><p>The attached CSV has the figures"
        f"{' by ' + html.escape(report['group_by']) if report.get('group_by') else ''}.</p>"
        f"</body></html>", subtype="html")
    message.add_attachment(report_csv(report), maintype="text", subtype="csv",
                           filename=f"sessions-{report['unit_id']}-{report['from'][:10]}.csv")
    return message.as_bytes()


@dataclass(frozen=True)
class Prepared:
    """A claimed mailing, ready to send: its message and recipients (or why not)."""

    mailing_id: int
    unit_id: str
    recipients: list[str]
    message: bytes | None
    attempts: int
    problem: str | None = None


class ReportMailer:
    """Queues reports to mail (now, or by schedule) and sends what is due."""

    def __init__(self, store: Store, clock: IReactorTime,
                 send: Callable[[list[str], bytes], Deferred] | None, from_address: str, *,
                 send_grace: float = 900.0):
        self._store = store
        self._clock = clock
        self._send = send  # None: mail is not configured
        self._from = from_address
        self._grace_us = seconds_to_us(send_grace)
        self.sent = 0
        self.failures = 0
        self.pending = 0
        self._sending: Deferred | None = None

    @property
    def enabled(self) -> bool:
        """Whether an SMTP server is configured."""
        return self._send is not None

    async def send_now(self, unit_id: str, user_id: str, period: Period,
                       group_by: str | None) -> int:
        """Queue the unit's report of ``period`` for its recipients; the mailing's ID."""
        at = now_us(self._clock)
        return await self._store.run(rows.queue_mailing, dict(
            unit_id=unit_id, schedule_id=None, occurrence_us=None,
            period_from_us=period.start_us, period_to_us=period.end_us, group_by=group_by,
            requested_by=user_id, next_attempt_us=at, created_us=at))

    async def queue_due_schedules(self) -> int:
        """Queue each schedule's latest occurrence that is due (its time plus the grace) and
        not queued yet; how many were queued."""
        at = now_us(self._clock)

        def queue(connection: Connection) -> int:
            queued = 0
            for row in rows.schedules_of(connection):
                tz = zone(unit_time_zone(connection, row["unit_id"]) or "UTC")
                schedule = ReportSchedule(row["frequency"], row["at_time"], row["weekday"],
                                          row["day_of_month"], row["group_by"])
                occurrence = latest_occurrence(schedule, local_moment(at - self._grace_us, tz),
                                               tz)
                if occurrence is None:
                    continue
                occurrence_us = to_us(occurrence)
                if occurrence_us < row["created_us"]:
                    continue  # a schedule starts with its first occurrence after it was made
                period = period_before(schedule, occurrence, tz)
                if rows.queue_mailing(connection, dict(
                        unit_id=row["unit_id"], schedule_id=row["schedule_id"],
                        occurrence_us=occurrence_us, period_from_us=period.start_us,
                        period_to_us=period.end_us, group_by=schedule.group_by,
                        requested_by=None, next_attempt_us=at, created_us=at)) is not None:
                    queued += 1
            return queued

        return await self._store.run(queue)

    def _prepare(self, connection: Connection, at: int) -> Prepared | None:
        """Claim the next due mailing and build its message (reads only, besides the claim)."""
        row = rows.claim_due_mailing(connection, at, seconds_to_us(SEND_LEASE))
        if row is None:
            return None
        recipients = rows.recipients_of(connection, row.unit_id)
        if not recipients:
            return Prepared(row.mailing_id, row.unit_id, [], None, row.attempts,
                            "the unit has no report recipients")
        tz = zone(unit_time_zone(connection, row.unit_id) or "UTC")
        period = Period(local_moment(row.period_from_us, tz),
                        local_moment(row.period_to_us, tz), tz)
        report = unit_report(connection, row.unit_id, period, row.group_by)
        message = compose(report, unit_name(connection, row.unit_id) or row.unit_id,
                          self._from, recipients, at)
        return Prepared(row.mailing_id, row.unit_id, recipients, message, row.attempts)

    def kick(self) -> None:
        """Send what is due soon (after "send now"), unless a round is under way."""
        if self._sending is None and self._send is not None:
            self._sending = ensureDeferred(self.send_due())
            self._sending.addErrback(lambda f: log.failure("sending reports failed", f))
            self._sending.addBoth(lambda _: setattr(self, "_sending", None))

    async def send_due(self) -> int:
        """Send every mailing that is due; how many went out."""
        sent = 0
        while True:
            at = now_us(self._clock)
            prepared = await self._store.run(self._prepare, at)
            if prepared is None:
                break
            if prepared.problem is None and self._send is None:
                prepared = Prepared(prepared.mailing_id, prepared.unit_id, prepared.recipients,
                                    None, prepared.attempts, "mail is not configured ([mail])")
            if prepared.problem is not None:
                await self._record_failure(prepared, prepared.problem, final=True)
                continue
            try:
                await self._send(prepared.recipients, prepared.message)
            except Exception as e:
                await self._record_failure(prepared, f"{type(e).__name__}: {e}"[:300],
                                           final=prepared.attempts > len(RETRY_DELAYS))
                continue
            await self._store.run(self._record_sent, prepared, now_us(self._clock))
            self.sent += 1
            sent += 1
            log.info("mailed the report of {unit_id} to {count} recipient(s) (mailing "
                     "{mailing_id})", unit_id=prepared.unit_id, count=len(prepared.recipients),
                     mailing_id=prepared.mailing_id)
        self.pending = await self._store.run(rows.pending_mailings)
        return sent

    @staticmethod
    def _record_sent(connection: Connection, prepared: Prepared, at: int) -> None:
        rows.mailing_sent(connection, prepared.mailing_id, at, prepared.recipients)
        append_audit(connection, at, MAIL_SENT, unit_id=prepared.unit_id,
                     mailing_id=prepared.mailing_id, recipients=prepared.recipients)

    async def _record_failure(self, prepared: Prepared, error: str, final: bool) -> None:
        at = now_us(self._clock)
        retry_at = None if final else at + seconds_to_us(
            RETRY_DELAYS[min(prepared.attempts, len(RETRY_DELAYS)) - 1])
        self.failures += 1
        log.warn("mailing {mailing_id} of {unit_id} failed (attempt {attempt}): {error}; "
                 "{next}", mailing_id=prepared.mailing_id, unit_id=prepared.unit_id,
                 attempt=prepared.attempts, error=error,
                 next="giving up" if retry_at is None else "will retry")

        def record(connection: Connection) -> None:
            rows.mailing_attempt_failed(connection, prepared.mailing_id, error, retry_at)
            append_audit(connection, at, MAIL_FAILED, unit_id=prepared.unit_id,
                         mailing_id=prepared.mailing_id, attempt=prepared.attempts,
                         error=error, final=retry_at is None)

        await self._store.run(record)

    async def run(self, period_start_us: int = 0) -> str:
        """One round: queue due schedules, send what is due (the scheduler's job)."""
        queued = await self.queue_due_schedules()
        sent = await self.send_due()
        return f"{queued} queued, {sent} sent, {self.pending} pending"


def mailing_json(row: dict, tz) -> dict:
    """A mailing as the API lists it."""
    return {"mailing_id": row["mailing_id"], "state": row["state"],
            "schedule_id": row["schedule_id"], "requested_by": row["requested_by"],
            "from": local_iso(row["period_from_us"], tz), "to": local_iso(row["period_to_us"], tz),
            "group_by": row["group_by"], "attempts": row["attempts"],
            "last_error": row["last_error"],
            "sent_at": local_iso(row["sent_us"], tz) if row["sent_us"] else None,
            "recipients": json.loads(row["recipients"]) if row["recipients"] else None}
