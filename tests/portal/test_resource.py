"""Tests for remotecomm.portal: the portal's pages in memory (StubTreq), on a real SQLite
file with the same accounts as the REST API."""

import json
import re
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode

from treq.testing import StubTreq
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource

from remotecomm.accounts.login import Accounts, Caller
from remotecomm.accounts.passwords import make_hasher
from remotecomm.accounts.throttle import LoginThrottle
from remotecomm.fleet.listing import FleetListing
from remotecomm.portal.resource import Portal
from remotecomm.portal.security import PortalSession
from remotecomm.store.accounts import add_membership, insert_unit, insert_user, set_user_disabled
from remotecomm.store.audit import audit_records
from remotecomm.store.devices import insert_device
from remotecomm.store.sessions import load_session
from remotecomm.testing.fakes import CHEAP_HASHING, InlinePasswordHasher, migrated_inline_store

PASSWORD = "correct horse battery"
BASE = "https://manager.test"
HOSTILE = "<img src=x onerror=alert(1)>"


class PortalTestCase(SynchronousTestCase):
    """A portal on a real SQLite file, with inline store and hasher, a Clock, and a
    browser-like cookie jar."""

    token_lifetime = 3600

    def setUp(self):
        self.clock = Clock()
        self.clock.advance(1_800_000_000)
        self.store = migrated_inline_store(Path(self.mktemp()) / "manager.sqlite3")
        self.addCleanup(self.store.engine.dispose)
        password_hash = make_hasher(CHEAP_HASHING).hash(PASSWORD)
        for unit in ("acme", "globex"):
            self.store.run_sync(insert_unit, unit, unit.title(), "Europe/Berlin", 0)
        self.store.run_sync(insert_user, "alice", "Alice", password_hash, "acme", "technician", 0)
        self.store.run_sync(insert_user, "carl", "Carl", password_hash, "acme", "unit-admin", 0)
        self.store.run_sync(add_membership, "carl", "globex", "technician", 0)
        self.store.run_sync(insert_device, "mfp-1", "acme", "Front desk", "MFP 9000", 0)
        self.store.run_sync(insert_device, "mfp-2", "acme", HOSTILE, "<b>MFP</b>", 0)
        self.store.run_sync(insert_device, "gx-1", "globex", "Globex MFP", "MFP 100", 0)
        self.accounts = Accounts(self.store, InlinePasswordHasher(),
                                 LoginThrottle(self.store, self.clock, per_account=3,
                                               per_address=10, window=60),
                                 self.clock, self.token_lifetime)
        root = Resource()
        root.putChild(b"portal", Portal(self.accounts, FleetListing(self.store), self.clock))
        self.http = StubTreq(root)
        self.cookies: dict[str, str] = {}

    def request(self, method, path, form=None, *, headers=None):
        """One request with the jar's cookies; its status, headers and text.  Set-Cookie
        answers go into the jar (an empty value or Max-Age 0 removes one)."""
        headers = dict(headers or {})
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        data = None
        if form is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            data = urlencode(form).encode()
        response = self.successResultOf(self.http.request(
            method, BASE + path, data=data, headers=headers, allow_redirects=False))
        body = self.successResultOf(response.content()).decode("utf-8")
        for line in response.headers.getRawHeaders("set-cookie") or []:
            cookie = SimpleCookie()
            cookie.load(line)
            for name, morsel in cookie.items():
                if morsel.value and morsel["max-age"] != "0":
                    self.cookies[name] = morsel.value
                else:
                    self.cookies.pop(name, None)
        return response.code, response.headers, body

    def assert_no_inline_script_or_style(self, body: str) -> None:
        """Scripts only from our own file, no inline script, handler or style."""
        self.assertEqual(re.findall(r"<script[^>]*>", body),
                         ['<script src="/portal/static/portal.js" defer=""></script>'[:-9]])
        self.assertNotIn("<script>", body)
        self.assertNotRegex(body, r"<script[^>]*>[^<]")
        self.assertNotRegex(body, r"\son[a-z]+=")
        self.assertNotIn("style=", body)
        self.assertNotIn("<style", body)

    def log_in(self, user_id="alice", password=PASSWORD):
        self.request("GET", "/portal/login")
        nonce = re.search(r'name="nonce" value="([^"]+)"', self.request(
            "GET", "/portal/login")[2]).group(1)
        return self.request("POST", "/portal/login",
                            {"nonce": nonce, "user_id": user_id, "password": password})

    def csrf(self) -> str:
        return PortalSession.decode(self.cookies["remotecomm_portal"].encode()).csrf


