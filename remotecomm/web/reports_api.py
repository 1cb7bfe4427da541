"""The report routes of the REST API (S318–S320) and the CSV form of the session list.

``GET /api/v1/reports/sessions?from=&to=&group_by=`` answers JSON, or CSV
with ``Accept: text/csv`` or at ``/api/v1/reports/sessions.csv``;
``GET /api/v1/sessions.csv`` (or ``Accept: text/csv`` on the list) is the
session list as CSV, with the list's filters.  The caller's unit only: its
figures, its time zone.
"""

from __future__ import annotations

from typing import Awaitable, Callable

from twisted.internet.interfaces import IReactorTime
from twisted.web import server

from remotecomm.accounts.login import Caller
from remotecomm.clock import now_us
from remotecomm.json_http import ApiError, Download, Route
from remotecomm.reports.csv_export import records_csv, report_csv
from remotecomm.reports.periods import PeriodError, period
from remotecomm.reports.sessions import unit_report, unit_zone
from remotecomm.sessions import records
from remotecomm.store.engine import Store, StoreBusy
from remotecomm.store.reports import GROUPS

CSV = "text/csv; charset=utf-8; header=present"
MAX_CSV_RECORDS = 10_000
# The answer when the store's queue is full (the API module's too).
BUSY = ApiError(503, "busy", "the server is busy; try again shortly", headers={"Retry-After": "1"})


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
                 session_filters: Callable[[dict], dict]):
        self._store = store
        self._clock = clock
        self._caller = caller
        self._session_filters = session_filters

    def routes(self) -> list[Route]:
        """The routes to add to the API's router."""
        return [Route("/api/v1/reports/sessions", get=self.report),
                Route("/api/v1/reports/sessions.csv", get=self.report_as_csv),
                Route("/api/v1/sessions.csv", get=self.sessions_csv)]

    async def _run(self, fn, *args):
        try:
            return await self._store.run(fn, *args)
        except StoreBusy:
            raise BUSY from None

    async def report(self, request: server.Request, csv: bool = False):
        """S318/S319: the caller's unit's figures over a period, grouped or not."""
        caller, _ = await self._caller(request)
        values = _query(request, ("from", "to", "group_by"))
        group_by = values.get("group_by") or None
        if group_by is not None and group_by not in GROUPS:
            raise ApiError(400, "invalid-field", f"group_by must be one of {', '.join(GROUPS)}",
                           field="group_by")

        def build(connection):
            tz = unit_zone(connection, caller.unit_id)
            asked = period(values.get("from"), values.get("to"), tz, now_us(self._clock))
            return unit_report(connection, caller.unit_id, asked, group_by)

        try:
            answer = await self._run(build)
        except PeriodError as e:
            raise ApiError(400, "invalid-field", str(e), field=e.field) from None
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
