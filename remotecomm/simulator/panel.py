"""The simulated MFP's panel (S143): a web page on 127.0.0.1 for the device's operators.

Only an operator logged in at the panel can answer an approval request:
login with a name and password from the simulator's config (argon2id
hashes), a session cookie (HttpOnly, SameSite=Strict), and a CSRF token in
every form.  Answers go to the device agent over its local channel; the
panel never talks to the manager.
"""

from __future__ import annotations

import hmac
import html
import secrets
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timezone

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread
from twisted.logger import Logger
from twisted.web import server
from twisted.web.resource import Resource

from remotecomm.simulator.agent_client import AgentChannelClient, AgentRefused, AgentUnavailable

log = Logger()

COOKIE = b"panel_session"
SESSION_LIFETIME = 1800.0
MAX_SESSIONS = 256
APP_LABELS = {"web-server": "the web configuration pages", "remote-panel": "the remote panel"}

STYLE = """
body{margin:0;font-family:system-ui,sans-serif;background:#20252b;color:#eef}
.panel{max-width:720px;margin:24px auto;background:#2f3640;border-radius:14px;
padding:20px 24px;box-shadow:0 6px 24px #0008}
header{display:flex;justify-content:space-between;align-items:center;
border-bottom:1px solid #556;padding-bottom:10px;margin-bottom:16px}
h1{font-size:20px;margin:0} .who{font-size:14px;color:#bcd}
.request{background:#3b4450;border-radius:10px;padding:14px 16px;margin:12px 0}
.buttons{display:flex;gap:16px;margin-top:12px}
button{font-size:20px;padding:12px 34px;border:0;border-radius:10px;cursor:pointer}
.yes{background:#2e9e5b;color:#fff} .no{background:#c0392b;color:#fff}
.plain{background:#556;color:#fff;font-size:14px;padding:6px 14px}
.note{color:#f5c16c} input{font-size:18px;padding:8px;margin:4px 0 12px;width:100%}
"""


@dataclass
class PanelSession:
    """One browser's session at the panel."""

    csrf: str
    created: float
    operator: str | None = None
    notice: str | None = field(default=None)


class PanelSessions:
    """Bounded, expiring panel sessions keyed by a random cookie value."""

    def __init__(self, clock: IReactorTime):
        self._clock = clock
        self._sessions: OrderedDict[str, PanelSession] = OrderedDict()

    def get(self, key: str | None) -> PanelSession | None:
        session = self._sessions.get(key) if key else None
        if session is not None and self._clock.seconds() - session.created > SESSION_LIFETIME:
            del self._sessions[key]
            return None
        return session

    def new(self) -> tuple[str, PanelSession]:
        key = secrets.token_urlsafe(24)
        session = PanelSession(csrf=secrets.token_urlsafe(24), created=self._clock.seconds())
        self._sessions[key] = session
        while len(self._sessions) > MAX_SESSIONS:
            self._sessions.popitem(last=False)
        return key, session

    def drop(self, key: str) -> None:
        self._sessions.pop(key, None)


def _page(title: str, body: str, refresh: bool = False) -> bytes:
    meta = '<meta http-equiv="refresh" content="2">' if refresh else ""
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8">{meta}'
            f'<title>{html.escape(title)}</title><style>{STYLE}</style></head>'
            f'<body><div class="panel">{body}</div></body></html>').encode("utf-8")