class LoginTests(PortalTestCase):
    def test_every_answer_carries_a_strict_policy(self):
        status, headers, body = self.request("GET", "/portal/login")
        self.assertEqual(status, 200)
        policy = headers.getRawHeaders("content-security-policy")[0]
        for part in ("default-src 'none'", "frame-ancestors 'none'", "form-action 'self'",
                     "script-src 'self'", "base-uri 'none'"):
            self.assertIn(part, policy)
        self.assertNotIn("unsafe-inline", policy)
        self.assertEqual(headers.getRawHeaders("x-frame-options"), ["DENY"])
        self.assertEqual(headers.getRawHeaders("x-content-type-options"), ["nosniff"])
        self.assertEqual(headers.getRawHeaders("cache-control"), ["no-store"])
        self.assertTrue(body.startswith("<!DOCTYPE html>"))
        self.assert_no_inline_script_or_style(body)

    def test_a_login_sets_a_strict_session_cookie_and_opens_the_fleet(self):
        status, headers, _ = self.log_in()
        self.assertEqual((status, headers.getRawHeaders("location")), (303, ["/portal/"]))
        line = next(c for c in headers.getRawHeaders("set-cookie")
                    if c.startswith("remotecomm_portal="))
        for flag in ("HttpOnly", "Secure", "SameSite=Strict", "Path=/portal",
                     f"Max-Age={self.token_lifetime}"):
            self.assertIn(flag.lower(), line.lower())
        status, _, body = self.request("GET", "/portal/")
        self.assertEqual(status, 200)
        self.assertIn("Devices of unit acme", body)
        self.assertIn("Front desk", body)
        self.assertNotIn("Globex", body)

    def test_the_login_is_audited_and_throttled_as_the_apis(self):
        status, _, body = self.log_in(password="wrong horse")
        self.assertEqual(status, 401)
        self.assertIn("user ID or password is wrong", body)
        self.assertNotIn("remotecomm_portal", self.cookies)
        failed = self.store.run_sync(audit_records, "login-failed")
        self.assertEqual(failed[-1]["actor"], "alice")
        self.assertTrue(failed[-1]["detail"]["terminal_id"].startswith("portal-"))
        for _ in range(3):
            status, _, body = self.log_in(password="wrong horse")
        self.assertEqual(status, 429)

    def test_a_login_form_without_its_nonce_is_shown_again(self):
        self.request("GET", "/portal/login")
        status, headers, _ = self.request("POST", "/portal/login", {
            "nonce": "forged", "user_id": "alice", "password": PASSWORD})
        self.assertEqual((status, headers.getRawHeaders("location")), (303, ["/portal/login"]))
        self.assertNotIn("remotecomm_portal", self.cookies)

    def test_pages_without_a_session_go_to_the_login(self):
        for path in ("/portal/", "/portal/devices/mfp-1", "/portal/units"):
            status, headers, _ = self.request("GET", path)
            self.assertEqual((status, headers.getRawHeaders("location")),
                             (303, ["/portal/login"]), path)
        self.cookies["remotecomm_portal"] = "not-a-session"
        self.assertEqual(self.request("GET", "/portal/")[0], 303)

    def test_an_expired_session_ends_with_a_note(self):
        self.log_in()
        self.clock.advance(self.token_lifetime + 1)
        status, headers, _ = self.request("GET", "/portal/")
        self.assertEqual(headers.getRawHeaders("location"), ["/portal/login?ended=1"])
        self.assertNotIn("remotecomm_portal", self.cookies)
        self.assertIn("Your session has ended", self.request("GET", "/portal/login?ended=1")[2])

    def test_a_disabled_user_loses_the_session(self):
        self.log_in()
        self.store.run_sync(set_user_disabled, "alice", True)
        self.assertEqual(self.request("GET", "/portal/")[1].getRawHeaders("location"),
                         ["/portal/login?ended=1"])

    def test_logout_needs_the_csrf_token_and_revokes_the_token(self):
        self.log_in()
        session = self.cookies["remotecomm_portal"]
        status, _, body = self.request("POST", "/portal/logout", {"csrf": "forged"})
        self.assertEqual(status, 403)
        self.assertIn("out of date", body)
        status, headers, _ = self.request("POST", "/portal/logout", {"csrf": self.csrf()})
        self.assertEqual((status, headers.getRawHeaders("location")), (303, ["/portal/login"]))
        self.assertNotIn("remotecomm_portal", self.cookies)
        self.cookies["remotecomm_portal"] = session  # a copy kept elsewhere is useless now
        self.assertEqual(self.request("GET", "/portal/")[1].getRawHeaders("location"),
                         ["/portal/login?ended=1"])

    def test_a_form_from_another_origin_is_refused(self):
        self.log_in()
        status, _, _ = self.request("POST", "/portal/logout", {"csrf": self.csrf()},
                                    headers={"Origin": "https://evil.test"})
        self.assertEqual(status, 403)
        self.assertIn("remotecomm_portal", self.cookies)


class FleetTests(PortalTestCase):
    def setUp(self):
        super().setUp()
        self.log_in()

    def test_device_reported_text_renders_as_text(self):
        _, _, body = self.request("GET", "/portal/")
        self.assertNotIn(HOSTILE, body)
        self.assertIn("&lt;img src=x onerror=alert(1)&gt;", body)
        self.assertIn("&lt;b&gt;MFP&lt;/b&gt;", body)
        _, _, body = self.request("GET", "/portal/devices/mfp-2")
        self.assertNotIn(HOSTILE, body)
        self.assertIn("<title>&lt;img", body)

    def test_search_and_state_filter_the_fleet(self):
        _, _, body = self.request("GET", "/portal/?q=front&state=all")
        self.assertIn("1 of 2 devices", body)
        self.assertIn('data-device="mfp-1"', body)
        self.assertNotIn('data-device="mfp-2"', body)
        _, _, body = self.request("GET", "/portal/?q=&state=online")
        self.assertIn("No devices match.", body)
        _, _, body = self.request("GET", "/portal/?state=bogus")
        self.assertIn("2 of 2 devices", body)

    def test_one_devices_page(self):
        status, _, body = self.request("GET", "/portal/devices/mfp-1")
        self.assertEqual(status, 200)
        self.assertIn("Front desk", body)
        self.assertIn("MFP 9000", body)
        for path in ("/portal/devices/gx-1", "/portal/devices/NOT%20AN%20ID"):
            status, _, body = self.request("GET", path)
            self.assertEqual(status, 404, path)
            self.assertIn("no such device", body)

    def test_unknown_pages_and_methods(self):
        self.assertEqual(self.request("GET", "/portal/nothing")[0], 404)
        self.assertEqual(self.request("GET", "/portal/devices/mfp-1/more")[0], 404)
        self.assertEqual(self.request("GET", "/portal/logout")[0], 405)
        self.assertEqual(self.request("GET", "/portal")[1].getRawHeaders("location"),
                         ["/portal/"])

    def test_a_form_that_is_not_one_is_refused(self):
        status, _, body = self.request("POST", "/portal/logout", headers={
            "Content-Type": "application/json"})
        self.assertEqual(status, 415)

    def test_the_stylesheet(self):
        status, headers, body = self.request("GET", "/portal/static/portal.css")
        self.assertEqual(status, 200)
        self.assertEqual(headers.getRawHeaders("content-type"), ["text/css; charset=utf-8"])
        self.assertEqual(self.request("GET", "/portal/static/../resource.py")[0], 404)


