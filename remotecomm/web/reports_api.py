"""The report routes of the REST API (S318–S320) and the CSV form of the session list.

``GET /api/v1/reports/sessions?from=&to=&group_by=`` answers JSON, or CSV
with ``Accept: text/csv`` or at ``/api/v1/reports/sessions.csv``;
``GET /api/v1/sessions.csv`` (or ``Accept: text/csv`` on the list) is the
session list as CSV, with the list's filters.  The caller's unit only: its
figures, its time zone.

By e-mail: ``/api/v1/reports/recipients`` and ``/api/v1/reports/schedules``
(listed by anyone of the unit, changed by its unit admins only, checked
with the stored membership role), ``POST /api/v1/reports/send`` ("send
now", unit admins) and ``GET /api/v1/reports/mailings`` (what was sent).
"""

from __future__ import annotations

from typing import Awaitable, Callable

from twisted.internet.interfaces import IReactorTime
from twisted.web import server

from remotecomm.accounts.login import Caller
from remotecomm.clock import now_us
from remotecomm.identifiers import MAIL_ADDRESS, is_valid
from remotecomm.json_http import ApiError, Download, Route, no_more_fields, read_json, take_str
from remotecomm.reports.csv_export import records_csv, report_csv
from remotecomm.reports.mail import ReportMailer, mailing_json
from remotecomm.reports.schedules import WEEKDAYS, ReportSchedule, ScheduleError
from remotecomm.reports.service import ReportError, UnitReports
from remotecomm.reports.sessions import unit_zone
from remotecomm.sessions import records
from remotecomm.store import mailings as mail_rows
from remotecomm.store.audit import append_audit
from remotecomm.store.engine import Store, StoreBusy
from remotecomm.web.answers import BUSY

CSV = "text/csv; charset=utf-8; header=present"
MAX_CSV_RECORDS = 10_000


def wants_csv(request: server.Request) -> bool:
    """Whether the client asked for CSV (``Accept: text/csv``)."""
    accept = (request.getHeader(b"accept") or b"").decode("ascii", "replace").lower()
    return any(part.split(";")[0].strip() == "text/csv" for part in accept.split(","))


def _query(request: server.Request, known: tuple[str, ...]) -> dict[str, str]:
    values = {}
    for raw_name, raw_values in request.args.items():
        name = raw_name.decode("ascii", "replace")
        if name not in known:
            raise ApiError(400, "unknown-field", f"unknown query parameter {name!r}",
                           fields=[name])
        values[name] = raw_values[-1].decode("utf-8", "replace")
    return values


