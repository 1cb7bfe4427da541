"""A unit's reports as its users ask for them: the REST API and the portal call these.

Bounds are read in the unit's time zone (:mod:`remotecomm.reports.periods`);
a bound that cannot be read, or an unknown grouping, is a
:class:`ReportError` (``400 invalid-field``, naming the field).
"""

from __future__ import annotations

from twisted.internet.interfaces import IReactorTime

from remotecomm.clock import now_us
from remotecomm.reports.mail import ReportMailer
from remotecomm.reports.periods import PeriodError, period
from remotecomm.reports.sessions import unit_report, unit_zone
from remotecomm.service_errors import ServiceError
from remotecomm.store import mailings as mail_rows
from remotecomm.store.engine import Store
from remotecomm.store.reports import GROUPS


class ReportError(ServiceError):
    """A report asked for in a way that cannot be answered."""


def _check_group(group_by: str | None) -> None:
    if group_by is not None and group_by not in GROUPS:
        raise ReportError(400, "invalid-field", f"group_by must be one of {', '.join(GROUPS)}",
                          field="group_by")


class UnitReports:
    """Reports of one unit at a time, now or by e-mail."""

    def __init__(self, store: Store, clock: IReactorTime, mailer: ReportMailer | None = None):
        self._store = store
        self._clock = clock
        self._mailer = mailer

    @property
    def mail_enabled(self) -> bool:
        """Whether this server sends e-mail (``[mail]`` configured)."""
        return self._mailer is not None and self._mailer.enabled

    async def report(self, unit_id: str, from_text: str | None, to_text: str | None,
                     group_by: str | None) -> dict:
        """S318/S319: the unit's figures over a period (default: this month), grouped by
        device, app, user or day, or not."""
        _check_group(group_by)
        at = now_us(self._clock)

        def build(connection):
            asked = period(from_text, to_text, unit_zone(connection, unit_id), at)
            return unit_report(connection, unit_id, asked, group_by)

        try:
            return await self._store.run(build)
        except PeriodError as e:
            raise ReportError(400, "invalid-field", str(e), field=e.field) from None

    async def send_now(self, unit_id: str, user_id: str, from_text: str | None,
                       to_text: str | None, group_by: str | None) -> tuple[str, list]:
        """Queue the unit's report for its recipients now; the mailing's ID and the
        recipients."""
        if not self.mail_enabled:
            raise ReportError(503, "mail-not-configured", "this server sends no e-mail ([mail])")
        _check_group(group_by)
        recipients = await self._store.run(mail_rows.recipients_of, unit_id)
        if not recipients:
            raise ReportError(409, "no-recipients", "your unit has no report recipients")
        at = now_us(self._clock)

        def asked(connection):
            return period(from_text, to_text, unit_zone(connection, unit_id), at)

        try:
            the_period = await self._store.run(asked)
        except PeriodError as e:
            raise ReportError(400, "invalid-field", str(e), field=e.field) from None
        mailing_id = await self._mailer.send_now(unit_id, user_id, the_period, group_by)
        self._mailer.kick()
        return mailing_id, recipients
