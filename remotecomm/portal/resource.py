"""``/portal``: the portal's pages, served by the manager.

Pages call the same in-process services as the REST routes (accounts,
fleet listing, …) and add no rule of their own: who may see or do what is
:mod:`remotecomm.accounts.permissions`, checked by the same function as the
API's.  GET pages never change anything; every POST carries a CSRF token
(the login form a nonce from its own cookie) and, if the browser says where
it came from, comes from this origin.
"""

from __future__ import annotations

import dataclasses
import json
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Awaitable, Callable

from twisted.internet.defer import ensureDeferred
from twisted.logger import Logger
from twisted.web import resource, server

from remotecomm import __version__
from remotecomm.accounts.administration import AccountAdmin
from remotecomm.accounts.login import Accounts, Caller, Refused
from remotecomm.accounts.permissions import PROVIDER_ADMIN, allowed
from remotecomm.clock import now_us
from remotecomm.fleet.listing import FleetListing
from remotecomm.fleet.registry import DeviceRegistry
from remotecomm.http_files import UploadError
from remotecomm.identifiers import (APP_ID, DEVICE_ID, IMAGE_ID, JOB_ID, REQUEST_ID, SETTING_NAME,
                                    UNIT_ID, USER_ID, VERSION_TEXT, is_valid)
from remotecomm.maintenance.firmware import FirmwareImages
from remotecomm.maintenance.service import JobService
from remotecomm.messages import text
from remotecomm.portal import pages
from remotecomm.portal.events import LiveUpdates
from remotecomm.portal.security import (LOGIN_COOKIE, LOGIN_NONCE_LIFETIME, SESSION_COOKIE,
                                        PortalSession, new_login_nonce, new_terminal_id, read_form,
                                        same, same_origin, security_headers, set_cookie)
from remotecomm.reports.csv_export import report_csv
from remotecomm.reports.service import UnitReports
from remotecomm.service_errors import ServiceError
from remotecomm.sessions.broker import SessionBroker

log = Logger()

STATIC = Path(__file__).parent / "static"
STATIC_FILES = {"portal.css": b"text/css; charset=utf-8",
                "portal.js": b"text/javascript; charset=utf-8"}
OPEN_STATES = ("pending", "allocating", "approved", "active")
SESSION_PAGE = 100
DEVICE_PAGE_SESSIONS = 10
END_REASON = r"[a-z-]{1,32}"
DEVICE_PAGE_JOBS = 10
JOB_WAIT_ONLINE = 3600  # seconds a job may wait for an offline device, when asked to
AUDIT_PAGE = 200
PORTAL_UPLOAD_PATH = b"/portal/firmware"  # its body streams to disk (http_files)
# What the session's record says asked for it (the terminal it names collects the token).
PORTAL_CLIENT = {"client_name": "remotecomm-portal", "client_version": __version__}


class _Redirect(Exception):
    def __init__(self, location: str):
        super().__init__(location)
        self.location = location