class UnitChoiceTests(PortalTestCase):
    def test_a_user_of_several_units_chooses_one(self):
        status, headers, _ = self.log_in("carl")
        self.assertEqual(headers.getRawHeaders("location"), ["/portal/units"])
        _, _, body = self.request("GET", "/portal/units")
        self.assertIn("Unit acme (unit-admin)", body)
        self.assertIn("Unit globex (technician)", body)
        self.assertEqual(self.request("GET", "/portal/")[1].getRawHeaders("location"),
                         ["/portal/units"])
        status, headers, _ = self.request("POST", "/portal/unit",
                                          {"csrf": self.csrf(), "unit_id": "globex"})
        self.assertEqual(headers.getRawHeaders("location"), ["/portal/"])
        _, _, body = self.request("GET", "/portal/")
        self.assertIn("Globex MFP", body)
        self.assertNotIn("Front desk", body)

    def test_a_unit_not_theirs_is_refused(self):
        self.log_in("alice")
        status, _, _ = self.request("POST", "/portal/unit",
                                    {"csrf": self.csrf(), "unit_id": "globex"})
        self.assertEqual(status, 404)
        self.assertIn("Devices of unit acme", self.request("GET", "/portal/")[2])


class BrokerTestCase(PortalTestCase):
    """A portal with the session broker, and alice's approved request for mfp-1."""

    def setUp(self):
        super().setUp()
        from remotecomm.sessions.broker import SessionBroker
        from remotecomm.sessions.lifecycle import SessionPolicy
        from remotecomm.store.devices import record_hello, set_device_presence
        from remotecomm.testing.relay import local_directory, standalone_node
        from tests.sessions.test_broker import FakeDevices
        self.store.run_sync(insert_user, "tina", "Tina", make_hasher(CHEAP_HASHING).hash(
            PASSWORD), "acme", "technician", 0)
        self.store.run_sync(set_device_presence, "mfp-1", True, 0)
        self.store.run_sync(record_hello, "mfp-1", "0.1.0", 1, ["web-server"], 0)
        self.broker = SessionBroker(
            self.store, self.clock, SessionPolicy(120_000_000, 60_000_000, 3600_000_000,
                                                  900_000_000),
            False, local_directory(self.store, self.clock, standalone_node()), FakeDevices())
        root = Resource()  # the portal again, with the broker
        root.putChild(b"portal", Portal(self.accounts, FleetListing(self.store), self.clock,
                                        sessions=self.broker))
        self.http = StubTreq(root)
        from remotecomm.accounts.login import Caller
        from remotecomm.sessions.messages import ApprovalDecision
        self.alice = Caller(user_id="alice", unit_id="acme", role="technician",
                            terminal_id="t-0123456789abcdef0123456789abcdef")
        accepted = self.successResultOf(Deferred.fromCoroutine(
            self.broker.request_session(self.alice, "mfp-1", "web-server")))
        self.request_id = accepted.request_id
        self.successResultOf(Deferred.fromCoroutine(self.broker.on_decision(
            "mfp-1", ApprovalDecision(self.request_id, True, "olga", False), "mfp-1@d/agent")))
        for _ in range(3):  # the relay allocates, the device is told
            self.clock.advance(0)
        self.assertEqual(self.store.run_sync(load_session, self.request_id).state, "approved")



