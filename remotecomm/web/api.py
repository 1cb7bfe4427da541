"""The REST API (``/api/v1``) and the health checks.

``POST /api/v1/login``, ``POST /api/v1/logout``, ``GET /api/v1/devices``,
``GET /healthz``, ``GET /readyz``.  Documented in ``docs/protocol.md``.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Awaitable, Callable

from twisted.internet.defer import ensureDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.web import server

from remotecomm.accounts.administration import AccountAdmin
from remotecomm.accounts.login import Accounts, Caller, Refused
from remotecomm.accounts.passwords import MAX_PASSWORD_BYTES, HasherBusy
from remotecomm.accounts.permissions import ACTIONS, ENDPOINTS
from remotecomm.clock import iso_from_us
from remotecomm.fleet.listing import FleetListing
from remotecomm.fleet.registry import DeviceRegistry
from remotecomm.identifiers import (APP_ID, DEVICE_ID, REQUEST_ID, TERMINAL_ID, UNIT_ID, USER_ID,
                                    is_valid)
from remotecomm.json_http import ApiError, Route, Router, no_more_fields, read_json, take_str
from remotecomm.maintenance.firmware import FirmwareImages
from remotecomm.maintenance.service import JobService
from remotecomm.reports.mail import ReportMailer
from remotecomm.sessions.broker import SessionBroker, SessionError
from remotecomm.sessions.collection import RecordCollector
from remotecomm.sessions.relays import RelayDirectory
from remotecomm.store.engine import Store, StoreBusy
from remotecomm.web.admin_api import AdminRoutes
from remotecomm.web.answers import BUSY, with_iso_times
from remotecomm.web.jobs_api import JobRoutes
from remotecomm.web.reports_api import ReportRoutes, wants_csv

log = Logger()

TERMINAL_HEADER = b"x-remotecomm-terminal"
UNIT_HEADER = b"x-remotecomm-unit"
READINESS_TIMEOUT = 2.0

_REFUSAL_STATUS = {
    "invalid-credentials": 401,
    "unauthenticated": 401,
    "invalid-token": 401,
    "token-expired": 401,
    "terminal-mismatch": 401,
    "too-many-attempts": 429,
    "forbidden": 403,
    "unit-not-found": 404,
}

ReadinessCheck = Callable[[], Awaitable[bool]]


def _api_error(refusal: Refused) -> ApiError:
    headers = {}
    if refusal.code in ("unauthenticated", "invalid-token", "token-expired", "terminal-mismatch"):
        headers["WWW-Authenticate"] = 'Bearer realm="remotecomm"'
    if refusal.retry_after is not None:
        headers["Retry-After"] = str(max(1, math.ceil(refusal.retry_after)))
    return ApiError(_REFUSAL_STATUS[refusal.code], refusal.code, refusal.message, headers=headers)




def _source(request: server.Request) -> str:
    address = request.getClientAddress()
    return getattr(address, "host", None) or "unknown"


# Where a token could hide besides the Authorization header; the API reads none of them,
# and refuses a request that carries one, so that no token is ever taken from two places.
_OTHER_TOKEN_PLACES = (b"token", b"access_token", b"api_token")


def _bearer_token(request: server.Request) -> str | None:
    header = request.getHeader(b"authorization")
    others = [name.decode() for name in _OTHER_TOKEN_PLACES if name in request.args]
    if request.getHeader(b"cookie") is not None:
        others.append("a cookie")
    if others:
        raise ApiError(400, "ambiguous-credentials", "send the token only in the "
                                                     "Authorization header (found: "
                                                     f"{', '.join(others)})")
    if header is None:
        return None
    scheme, _, value = header.partition(b" ")
    if scheme.lower() != b"bearer" or not value.strip():
        raise ApiError(401, "unauthenticated", "use 'Authorization: Bearer <token>'",
                       headers={"WWW-Authenticate": 'Bearer realm="remotecomm"'})
    try:
        return value.strip().decode("ascii")
    except UnicodeDecodeError:
        return ""


class Api:
    """The manager's REST handlers, wired to the accounts and the store."""

    def __init__(self, accounts: Accounts, store: Store, clock: IReactorTime,
                 readiness: dict[str, ReadinessCheck] | None = None,
                 broker: SessionBroker | None = None, extra_routes: list[Route] | None = None,
                 notices: dict[str, Callable[[], object]] | None = None,
                 collector: RecordCollector | None = None, mailer: ReportMailer | None = None,
                 jobs: JobService | None = None, firmware: FirmwareImages | None = None,
                 registry: DeviceRegistry | None = None,
                 relays: RelayDirectory | None = None,
                 devices_link_up: Callable[[], bool] = lambda: True):
        self._accounts = accounts
        self._store = store
        self._clock = clock
        self._health = Health(readiness if readiness is not None else {"store": store.check},
                              clock, notices)
        self._broker = broker
        self._collector = collector
        self._reports = ReportRoutes(store, clock, self._caller, session_filters, mailer)
        self._jobs = JobRoutes(jobs, self._caller, firmware, _source)
        self._admin = AdminRoutes(AccountAdmin(store, accounts.hasher, clock), store,
                                  self._caller, _instant, _source, registry, relays)
        self._fleet = FleetListing(store, devices_link_up)
        self._extra_routes = list(extra_routes or [])

    def resource(self) -> Router:
        """The twisted.web resource that serves every route."""
        return Router([
            Route("/api/v1/login", post=self.login),
            Route("/api/v1/logout", post=self.logout),
            Route("/api/v1/devices", get=self.devices, post=self._admin.register_device),
            Route("/api/v1/sessions", post=self.request_session, get=self.list_sessions),
            Route("/api/v1/sessions/collect", post=self.collect_records),
            *self._reports.routes(),
            *self._jobs.routes(),
            *self._admin.routes(),
            Route("/api/v1/sessions/{request_id}", get=self.poll_session,
                  delete=self.cancel_session),
            Route("/api/v1/sessions/{request_id}/end", post=self.end_session),
            *self._health.routes(),
            *self._extra_routes,
        ])

    async def _caller(self, request: server.Request) -> tuple[Caller, str]:
        """The logged-in caller, acting in the unit the request names (or their only
        unit), allowed to do what the endpoint does (:mod:`remotecomm.accounts.permissions`:
        the one place permissions are checked)."""
        token = _bearer_token(request)
        terminal = request.getHeader(TERMINAL_HEADER)
        terminal_id = terminal.decode("ascii", "replace") if terminal is not None else None
        if token is not None and terminal_id is None:
            raise ApiError(401, "missing-terminal-id",
                           "send the terminal ID in the X-Remotecomm-Terminal header")
        named = request.getHeader(UNIT_HEADER)
        unit_id = named.decode("ascii", "replace") if named is not None else None
        unit_id = getattr(request, "route_params", {}).get("unit_id", unit_id)  # the path's
        if unit_id is not None and not is_valid(UNIT_ID, unit_id):
            raise ApiError(404, "unit-not-found", f"no unit {unit_id!r}")
        try:
            caller = await self._accounts.authenticate(token, terminal_id, _source(request),
                                                       unit_id)
        except Refused as refusal:
            raise _api_error(refusal) from None
        except StoreBusy:
            raise BUSY from None
        await self._check_permission(request, caller)
        return caller, token

    async def _check_permission(self, request: server.Request, caller: Caller) -> None:
        endpoint = getattr(request, "endpoint", None)
        if endpoint not in ENDPOINTS:  # deny by default: every endpoint names its action
            log.error("no permission rule for {endpoint}; refused", endpoint=endpoint)
            raise ApiError(403, "forbidden", "this endpoint is not open to anyone")
        action = ENDPOINTS[endpoint]
        if not action:
            return
        try:
            await self._accounts.require(caller, action, endpoint, _source(request))
        except Refused as refusal:
            raise _api_error(refusal) from None
        except StoreBusy:
            raise BUSY from None
        if ACTIONS[action].unit_scoped and caller.unit_id is None:
            raise ApiError(400, "unit-required", "you act in several units: name one with "
                                                 "the X-Remotecomm-Unit header (remotecomm "
                                                 "login --unit UNIT)",
                           units=[unit for unit, _ in caller.memberships])

    async def login(self, request: server.Request) -> tuple[int, dict]:
        """S101–S103: user ID, password and terminal ID in; an API token out."""
        body = read_json(request)
        user_id = take_str(body, "user_id", max_length=200).strip().lower()
        password = take_str(body, "password", max_length=4 * MAX_PASSWORD_BYTES)
        terminal_id = take_str(body, "terminal_id", TERMINAL_ID)
        no_more_fields(body)
        try:
            issued = await self._accounts.login(user_id, password, terminal_id, _source(request))
        except Refused as refusal:
            raise _api_error(refusal) from None
        except (HasherBusy, StoreBusy):
            raise BUSY from None
        return 200, {
            "token": issued.token,
            "token_type": "Bearer",
            "expires_at": iso_from_us(issued.expires_us),
            "expires_at_us": issued.expires_us,
            "user_id": issued.user_id,
            "unit_id": issued.unit_id,
            "terminal_id": issued.terminal_id,
            "provider_admin": issued.provider_admin,
            "memberships": [{"unit_id": unit, "role": role}
                            for unit, role in issued.memberships],
        }

    async def logout(self, request: server.Request) -> tuple[int, dict]:
        """Revoke the caller's API token."""
        caller, token = await self._caller(request)
        await self._accounts.logout(token)
        log.info("user {user_id} logged out on terminal {terminal_id}",
                 user_id=caller.user_id, terminal_id=caller.terminal_id)
        return 200, {"status": "logged-out"}

    async def devices(self, request: server.Request) -> tuple[int, dict]:
        """The devices of the caller's own unit, with their online state and what their
        agents last said of them."""
        caller, _ = await self._caller(request)
        try:
            return 200, await self._fleet.devices(caller.unit_id)
        except StoreBusy:
            raise BUSY from None

    async def request_session(self, request: server.Request) -> tuple[int, dict]:
        """S141: ask a device of the caller's unit for a session with one of its apps."""
        caller, _ = await self._caller(request)
        body = read_json(request)
        device_id = take_str(body, "device_id", DEVICE_ID)
        app_id = take_str(body, "app_id", APP_ID)
        client = client_description(body.pop("client", None))
        no_more_fields(body)
        try:
            accepted = await self._sessions().request_session(caller, device_id, app_id, client)
        except SessionError as e:
            raise ApiError(e.status, e.code, e.message, **e.extra) from None
        except StoreBusy:
            raise BUSY from None
        return 202, {
            "request_id": accepted.request_id,
            "state": "pending",
            "poll_url": f"/api/v1/sessions/{accepted.request_id}",
            "approval_deadline_at": iso_from_us(accepted.approval_deadline_us),
            "approval_deadline_us": accepted.approval_deadline_us,
        }

    async def poll_session(self, request: server.Request, request_id: str) -> tuple[int, dict]:
        """S201/S202, S311: the session's record for its unit; for the terminal that asked,
        the terminal token once, on approval."""
        caller, _ = await self._caller(request)
        if not is_valid(REQUEST_ID, request_id):
            raise ApiError(404, "session-not-found", "no such session request")
        return 200, await self._session_call(self._sessions().poll, caller, request_id)

    async def cancel_session(self, request: server.Request,
                             request_id: str) -> tuple[int, dict]:
        """Give up on a request that has not run yet (it ends ``cancelled``)."""
        caller, _ = await self._caller(request)
        if not is_valid(REQUEST_ID, request_id):
            raise ApiError(404, "session-not-found", "no such session request")
        return 200, await self._session_call(self._sessions().cancel, caller, request_id)

    async def end_session(self, request: server.Request, request_id: str) -> tuple[int, dict]:
        """End a session from anywhere: its own user, or a unit admin of its unit."""
        caller, _ = await self._caller(request)
        if not is_valid(REQUEST_ID, request_id):
            raise ApiError(404, "session-not-found", "no such session")
        request.content.seek(0)
        if request.content.read(1):  # a body is optional, and then takes no fields
            no_more_fields(read_json(request))
        answer = await self._session_call(self._sessions().force_end, caller, request_id,
                                          _source(request))
        return (202 if "ending" in answer else 200), answer

    async def list_sessions(self, request: server.Request) -> tuple[int, dict]:
        """The records of the caller's unit, newest first, filtered and paged:
        ``device_id``, ``app_id``, ``user_id``, ``end_reason``, ``state`` (a state, or
        ``open``), ``from``/``to`` (ISO 8601 or epoch µs, on the request time), ``limit``
        (at most 200), ``before`` (the ``next`` of the previous page).  With ``Accept:
        text/csv``: the CSV export (:mod:`remotecomm.web.reports_api`)."""
        if wants_csv(request):
            return await self._reports.sessions_csv(request)
        caller, _ = await self._caller(request)
        filters = session_filters(request.args)
        try:
            found = await self._sessions().list_records(caller, **filters)
        except StoreBusy:
            raise BUSY from None
        answer = {"unit_id": caller.unit_id,
                  "sessions": [with_iso_times(record) for record in found]}
        if len(found) == filters["limit"]:
            last = found[-1]
            answer["next"] = f"{last['requested_at_us']}.{last['request_id']}"
        return 200, answer

    async def collect_records(self, request: server.Request) -> tuple[int, dict]:
        """S311/S312: ask the devices of the caller's unit for the session reports the
        manager lacks, and say what came of it (a device offline now is asked again when
        it comes back)."""
        caller, _ = await self._caller(request)
        request.content.seek(0)
        if request.content.read(1):  # a body is optional, and then takes no fields
            no_more_fields(read_json(request))
        if self._collector is None:
            raise ApiError(503, "unavailable", "collection is not available on this server")
        try:
            outcome = await self._collector.collect(unit_id=caller.unit_id)
        except StoreBusy:
            raise BUSY from None
        return 200, dict(outcome.to_json(), unit_id=caller.unit_id)

    def _sessions(self) -> SessionBroker:
        if self._broker is None:
            raise ApiError(503, "unavailable", "sessions are not served by this manager")
        return self._broker

    async def _session_call(self, call, *args) -> dict:
        try:
            answer = await call(*args)
        except SessionError as e:
            raise ApiError(e.status, e.code, e.message, **e.extra) from None
        except StoreBusy:
            raise BUSY from None
        return with_iso_times(answer)