class Panel(Resource):
    """The panel's pages: ``/`` (login, or requests and running sessions), ``/login``,
    ``/decide``, ``/end-session``, ``/logout``."""

    isLeaf = True

    def __init__(self, clock: IReactorTime, device_name: str, model: str,
                 operators: dict[str, str], agent: AgentChannelClient):
        super().__init__()
        self._clock = clock
        self._device_name = device_name
        self._model = model
        self._operators = operators
        self._agent = agent
        self._hasher = PasswordHasher()
        self._sessions = PanelSessions(clock)
        self._failures = LoginFailures(clock)
        weak = sorted(name for name, stored in operators.items()
                      if _weakly_hashed(self._hasher, stored))
        if weak:
            log.warn("operators {names} have password hashes weaker than argon2id's defaults "
                     "(64 MiB, 3 passes): hash them again for a real device", names=weak)

    # -- plumbing ---------------------------------------------------------------------

    def render(self, request: server.Request):
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        request.setHeader(b"cache-control", b"no-store")
        request.setHeader(b"x-frame-options", b"DENY")
        request.setHeader(b"content-security-policy",
                          b"default-src 'none'; style-src 'unsafe-inline'; form-action 'self'")
        routes = {(b"GET", b"/"): self._home, (b"POST", b"/login"): self._login,
                  (b"POST", b"/decide"): self._decide, (b"POST", b"/end-session"): self._end,
                  (b"POST", b"/logout"): self._logout}
        handler = routes.get((request.method, request.path))
        if handler is None:
            request.setResponseCode(404)
            return _page("Not found", "<p>Not found.</p>")
        d = Deferred.fromCoroutine(handler(request))
        d.addCallback(lambda body: self._finish(request, body))
        d.addErrback(self._failed, request)
        return server.NOT_DONE_YET

    def _finish(self, request: server.Request, body: bytes | None) -> None:
        if request._disconnected or request.finished:
            return
        if body:
            request.write(body)
        request.finish()

    def _failed(self, failure, request: server.Request) -> None:
        log.failure("panel page failed", failure)
        request.setResponseCode(500)
        self._finish(request, _page("Error", "<p>The panel failed; see its log.</p>"))

    def _session(self, request: server.Request, create: bool) -> PanelSession | None:
        key = request.getCookie(COOKIE)
        session = self._sessions.get(key.decode("ascii", "replace") if key else None)
        if session is None and create:
            key, session = self._sessions.new()
            self._set_cookie(request, key)
        return session

    def _set_cookie(self, request: server.Request, key: str) -> None:
        request.addCookie(COOKIE, key.encode("ascii"), path=b"/", httpOnly=True,
                          sameSite="strict")

    @staticmethod
    def _field(request: server.Request, name: str) -> str:
        values = request.args.get(name.encode("ascii")) or [b""]
        return values[0].decode("utf-8", "replace")[:1024]

    def _forbid(self, request: server.Request, message: str) -> bytes:
        request.setResponseCode(403)
        return _page("Not allowed", f'<p class="note">{html.escape(message)}</p>'
                                    f'<p><a href="/" style="color:#9cf">Back to the panel</a></p>')

    def _redirect_home(self, request: server.Request) -> None:
        request.setResponseCode(303)
        request.setHeader(b"location", b"/")
        return None

    def _csrf_ok(self, request: server.Request, session: PanelSession | None) -> bool:
        return session is not None and hmac.compare_digest(
            self._field(request, "csrf").encode(), session.csrf.encode())

    # -- pages ------------------------------------------------------------------------

    async def _home(self, request: server.Request) -> bytes:
        session = self._session(request, create=True)
        header = (f"<header><div><h1>{html.escape(self._device_name)}</h1>"
                  f'<div class="who">{html.escape(self._model)}</div></div>')
        if session.operator is None:
            return _page(self._device_name, header + "</header>" + self._login_form(session))
        header += (f'<form method="post" action="/logout"><span class="who">Operator: '
                   f'{html.escape(session.operator)}</span> '
                   f'<input type="hidden" name="csrf" value="{session.csrf}">'
                   f'<button class="plain">Log out</button></form></header>')
        notice = f'<p class="note">{html.escape(session.notice)}</p>' if session.notice else ""
        session.notice = None
        try:
            approvals = await self._agent.approvals()
            running = await self._agent.sessions()
        except (AgentUnavailable, AgentRefused) as e:
            return _page(self._device_name, header + notice +
                         f'<p class="note">The device agent is not reachable ({html.escape(str(e))}).</p>',
                         refresh=True)
        if not approvals:
            body = "<p>No remote session requests.</p>"
        else:
            body = "".join(self._request_card(session, a) for a in approvals)
        if running:
            body += "<h2>Running remote sessions</h2>" + "".join(
                self._session_card(session, r) for r in running)
        return _page(self._device_name, header + notice + body, refresh=True)

    def _session_card(self, session: PanelSession, running: dict) -> str:
        e = html.escape
        app = running["app_id"]
        since = datetime.fromtimestamp(running["since_us"] / 1e6, timezone.utc)
        return (f'<div class="request" data-session-id="{e(running["request_id"])}">'
                f'<p>{e(running["user_name"])} ({e(running["user_id"])}) of '
                f'{e(running["unit_name"])} is using {e(APP_LABELS.get(app, app))} '
                f'(<code>{e(app)}</code>) since {since:%H:%M:%S} UTC.</p>'
                f'<form method="post" action="/end-session">'
                f'<input type="hidden" name="csrf" value="{session.csrf}">'
                f'<input type="hidden" name="request_id" value="{e(running["request_id"])}">'
                f'<button class="no" id="end-{e(running["request_id"])}" type="submit">'
                f'End session</button></form></div>')

    def _login_form(self, session: PanelSession, note: str = "") -> str:
        return (f'<h2>Operator login</h2>{note}'
                f'<form method="post" action="/login">'
                f'<input type="hidden" name="csrf" value="{session.csrf}">'
                f'<label>Operator<input name="operator" autocomplete="username"></label>'
                f'<label>Password<input name="password" type="password" '
                f'autocomplete="current-password"></label>'
                f'<button class="plain" type="submit">Log in</button></form>')

    def _request_card(self, session: PanelSession, approval: dict) -> str:
        app = approval["app_id"]
        expires = datetime.fromtimestamp(approval["expires_at_us"] / 1e6, timezone.utc)
        e = html.escape
        return (f'<div class="request" data-request-id="{e(approval["request_id"])}">'
                f'<p><b>Remote session request</b></p>'
                f'<p>{e(approval["user_name"])} ({e(approval["user_id"])}) of '
                f'{e(approval["unit_name"])} asks to use {e(APP_LABELS.get(app, app))} '
                f'(<code>{e(app)}</code>) on this device from outside. Allow?</p>'
                f'<p class="who">Answer before {expires:%H:%M:%S} UTC; no answer means no.</p>'
                f'<div class="buttons">'
                + "".join(
                    f'<form method="post" action="/decide">'
                    f'<input type="hidden" name="csrf" value="{session.csrf}">'
                    f'<input type="hidden" name="request_id" value="{e(approval["request_id"])}">'
                    f'<input type="hidden" name="answer" value="{answer}">'
                    f'<button class="{answer}" type="submit">{answer.upper()}</button></form>'
                    for answer in ("yes", "no"))
                + "</div></div>")

    async def _login(self, request: server.Request) -> bytes | None:
        session = self._session(request, create=False)
        if not self._csrf_ok(request, session):
            return self._forbid(request, "The form expired; open the panel again.")
        operator = self._field(request, "operator").strip().lower()
        password = self._field(request, "password")
        source = getattr(request.getClientAddress(), "host", "unknown")
        retry_after, delay = self._failures.check(operator, source)
        if retry_after is not None:
            log.info("panel login for {operator} from {source} throttled", operator=operator,
                     source=source)
            request.setResponseCode(429)
            request.setHeader(b"retry-after", b"%d" % max(1, int(retry_after)))
            return _page(self._device_name, self._login_form(
                session, f'<p class="note">Too many wrong passwords: try again in '
                         f'{max(1, int(retry_after) // 60 + 1)} minute(s).</p>'))
        if delay:
            await deferLater(self._clock, delay, lambda: None)
        stored = self._operators.get(operator)
        ok = await deferToThread(self._verify, stored, password)
        if not ok:
            self._failures.failed(operator, source)
            log.info("panel login refused for {operator}", operator=operator)
            try:
                await self._agent.panel_login_failed(operator or "(none)")
            except (AgentUnavailable, AgentRefused) as e:
                log.warn("could not report the failed login to the agent: {error}",
                         error=str(e))
            request.setResponseCode(401)
            return _page(self._device_name, self._login_form(
                session, '<p class="note">Operator or password is wrong.</p>'))
        self._failures.succeeded(operator, source)
        old_key = request.getCookie(COOKIE).decode("ascii", "replace")
        self._sessions.drop(old_key)  # a new session on login (no fixation)
        key, fresh = self._sessions.new()
        fresh.operator = operator
        self._set_cookie(request, key)
        log.info("operator {operator} logged in at the panel", operator=operator)
        return self._redirect_home(request)

    def _verify(self, stored: str | None, password: str) -> bool:  # in a thread
        try:
            if stored is None:
                self._hasher.hash(password)  # same cost for unknown operators
                return False
            return self._hasher.verify(stored, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    async def _decide(self, request: server.Request) -> bytes | None:
        session = self._session(request, create=False)
        if session is None or session.operator is None:
            return self._forbid(request, "Only an operator logged in at the panel can answer.")
        if not self._csrf_ok(request, session):
            return self._forbid(request, "The form expired; open the panel again.")
        request_id = self._field(request, "request_id")
        answer = self._field(request, "answer")
        if answer not in ("yes", "no"):
            return self._forbid(request, "Unknown answer.")
        try:
            await self._agent.answer(request_id, answer == "yes", session.operator)
            session.notice = f"You answered {answer.upper()}."
        except AgentRefused as e:
            session.notice = f"Not sent: {e.message}."
        except AgentUnavailable as e:
            session.notice = f"The device agent is not reachable ({e})."
        return self._redirect_home(request)

    async def _end(self, request: server.Request) -> bytes | None:
        """S291: the operator ends a running session."""
        session = self._session(request, create=False)
        if session is None or session.operator is None:
            return self._forbid(request, "Only an operator logged in at the panel can end a "
                                         "session.")
        if not self._csrf_ok(request, session):
            return self._forbid(request, "The form expired; open the panel again.")
        try:
            await self._agent.end(self._field(request, "request_id"), session.operator)
            session.notice = "The session is ending."
        except AgentRefused as e:
            session.notice = f"Not ended: {e.message}."
        except AgentUnavailable as e:
            session.notice = f"The device agent is not reachable ({e})."
        return self._redirect_home(request)

    async def _logout(self, request: server.Request) -> bytes | None:
        session = self._session(request, create=False)
        if self._csrf_ok(request, session):
            key = request.getCookie(COOKIE).decode("ascii", "replace")
            self._sessions.drop(key)
        return self._redirect_home(request)


def _weakly_hashed(hasher: PasswordHasher, stored: str) -> bool:
    try:
        return hasher.check_needs_rehash(stored)
    except (InvalidHashError, ValueError):
        return True


class LoginFailures:
    """Wrong panel passwords, as a device keeps them (in memory): 5 for one operator from one
    address stop that pair, 20 from one address stop the address, for 15 minutes; past 5
    for an operator from anywhere each attempt waits (0.5 s, doubling, at most 8 s) -- the
    operator is slowed, never locked out."""

    PER_OPERATOR, PER_ADDRESS, WINDOW, MAX_DELAY, MAX_KEYS = 5, 20, 900.0, 8.0, 10_000

    def __init__(self, clock: IReactorTime):
        self._clock = clock
        self._times: dict[tuple[str, str], list[float]] = {}

    def _recent(self, key: tuple[str, str]) -> list[float]:
        now = self._clock.seconds()
        times = [t for t in self._times.get(key, ()) if t > now - self.WINDOW]
        if times:
            self._times[key] = times
        else:
            self._times.pop(key, None)
        return times

    def check(self, operator: str, source: str) -> tuple[float | None, float]:
        """(seconds until this pair may try, or None; how long this attempt waits)."""
        now = self._clock.seconds()
        pair = self._recent(("pair", f"{operator}\0{source}"))
        address = self._recent(("address", source))
        for times, limit in ((pair, self.PER_OPERATOR), (address, self.PER_ADDRESS)):
            if len(times) >= limit:
                return times[-limit] + self.WINDOW - now, 0.0
        beyond = len(self._recent(("operator", operator))) - self.PER_OPERATOR
        return None, 0.0 if beyond < 0 else min(0.5 * 2 ** beyond, self.MAX_DELAY)

    def failed(self, operator: str, source: str) -> None:
        if len(self._times) > self.MAX_KEYS:
            self._times.clear()  # a flood of names: start over rather than grow
        now = self._clock.seconds()
        for key in (("pair", f"{operator}\0{source}"), ("address", source),
                    ("operator", operator)):
            self._times.setdefault(key, []).append(now)
            del self._times[key][:-self.PER_ADDRESS]

    def succeeded(self, operator: str, source: str) -> None:
        self._times.pop(("pair", f"{operator}\0{source}"), None)