class SessionPagesTests(BrokerTestCase):
    """The unit's sessions, one record, and End: through the same broker as the API."""

    def test_open_sessions_with_end_for_their_user(self):
        self.log_in("alice")
        _, _, body = self.request("GET", "/portal/sessions")
        self.assertIn(f'data-session="{self.request_id}"', body)
        self.assertIn("approved, waiting for the terminal", body)
        self.assertIn(f'action="/portal/end/{self.request_id}"', body)
        _, _, body = self.request("GET", "/portal/sessions?state=ended")
        self.assertIn("No sessions.", body)

    def test_the_list_filters_by_device_app_user_reason_and_day(self):
        self.log_in("alice")
        for query, shown in (("state=all&device_id=mfp-1", True),
                             ("state=all&device_id=mfp-2", False),
                             ("state=all&app_id=web-server&user_id=alice", True),
                             ("state=all&user_id=tina", False),
                             ("state=ended", False),
                             ("state=all&from=2027-01-15&to=2027-01-16", True),
                             ("state=all&from=2027-01-16", False)):
            _, _, body = self.request("GET", "/portal/sessions?" + query)
            self.assertEqual(f'data-session="{self.request_id}"' in body, shown, query)
            self.assertNotIn("data-watch", body)  # a filtered list is not followed live
        for query in ("device_id=NOT+ONE", "end_reason=%3Cb%3E", "from=soon"):
            self.assertEqual(self.request("GET", "/portal/sessions?" + query)[0], 400, query)
        self.assertIn('data-watch="sessions"', self.request("GET", "/portal/sessions")[2])

    def test_a_record_page_never_collects_the_terminal_token(self):
        self.log_in("alice")
        status, _, body = self.request("GET", f"/portal/session/{self.request_id}")
        self.assertEqual(status, 200)
        self.assertIn("olga", body)  # the operator who approved
        self.assertNotIn("terminal_token", body)
        row = self.store.run_sync(load_session, self.request_id)
        self.assertFalse(row.terminal_token_delivered)
        self.assertEqual(self.request("GET", "/portal/session/" + "x" * 22)[0], 404)

    def test_end_needs_the_csrf_token_then_ends_the_request(self):
        self.log_in("alice")
        self.assertEqual(self.request("POST", f"/portal/end/{self.request_id}",
                                      {"csrf": "forged"})[0], 403)
        status, headers, _ = self.request("POST", f"/portal/end/{self.request_id}",
                                          {"csrf": self.csrf()})
        self.assertEqual(headers.getRawHeaders("location"),
                         [f"/portal/session/{self.request_id}"])
        _, _, body = self.request("GET", f"/portal/session/{self.request_id}")
        self.assertIn("ended (cancelled)", body)

    def test_another_technician_sees_it_but_may_not_end_it(self):
        self.log_in("tina")
        _, _, body = self.request("GET", "/portal/sessions")
        self.assertIn(f'data-session="{self.request_id}"', body)
        self.assertNotIn(f'action="/portal/end/{self.request_id}"', body)
        status, _, body = self.request("POST", f"/portal/end/{self.request_id}",
                                       {"csrf": self.csrf()})
        self.assertEqual(status, 403)
        self.assertEqual(self.store.run_sync(load_session, self.request_id).state, "approved")

    def test_a_unit_admin_ends_anyones_and_it_is_audited(self):
        self.log_in("carl")
        self.request("POST", "/portal/unit", {"csrf": self.csrf(), "unit_id": "acme"})
        _, _, body = self.request("GET", "/portal/devices/mfp-1")
        self.assertIn(f'action="/portal/end/{self.request_id}"', body)
        self.request("POST", f"/portal/end/{self.request_id}", {"csrf": self.csrf()})
        row = self.store.run_sync(load_session, self.request_id)
        self.assertEqual((row.state, row.end_reason), ("ended", "revoked"))
        self.assertEqual(self.store.run_sync(audit_records, "session-force-ended")[-1]["actor"],
                         "carl")


class ReportPagesTests(PortalTestCase):
    """The unit's report with its charts, CSV downloads and e-mail now, through the same
    report service as the API."""

    def setUp(self):
        super().setUp()
        from remotecomm.reports.service import UnitReports
        from remotecomm.store.schema import sessions
        at = int(self.clock.seconds()) * 1_000_000  # 2027-01-15 08:00 UTC
        for n, device, reason, seconds in ((1, "mfp-1", "normal", 600),
                                           (2, "mfp-2", "normal", 60),
                                           (3, "mfp-1", "ended-by-device", 1800)):
            self.store.run_sync(lambda c: c.execute(sessions.insert().values(
                request_id=f"req-{n:018d}", state="ended", unit_id="acme", user_id="alice",
                terminal_id="t-1", device_id=device, app_id="web-server",
                terminal_token_delivered=True, approved_by_test_approver=False,
                requested_us=at - 60_000_000 * n, counted_at_us=at - 60_000_000 * n,
                started_us=at - 60_000_000 * n, duration_us=seconds * 1_000_000,
                bytes_to_device=1000, bytes_from_device=5000, end_reason=reason,
                ended_us=at)))
        root = Resource()
        root.putChild(b"portal", Portal(self.accounts, FleetListing(self.store), self.clock,
                                        reports=UnitReports(self.store, self.clock)))
        self.http = StubTreq(root)
        self.log_in()

    def test_the_report_with_three_charts_and_their_tables(self):
        status, headers, body = self.request("GET", "/portal/reports")
        self.assertEqual(status, 200)
        self.assertIn("2027-01-01 – 2027-02-01 (Europe/Berlin)", body)
        self.assertEqual(body.count("<svg"), 3)
        self.assert_no_inline_script_or_style(body)
        self.assertIn("2027-01-15: 3", body)  # the day's column says how many
        self.assertIn("<title>mfp-1: 0 h 40 min</title>", body)
        self.assertIn("<title>ended-by-device: 1</title>", body)
        self.assertIn('id="table-ends"', body)
        self.assertNotIn("E-mail this report now", body)  # a technician may not

    def test_the_period_is_chosen_by_days(self):
        _, _, body = self.request("GET", "/portal/reports?from=2026-12-01&to=2027-01-01")
        self.assertIn("2026-12-01 – 2027-01-01", body)
        self.assertIn("Nothing in this period.", body)
        status, _, body = self.request("GET", "/portal/reports?from=yesterday")
        self.assertEqual(status, 400)
        self.assertIn("YYYY-MM-DD", body)
        status, _, body = self.request("GET", "/portal/reports?from=2027-02-01&to=2027-01-01")
        self.assertEqual(status, 400)
        self.assertIn("to must come after from", body)

    def test_csv_downloads(self):
        status, headers, body = self.request("GET", "/portal/reports.csv?group_by=device")
        self.assertEqual(status, 200)
        self.assertEqual(headers.getRawHeaders("content-type"),
                         ["text/csv; charset=utf-8; header=present"])
        self.assertIn('attachment; filename="sessions-acme-2027-01-01-device.csv"',
                      headers.getRawHeaders("content-disposition")[0])
        lines = body.splitlines()
        self.assertTrue(lines[0].startswith("from,to,device,"))
        self.assertEqual([line.split(",")[2] for line in lines[1:]], ["mfp-1", "mfp-2", "TOTAL"])
        self.assertEqual(self.request("GET", "/portal/reports.csv?group_by=planet")[0], 400)

    def test_an_admin_may_mail_it_when_mail_is_configured(self):
        self.request("POST", "/portal/logout", {"csrf": self.csrf()})
        self.log_in("carl")
        self.request("POST", "/portal/unit", {"csrf": self.csrf(), "unit_id": "acme"})
        _, _, body = self.request("GET", "/portal/reports")
        self.assertIn("E-mail this report now", body)
        self.assertIn("this server sends no e-mail", body)
        status, _, body = self.request("POST", "/portal/send-report", {"csrf": self.csrf()})
        self.assertEqual(status, 503)