_CLIENT_FIELDS = {"name": "client_name", "version": "client_version", "os_name": "os_name",
                  "os_version": "os_version"}


def client_description(value: object) -> dict:
    """The optional ``client`` object of a session request: what the terminal says of itself
    (``name``, ``version``, ``os_name``, ``os_version``; each printable, at most 64)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ApiError(400, "invalid-field", "client must be an object", field="client")
    unknown = set(value) - set(_CLIENT_FIELDS)
    if unknown:
        raise ApiError(400, "unknown-field", f"unknown field(s) of client: "
                       f"{', '.join(sorted(map(str, unknown)))}", fields=sorted(map(str, unknown)))
    described = {}
    for name, column in _CLIENT_FIELDS.items():
        text = value.get(name)
        if text is None:
            continue
        if not isinstance(text, str) or not 0 < len(text) <= 64 or not text.isprintable():
            raise ApiError(400, "invalid-field", f"client.{name} must be printable text of at "
                           f"most 64 characters", field=f"client.{name}")
        described[column] = text
    return described


_FILTERS = {"device_id": DEVICE_ID, "app_id": APP_ID, "user_id": USER_ID,
            "end_reason": r"[a-z-]{1,32}"}
_STATES = ("pending", "allocating", "approved", "active", "ended")
MAX_PAGE = 200


def session_filters(args: dict[bytes, list[bytes]]) -> dict:
    """The filters of ``GET /api/v1/sessions`` from its query, each checked."""
    known = set(_FILTERS) | {"state", "from", "to", "limit", "before"}
    values = {}
    for raw_name, raw_values in args.items():
        name = raw_name.decode("ascii", "replace")
        if name not in known:
            raise ApiError(400, "unknown-field", f"unknown query parameter {name!r}",
                           fields=[name])
        values[name] = raw_values[-1].decode("utf-8", "replace")
    filters: dict = {"limit": 50}
    for name, pattern in _FILTERS.items():
        if name in values:
            if not is_valid(pattern, values[name]):
                raise ApiError(400, "invalid-field", f"{name} has an invalid value", field=name)
            filters[name] = values[name]
    if "state" in values:
        state = values["state"]
        if state not in _STATES + ("open",):
            raise ApiError(400, "invalid-field", "state must be a session state or 'open'",
                           field="state")
        filters["states"] = ("pending", "allocating", "approved", "active") \
            if state == "open" else (state,)
    for name, key in (("from", "from_us"), ("to", "to_us")):
        if name in values:
            filters[key] = _instant(values[name], name)
    if "limit" in values:
        if not values["limit"].isdigit() or not 1 <= int(values["limit"]) <= MAX_PAGE:
            raise ApiError(400, "invalid-field", f"limit must be 1 to {MAX_PAGE}", field="limit")
        filters["limit"] = int(values["limit"])
    if "before" in values:
        instant, _, request_id = values["before"].partition(".")
        if not instant.isdigit() or not is_valid(REQUEST_ID, request_id):
            raise ApiError(400, "invalid-field", "before must be a page's 'next'",
                           field="before")
        filters["before"] = (int(instant), request_id)
    return filters


def _instant(value: str, name: str) -> int:
    if value.isdigit() and len(value) <= 19:
        return int(value)
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(400, "invalid-field", f"{name} must be ISO 8601 or epoch "
                       f"microseconds", field=name) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return int(moment.timestamp() * 1_000_000)


class Health:
    """``/healthz`` and ``/readyz``: every server role has them."""

    def __init__(self, readiness: dict[str, ReadinessCheck], clock: IReactorTime,
                 notices: dict[str, Callable[[], object]] | None = None):
        self._readiness = readiness
        self._clock = clock
        self._notices = notices if notices is not None else {}

    def routes(self) -> list[Route]:
        return [Route("/healthz", get=self.healthz), Route("/readyz", get=self.readyz)]

    async def healthz(self, request: server.Request) -> tuple[int, dict]:
        """Liveness: the process answers."""
        return 200, {"status": "ok"}

    async def readyz(self, request: server.Request) -> tuple[int, dict]:
        """Readiness: every dependency answers within a short deadline; notices (such as
        dead letters) are reported beside, without making the server unready."""
        failing = []
        for name, check in self._readiness.items():
            try:
                d = ensureDeferred(check())
                d.addTimeout(READINESS_TIMEOUT, self._clock)
                if not await d:
                    failing.append(name)
            except Exception:
                failing.append(name)
        notices = {name: value for name, notice in self._notices.items() if (value := notice())}
        if failing:
            raise ApiError(503, "not-ready", "not ready: " + ", ".join(failing), failing=failing,
                           **notices)
        return 200, {"status": "ready", **notices}