class Portal(resource.Resource):
    """The portal's one resource: reads the path itself and answers every request."""

    isLeaf = True

    def __init__(self, accounts: Accounts, fleet: FleetListing, clock,
                 sessions: SessionBroker | None = None, reports: UnitReports | None = None,
                 admin: AccountAdmin | None = None, jobs: JobService | None = None,
                 firmware: FirmwareImages | None = None, registry: DeviceRegistry | None = None):
        super().__init__()
        self._accounts = accounts
        self._fleet = fleet
        self._clock = clock
        self._sessions = sessions
        self._reports = reports
        self._admin = admin
        self._jobs = jobs
        self._firmware = firmware
        self._registry = registry
        self.live = LiveUpdates(clock)
        # (method, first path segment) → the page and how many more segments it takes
        self._pages: dict[tuple[bytes, str], tuple[Callable[..., Awaitable], int]] = {
            (b"GET", ""): (self.devices, 0),
            (b"GET", "login"): (self.login_form, 0),
            (b"POST", "login"): (self.login, 0),
            (b"POST", "logout"): (self.logout, 0),
            (b"GET", "units"): (self.units, 0),
            (b"POST", "unit"): (self.choose_unit, 0),
            (b"POST", "create-unit"): (self.create_unit, 0),
            (b"POST", "change-unit"): (self.change_unit, 0),
            (b"GET", "devices"): (self.device, 1),
            (b"GET", "sessions"): (self.session_list, 0),
            (b"GET", "session"): (self.session, 1),
            (b"POST", "end"): (self.end_session, 1),
            (b"POST", "request"): (self.request_session, 1),
            (b"GET", "events"): (self.events, 0),
            (b"GET", "reports"): (self.report, 0),
            (b"GET", "reports.csv"): (self.report_csv, 0),
            (b"POST", "send-report"): (self.send_report, 0),
            (b"POST", "jobs"): (self.run_job, 1),
            (b"GET", "job"): (self.job, 1),
            (b"POST", "withdraw"): (self.withdraw_job, 1),
            (b"GET", "firmware"): (self.firmware_page, 0),
            (b"POST", "firmware"): (self.upload_firmware, 0),
            (b"POST", "delete-image"): (self.delete_image, 1),
            (b"POST", "register"): (self.register_device, 0),
            (b"POST", "rotate"): (self.rotate_device, 1),
            (b"POST", "revoke"): (self.revoke_device, 1),
            (b"POST", "move"): (self.move_device, 1),
            (b"GET", "users"): (self.users, 0),
            (b"POST", "add-user"): (self.add_user, 0),
            (b"POST", "role"): (self.set_role, 1),
            (b"POST", "reset-password"): (self.reset_password, 1),
            (b"POST", "disable"): (self.disable_user, 1),
            (b"POST", "enable"): (self.enable_user, 1),
            (b"GET", "audit"): (self.audit, 0),
        }

    def render(self, request: server.Request):
        security_headers(request)
        segments = [s.decode("utf-8", "replace") for s in request.postpath]
        if not segments:  # /portal itself
            return self._redirect(request, "/portal/")
        if segments[0] == "static" and len(segments) == 2 and segments[1] in STATIC_FILES:
            request.setHeader(b"content-type", STATIC_FILES[segments[1]])
            request.setHeader(b"cache-control", b"max-age=3600")
            return (STATIC / segments[1]).read_bytes()
        handler, arguments = self._pages.get((request.method, segments[0]), (None, 0))
        if handler is None or len(segments) - 1 != arguments:
            known = handler is None and any(name == segments[0] for _, name in self._pages)
            return self._fail(request, 405 if known else 404, text("portal-not-found"))
        ensureDeferred(self._answer(request, handler, segments[1:]))
        return server.NOT_DONE_YET

    async def _answer(self, request, handler, rest: list[str]) -> None:
        try:
            if request.method == b"POST" and not same_origin(request):
                raise ServiceError(403, "cross-origin", text("portal-cross-origin"))
            page = await handler(request, *rest)
            if page is _STREAMING:
                return
            if isinstance(page, _Raw):
                self._finish(request, bytes(page), html=False)
                return
        except _Redirect as redirect:
            self._redirect(request, redirect.location)
            self._finish(request, b"")
            return
        except ServiceError as e:
            page = pages.error_page(None, e.status, e.message)
            request.setResponseCode(e.status)
        except Exception:
            log.failure("portal page {path} failed", path=request.path)
            page = pages.error_page(None, 500, text("portal-failed"))
            request.setResponseCode(500)
        self._finish(request, await pages.render(page))

    def _finish(self, request, body: bytes, html: bool = True) -> None:
        if request.finished or request._disconnected:
            return
        if body and html:
            request.setHeader(b"content-type", b"text/html; charset=utf-8")
        request.write(body)
        request.finish()

    def _redirect(self, request, location: str) -> bytes:
        request.setResponseCode(303)
        request.setHeader(b"location", location.encode("utf-8"))
        return b""

    def _fail(self, request, status: int, message: str):
        request.setResponseCode(status)
        ensureDeferred(self._write_page(request, pages.error_page(None, status, message)))
        return server.NOT_DONE_YET

    async def _write_page(self, request, page) -> None:
        self._finish(request, await pages.render(page))

    # -- who is looking ---------------------------------------------------------------

    def _source(self, request) -> str:
        return getattr(request.getClientAddress(), "host", None) or "unknown"

    async def _caller(self, request, session: PortalSession,
                      unit_id: str | None) -> Caller:
        """The user a session stands for, acting in ``unit_id``; an ended session (expired,
        logged out, user disabled) goes back to the login page."""
        try:
            return await self._accounts.authenticate(session.token, session.terminal_id,
                                                     self._source(request), unit_id)
        except Refused as refusal:
            if refusal.code == "unit-not-found":
                raise ServiceError(404, "unit-not-found", refusal.message) from None
            set_cookie(request, SESSION_COOKIE, b"", 0)
            raise _Redirect("/portal/login?ended=1") from None

    async def _viewer(self, request, action: str | None = None, endpoint: str = "",
                      in_unit: bool = True) -> tuple[Caller, pages.Viewer]:
        """The logged-in user of this browser, acting in the session's unit (``in_unit``),
        allowed to do ``action``; without a valid session, off to the login page."""
        session = PortalSession.decode(request.getCookie(SESSION_COOKIE))
        if session is None:
            raise _Redirect("/portal/login")
        caller = await self._caller(request, session, session.unit_id if in_unit else None)
        viewer = pages.Viewer(caller.user_id, caller.unit_id, caller.role, caller.memberships,
                              session.csrf)
        if action is not None:
            if caller.unit_id is None:
                raise _Redirect("/portal/units")
            try:
                await self._accounts.require(caller, action, endpoint, self._source(request))
            except Refused as refusal:
                raise ServiceError(403, refusal.code, refusal.message) from None
        return caller, viewer

    async def _checked_form(self, request) -> tuple[dict, PortalSession]:
        form = read_form(request)
        session = PortalSession.decode(request.getCookie(SESSION_COOKIE))
        if session is None:
            raise _Redirect("/portal/login")
        if not same(form.pop("csrf", None), session.csrf):
            raise ServiceError(403, "bad-csrf-token", text("portal-bad-csrf"))
        return form, session

    # -- pages ------------------------------------------------------------------------

    async def login_form(self, request):
        nonce = new_login_nonce()
        set_cookie(request, LOGIN_COOKIE, nonce.encode(), LOGIN_NONCE_LIFETIME,
                   path=b"/portal/login")
        ended = request.args.get(b"ended") == [b"1"]
        return pages.login_page(nonce, text("portal-session-ended") if ended else None)

    async def login(self, request):
        form = read_form(request)
        nonce = (request.getCookie(LOGIN_COOKIE) or b"").decode("ascii", "replace")
        if not nonce or not same(form.get("nonce"), nonce):
            raise _Redirect("/portal/login")  # an old or foreign form: show a fresh one
        user_id = form.get("user_id", "").strip().lower()
        password = form.get("password", "")
        fresh = new_login_nonce()
        set_cookie(request, LOGIN_COOKIE, fresh.encode(), LOGIN_NONCE_LIFETIME,
                   path=b"/portal/login")
        if not is_valid(USER_ID, user_id) or not password:
            request.setResponseCode(400)
            return pages.login_page(fresh, text("portal-login-incomplete"), user_id[:128])
        try:
            issued = await self._accounts.login(user_id, password, new_terminal_id(),
                                                self._source(request))
        except Refused as refusal:
            request.setResponseCode(429 if refusal.code == "too-many-attempts" else 401)
            return pages.login_page(fresh, refusal.message, user_id)
        session = PortalSession(issued.terminal_id, issued.unit_id,
                                issued.expires_us // 1_000_000, issued.token)
        set_cookie(request, SESSION_COOKIE, session.encode(), self._lifetime(session))
        set_cookie(request, LOGIN_COOKIE, b"", 0, path=b"/portal/login")
        raise _Redirect("/portal/" if issued.unit_id is not None else "/portal/units")

    async def logout(self, request):
        _, session = await self._checked_form(request)
        try:
            await self._accounts.authenticate(session.token, session.terminal_id,
                                              self._source(request))
            await self._accounts.logout(session.token)
        except Refused:
            pass  # already expired or revoked: nothing left to end
        set_cookie(request, SESSION_COOKIE, b"", 0)
        raise _Redirect("/portal/login")

    def _lifetime(self, session: PortalSession) -> int:
        """Seconds until the session's token expires: the cookie goes with it."""
        return session.expires_s - now_us(self._clock) // 1_000_000

    async def units(self, request):
        caller, viewer = await self._viewer(request, in_unit=False)
        choices, current = list(viewer.units), None
        if self._admin is not None:
            # The units they administer: a provider admin acts in any of them, member or
            # not; the one acting in now, if among them, may be renamed here.
            administered = await self._admin.units(caller)
            if caller.role == PROVIDER_ADMIN:
                roles = dict(viewer.units)
                choices = [(unit["unit_id"], roles.get(unit["unit_id"], caller.role))
                           for unit in administered]
            session = PortalSession.decode(request.getCookie(SESSION_COOKIE))
            acting = session.unit_id if session is not None else None
            current = next((unit for unit in administered if unit["unit_id"] == acting), None)
        return pages.units_page(viewer, choices,
                                may_create=self._admin is not None
                                and allowed(caller.role, "units.create"),
                                current=current)

    async def create_unit(self, request):
        form, _ = await self._checked_form(request)
        caller, _ = await self._viewer(request, in_unit=False)
        try:
            await self._accounts.require(caller, "units.create", "POST /portal/create-unit",
                                         self._source(request))
        except Refused as refusal:
            raise ServiceError(403, refusal.code, refusal.message) from None
        unit_id = form.get("unit_id", "").strip().lower()
        name = form.get("name", "").strip() or unit_id
        if not is_valid(UNIT_ID, unit_id):
            raise ServiceError(400, "invalid-field", text("portal-bad-unit-id"))
        if not name.isprintable() or len(name) > 200:
            raise ServiceError(400, "invalid-field", text("portal-bad-name"))
        await self._administration().create_unit(caller, unit_id, name,
                                                 form.get("time_zone", "UTC").strip())
        raise _Redirect("/portal/units")

    async def change_unit(self, request):
        form, _ = await self._checked_form(request)
        caller, _ = await self._viewer(request, "units.manage", "POST /portal/change-unit")
        name = form.get("name", "").strip() or None
        if name is not None and (not name.isprintable() or len(name) > 200):
            raise ServiceError(400, "invalid-field", text("portal-bad-name"))
        await self._administration().change_unit(caller, name,
                                                 form.get("time_zone", "").strip() or None)
        raise _Redirect("/portal/units")

    async def choose_unit(self, request):
        form, session = await self._checked_form(request)
        unit_id = form.get("unit_id", "")
        if not is_valid(UNIT_ID, unit_id):
            raise ServiceError(404, "unit-not-found", text("portal-no-such-unit"))
        await self._caller(request, session, unit_id)  # one of theirs (or refused)
        chosen = PortalSession(session.terminal_id, unit_id, session.expires_s, session.token)
        set_cookie(request, SESSION_COOKIE, chosen.encode(), self._lifetime(chosen))
        raise _Redirect("/portal/")

    async def devices(self, request):
        caller, viewer = await self._viewer(request, "devices.list", "GET /portal/")
        fleet = await self._fleet.devices(viewer.unit_id)
        query = _arg(request, b"q")[:100]
        state = _arg(request, b"state") or "all"
        if state not in ("all", "online", "offline"):
            state = "all"
        supplies = {}
        if self._jobs is not None and allowed(caller.role, "jobs.run"):
            supplies = await self._jobs.latest_results(caller, "supplies")
        return pages.devices_page(viewer, fleet, query, state, supplies,
                                  fleet_fingerprint(fleet), self._may_manage_devices(caller))

    async def device(self, request, device_id: str):
        caller, viewer = await self._viewer(request, "devices.list",
                                            "GET /portal/devices/{id}")
        _check_id("device", device_id)
        fleet = await self._fleet.devices(viewer.unit_id)
        found = [d for d in fleet["devices"] if d["device_id"] == device_id]
        if not found:
            raise ServiceError(404, "device-not-found", text("portal-no-such-device"))
        recent, terminals = [], []
        if self._sessions is not None and allowed(caller.role, "sessions.list"):
            recent = await self._broker().list_records(caller, device_id=device_id,
                                                        limit=DEVICE_PAGE_SESSIONS)
        if self._sessions is not None and allowed(caller.role, "sessions.request"):
            terminals = await self._accounts.terminals(caller.user_id)
        jobs, images = None, []
        if self._jobs is not None and allowed(caller.role, "jobs.run"):
            jobs = (await self._jobs.list(caller, device_id))[:DEVICE_PAGE_JOBS]
            if self._firmware is not None:
                images = await self._firmware.list(caller)
        move_to = []
        if self._may_manage_devices(caller) and self._admin is not None:
            move_to = [unit["unit_id"] for unit in await self._admin.units(caller)
                       if unit["unit_id"] != caller.unit_id]
        return pages.device_page(viewer, found[0], recent, self._may_end(caller), terminals,
                                 self._sessions is not None, jobs, images,
                                 self._may_manage_devices(caller), move_to,
                                 text("portal-rotated") if _arg(request, b"rotated") == "1"
                                 else None)

    # -- sessions -----------------------------------------------------------------------

    def _broker(self) -> SessionBroker:
        return _served(self._sessions, "portal-no-sessions")

    def _may_end(self, caller: Caller):
        """Whether the caller may end a session (its own, or anyone's as an admin)."""
        admin = allowed(caller.role, "sessions.end-any")
        return lambda record: record["state"] in OPEN_STATES and (
            admin or record["user_id"] == caller.user_id)

    async def session_list(self, request):
        caller, viewer = await self._viewer(request, "sessions.list", "GET /portal/sessions")
        shown = _arg(request, b"state") or "open"
        if shown not in ("open", "ended", "all"):
            shown = "open"
        filters: dict = {"limit": SESSION_PAGE}
        if shown == "open":
            filters["states"] = OPEN_STATES
        elif shown == "ended":
            filters["states"] = ("ended",)
        asked = {}
        for name, pattern in (("device_id", DEVICE_ID), ("app_id", APP_ID),
                              ("user_id", USER_ID), ("end_reason", END_REASON)):
            value = _arg(request, name.encode()).strip().lower()
            asked[name] = value
            if value:
                if not is_valid(pattern, value):
                    raise ServiceError(400, "invalid-field", text("portal-bad-filter",
                                                                 field=name))
                filters[name] = value
        for name, key in (("from", "from_us"), ("to", "to_us")):
            day = _date_arg(request, name.encode())
            asked[name] = day or ""
            if day:  # a day in UTC, as the list shows times
                filters[key] = int(datetime.fromisoformat(day).replace(
                    tzinfo=timezone.utc).timestamp()) * 1_000_000
        found = await self._broker().list_records(caller, **filters)
        live = shown == "open" and not any(asked.values())
        return pages.sessions_page(viewer, found, shown, asked, self._may_end(caller),
                                   sessions_fingerprint(found) if live else "", live)

    async def session(self, request, request_id: str):
        caller, viewer = await self._viewer(request, "sessions.list", "GET /portal/session")
        _check_id("session", request_id)
        record = await self._broker().poll(_Observer.of(caller), request_id)
        return pages.session_page(viewer, record, self._may_end(caller)(record),
                                  session_fingerprint(record))

    async def request_session(self, request, device_id: str):
        form, _ = await self._checked_form(request)
        caller, _ = await self._viewer(request, "sessions.request", "POST /portal/request")
        app_id = form.get("app_id", "")
        terminal_id = form.get("terminal_id", "")
        _check_id("device", device_id)
        if not is_valid(APP_ID, app_id):
            raise ServiceError(400, "invalid-field", text("portal-choose-app"))
        # The terminal token goes to one of the user's own CLI terminals, never here.
        if terminal_id not in [t["terminal_id"]
                               for t in await self._accounts.terminals(caller.user_id)]:
            raise ServiceError(400, "invalid-field", text("portal-choose-terminal"))
        accepted = await self._broker().request_session(
            dataclasses.replace(caller, terminal_id=terminal_id), device_id, app_id,
            PORTAL_CLIENT)
        raise _Redirect(f"/portal/session/{accepted.request_id}")

    async def end_session(self, request, request_id: str):
        await self._checked_form(request)
        caller, _ = await self._viewer(request, "sessions.end", "POST /portal/end")
        _check_id("session", request_id)
        await self._broker().force_end(caller, request_id, self._source(request))
        raise _Redirect(f"/portal/session/{request_id}")

    # -- reports ------------------------------------------------------------------------

    def _unit_reports(self) -> UnitReports:
        return _served(self._reports, "portal-no-reports")

    async def report(self, request):
        caller, viewer = await self._viewer(request, "reports.read", "GET /portal/reports")
        asked = {"from": _date_arg(request, b"from"), "to": _date_arg(request, b"to")}
        reports = self._unit_reports()
        by_day = await reports.report(caller.unit_id, asked["from"], asked["to"], "day")
        by_device = await reports.report(caller.unit_id, asked["from"], asked["to"], "device")
        sent = _arg(request, b"sent")
        return pages.reports_page(
            viewer, by_day, by_device, asked, may_mail=allowed(caller.role, "reports.manage"),
            mail_enabled=reports.mail_enabled,
            notice=text("portal-mail-queued", count=sent) if sent.isdigit() else None)

    async def report_csv(self, request):
        caller, _ = await self._viewer(request, "reports.read", "GET /portal/reports.csv")
        group_by = _arg(request, b"group_by") or None
        answer = await self._unit_reports().report(
            caller.unit_id, _date_arg(request, b"from"), _date_arg(request, b"to"), group_by)
        request.setHeader(b"content-type", b"text/csv; charset=utf-8; header=present")
        name = f"sessions-{caller.unit_id}-{answer['from'][:10]}-{group_by or 'unit'}.csv"
        request.setHeader(b"content-disposition", f'attachment; filename="{name}"'.encode())
        return _Raw(report_csv(answer))

    async def send_report(self, request):
        form, _ = await self._checked_form(request)
        caller, _ = await self._viewer(request, "reports.manage", "POST /portal/send-report")
        bounds = {name: form.get(name) or None for name in ("from", "to")}
        for value in bounds.values():
            if value is not None and not _DATE.fullmatch(value):
                raise ServiceError(400, "invalid-field", text("portal-bad-date"))
        _, recipients = await self._unit_reports().send_now(
            caller.unit_id, caller.user_id, bounds["from"], bounds["to"], "device")
        query = "&".join(f"{k}={v}" for k, v in bounds.items() if v)
        raise _Redirect(f"/portal/reports?sent={len(recipients)}" + (f"&{query}" if query
                                                                       else ""))

    # -- maintenance ----------------------------------------------------------------------

    def _job_service(self) -> JobService:
        return _served(self._jobs, "portal-no-jobs")

    async def run_job(self, request, device_id: str):
        form, _ = await self._checked_form(request)
        caller, _ = await self._viewer(request, "jobs.run", "POST /portal/jobs")
        _check_id("device", device_id)
        action = form.get("action", "")
        key = form.get("key") or None
        value = form.get("value") if action == "config-set" else None
        image_id = form.get("image_id") or None if action == "firmware" else None
        if key is not None and not is_valid(SETTING_NAME, key):
            raise ServiceError(400, "invalid-parameters", text("portal-bad-setting"))
        if image_id is not None and not is_valid(IMAGE_ID, image_id):
            raise ServiceError(404, "image-not-found", text("portal-bad-image"))
        job = await self._job_service().create(
            caller, device_id, action, key if action.startswith("config-") else None, value,
            JOB_WAIT_ONLINE if form.get("wait_online") else None, image_id)
        raise _Redirect(f"/portal/job/{job['job_id']}")

    async def job(self, request, job_id: str):
        caller, viewer = await self._viewer(request, "jobs.run", "GET /portal/job")
        _check_id("job", job_id)
        found = await self._job_service().get(caller, job_id)
        return pages.job_page(viewer, found, job_fingerprint(found))

    async def withdraw_job(self, request, job_id: str):
        await self._checked_form(request)
        caller, _ = await self._viewer(request, "jobs.run", "POST /portal/withdraw")
        _check_id("job", job_id)
        await self._job_service().cancel(caller, job_id)
        raise _Redirect(f"/portal/job/{job_id}")

    # -- firmware images ------------------------------------------------------------------

    def _images(self) -> FirmwareImages:
        return _served(self._firmware, "portal-no-jobs")

    async def firmware_page(self, request):
        caller, viewer = await self._viewer(request, "firmware.upload", "GET /portal/firmware")
        return pages.firmware_page(viewer, await self._images().list(caller))

    async def upload_firmware(self, request):
        """The image is the raw body (``portal.js`` sends the file with a progress bar),
        streamed to disk before this runs; the CSRF token comes in a header."""
        session = PortalSession.decode(request.getCookie(SESSION_COOKIE))
        token = (request.getHeader(b"x-csrf-token") or b"").decode("ascii", "replace")
        if session is None or not same(token, session.csrf):
            raise ServiceError(403, "bad-csrf-token", text("portal-bad-csrf"))
        caller, _ = await self._viewer(request, "firmware.upload", "POST /portal/firmware")
        upload = getattr(request, "upload", None)
        kind = (request.getHeader(b"content-type") or b"").split(b";")[0].strip().lower()
        if kind != b"application/octet-stream":  # a form posted without the script
            raise ServiceError(400, "invalid-upload", text("portal-upload-with-script"))
        version = _arg(request, b"version")
        if not is_valid(VERSION_TEXT, version):
            raise ServiceError(400, "invalid-field", text("portal-bad-version"))
        if upload is None:
            raise ServiceError(400, "invalid-upload", text("portal-upload-with-script"))
        try:
            image = await self._images().add(caller, version, upload.finish)
        except UploadError as e:
            raise ServiceError(e.status, e.code, e.message) from None
        request.setResponseCode(201)
        request.setHeader(b"content-type", b"application/json; charset=utf-8")
        return _Raw(json.dumps({"image_id": image["image_id"],
                                "version": image["version"]}).encode())

    async def delete_image(self, request, image_id: str):
        await self._checked_form(request)
        caller, _ = await self._viewer(request, "firmware.delete", "POST /portal/delete-image")
        _check_id("image", image_id)
        await self._images().delete(caller, image_id)
        raise _Redirect("/portal/firmware")

    # -- devices (administration) ---------------------------------------------------------

    def _may_manage_devices(self, caller: Caller) -> bool:
        return self._registry is not None and allowed(caller.role, "devices.manage")

    def _devices(self) -> DeviceRegistry:
        return _served(self._registry, "portal-no-admin")

    async def register_device(self, request):
        form, _ = await self._checked_form(request)
        caller, viewer = await self._viewer(request, "devices.manage", "POST /portal/register")
        device_id = form.get("device_id", "").strip().lower()
        name = form.get("name", "").strip() or device_id
        model = form.get("model", "").strip() or "unknown"
        if not is_valid(DEVICE_ID, device_id):
            raise ServiceError(400, "invalid-field", text("portal-bad-device-id"))
        if not (name.isprintable() and model.isprintable()) or max(len(name), len(model)) > 200:
            raise ServiceError(400, "invalid-field", text("portal-bad-name"))
        answer = await self._devices().register(caller, device_id, name, model)
        request.setResponseCode(201)
        return pages.registered_page(viewer, answer)

    async def rotate_device(self, request, device_id: str):
        await self._checked_form(request)
        caller, _ = await self._viewer(request, "devices.manage", "POST /portal/rotate")
        _check_id("device", device_id)
        await self._devices().rotate(caller, device_id)
        raise _Redirect(f"/portal/devices/{device_id}?rotated=1")

    async def revoke_device(self, request, device_id: str):
        form, _ = await self._checked_form(request)
        caller, _ = await self._viewer(request, "devices.manage", "POST /portal/revoke")
        _check_id("device", device_id)
        if form.get("confirm") != "yes":
            raise ServiceError(400, "not-confirmed", text("portal-revoke-confirm"))
        await self._devices().revoke(caller, device_id)
        raise _Redirect("/portal/")

    async def move_device(self, request, device_id: str):
        form, _ = await self._checked_form(request)
        caller, _ = await self._viewer(request, "devices.manage", "POST /portal/move")
        _check_id("device", device_id)
        to_unit = form.get("unit_id", "")
        if not is_valid(UNIT_ID, to_unit):
            raise ServiceError(404, "unit-not-found", text("portal-no-such-unit"))
        await self._devices().move(caller, device_id, to_unit)
        raise _Redirect("/portal/")

    # -- administration -----------------------------------------------------------------

    def _administration(self) -> AccountAdmin:
        return _served(self._admin, "portal-no-admin")

    async def users(self, request):
        caller, viewer = await self._viewer(request, "users.list", "GET /portal/users")
        found = await self._administration().users(caller)
        return pages.users_page(viewer, found, allowed(caller.role, "users.manage"))

    async def add_user(self, request):
        form, _ = await self._checked_form(request)
        caller, viewer = await self._viewer(request, "users.manage", "POST /portal/add-user")
        user_id = form.get("user_id", "").strip().lower()
        display_name = form.get("display_name", "").strip() or user_id
        role = form.get("role", "")
        if not is_valid(USER_ID, user_id):
            raise ServiceError(400, "invalid-field", text("portal-bad-user-id"))
        if not display_name.isprintable() or len(display_name) > 200:
            raise ServiceError(400, "invalid-field", text("portal-bad-name"))
        user, token = await self._administration().create_user(caller, user_id, display_name,
                                                               role, None)
        request.setResponseCode(201)
        return pages.password_token_page(viewer, user_id, token, created=True)

    async def set_role(self, request, user_id: str):
        form, _ = await self._checked_form(request)
        caller, _ = await self._viewer(request, "users.manage", "POST /portal/role")
        self._check_user_id(user_id, caller)
        role = form.get("role", "")
        await self._administration().set_role(caller, user_id, None if role == "none" else role)
        raise _Redirect("/portal/users")

    async def reset_password(self, request, user_id: str):
        await self._checked_form(request)
        caller, viewer = await self._viewer(request, "users.manage",
                                            "POST /portal/reset-password")
        self._check_user_id(user_id, caller)
        token = await self._administration().reset_password(caller, user_id, None)
        return pages.password_token_page(viewer, user_id, token, created=False)

    def _check_user_id(self, user_id: str, caller: Caller) -> None:
        if not is_valid(USER_ID, user_id):
            raise ServiceError(404, "user-not-found", text("portal-no-such-user"))
        if user_id == caller.user_id:
            raise ServiceError(409, "own-account", text("portal-not-yourself"))

    async def disable_user(self, request, user_id: str):
        return await self._set_disabled(request, user_id, True)

    async def enable_user(self, request, user_id: str):
        return await self._set_disabled(request, user_id, False)

    async def _set_disabled(self, request, user_id: str, disabled: bool):
        await self._checked_form(request)
        caller, _ = await self._viewer(request, "users.manage", "POST /portal/disable")
        self._check_user_id(user_id, caller)
        await self._administration().set_disabled(caller, user_id, disabled)
        raise _Redirect("/portal/users")

    async def audit(self, request):
        caller, viewer = await self._viewer(request, "audit.read", "GET /portal/audit")
        kind = _arg(request, b"kind")
        actor = _arg(request, b"actor")[:200]
        filters: dict = {"limit": AUDIT_PAGE}
        administration = self._administration()
        if kind:
            if kind not in administration.audit_kinds:
                raise ServiceError(400, "invalid-field", text("portal-bad-kind"))
            filters["kind"] = kind
        if actor:
            filters["actor"] = actor
        found = await administration.audit(caller, **filters)
        return pages.audit_page(viewer, found, administration.audit_kinds, kind, actor)

    # -- live updates ---------------------------------------------------------------------

    async def events(self, request):
        """``/portal/events?watch=session:ID`` or ``?watch=sessions``: says ``change`` when
        the session (or the unit's open sessions) changed."""
        caller, _ = await self._viewer(request, "sessions.list", "GET /portal/events")
        watch = _arg(request, b"watch")
        # What the page shows now ("" is something too: no open sessions).
        seen = _arg(request, b"seen")[:4000] if b"seen" in request.args else None
        if watch.startswith("session:") and is_valid(REQUEST_ID, watch[8:]):
            broker, request_id, observer = self._broker(), watch[8:], _Observer.of(caller)

            async def fingerprint() -> str:
                return session_fingerprint(await broker.poll(observer, request_id))
        elif watch.startswith("job:") and is_valid(JOB_ID, watch[4:]):
            jobs, job_id = self._job_service(), watch[4:]

            async def fingerprint() -> str:
                return job_fingerprint(await jobs.get(caller, job_id))
        elif watch == "fleet":
            fleet, unit_id = self._fleet, caller.unit_id

            async def fingerprint() -> str:
                return fleet_fingerprint(await fleet.devices(unit_id))
        elif watch == "sessions":
            broker = self._broker()

            async def fingerprint() -> str:
                return sessions_fingerprint(await broker.list_records(
                    caller, states=OPEN_STATES, limit=SESSION_PAGE))
        else:
            raise ServiceError(400, "invalid-field", text("portal-bad-watch"))
        await self.live.stream(request, caller.user_id, fingerprint, seen)
        return _STREAMING


_STREAMING = object()  # the handler answers the request itself, over time


def session_fingerprint(record: dict) -> str:
    """What a session's page shows that can change (it reloads when this does)."""
    return "|".join(str(record.get(key)) for key in (
        "state", "end_reason", "operator", "started_at_us"))


def fleet_fingerprint(fleet: dict) -> str:
    """What the fleet page shows that changes by itself: who is online."""
    return " ".join(f"{d['device_id']}:{d['state']}" for d in fleet["devices"])


def job_fingerprint(job: dict) -> str:
    """What a job's page shows that can change."""
    progress = job.get("progress") or {}
    return f"{job['state']}|{progress.get('phase')}|{progress.get('percent')}"


def sessions_fingerprint(found: list[dict]) -> str:
    """What the list of open sessions shows that can change."""
    return " ".join(f"{r['request_id']}:{r['state']}" for r in found)


# The identifiers in portal paths: their shape, and what a wrong one is said to be.
_PATH_IDS = {"device": (DEVICE_ID, "device-not-found", "portal-no-such-device"),
             "session": (REQUEST_ID, "session-not-found", "portal-no-such-session"),
             "job": (JOB_ID, "job-not-found", "portal-no-such-job"),
             "image": (IMAGE_ID, "image-not-found", "portal-no-such-image")}


def _check_id(kind: str, value: str) -> None:
    """A path's identifier of the right shape, or ``404`` (like one that does not exist)."""
    pattern, code, message = _PATH_IDS[kind]
    if not is_valid(pattern, value):
        raise ServiceError(404, code, text(message))


def _served(service, missing: str):
    """A service this manager runs, or ``503`` saying (text ``missing``) that it does not."""
    if service is None:
        raise ServiceError(503, "unavailable", text(missing))
    return service


class _Raw(bytes):
    """A page's answer that is not HTML (a download): written as it is."""


class _Observer:
    """A caller as the portal shows a record: never the terminal that asked (so that a
    look at an approved session never collects its terminal token: ``remotecomm join``
    on that terminal does)."""

    @staticmethod
    def of(caller: Caller) -> Caller:
        return dataclasses.replace(caller, terminal_id="portal-observer")


_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _date_arg(request, name: bytes) -> str | None:
    """A day from the query (``YYYY-MM-DD``, as a date field sends it), or ``None``."""
    value = _arg(request, name)
    if not value:
        return None
    if not _DATE.fullmatch(value):
        raise ServiceError(400, "invalid-field", text("portal-bad-date"))
    return value


def _arg(request, name: bytes) -> str:
    values = request.args.get(name) or [b""]
    return values[0].decode("utf-8", "replace")