class AdministrationPagesTests(PortalTestCase):
    """Users with Disable and Enable, and the audit log, through AccountAdmin."""

    def setUp(self):
        super().setUp()
        from remotecomm.accounts.administration import AccountAdmin
        self.admin = AccountAdmin(self.store, InlinePasswordHasher(), self.clock)
        root = Resource()
        root.putChild(b"portal", Portal(self.accounts, FleetListing(self.store), self.clock,
                                        admin=self.admin))
        self.http = StubTreq(root)

    def as_carl(self):
        self.log_in("carl")
        self.request("POST", "/portal/unit", {"csrf": self.csrf(), "unit_id": "acme"})

    def test_an_admin_disables_a_user_whose_portal_session_ends(self):
        self.log_in("alice")
        alices = dict(self.cookies)
        self.cookies.clear()
        self.as_carl()
        _, _, body = self.request("GET", "/portal/users")
        self.assertIn('data-user="alice"', body)
        self.assertIn('action="/portal/disable/alice"', body)
        self.assertNotIn('action="/portal/disable/carl"', body)  # not oneself
        status, headers, _ = self.request("POST", "/portal/disable/alice",
                                          {"csrf": self.csrf()})
        self.assertEqual(headers.getRawHeaders("location"), ["/portal/users"])
        _, _, body = self.request("GET", "/portal/users")
        self.assertIn('action="/portal/enable/alice"', body)
        _, _, body = self.request("GET", "/portal/audit?kind=user-disabled")
        self.assertIn("user_id=alice", body)
        self.assertIn("carl", body)
        self.cookies = alices
        self.assertEqual(self.request("GET", "/portal/")[1].getRawHeaders("location"),
                         ["/portal/login?ended=1"])

    def test_adding_a_user_shows_their_one_time_token(self):
        self.as_carl()
        status, _, body = self.request("POST", "/portal/add-user", {
            "csrf": self.csrf(), "user_id": "Nina", "display_name": "Nina <N>",
            "role": "technician"})
        self.assertEqual(status, 201)
        token = re.search(r"remotecomm passwd --user nina --token ([A-Za-z0-9_-]{43})",
                          body).group(1)
        self.successResultOf(Deferred.fromCoroutine(self.admin.redeem_password_token(
            "nina", token, "a new good password", "127.0.0.1")))
        _, _, body = self.request("GET", "/portal/users")
        self.assertIn("Nina &lt;N&gt;", body)
        self.assertEqual(self.request("POST", "/portal/add-user", {
            "csrf": self.csrf(), "user_id": "nina", "role": "technician"})[0], 409)
        self.assertEqual(self.request("POST", "/portal/add-user", {
            "csrf": self.csrf(), "user_id": "zed", "role": "emperor"})[0], 400)

    def test_roles_and_password_resets(self):
        self.as_carl()
        self.request("POST", "/portal/role/alice", {"csrf": self.csrf(), "role": "unit-admin"})
        self.assertIn('<option value="unit-admin" selected="">',
                      re.search(r'data-user="alice".*?</tr>',
                                self.request("GET", "/portal/users")[2]).group(0))
        status, _, body = self.request("POST", "/portal/reset-password/alice",
                                       {"csrf": self.csrf()})
        self.assertEqual(status, 200)
        self.assertIn("remotecomm passwd --user alice --token ", body)
        self.request("POST", "/portal/role/alice", {"csrf": self.csrf(), "role": "none"})
        self.assertNotIn('data-user="alice"', self.request("GET", "/portal/users")[2])
        self.assertEqual(self.request("POST", "/portal/role/carl",
                                      {"csrf": self.csrf(), "role": "none"})[0], 409)

    def test_units_created_by_a_provider_admin_and_set_by_a_unit_admin(self):
        self.store.run_sync(insert_user, "pat", "Pat", make_hasher(CHEAP_HASHING).hash(
            PASSWORD), None, None, 0, provider_admin=True)
        self.log_in("pat")
        _, _, body = self.request("GET", "/portal/units")
        self.assertIn("Unit acme (provider-admin)", body)  # every unit, member or not
        self.request("POST", "/portal/create-unit", {
            "csrf": self.csrf(), "unit_id": "initech", "name": "Initech",
            "time_zone": "America/Chicago"})
        self.assertIn("Unit initech (provider-admin)", self.request("GET", "/portal/units")[2])
        self.assertEqual(self.request("POST", "/portal/create-unit", {
            "csrf": self.csrf(), "unit_id": "x", "time_zone": "Mars/Olympus"})[0], 400)
        self.request("POST", "/portal/logout", {"csrf": self.csrf()})
        self.as_carl()
        self.assertEqual(self.request("POST", "/portal/create-unit", {
            "csrf": self.csrf(), "unit_id": "mine"})[0], 403)
        self.request("POST", "/portal/change-unit", {
            "csrf": self.csrf(), "name": "ACME <Corp>", "time_zone": "Europe/Paris"})
        _, _, body = self.request("GET", "/portal/units")
        self.assertIn('value="ACME &lt;Corp&gt;"', body)
        self.assertIn('value="Europe/Paris"', body)

    def test_technicians_see_no_administration(self):
        self.log_in("alice")
        _, _, body = self.request("GET", "/portal/")
        self.assertNotIn('href="/portal/users"', body)
        status, _, body = self.request("GET", "/portal/users")
        self.assertEqual(status, 403)
        self.assertIn("a technician may not list and show the unit", body)
        self.assertEqual(self.request("POST", "/portal/disable/carl",
                                      {"csrf": self.csrf()})[0], 403)
        denied = self.store.run_sync(audit_records, "permission-denied")
        self.assertEqual([(r["actor"], r["detail"]["action"]) for r in denied],
                         [("alice", "users.list"), ("alice", "users.manage")])

    def test_the_audit_log_filters(self):
        self.as_carl()
        self.assertEqual(self.request("GET", "/portal/audit?kind=no-such-kind")[0], 400)
        _, _, body = self.request("GET", "/portal/audit?actor=nobody")
        self.assertIn("No audit records match.", body)
        self.assertEqual(self.request("POST", "/portal/disable/carl",
                                      {"csrf": self.csrf()})[0], 409)
        self.assertEqual(self.request("POST", "/portal/disable/gina",
                                      {"csrf": self.csrf()})[0], 404)


