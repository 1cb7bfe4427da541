"""Collecting what devices kept of sessions (S311–S314): on request, on a schedule, on return.

Devices push their report when their side of a session ends (S313, push);
a push can be lost (the manager was down, the agent stopped mid-session).
:class:`RecordCollector` finds the ended sessions whose device took its token
but whose report never came, and asks each device for them
(:class:`~remotecomm.sessions.messages.ReportRequest`).  It runs:

- when a user asks (``POST /api/v1/sessions/collect``: the user's unit),
- on a schedule (``[records] collect_every``: every unit),
- when a device says hello (it was offline when asked: it is asked now).

Each report is kept once (a repeat, pushed or collected, changes nothing).
A device that answers without a session it was asked about has nothing of
it; after :data:`MAX_ASKS` such answers the session is no longer asked
about.  A device that is offline or does not answer in time is asked again
next time.  The relay's side needs no collection: the relay writes each log
before it acts and pushes it until the manager files it (S316: data already
pushed is not sent again).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from twisted.internet.defer import DeferredSemaphore, gatherResults
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from remotecomm.clock import now_us, seconds_to_us
from remotecomm.sessions import records
from remotecomm.sessions.messages import MAX_REPORTS_ASKED, KeptReports, ReportRequest
from remotecomm.store import sessions as session_rows
from remotecomm.store.engine import Store

log = Logger()

MAX_ASKS = 3               # "nothing kept" answers before a session is given up on
MAX_SESSIONS_PER_RUN = 5000
DEVICES_AT_ONCE = 16


@dataclass
class CollectionOutcome:
    """What one collection did: devices asked and offline, reports kept, still missing."""

    asked_devices: list[str] = field(default_factory=list)
    offline_devices: list[str] = field(default_factory=list)
    silent_devices: list[str] = field(default_factory=list)  # asked, no answer in time
    reports_collected: int = 0
    not_kept: int = 0
    still_missing: int = 0

    def to_json(self) -> dict:
        """The outcome as the API answers it."""
        return {"asked_devices": sorted(self.asked_devices),
                "offline_devices": sorted(self.offline_devices),
                "silent_devices": sorted(self.silent_devices),
                "reports_collected": self.reports_collected, "not_kept": self.not_kept,
                "still_missing": self.still_missing}

    def summary(self) -> str:
        """One line for logs and the scheduled run's outcome."""
        return (f"{len(self.asked_devices)} devices asked, {self.reports_collected} reports "
                f"collected, {len(self.offline_devices)} devices offline, "
                f"{len(self.silent_devices)} silent, {self.still_missing} still missing")


class RecordCollector:
    """Asks devices for the session reports the manager lacks, and keeps the answers."""

    def __init__(self, store: Store, clock: IReactorTime, devices, *,
                 window: float = 30 * 86400):
        self._store = store
        self._clock = clock
        self._devices = devices  # is_reachable(device_id), send(device_id, message)
        self._window_us = seconds_to_us(window)
        self._limit = DeferredSemaphore(DEVICES_AT_ONCE)

    def _missing(self, **where):
        return self._store.run(session_rows.sessions_missing_device_reports,
                               ended_since_us=now_us(self._clock) - self._window_us,
                               max_asks=MAX_ASKS, limit=MAX_SESSIONS_PER_RUN, **where)

    async def collect(self, unit_id: str | None = None,
                      device_id: str | None = None) -> CollectionOutcome:
        """Ask the devices of ``unit_id`` (or ``device_id``, or every device) for the
        reports the manager lacks; wait for their answers (each bounded by the XMPP
        request timeout)."""
        missing = await self._missing(unit_id=unit_id, device_id=device_id)
        by_device: dict[str, list[str]] = {}
        for request_id, device in missing:
            by_device.setdefault(device, []).append(request_id)
        outcome = CollectionOutcome()
        asks = []
        for device, request_ids in sorted(by_device.items()):
            if not self._devices.is_reachable(device):
                outcome.offline_devices.append(device)
                continue
            outcome.asked_devices.append(device)
            for start in range(0, len(request_ids), MAX_REPORTS_ASKED):
                chunk = tuple(request_ids[start:start + MAX_REPORTS_ASKED])
                asks.append(self._limit.run(self._ask, device, chunk, outcome))
        if asks:
            await gatherResults(asks)
        remaining = await self._missing(unit_id=unit_id, device_id=device_id)
        outcome.still_missing = len(remaining)
        if missing:
            log.info("collected session reports: {summary}", summary=outcome.summary())
        return outcome

    async def _ask(self, device_id: str, request_ids: tuple[str, ...],
                   outcome: CollectionOutcome) -> None:
        asked = ReportRequest(request_ids=request_ids)
        try:
            answer: KeptReports = await self._devices.ask_kept_reports(device_id, asked)
        except Exception as e:
            log.info("{device_id} did not answer a report request: {error}",
                     device_id=device_id, error=str(e) or type(e).__name__)
            if device_id not in outcome.silent_devices:
                outcome.silent_devices.append(device_id)
            return
        received = now_us(self._clock)
        answered = {report.request_id for report in answer.reports}
        not_kept = [request_id for request_id in request_ids if request_id not in answered]

        def keep_all(connection) -> int:
            kept = sum(1 for report in answer.reports
                       if records.keep_device_report(connection, device_id, report, received))
            session_rows.note_device_report_not_kept(connection, not_kept, received)
            return kept

        outcome.reports_collected += await self._store.run(keep_all)
        outcome.not_kept += len(not_kept)

    async def device_returned(self, device_id: str) -> None:
        """A device said hello: collect what it still owes (it may have been offline when
        asked)."""
        try:
            await self.collect(device_id=device_id)
        except Exception:
            log.failure("collecting from {device_id} after its hello failed",
                        device_id=device_id)