class ReportRoutes:
    """Reports and CSV exports for the caller's unit."""

    def __init__(self, store: Store, clock: IReactorTime,
                 caller: Callable[[server.Request], Awaitable[tuple[Caller, str]]],
                 session_filters: Callable[[dict], dict], mailer: ReportMailer | None = None):
        self._store = store
        self._clock = clock
        self._caller = caller
        self._session_filters = session_filters
        self._reports = UnitReports(store, clock, mailer)

    def routes(self) -> list[Route]:
        """The routes to add to the API's router."""
        return [Route("/api/v1/reports/sessions", get=self.report),
                Route("/api/v1/reports/sessions.csv", get=self.report_as_csv),
                Route("/api/v1/sessions.csv", get=self.sessions_csv),
                Route("/api/v1/reports/recipients", get=self.recipients,
                      post=self.add_recipient),
                Route("/api/v1/reports/recipients/{address}", delete=self.remove_recipient),
                Route("/api/v1/reports/schedules", get=self.schedules, post=self.add_schedule),
                Route("/api/v1/reports/schedules/{schedule_id}", delete=self.remove_schedule),
                Route("/api/v1/reports/send", post=self.send_now),
                Route("/api/v1/reports/mailings", get=self.mailings)]

    async def _run(self, fn, *args):
        try:
            return await self._store.run(fn, *args)
        except StoreBusy:
            raise BUSY from None

    async def report(self, request: server.Request, csv: bool = False):
        """S318/S319: the caller's unit's figures over a period, grouped or not."""
        caller, _ = await self._caller(request)
        values = _query(request, ("from", "to", "group_by"))
        answer = await self._report_call(self._reports.report, caller.unit_id,
                                         values.get("from"), values.get("to"),
                                         values.get("group_by") or None)
        if csv or wants_csv(request):
            return 200, Download(report_csv(answer), CSV,
                                 f"sessions-{caller.unit_id}-{answer['from'][:10]}.csv")
        return 200, answer

    async def report_as_csv(self, request: server.Request):
        """The report as CSV, whatever the Accept header says."""
        return await self.report(request, csv=True)

    async def sessions_csv(self, request: server.Request):
        """The session list (with its filters) as CSV, at most 10,000 records, newest first;
        ``X-Remotecomm-Next`` gives the ``before`` of the next part when there is more."""
        caller, _ = await self._caller(request)
        limit_given = b"limit" in request.args
        filters = self._session_filters({k: v for k, v in request.args.items()
                                         if k != b"limit"})
        if limit_given:
            raw = request.args[b"limit"][-1]
            if not raw.isdigit() or not 1 <= int(raw) <= MAX_CSV_RECORDS:
                raise ApiError(400, "invalid-field", f"limit must be 1 to {MAX_CSV_RECORDS}",
                               field="limit")
            filters["limit"] = int(raw)
        else:
            filters["limit"] = MAX_CSV_RECORDS

        def export(connection):
            found = records.unit_records(connection, caller.unit_id, **filters)
            return found, unit_zone(connection, caller.unit_id)

        found, tz = await self._run(export)
        if len(found) == filters["limit"]:
            last = found[-1]
            request.setHeader(b"x-remotecomm-next",
                              f"{last['requested_at_us']}.{last['request_id']}".encode())
        return 200, Download(records_csv(found, tz), CSV, f"sessions-{caller.unit_id}.csv")

    # -- by e-mail -----------------------------------------------------------------------

    async def _admin(self, request: server.Request) -> Caller:
        """The caller (the API let them in only if their role may manage reports)."""
        caller, _ = await self._caller(request)
        return caller

    async def _audited(self, caller: Caller, kind: str, change, *args, **detail):
        at = now_us(self._clock)

        def run(connection):
            result = change(connection, *args)
            if result:
                append_audit(connection, at, kind, actor=caller.user_id, unit_id=caller.unit_id,
                             source_address=caller.source_address, **detail)
            return result

        return await self._run(run)

    async def recipients(self, request: server.Request):
        """The unit's report recipients."""
        caller, _ = await self._caller(request)
        found = await self._run(mail_rows.recipients_of, caller.unit_id)
        return 200, {"unit_id": caller.unit_id, "recipients": found}

    async def add_recipient(self, request: server.Request):
        """Register a recipient (unit admins)."""
        caller = await self._admin(request)
        body = read_json(request)
        address = take_str(body, "address", MAIL_ADDRESS, max_length=254).lower()
        no_more_fields(body)
        added = await self._audited(caller, "report-recipient-added", mail_rows.add_recipient,
                                    caller.unit_id, address, now_us(self._clock),
                                    caller.user_id, address=address)
        return (201 if added else 200), {"address": address, "added": bool(added)}

    async def remove_recipient(self, request: server.Request, address: str):
        """Unregister a recipient (unit admins)."""
        caller = await self._admin(request)
        address = address.lower()
        removed = is_valid(MAIL_ADDRESS, address) and await self._audited(
            caller, "report-recipient-removed", mail_rows.remove_recipient, caller.unit_id,
            address, address=address)
        if not removed:
            raise ApiError(404, "recipient-not-found", "no such recipient in your unit")
        return 200, {"address": address, "removed": True}

    async def schedules(self, request: server.Request):
        """The unit's report schedules."""
        caller, _ = await self._caller(request)
        found = await self._run(mail_rows.schedules_of, caller.unit_id)
        return 200, {"unit_id": caller.unit_id, "schedules": [_schedule_json(row)
                                                              for row in found]}

    async def add_schedule(self, request: server.Request):
        """Add a schedule (unit admins): ``frequency`` (daily, weekly, monthly), ``at``
        (HH:MM unit time), ``weekday`` (weekly), ``day`` (monthly, 1–28), ``group_by``."""
        caller = await self._admin(request)
        body = read_json(request)
        frequency = take_str(body, "frequency", r"daily|weekly|monthly")
        at_time = take_str(body, "at", r"\d\d:\d\d")
        weekday = body.pop("weekday", None)
        day = body.pop("day", None)
        group_by = body.pop("group_by", None)
        no_more_fields(body)
        if weekday is not None and weekday not in WEEKDAYS:
            raise ApiError(400, "invalid-field", "weekday must be monday … sunday",
                           field="weekday")
        if day is not None and (not isinstance(day, int) or isinstance(day, bool)):
            raise ApiError(400, "invalid-field", "day must be a number from 1 to 28",
                           field="day")
        try:
            schedule = ReportSchedule(frequency, at_time,
                                      WEEKDAYS.index(weekday) if weekday else None, day,
                                      group_by)
        except ScheduleError as e:
            raise ApiError(400, "invalid-field", str(e), field=e.field) from None
        values = dict(unit_id=caller.unit_id, frequency=schedule.frequency,
                      at_time=schedule.at_time, weekday=schedule.weekday,
                      day_of_month=schedule.day_of_month, group_by=schedule.group_by,
                      created_us=now_us(self._clock), created_by=caller.user_id)
        schedule_id = await self._audited(caller, "report-schedule-added",
                                          mail_rows.add_schedule, values,
                                          schedule=schedule.describe())
        return 201, _schedule_json(dict(values, schedule_id=schedule_id))

    async def remove_schedule(self, request: server.Request, schedule_id: str):
        """Delete a schedule (unit admins)."""
        caller = await self._admin(request)
        removed = schedule_id.isdigit() and len(schedule_id) < 10 and await self._audited(
            caller, "report-schedule-removed", mail_rows.remove_schedule, caller.unit_id,
            int(schedule_id), schedule_id=schedule_id)
        if not removed:
            raise ApiError(404, "schedule-not-found", "no such schedule in your unit")
        return 200, {"schedule_id": int(schedule_id), "removed": True}

    async def send_now(self, request: server.Request):
        """Queue the unit's report for its recipients now (unit admins): ``from``, ``to``,
        ``group_by`` as for the report; 202 with the mailing to follow."""
        caller = await self._admin(request)
        if not self._reports.mail_enabled:
            raise ApiError(503, "mail-not-configured", "this server sends no e-mail ([mail])")
        request.content.seek(0)
        body = read_json(request) if request.content.read(1) else {}
        values = {}
        for name in ("from", "to", "group_by"):
            value = body.pop(name, None)
            if value is not None and not isinstance(value, str):
                raise ApiError(400, "invalid-field", f"{name} must be a string", field=name)
            values[name] = value
        no_more_fields(body)
        mailing_id, recipients = await self._report_call(
            self._reports.send_now, caller.unit_id, caller.user_id, values["from"],
            values["to"], values["group_by"])
        return 202, {"mailing_id": mailing_id, "state": "queued", "recipients": recipients}

    async def _report_call(self, call, *args):
        try:
            return await call(*args)
        except ReportError as e:
            raise ApiError(e.status, e.code, e.message, **e.extra) from None
        except StoreBusy:
            raise BUSY from None

    async def mailings(self, request: server.Request):
        """The unit's recent mailings, newest first, with their state."""
        caller, _ = await self._caller(request)

        def listed(connection):
            return (mail_rows.mailings_of(connection, caller.unit_id),
                    unit_zone(connection, caller.unit_id))

        found, tz = await self._run(listed)
        return 200, {"unit_id": caller.unit_id,
                     "mailings": [mailing_json(row, tz) for row in found]}


def _schedule_json(row: dict) -> dict:
    schedule = ReportSchedule(row["frequency"], row["at_time"], row["weekday"],
                              row["day_of_month"], row["group_by"])
    return {"schedule_id": row["schedule_id"], "frequency": row["frequency"],
            "at": row["at_time"],
            "weekday": WEEKDAYS[row["weekday"]] if row["weekday"] is not None else None,
            "day": row["day_of_month"], "group_by": row["group_by"],
            "description": schedule.describe()}