class AskingForASessionTests(BrokerTestCase):
    """A device page asks for a session for one of the user's CLI terminals; the session's
    page follows it live."""

    CLI = "t-0123456789abcdef0123456789abcdef"

    def setUp(self):
        super().setUp()
        self.successResultOf(Deferred.fromCoroutine(self.accounts.login(
            "alice", PASSWORD, self.CLI, "127.0.0.1")))

    def ask(self, **form):
        values = {"csrf": self.csrf(), "app_id": "web-server", "terminal_id": self.CLI}
        values.update(form)
        return self.request("POST", "/portal/request/mfp-1", values)

    def test_the_form_offers_the_users_cli_terminals_only(self):
        self.log_in("alice")
        _, _, body = self.request("GET", "/portal/devices/mfp-1")
        self.assertIn('action="/portal/request/mfp-1"', body)
        self.assertIn(f'<option value="{self.CLI}">', body)
        self.assertNotIn('<option value="portal-', body)
        _, _, body = self.request("GET", "/portal/devices/mfp-2")  # offline
        self.assertIn("The device is offline", body)

    def test_a_request_names_the_chosen_terminal_and_is_followed_live(self):
        self.log_in("alice")
        # alice's first request (setUp) holds mfp-1 for this terminal: end it first.
        self.request("POST", f"/portal/end/{self.request_id}", {"csrf": self.csrf()})
        status, headers, _ = self.ask()
        location = headers.getRawHeaders("location")[0]
        request_id = location.rsplit("/", 1)[1]
        row = self.store.run_sync(load_session, request_id)
        self.assertEqual((row.terminal_id, row.user_id, row.state, row.client_name),
                         (self.CLI, "alice", "pending", "remotecomm-portal"))
        _, _, body = self.request("GET", location)
        self.assertIn("Waiting for the operator at mfp-1", body)
        self.assertIn('data-deadline="', body)
        self.assertIn(f'data-watch="session:{request_id}"', body)

    def test_only_ones_own_terminals(self):
        self.log_in("alice")
        for terminal in ("t-ffffffffffffffffffffffffffffffff", "portal-whatever-long-id"):
            status, _, body = self.ask(terminal_id=terminal)
            self.assertEqual(status, 400, terminal)
            self.assertIn("Choose one of your terminals", body)
        self.assertEqual(self.ask(app_id="NOT AN APP")[0], 400)

    def test_the_stream_says_change_when_the_session_changes(self):
        self.log_in("alice")
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        answer = self.http.request("GET", BASE + f"/portal/events?watch=session:{self.request_id}",
                                   headers=headers, allow_redirects=False)
        response = self.successResultOf(answer)
        self.assertEqual(response.headers.getRawHeaders("content-type"),
                         ["text/event-stream; charset=utf-8"])
        body = response.content()
        self.clock.advance(1)
        self.assertNoResult(body)
        self.successResultOf(Deferred.fromCoroutine(self.broker.force_end(
            self.alice, self.request_id, "127.0.0.1")))
        self.clock.advance(1)
        self.http.flush()
        self.assertIn(b"event: change", self.successResultOf(body))

    def test_streams_are_bounded(self):
        self.log_in("alice")
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        streams = [self.http.request("GET", BASE + "/portal/events?watch=sessions",
                                     headers=headers) for _ in range(8)]
        for stream in streams:
            self.assertEqual(self.successResultOf(stream).code, 200)
        refused = self.successResultOf(self.http.request(
            "GET", BASE + "/portal/events?watch=sessions", headers=headers))
        self.assertEqual(refused.code, 429)
        self.assertEqual(self.successResultOf(self.http.request(
            "GET", BASE + "/portal/events?watch=nothing", headers=headers)).code, 400)

    def test_a_page_older_than_the_stream_is_told_at_once(self):
        """What the page showed (``seen``) counts, not what the stream saw first: a change
        between the page and its stream is not missed."""
        self.log_in("alice")
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        response = self.successResultOf(self.http.request(
            "GET", BASE + f"/portal/events?watch=session:{self.request_id}&seen=pending|None",
            headers=headers))
        body = response.content()
        self.http.flush()
        self.assertIn(b"event: change", self.successResultOf(body))


class MaintenancePagesTests(PortalTestCase):
    """Run an action on a device's page, follow the job, read what came back, through the
    same job service as the API."""

    def setUp(self):
        super().setUp()
        from remotecomm.maintenance.service import JobService
        from remotecomm.store.devices import record_hello, set_device_presence
        from tests.maintenance.test_service import FakeDevices
        self.store.run_sync(set_device_presence, "mfp-1", True, 0)
        self.store.run_sync(record_hello, "mfp-1", "0.1.0", 1, ["web-server"], 0,
                            "1.0", [{"name": "sleep_minutes", "kind": "int", "minimum": 1,
                                     "maximum": 240}], 1)
        self.devices = FakeDevices()
        from remotecomm.maintenance.firmware import FirmwareImages
        self.images = FirmwareImages(self.store, self.clock, Path(self.mktemp()),
                                     "https://manager.test")
        self.jobs = JobService(self.store, self.clock, self.devices, self.images)
        root = Resource()
        root.putChild(b"portal", Portal(self.accounts, FleetListing(self.store), self.clock,
                                        jobs=self.jobs, firmware=self.images))
        self.http = StubTreq(root)
        self.log_in()

    def run_job(self, **form):
        values = {"csrf": self.csrf(), "action": "counters"}
        values.update(form)
        return self.request("POST", "/portal/jobs/mfp-1", values)

    def test_the_device_page_offers_the_actions_and_its_settings(self):
        _, _, body = self.request("GET", "/portal/devices/mfp-1")
        self.assertIn('action="/portal/jobs/mfp-1"', body)
        self.assertIn('<option value="sleep_minutes">', body)
        self.assertIn("No maintenance jobs yet.", body)
        self.assertNotIn('value="firmware"', body)  # no image uploaded

    def test_a_job_runs_and_its_result_shows_as_text(self):
        from remotecomm.maintenance.messages import JobResult
        status, headers, _ = self.run_job()
        location = headers.getRawHeaders("location")[0]
        job_id = location.rsplit("/", 1)[1]
        _, _, body = self.request("GET", location)
        self.assertIn(">running<", body)  # the device took it
        self.assertIn(f'data-watch="job:{job_id}"', body)
        result = '{"total_pages": 5210, "note": "<script>alert(1)</script>"}'
        self.successResultOf(Deferred.fromCoroutine(self.jobs.on_result(
            "mfp-1", JobResult(job_id, "done", 1, result=result), "mfp-1@d/agent")))
        _, _, body = self.request("GET", location)
        self.assertIn("5210", body)
        self.assertIn("&lt;script&gt;alert(1)&lt;/script&gt;", body)
        self.assertNotIn("data-watch", body)  # over: nothing to follow
        _, _, body = self.request("GET", "/portal/devices/mfp-1")
        self.assertIn(f'href="/portal/job/{job_id}"', body)

    def test_wrong_parameters_are_the_services_refusal(self):
        status, _, body = self.run_job(action="config-set", key="sleep_minutes", value="0")
        self.assertEqual(status, 400)
        self.assertEqual(self.run_job(action="config-get", key="No Such")[0], 400)
        self.assertEqual(self.run_job(action="launch")[0], 400)
        self.assertEqual(self.request("POST", "/portal/jobs/mfp-2",
                                      {"csrf": self.csrf(), "action": "counters"})[0], 409)
        self.assertEqual(self.request("GET", "/portal/job/job-" + "x" * 22)[0], 404)

    def test_a_queued_job_can_be_withdrawn(self):
        self.devices.reachable.discard("mfp-1")
        _, headers, _ = self.run_job(wait_online="1")
        job_id = headers.getRawHeaders("location")[0].rsplit("/", 1)[1]
        _, _, body = self.request("GET", f"/portal/job/{job_id}")
        self.assertIn("queued", body)
        self.request("POST", f"/portal/withdraw/{job_id}", {"csrf": self.csrf()})
        self.assertIn("withdrawn", self.request("GET", f"/portal/job/{job_id}")[2])

    def test_the_fleet_shows_the_newest_supplies_answer_as_text(self):
        from remotecomm.maintenance.messages import JobResult
        _, headers, _ = self.run_job(action="supplies")
        job_id = headers.getRawHeaders("location")[0].rsplit("/", 1)[1]
        answer = {"toner": {"black": 80, "cyan": 5}, "error": "<b>Paper jam</b>",
                  "status": "error"}
        self.successResultOf(Deferred.fromCoroutine(self.jobs.on_result(
            "mfp-1", JobResult(job_id, "done", 1, result=json.dumps(answer)), "x")))
        _, _, body = self.request("GET", "/portal/")
        self.assertIn("black 80% · cyan 5%", body)
        self.assertIn('<span class="supply-error">&lt;b&gt;Paper jam&lt;/b&gt;</span>', body)

    def test_the_fleet_page_follows_who_is_online(self):
        from remotecomm.store.devices import set_device_presence
        _, _, body = self.request("GET", "/portal/")
        seen = re.search(r'data-seen="([^"]*)"', body).group(1)
        self.assertEqual(seen, "mfp-1:online mfp-2:offline")
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        response = self.successResultOf(self.http.request(
            "GET", BASE + f"/portal/events?watch=fleet&seen={seen.replace(' ', '+')}",
            headers=headers))
        body = response.content()
        self.clock.advance(1)
        self.assertNoResult(body)
        self.store.run_sync(set_device_presence, "mfp-2", True, 0)
        self.clock.advance(1)
        self.http.flush()
        self.assertIn(b"event: change", self.successResultOf(body))


    def test_a_unit_admin_deletes_an_image_a_technician_cannot(self):
        def finish(path):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"image")
            return 5, "0" * 64

        image = self.successResultOf(Deferred.fromCoroutine(self.images.add(
            Caller("alice", "acme", "technician", "t-1"), "2.0", finish)))
        path = f"/portal/delete-image/{image['image_id']}"
        _, _, body = self.request("GET", "/portal/firmware")
        self.assertNotIn(path, body)  # alice is a technician
        status, _, _ = self.request("POST", path, {"csrf": self.csrf()})
        self.assertEqual(status, 403)
        self.cookies.clear()
        self.log_in("carl")  # of two units: acts in acme
        self.request("POST", "/portal/unit", {"csrf": self.csrf(), "unit_id": "acme"})
        _, _, body = self.request("GET", "/portal/firmware")
        self.assertIn(f'action="{path}"', body)
        status, headers, _ = self.request("POST", path, {"csrf": self.csrf()})
        self.assertEqual((status, headers.getRawHeaders("location")), (303, ["/portal/firmware"]))
        self.assertFalse(self.images.path_of(image["image_id"]).exists())
        _, _, body = self.request("GET", "/portal/firmware")
        self.assertIn("No firmware images", body)

    def test_an_upload_needs_the_csrf_header_and_the_script(self):
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items()),
                   "Content-Type": "application/octet-stream"}

        def post(extra, path="/portal/firmware?version=1.0"):
            return self.successResultOf(self.http.request(
                "POST", BASE + path, data=b"image", headers=dict(headers, **extra))).code
        self.assertEqual(post({}), 403)  # no X-CSRF-Token
        self.assertEqual(post({"X-CSRF-Token": "forged"}), 403)
        self.assertEqual(post({"X-CSRF-Token": self.csrf(), "Content-Type":
                               "multipart/form-data; boundary=x"}), 400)
        self.assertEqual(post({"X-CSRF-Token": self.csrf()}, "/portal/firmware?version=%20"),
                         400)


class DeviceAdministrationPagesTests(PortalTestCase):
    """Register (the agent config shown once), rotate, move, revoke: through the same
    registry as the API."""

    def setUp(self):
        super().setUp()
        from twisted.internet.defer import maybeDeferred

        from remotecomm.accounts.administration import AccountAdmin
        from remotecomm.fleet.registry import DeviceRegistry
        from tests.fleet.test_registry import FakeTools, Xmpp
        ca = Path(self.mktemp() + "-ca.pem")
        ca.write_text("-----BEGIN CERTIFICATE-----\n<not html>\n")
        self.tools = FakeTools()
        registry = DeviceRegistry(self.store, self.clock, Xmpp(), ca, self.tools,
                                  run_in_thread=maybeDeferred)
        self.store.run_sync(insert_user, "dana", "Dana", make_hasher(CHEAP_HASHING).hash(
            PASSWORD), "acme", "unit-admin", 0)
        self.store.run_sync(add_membership, "dana", "globex", "unit-admin", 0)
        root = Resource()
        root.putChild(b"portal", Portal(self.accounts, FleetListing(self.store), self.clock,
                                        admin=AccountAdmin(self.store, InlinePasswordHasher(),
                                                           self.clock), registry=registry))
        self.http = StubTreq(root)

    def as_admin(self, user="carl"):
        self.log_in(user)
        self.request("POST", "/portal/unit", {"csrf": self.csrf(), "unit_id": "acme"})

    def test_registering_shows_the_agent_config_once(self):
        self.as_admin()
        _, _, body = self.request("GET", "/portal/")
        self.assertIn('action="/portal/register"', body)
        status, _, body = self.request("POST", "/portal/register", {
            "csrf": self.csrf(), "device_id": "mfp-9", "name": "Lobby <3", "model": "MFP"})
        self.assertEqual(status, 201)
        self.assertIn("shown only this once", body)
        self.assertIn('device_id = "mfp-9"', body)
        self.assertIn("&lt;not html&gt;", body)
        self.assertIn(self.tools.accounts["mfp-9@devices.test"], body)
        _, _, body = self.request("GET", "/portal/")
        self.assertIn("Lobby &lt;3", body)
        self.assertNotIn(self.tools.accounts["mfp-9@devices.test"], body)
        status, _, body = self.request("POST", "/portal/register", {
            "csrf": self.csrf(), "device_id": "mfp-9"})
        self.assertEqual(status, 409)
        self.assertEqual(self.request("POST", "/portal/register", {
            "csrf": self.csrf(), "device_id": "Not An ID"})[0], 400)

    def test_revoking_needs_the_box_ticked_and_only_ones_own_units(self):
        self.as_admin()
        _, _, body = self.request("GET", "/portal/devices/mfp-1")
        self.assertIn('action="/portal/revoke/mfp-1"', body)
        self.assertEqual(self.request("POST", "/portal/revoke/mfp-1",
                                      {"csrf": self.csrf()})[0], 400)
        self.assertEqual(self.request("POST", "/portal/revoke/gx-1",
                                      {"csrf": self.csrf(), "confirm": "yes"})[0], 404)
        status, headers, _ = self.request("POST", "/portal/revoke/mfp-1",
                                          {"csrf": self.csrf(), "confirm": "yes"})
        self.assertEqual(headers.getRawHeaders("location"), ["/portal/"])
        self.assertNotIn('data-device="mfp-1"', self.request("GET", "/portal/")[2])

    def test_moving_offers_the_units_one_administers(self):
        self.as_admin("carl")  # admin of acme only (a technician in globex)
        self.assertNotIn('action="/portal/move/mfp-1"',
                         self.request("GET", "/portal/devices/mfp-1")[2])
        self.request("POST", "/portal/logout", {"csrf": self.csrf()})
        self.as_admin("dana")
        _, _, body = self.request("GET", "/portal/devices/mfp-1")
        self.assertIn('<option value="globex">', body)
        self.request("POST", "/portal/move/mfp-1", {"csrf": self.csrf(), "unit_id": "globex"})
        self.assertNotIn('data-device="mfp-1"', self.request("GET", "/portal/")[2])

    def test_technicians_see_no_device_administration(self):
        self.log_in("alice")
        self.assertNotIn('action="/portal/register"', self.request("GET", "/portal/")[2])
        self.assertNotIn("Administration", self.request("GET", "/portal/devices/mfp-1")[2])
        self.assertEqual(self.request("POST", "/portal/register", {
            "csrf": self.csrf(), "device_id": "mfp-9"})[0], 403)

