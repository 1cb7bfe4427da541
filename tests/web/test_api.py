"""Tests for remotecomm.web.api: the REST API in memory (StubTreq)."""

import json
from pathlib import Path

from treq.testing import StubTreq
from twisted.internet.defer import Deferred, fail
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from remotecomm.accounts.login import Accounts
from remotecomm.accounts.passwords import HasherBusy, make_hasher
from remotecomm.accounts.throttle import LoginThrottle
from remotecomm.store.accounts import insert_unit, insert_user
from remotecomm.store.audit import audit_records
from remotecomm.store.devices import insert_device
from remotecomm.store.schema import devices
from remotecomm.testing.fakes import CHEAP_HASHING, InlinePasswordHasher, migrated_inline_store
from remotecomm.web.api import Api

PASSWORD = "correct horse battery"
TERMINAL = "t-0123456789abcdef0123456789abcdef"
OTHER_TERMINAL = "t-fedcba9876543210fedcba9876543210"
BASE = "https://manager.test"


class ApiTestCase(SynchronousTestCase):
    """An Api on a real SQLite file, with inline store and hasher and a Clock."""

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
        self.store.run_sync(insert_user, "gina", "Gina", password_hash, "globex", "technician", 0)
        self.store.run_sync(insert_device, "mfp-1", "acme", "Front desk", "MFP 9000", 0)
        self.store.run_sync(insert_device, "mfp-2", "acme", "Back office", "MFP 9000", 0)
        self.store.run_sync(insert_device, "gx-1", "globex", "Globex MFP", "MFP 100", 0)
        self.hasher = InlinePasswordHasher()
        self.throttle = LoginThrottle(self.store, self.clock, per_account=3, per_address=10,
                                      window=60)
        self.accounts = Accounts(self.store, self.hasher, self.throttle, self.clock,
                                 self.token_lifetime)
        self.checks = {"store": self.store.check}
        self.api = Api(self.accounts, self.store, self.clock, readiness=self.checks)
        self.http = StubTreq(self.api.resource())

    def call(self, method, path, body=None, *, raw=None, headers=None, token=None,
             terminal=TERMINAL):
        """Make a request; its status, JSON body and headers."""
        headers = dict(headers or {})
        if body is not None or raw is not None:
            headers.setdefault("Content-Type", "application/json")
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        if terminal is not None and token is not None:
            headers["X-Remotecomm-Terminal"] = terminal
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None
                                            else None)
        response = self.successResultOf(self.http.request(method, BASE + path, data=data,
                                                          headers=headers))
        content = self.successResultOf(response.content())
        self.assertEqual(response.headers.getRawHeaders("content-type"),
                         ["application/json; charset=utf-8"])
        return response.code, json.loads(content), response.headers

    def login(self, user_id="alice", password=PASSWORD, terminal_id=TERMINAL):
        return self.call("POST", "/api/v1/login",
                         {"user_id": user_id, "password": password, "terminal_id": terminal_id})

    def token(self, **kwargs):
        status, body, _ = self.login(**kwargs)
        self.assertEqual(status, 200, body)
        return body["token"]

    def audit(self, kind=None):
        return self.store.run_sync(audit_records, kind)


class LoginTests(ApiTestCase):
    """S101–S103: login issues a token bound to the terminal."""

    def test_login_returns_token_bound_to_terminal(self):
        """A right password returns a bearer token, its expiry and the caller's unit."""
        status, body, _ = self.login()
        self.assertEqual(status, 200)
        self.assertEqual(body["token_type"], "Bearer")
        self.assertEqual(len(body["token"]), 43)
        self.assertEqual((body["user_id"], body["unit_id"], body["terminal_id"]),
                         ("alice", "acme", TERMINAL))
        self.assertEqual(body["expires_at_us"], (1_800_000_000 + 3600) * 1_000_000)
        self.assertEqual(body["expires_at"], "2027-01-15T09:00:00Z")

    def test_user_id_is_case_insensitive(self):
        """User IDs are stored in lower case; typing them in upper case still works."""
        status, body, _ = self.login(user_id="  Alice ")
        self.assertEqual(status, 200, body)

    def test_unknown_user_and_wrong_password_answer_identically(self):
        """The answer never tells whether a user ID exists."""
        unknown = self.login(user_id="mallory")
        wrong = self.login(password="wrong horse battery")
        self.assertEqual(unknown[0], 401)
        self.assertEqual(unknown[:2], wrong[:2])
        self.assertEqual(unknown[1]["code"], "invalid-credentials")

    def test_failed_logins_are_audited_without_the_password(self):
        """Each failed login is recorded with the account, address and reason."""
        self.login(user_id="mallory")
        self.login(password="wrong horse battery")
        records = self.audit("login-failed")
        self.assertEqual([(r["actor"], r["detail"]["reason"]) for r in records],
                         [("mallory", "unknown-user"), ("alice", "wrong-password")])
        self.assertTrue(all(r["source_address"] for r in records))
        self.assertNotIn("wrong horse", json.dumps(records))

    def test_logins_are_throttled_per_account(self):
        """After 3 failures even the right password waits, with Retry-After."""
        for _ in range(3):
            self.login(password="wrong horse battery")
        status, body, headers = self.login()
        self.assertEqual((status, body["code"]), (429, "too-many-attempts"))
        self.assertEqual(headers.getRawHeaders("retry-after"), ["60"])
        self.assertEqual(len(self.audit("login-throttled")), 1)
        self.clock.advance(61)
        self.assertEqual(self.login()[0], 200)

    def test_busy_hasher_answers_503(self):
        """When the hashing pool is full, login answers busy instead of queueing."""
        self.hasher.verify = lambda *args: fail(HasherBusy("full"))
        status, body, headers = self.login()
        self.assertEqual((status, body["code"]), (503, "busy"))
        self.assertEqual(headers.getRawHeaders("retry-after"), ["1"])


class RequestValidationTests(ApiTestCase):
    """Malformed requests get a 4xx with a stable code, never a traceback."""

    def test_bad_json(self):
        """A body that is not JSON is 400 bad-json."""
        status, body, _ = self.call("POST", "/api/v1/login", raw=b"{not json")
        self.assertEqual((status, body["code"]), (400, "bad-json"))

    def test_json_that_is_not_an_object(self):
        """A JSON array is not a request."""
        status, body, _ = self.call("POST", "/api/v1/login", raw=b"[1, 2]")
        self.assertEqual((status, body["code"]), (400, "bad-json"))

    def test_invalid_utf8(self):
        """Bytes that are not UTF-8 are bad JSON."""
        status, body, _ = self.call("POST", "/api/v1/login", raw=b'{"user_id": "\xff"}')
        self.assertEqual((status, body["code"]), (400, "bad-json"))

    def test_wrong_content_type(self):
        """Form posts are refused: only application/json is accepted."""
        status, body, _ = self.call("POST", "/api/v1/login", raw=b"user_id=alice",
                                    headers={"Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual((status, body["code"]), (415, "unsupported-media-type"))

    def test_missing_field_is_named(self):
        """The answer names the missing field."""
        status, body, _ = self.call("POST", "/api/v1/login",
                                    {"user_id": "alice", "terminal_id": TERMINAL})
        self.assertEqual((status, body["code"], body["field"]),
                         (400, "missing-field", "password"))

    def test_wrongly_typed_field(self):
        """A number where a string belongs is invalid."""
        status, body, _ = self.call("POST", "/api/v1/login",
                                    {"user_id": 7, "password": PASSWORD, "terminal_id": TERMINAL})
        self.assertEqual((status, body["code"], body["field"]), (400, "invalid-field", "user_id"))

    def test_malformed_terminal_id(self):
        """Terminal IDs have a fixed shape."""
        status, body, _ = self.login(terminal_id="../../etc")
        self.assertEqual((status, body["code"], body["field"]),
                         (400, "invalid-field", "terminal_id"))

    def test_unknown_field(self):
        """A misspelt field is refused rather than ignored."""
        status, body, _ = self.call("POST", "/api/v1/login", {
            "user_id": "alice", "password": PASSWORD, "terminal_id": TERMINAL, "pasword": "x"})
        self.assertEqual((status, body["code"], body["fields"]), (400, "unknown-field", ["pasword"]))

    def test_unknown_route(self):
        """Unknown paths are 404 in JSON."""
        for path in ("/", "/api", "/api/v1/nope", "/api/v1/devices/extra/x/y", "/%ff"):
            status, body, _ = self.call("GET", path)
            self.assertEqual((status, body["code"]), (404, "not-found"), path)

    def test_wrong_method(self):
        """A known path with the wrong method is 405 with Allow."""
        status, body, headers = self.call("GET", "/api/v1/login")
        self.assertEqual((status, body["code"]), (405, "method-not-allowed"))
        self.assertEqual(headers.getRawHeaders("allow"), ["POST"])

    def test_unexpected_error_is_500_without_traceback(self):
        """A bug answers 500 internal-error and is logged, not shown."""
        self.store.run = lambda *a, **k: fail(RuntimeError("secret internals"))
        status, body, _ = self.login()
        self.assertEqual((status, body["code"]), (500, "internal-error"))
        self.assertNotIn("secret internals", json.dumps(body))
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_security_headers(self):
        """Answers are not cached and not content-sniffed."""
        _, _, headers = self.call("GET", "/healthz")
        self.assertEqual(headers.getRawHeaders("cache-control"), ["no-store"])
        self.assertEqual(headers.getRawHeaders("x-content-type-options"), ["nosniff"])


class TokenTests(ApiTestCase):
    """API tokens are checked on every call: present, known, fresh, same terminal."""

    def test_no_token(self):
        """Without a token the answer is 401 unauthenticated."""
        status, body, headers = self.call("GET", "/api/v1/devices")
        self.assertEqual((status, body["code"]), (401, "unauthenticated"))
        self.assertEqual(headers.getRawHeaders("www-authenticate"), ['Bearer realm="remotecomm"'])

    def test_a_token_in_more_than_one_place_is_refused_before_anything_else(self):
        """Hardening, issue 18 #4: header plus ?token=, header plus a cookie: 400, even with a
        valid header token."""
        token = self.token()
        for path, extra in (("/api/v1/devices?token=" + token, {}),
                            ("/api/v1/devices?access_token=x", {}),
                            ("/api/v1/devices", {"Cookie": f"token={token}"})):
            status, body, _ = self.call("GET", path, token=token, headers=extra)
            self.assertEqual((status, body["code"]), (400, "ambiguous-credentials"), path)
        self.assertEqual(self.call("GET", "/api/v1/devices", token=token)[0], 200)

    def test_not_a_bearer_header(self):
        """Other authorization schemes are refused."""
        status, body, _ = self.call("GET", "/api/v1/devices",
                                    headers={"Authorization": "Basic YWxpY2U6eA=="})
        self.assertEqual((status, body["code"]), (401, "unauthenticated"))

    def test_unknown_token(self):
        """A token the server never issued is invalid, and the attempt is audited."""
        status, body, _ = self.call("GET", "/api/v1/devices", token="A" * 43)
        self.assertEqual((status, body["code"]), (401, "invalid-token"))
        [record] = self.audit("api-token-refused")
        self.assertEqual(record["detail"]["reason"], "invalid-token")

    def test_malformed_token(self):
        """Garbage in the header is an invalid token, not an error."""
        status, body, _ = self.call("GET", "/api/v1/devices", token="x' OR 1=1 --")
        self.assertEqual((status, body["code"]), (401, "invalid-token"))

    def test_expired_token(self):
        """After its lifetime a token is refused as expired."""
        token = self.token()
        self.clock.advance(self.token_lifetime)
        status, body, _ = self.call("GET", "/api/v1/devices", token=token)
        self.assertEqual((status, body["code"]), (401, "token-expired"))

    def test_token_from_another_terminal(self):
        """A token used with another terminal ID is refused and audited."""
        token = self.token()
        status, body, _ = self.call("GET", "/api/v1/devices", token=token,
                                    terminal=OTHER_TERMINAL)
        self.assertEqual((status, body["code"]), (401, "terminal-mismatch"))
        [record] = self.audit("api-token-refused")
        self.assertEqual((record["actor"], record["detail"]["terminal_id"]),
                         ("alice", OTHER_TERMINAL))

    def test_token_without_terminal_id(self):
        """The terminal ID header is required with a token."""
        token = self.token()
        status, body, _ = self.call("GET", "/api/v1/devices",
                                    headers={"Authorization": f"Bearer {token}"})
        self.assertEqual((status, body["code"]), (401, "missing-terminal-id"))

    def test_logout_revokes_the_token(self):
        """After logout the same token is refused."""
        token = self.token()
        status, body, _ = self.call("POST", "/api/v1/logout", token=token)
        self.assertEqual((status, body["status"]), (200, "logged-out"))
        status, body, _ = self.call("GET", "/api/v1/devices", token=token)
        self.assertEqual((status, body["code"]), (401, "invalid-token"))


class DeviceListTests(ApiTestCase):
    """GET /api/v1/devices shows the caller's own unit only."""

    def test_devices_of_own_unit_only(self):
        """Alice (acme) sees acme's devices, Gina (globex) sees globex's."""
        status, body, _ = self.call("GET", "/api/v1/devices", token=self.token())
        self.assertEqual(status, 200)
        self.assertEqual(body["unit_id"], "acme")
        self.assertEqual([d["device_id"] for d in body["devices"]], ["mfp-1", "mfp-2"])
        status, body, _ = self.call("GET", "/api/v1/devices", token=self.token(user_id="gina"))
        self.assertEqual([d["device_id"] for d in body["devices"]], ["gx-1"])

    def test_device_fields_and_online_state(self):
        """Each device carries name, model, online state and last-seen time."""
        self.store.run_sync(lambda c: c.execute(
            devices.update().where(devices.c.device_id == "mfp-1")
            .values(online=True, last_seen_us=1_800_000_000_000_000)))
        _, body, _ = self.call("GET", "/api/v1/devices", token=self.token())
        self.assertEqual(body["devices"][0], {
            "device_id": "mfp-1", "name": "Front desk", "model": "MFP 9000", "online": True,
            "last_seen_at": "2027-01-15T08:00:00Z", "last_seen_us": 1_800_000_000_000_000,
            "state": "online", "agent_version": None, "firmware_version": None, "apps": [],
            "settings": []})
        self.assertEqual(body["devices"][1]["online"], False)
        self.assertIsNone(body["devices"][1]["last_seen_at"])

    def test_with_the_xmpp_link_down_presence_is_unknown(self):
        """Hardening, issue 18 #8: the manager's link to Prosody is down, so no device is
        shown online (or offline) from old knowledge."""
        self.store.run_sync(lambda c: c.execute(
            devices.update().where(devices.c.device_id == "mfp-1").values(online=True)))
        self.api = Api(self.accounts, self.store, self.clock, readiness=self.checks,
                       devices_link_up=lambda: False)
        self.http = StubTreq(self.api.resource())
        _, body, _ = self.call("GET", "/api/v1/devices", token=self.token())
        self.assertEqual(body["presence_known"], False)
        self.assertEqual({(d["online"], d["state"]) for d in body["devices"]},
                         {(None, "unknown")})

    def test_revoked_devices_are_not_listed(self):
        """A revoked device disappears from the list."""
        self.store.run_sync(lambda c: c.execute(
            devices.update().where(devices.c.device_id == "mfp-2").values(revoked_us=1)))
        _, body, _ = self.call("GET", "/api/v1/devices", token=self.token())
        self.assertEqual([d["device_id"] for d in body["devices"]], ["mfp-1"])


class HealthTests(ApiTestCase):
    """/healthz and /readyz."""

    def test_healthz(self):
        """The process answers."""
        self.assertEqual(self.call("GET", "/healthz")[:2], (200, {"status": "ok"}))

    def test_readyz_when_ready(self):
        """Every dependency answers: 200."""
        self.assertEqual(self.call("GET", "/readyz")[:2], (200, {"status": "ready"}))

    def test_readyz_names_failing_dependency(self):
        """A failing dependency makes /readyz 503 and names it."""
        self.checks["store"] = lambda: fail(RuntimeError("down"))
        status, body, _ = self.call("GET", "/readyz")
        self.assertEqual((status, body["code"], body["failing"]), (503, "not-ready", ["store"]))

    def test_readyz_does_not_hang_on_a_stuck_dependency(self):
        """A dependency that never answers counts as failing after 2 s."""
        self.checks["store"] = lambda: Deferred()
        pending = self.http.get(BASE + "/readyz")
        self.assertNoResult(pending)
        self.clock.advance(2)
        self.http.flush()
        response = self.successResultOf(pending)
        self.assertEqual(response.code, 503)


class SessionsApiTests(ApiTestCase):
    """POST/GET /api/v1/sessions: validation and the broker's answers as HTTP."""

    def setUp(self):
        super().setUp()
        from remotecomm.sessions.broker import SessionBroker
        from remotecomm.sessions.lifecycle import SessionPolicy
        from remotecomm.store.devices import record_hello, set_device_presence
        from remotecomm.testing.relay import local_directory, standalone_node
        from tests.sessions.test_broker import FakeDevices
        self.store.run_sync(set_device_presence, "mfp-1", True, 0)
        self.store.run_sync(record_hello, "mfp-1", "0.1.0", 1, ["web-server"], 0)
        self.fake_devices = FakeDevices()
        broker = SessionBroker(self.store, self.clock, SessionPolicy(120_000_000, 60_000_000,
                                                                     3600_000_000, 900_000_000),
                               False, local_directory(self.store, self.clock, standalone_node()),
                               self.fake_devices)
        from remotecomm.sessions.collection import RecordCollector
        from tests.sessions.test_collection import FakeDevices as ReportingDevices
        self.reporting_devices = ReportingDevices()
        self.api = Api(self.accounts, self.store, self.clock, readiness=self.checks,
                       broker=broker, collector=RecordCollector(self.store, self.clock,
                                                                self.reporting_devices))
        self.http = StubTreq(self.api.resource())

    def test_collect_asks_only_the_callers_unit(self):
        """S311: POST /api/v1/sessions/collect answers what it did, for the caller's unit;
        a body with fields is refused; no token, no collection."""
        from remotecomm.store.schema import sessions
        for request_id, device_id, unit_id in (("a" * 22, "mfp-1", "acme"),
                                               ("b" * 22, "gx-1", "globex")):
            self.store.run_sync(lambda c: c.execute(sessions.insert().values(
                request_id=request_id, state="ended", unit_id=unit_id, user_id="x",
                terminal_id="t-1", device_id=device_id, app_id="web-server",
                session_id=request_id * 2, terminal_token_delivered=True,
                approved_by_test_approver=False, requested_us=int(self.clock.seconds()) * 10**6,
                ended_us=int(self.clock.seconds() * 10**6), end_reason="normal",
                device_notified_us=1)))
        self.reporting_devices.reachable = {"gx-1"}
        status, body, _ = self.call("POST", "/api/v1/sessions/collect", {},
                                    token=self.token())
        self.assertEqual((status, body["unit_id"], body["offline_devices"],
                          body["asked_devices"], body["still_missing"]),
                         (200, "acme", ["mfp-1"], [], 1))
        self.assertEqual(self.reporting_devices.asked, [])
        self.assertEqual(self.call("POST", "/api/v1/sessions/collect", {"unit": "globex"},
                                   token=self.token())[:2][0], 400)
        self.assertEqual(self.call("POST", "/api/v1/sessions/collect", {})[0], 401)

    def test_request_and_poll(self):
        """202 with a request ID and poll URL; the poll says pending."""
        token = self.token()
        status, body, _ = self.call("POST", "/api/v1/sessions",
                                    {"device_id": "mfp-1", "app_id": "web-server"}, token=token)
        self.assertEqual((status, body["state"]), (202, "pending"))
        self.assertEqual(body["poll_url"], f"/api/v1/sessions/{body['request_id']}")
        self.assertEqual(body["approval_deadline_at"], "2027-01-15T08:02:00Z")
        status, poll, _ = self.call("GET", body["poll_url"], token=token)
        self.assertEqual((status, poll["state"], poll["device_id"]), (200, "pending", "mfp-1"))
        self.assertEqual(poll["approval_deadline_at"], "2027-01-15T08:02:00Z")

    def test_request_errors(self):
        """Each refusal has its status and code."""
        token = self.token()
        cases = [({"device_id": "gx-1", "app_id": "web-server"}, 404, "device-not-found"),
                 ({"device_id": "mfp-2", "app_id": "web-server"}, 409, "device-offline"),
                 ({"device_id": "mfp-1", "app_id": "fax"}, 422, "unknown-app"),
                 ({"device_id": "mfp-1"}, 400, "missing-field"),
                 ({"device_id": "MFP 1", "app_id": "web-server"}, 400, "invalid-field"),
                 ({"device_id": "mfp-1", "app_id": "web-server", "x": 1}, 400, "unknown-field")]
        for body, want_status, want_code in cases:
            status, answer, _ = self.call("POST", "/api/v1/sessions", body, token=token)
            self.assertEqual((status, answer["code"]), (want_status, want_code), body)
        self.call("POST", "/api/v1/sessions", {"device_id": "mfp-1", "app_id": "web-server"},
                  token=token)
        status, answer, _ = self.call("POST", "/api/v1/sessions",
                                      {"device_id": "mfp-1", "app_id": "web-server"}, token=token)
        self.assertEqual((status, answer["code"]), (409, "session-exists"))
        self.assertIn("request_id", answer)

    def test_sessions_need_a_token(self):
        """No token, no session."""
        status, body, _ = self.call("POST", "/api/v1/sessions",
                                    {"device_id": "mfp-1", "app_id": "web-server"})
        self.assertEqual((status, body["code"]), (401, "unauthenticated"))

    def test_unknown_or_malformed_request_ids(self):
        """Polling something that is not ours is 404."""
        token = self.token()
        for request_id in ("A" * 22, "bad", "a%2Fb"):
            status, body, _ = self.call("GET", f"/api/v1/sessions/{request_id}", token=token)
            self.assertEqual((status, body["code"]), (404, "session-not-found"), request_id)

    def test_poll_times_read_well(self):
        """Instants come as ``…_at`` (ISO) beside ``…_us``: requested_at, not requested_at_at."""
        token = self.token()
        _, body, _ = self.call("POST", "/api/v1/sessions",
                               {"device_id": "mfp-1", "app_id": "web-server"}, token=token)
        _, poll, _ = self.call("GET", body["poll_url"], token=token)
        self.assertIn("requested_at", poll)
        self.assertIn("requested_at_us", poll)
        self.assertNotIn("requested_at_at", poll)

    def test_cancel_list_and_end(self):
        """DELETE withdraws a request; the list shows open ones; POST …/end ends one."""
        token = self.token()
        _, first, _ = self.call("POST", "/api/v1/sessions",
                                {"device_id": "mfp-1", "app_id": "web-server"}, token=token)
        status, listed, _ = self.call("GET", "/api/v1/sessions?device_id=mfp-1&state=open",
                                      token=token)
        self.assertEqual((status, [s["request_id"] for s in listed["sessions"]]),
                         (200, [first["request_id"]]))
        status, answer, _ = self.call("DELETE", first["poll_url"], token=token)
        self.assertEqual((status, answer["state"], answer["end_reason"]),
                         (200, "ended", "cancelled"))
        _, listed, _ = self.call("GET", "/api/v1/sessions?state=open", token=token)
        self.assertEqual(listed["sessions"], [])
        _, listed, _ = self.call("GET", "/api/v1/sessions?end_reason=cancelled", token=token)
        self.assertEqual([s["request_id"] for s in listed["sessions"]], [first["request_id"]])
        _, second, _ = self.call("POST", "/api/v1/sessions",
                                 {"device_id": "mfp-1", "app_id": "web-server"}, token=token)
        status, answer, _ = self.call("POST", second["poll_url"] + "/end", {}, token=token)
        self.assertEqual((status, answer["end_reason"]), (200, "cancelled"))
        status, answer, _ = self.call("GET", "/api/v1/sessions?unit=x", token=token)
        self.assertEqual((status, answer["code"]), (400, "unknown-field"))
        status, answer, _ = self.call("POST", second["poll_url"] + "/end", {"why": "x"},
                                      token=token)
        self.assertEqual((status, answer["code"]), (400, "unknown-field"))

    def test_listing_filters_are_checked_and_pages_chain(self):
        """Bad filters are 400 with the field; ``next`` leads to the following page."""
        token = self.token()
        for query, field in (("state=lost", "state"), ("from=yesterday", "from"),
                             ("limit=0", "limit"), ("device_id=MFP", "device_id"),
                             ("before=x", "before")):
            status, answer, _ = self.call("GET", f"/api/v1/sessions?{query}", token=token)
            self.assertEqual((status, answer["code"], answer["field"]),
                             (400, "invalid-field", field), query)
        ids = []
        for _ in range(3):
            _, body, _ = self.call("POST", "/api/v1/sessions",
                                   {"device_id": "mfp-1", "app_id": "web-server",
                                    "client": {"name": "test", "os_name": "Linux"}},
                                   token=token)
            self.call("DELETE", body["poll_url"], token=token)
            ids.append(body["request_id"])
            self.clock.advance(1)
        _, page, _ = self.call("GET", "/api/v1/sessions?limit=2", token=token)
        self.assertEqual([s["request_id"] for s in page["sessions"]], ids[:0:-1])
        _, rest, _ = self.call("GET", f"/api/v1/sessions?limit=2&before={page['next']}",
                               token=token)
        self.assertEqual([s["request_id"] for s in rest["sessions"]], ids[:1])
        self.assertEqual(rest["sessions"][0]["terminal"]["client_name"], "test")
        _, recent, _ = self.call("GET", "/api/v1/sessions?from=2027-01-15T08:00:01Z",
                                 token=token)
        self.assertEqual([s["request_id"] for s in recent["sessions"]], ids[:0:-1])
        status, answer, _ = self.call("POST", "/api/v1/sessions", {
            "device_id": "mfp-1", "app_id": "web-server", "client": {"name": "x" * 65}},
            token=token)
        self.assertEqual((status, answer["field"]), (400, "client.name"))

    def test_records_are_tenant_scoped_even_with_the_same_names(self):
        """Another unit's session is indistinguishable from one that does not exist, even
        when its devices and users carry the same display names (IDs are global)."""
        from remotecomm.store.accounts import insert_user
        from remotecomm.store.devices import insert_device
        self.store.run_sync(insert_user, "alice2", "Alice", make_hasher(CHEAP_HASHING).hash(
            PASSWORD), "globex", "technician", 0)
        self.store.run_sync(insert_device, "gx-2", "globex", "Front desk", "MFP 9000", 0)
        alice = self.token()
        _, body, _ = self.call("POST", "/api/v1/sessions",
                               {"device_id": "mfp-1", "app_id": "web-server"}, token=alice)
        other = self.token(user_id="alice2", terminal_id="t-" + "9" * 32)
        missing = self.call("GET", "/api/v1/sessions/" + "Z" * 22, token=other,
                            terminal="t-" + "9" * 32)[:2]
        foreign = self.call("GET", body["poll_url"], token=other,
                            terminal="t-" + "9" * 32)[:2]
        self.assertEqual(foreign, missing)
        self.assertEqual(foreign[0], 404)
        for path in ("/api/v1/sessions", "/api/v1/sessions?device_id=mfp-1",
                     "/api/v1/sessions?user_id=alice"):
            status, listed, _ = self.call("GET", path, token=other, terminal="t-" + "9" * 32)
            self.assertEqual((status, listed["unit_id"], listed["sessions"]),
                             (200, "globex", []), path)
        ended = self.call("POST", body["poll_url"] + "/end", {}, token=other,
                          terminal="t-" + "9" * 32)[:2]
        self.assertEqual(ended[0], 404)


class ReportsApiTests(ApiTestCase):
    """GET /api/v1/reports/sessions and the CSV exports: the caller's unit only."""

    def setUp(self):
        super().setUp()
        from remotecomm.store.schema import sessions
        at = 1_800_000_000 * 1_000_000
        for n, unit, device in ((1, "acme", "mfp-1"), (2, "acme", "mfp-2"),
                                (3, "globex", "gx-1")):
            self.store.run_sync(lambda c: c.execute(sessions.insert().values(
                request_id=f"req-{n:018d}", state="ended", unit_id=unit, user_id="alice",
                terminal_id="t-1", device_id=device, app_id="web-server",
                terminal_token_delivered=True, approved_by_test_approver=False,
                requested_us=at - 100 * 10**6, counted_at_us=at - 60 * 10**6,
                started_us=at - 60 * 10**6, duration_us=30 * 10**6, bytes_to_device=5,
                bytes_from_device=7, end_reason="normal", ended_us=at - 30 * 10**6)))

    def raw(self, path, token, accept=None, terminal=TERMINAL):
        headers = {"Authorization": f"Bearer {token}", "X-Remotecomm-Terminal": terminal}
        if accept:
            headers["Accept"] = accept
        response = self.successResultOf(self.http.request("GET", BASE + path, headers=headers))
        return (response.code, response.headers.getRawHeaders("content-type", [""])[0],
                self.successResultOf(response.content()))

    def test_the_report_as_json_and_as_csv(self):
        token = self.token()
        status, body, _ = self.call("GET", "/api/v1/reports/sessions?group_by=device",
                                    token=token)
        self.assertEqual((status, body["unit_id"], body["time_zone"], body["from"]),
                         (200, "acme", "Europe/Berlin", "2027-01-01T00:00:00+01:00"))
        self.assertEqual((body["totals"]["sessions"], body["totals"]["duration_us"],
                          [g["key"] for g in body["groups"]]), (2, 60 * 10**6, ["mfp-1", "mfp-2"]))
        for path, accept in (("/api/v1/reports/sessions?group_by=device", "text/csv"),
                             ("/api/v1/reports/sessions.csv?group_by=device", None)):
            code, content_type, content = self.raw(path, token, accept)
            self.assertEqual((code, content_type.split(";")[0]), (200, "text/csv"))
            lines = content.decode().splitlines()
            self.assertEqual([line.split(",")[2] for line in lines[1:]],
                             ["mfp-1", "mfp-2", "TOTAL"])

    def test_the_session_list_as_csv(self):
        token = self.token()
        for path, accept in (("/api/v1/sessions.csv", None), ("/api/v1/sessions", "text/csv")):
            code, content_type, content = self.raw(path, token, accept)
            self.assertEqual((code, content_type.split(";")[0]), (200, "text/csv"))
            rows = content.decode().splitlines()
            self.assertEqual(len(rows), 3)
            self.assertTrue(rows[0].startswith("request_id,state,unit_id,"))
            self.assertNotIn("gx-1", content.decode())
        code, _, content = self.raw("/api/v1/sessions.csv?limit=1", token)
        self.assertEqual((code, len(content.decode().splitlines())), (200, 2))

    def test_another_units_figures_look_like_none(self):
        """Gina of globex sees one session, her own unit's; acme's are nowhere."""
        token = self.token(user_id="gina")
        status, body, _ = self.call("GET", "/api/v1/reports/sessions?group_by=device",
                                    token=token)
        self.assertEqual((body["unit_id"], body["totals"]["sessions"],
                          [g["key"] for g in body["groups"]]), ("globex", 1, ["gx-1"]))
        _, _, content = self.raw("/api/v1/sessions.csv?device_id=mfp-1", token)
        self.assertEqual(len(content.decode().splitlines()), 1)

    def test_bad_queries_are_refused_with_the_field(self):
        token = self.token()
        for query, field in (("group_by=week", "group_by"), ("from=yesterday", "from"),
                             ("from=2026-10-01&to=2026-09-01", "to")):
            status, body, _ = self.call("GET", f"/api/v1/reports/sessions?{query}", token=token)
            self.assertEqual((status, body["code"], body.get("field")),
                             (400, "invalid-field", field), query)
        status, body, _ = self.call("GET", "/api/v1/reports/sessions?unit=globex", token=token)
        self.assertEqual((status, body["code"]), (400, "unknown-field"))
        self.assertEqual(self.call("GET", "/api/v1/reports/sessions")[0], 401)
        self.assertEqual(self.raw("/api/v1/sessions.csv?limit=0", token)[0], 400)


class ReportMailTestCase(ApiTestCase):
    """The API with a report mailer whose SMTP is a list; ``adam`` is acme's unit admin."""

    def setUp(self):
        super().setUp()
        from remotecomm.reports.mail import ReportMailer
        self.store.run_sync(insert_user, "adam", "Adam", make_hasher(CHEAP_HASHING).hash(
            PASSWORD), "acme", "unit-admin", 0)
        self.sent = []
        self.mailer = ReportMailer(self.store, self.clock,
                                   lambda to, message: self.sent.append((to, message)) or
                                   Deferred.fromCoroutine(_nothing()), "rc@test.example")
        self.api = Api(self.accounts, self.store, self.clock, readiness=self.checks,
                       mailer=self.mailer)
        self.http = StubTreq(self.api.resource())
        self.admin = self.token(user_id="adam")


class ReportMailApiTests(ReportMailTestCase):
    """Recipients, schedules and "send now": listed by the unit, changed by its admins."""

    def test_recipients_and_schedules_are_changed_by_unit_admins_only(self):
        alice = self.token(user_id="alice", terminal_id=OTHER_TERMINAL)
        for method, path, body in (
                ("POST", "/api/v1/reports/recipients", {"address": "ops@acme.test"}),
                ("POST", "/api/v1/reports/schedules", {"frequency": "daily", "at": "06:00"}),
                ("POST", "/api/v1/reports/send", {})):
            status, answer, _ = self.call(method, path, body, token=alice,
                                          terminal=OTHER_TERMINAL)
            self.assertEqual((status, answer["code"]), (403, "forbidden"), path)
        status, answer, _ = self.call("POST", "/api/v1/reports/recipients",
                                      {"address": "Ops@ACME.test"}, token=self.admin)
        self.assertEqual((status, answer), (201, {"address": "ops@acme.test", "added": True}))
        self.assertEqual(self.call("POST", "/api/v1/reports/recipients",
                                   {"address": "ops@acme.test"}, token=self.admin)[0], 200)
        status, answer, _ = self.call("POST", "/api/v1/reports/schedules",
                                      {"frequency": "weekly", "weekday": "monday",
                                       "at": "06:30", "group_by": "device"}, token=self.admin)
        self.assertEqual((status, answer["description"]),
                         (201, "weekly on monday at 06:30, by device"))
        listed = self.call("GET", "/api/v1/reports/schedules", token=alice,
                           terminal=OTHER_TERMINAL)[1]
        self.assertEqual([s["schedule_id"] for s in listed["schedules"]],
                         [answer["schedule_id"]])
        self.assertEqual(self.call("GET", "/api/v1/reports/recipients", token=alice,
                                   terminal=OTHER_TERMINAL)[1]["recipients"], ["ops@acme.test"])
        self.assertEqual(len(self.audit("report-recipient-added")), 1)
        self.assertEqual(self.call("DELETE", f"/api/v1/reports/schedules/"
                                             f"{answer['schedule_id']}", token=self.admin)[0],
                         200)
        self.assertEqual(self.call("DELETE", "/api/v1/reports/recipients/ops@acme.test",
                                   token=self.admin)[0], 200)
        self.assertEqual(self.call("DELETE", "/api/v1/reports/recipients/ops@acme.test",
                                   token=self.admin)[0], 404)

    def test_bad_schedules_and_addresses_name_the_field(self):
        for body, field in (({"frequency": "weekly", "at": "06:00"}, "weekday"),
                            ({"frequency": "daily", "at": "25:00"}, "at"),
                            ({"frequency": "monthly", "at": "06:00", "day": 31}, "day"),
                            ({"frequency": "daily", "at": "06:00", "weekday": "friday"},
                             "weekday"),
                            ({"frequency": "daily", "at": "06:00", "group_by": "week"},
                             "group_by")):
            status, answer, _ = self.call("POST", "/api/v1/reports/schedules", body,
                                          token=self.admin)
            self.assertEqual((status, answer.get("field")), (400, field), body)
        for address in ("no-at-sign", "a@b c", "<a@b.c>", "a@b.c\r\nBcc: x@y.z"):
            status, answer, _ = self.call("POST", "/api/v1/reports/recipients",
                                          {"address": address}, token=self.admin)
            self.assertEqual(status, 400, address)

    def test_send_now_queues_and_sends_to_the_recipients(self):
        self.assertEqual(self.call("POST", "/api/v1/reports/send", {},
                                   token=self.admin)[1]["code"], "no-recipients")
        self.call("POST", "/api/v1/reports/recipients", {"address": "ops@acme.test"},
                  token=self.admin)
        status, answer, _ = self.call("POST", "/api/v1/reports/send",
                                      {"from": "2027-01-01", "group_by": "day"},
                                      token=self.admin)
        self.assertEqual((status, answer["state"], answer["recipients"]),
                         (202, "queued", ["ops@acme.test"]))
        self.clock.advance(0)
        [(to, message)] = self.sent
        self.assertIn(b"2027-01-01 to 2027-02-01", message)
        [mailing] = self.call("GET", "/api/v1/reports/mailings", token=self.admin)[1]["mailings"]
        self.assertEqual((mailing["state"], mailing["group_by"], mailing["recipients"]),
                         ("sent", "day", ["ops@acme.test"]))

    def test_send_now_without_smtp_is_refused(self):
        from remotecomm.reports.mail import ReportMailer
        self.api = Api(self.accounts, self.store, self.clock, readiness=self.checks,
                       mailer=ReportMailer(self.store, self.clock, None, "rc@test.example"))
        self.http = StubTreq(self.api.resource())
        status, answer, _ = self.call("POST", "/api/v1/reports/send", {}, token=self.admin)
        self.assertEqual((status, answer["code"]), (503, "mail-not-configured"))


async def _nothing():
    return None


class ReportMailIsolationTests(ReportMailTestCase):
    """Another unit's recipients, schedules and mailings look like none at all."""

    def test_another_unit_sees_and_changes_nothing_of_ours(self):
        self.call("POST", "/api/v1/reports/recipients", {"address": "ops@acme.test"},
                  token=self.admin)
        schedule = self.call("POST", "/api/v1/reports/schedules",
                             {"frequency": "daily", "at": "06:00"}, token=self.admin)[1]
        self.call("POST", "/api/v1/reports/send", {}, token=self.admin)
        self.store.run_sync(insert_user, "gail", "Adam", make_hasher(CHEAP_HASHING).hash(
            PASSWORD), "globex", "unit-admin", 0)
        other = self.token(user_id="gail", terminal_id=OTHER_TERMINAL)

        def as_other(method, path, body=None):
            return self.call(method, path, body, token=other, terminal=OTHER_TERMINAL)[:2]

        self.assertEqual(as_other("GET", "/api/v1/reports/recipients")[1]["recipients"], [])
        self.assertEqual(as_other("GET", "/api/v1/reports/schedules")[1]["schedules"], [])
        self.assertEqual(as_other("GET", "/api/v1/reports/mailings")[1]["mailings"], [])
        self.assertEqual(as_other("DELETE", f"/api/v1/reports/schedules/"
                                            f"{schedule['schedule_id']}"),
                         as_other("DELETE", "/api/v1/reports/schedules/999"))
        self.assertEqual(as_other("DELETE", "/api/v1/reports/recipients/ops@acme.test")[0],
                         404)
        self.assertEqual(as_other("POST", "/api/v1/reports/send", {})[1]["code"],
                         "no-recipients")
        self.assertEqual(len(self.call("GET", "/api/v1/reports/schedules",
                                       token=self.admin)[1]["schedules"]), 1)


class JobsApiTests(ApiTestCase):
    """Maintenance jobs over REST: the caller's unit only, every field checked."""

    def setUp(self):
        super().setUp()
        from remotecomm.maintenance.service import JobService
        from remotecomm.sessions.messages import SettingSpec
        from remotecomm.store.devices import record_hello
        from tests.maintenance.test_service import FakeDevices
        for device in ("mfp-1", "mfp-2", "gx-1"):
            self.store.run_sync(record_hello, device, "0.1", 1, [], 0, "4.2.1",
                                [SettingSpec("sleep_minutes", "int", 1, 240).to_json()], 1)
        self.fake = FakeDevices()
        self.service = JobService(self.store, self.clock, self.fake)
        self.api = Api(self.accounts, self.store, self.clock, readiness=self.checks,
                       jobs=self.service)
        self.http = StubTreq(self.api.resource())
        self.alice = self.token()

    def test_create_read_list_and_cancel(self):
        status, job, _ = self.call("POST", "/api/v1/devices/mfp-1/jobs",
                                   {"action": "config-set", "key": "sleep_minutes",
                                    "value": "30"}, token=self.alice)
        self.assertEqual((status, job["state"], job["device_id"]), (202, "running", "mfp-1"))
        self.assertIn("created_at", job)
        status, one, _ = self.call("GET", f"/api/v1/jobs/{job['job_id']}", token=self.alice)
        self.assertEqual((status, one["key"], one["value"]), (200, "sleep_minutes", "30"))
        listed = self.call("GET", "/api/v1/devices/mfp-1/jobs", token=self.alice)[1]["jobs"]
        self.assertEqual([j["job_id"] for j in listed], [job["job_id"]])
        status, waiting, _ = self.call("POST", "/api/v1/devices/mfp-2/jobs",
                                       {"action": "counters", "wait_online": 60},
                                       token=self.alice)
        self.assertEqual((status, waiting["state"]), (202, "queued"))
        status, cancelled, _ = self.call("DELETE", f"/api/v1/jobs/{waiting['job_id']}",
                                         token=self.alice)
        self.assertEqual((status, cancelled["state"]), (200, "cancelled"))
        self.assertEqual(self.call("DELETE", f"/api/v1/jobs/{job['job_id']}",
                                   token=self.alice)[1]["code"], "job-not-queued")
        status, offline, _ = self.call("POST", "/api/v1/devices/mfp-2/jobs",
                                       {"action": "counters"}, token=self.alice)
        self.assertEqual((status, offline["code"], offline["job"]["state"]),
                         (409, "device-offline", "failed"))

    def test_bad_requests_send_nothing(self):
        for body, code in (({"action": "format-disk"}, "invalid-field"),
                           ({"action": "counters", "extra": 1}, "unknown-field"),
                           ({"action": "config-set", "key": "sleep_minutes", "value": "999"},
                            "invalid-parameters"),
                           ({"action": "config-set", "key": "Bad Key", "value": "1"},
                            "invalid-field"),
                           ({"action": "counters", "wait_online": 10**9}, "invalid-field"),
                           ({"action": "counters", "wait_online": "soon"}, "invalid-field")):
            status, answer, _ = self.call("POST", "/api/v1/devices/mfp-1/jobs", body,
                                          token=self.alice)
            self.assertEqual((status, answer["code"]), (400, code), body)
        self.assertEqual(self.fake.sent, [])

    def test_another_units_devices_and_jobs_look_like_none(self):
        gina = self.token(user_id="gina", terminal_id=OTHER_TERMINAL)
        _, job, _ = self.call("POST", "/api/v1/devices/gx-1/jobs", {"action": "counters"},
                              token=gina, terminal=OTHER_TERMINAL)
        for path in ("/api/v1/devices/gx-1/jobs", "/api/v1/devices/nope/jobs"):
            status, answer, _ = self.call("POST", path, {"action": "counters"},
                                          token=self.alice)
            self.assertEqual((status, answer["code"]), (404, "device-not-found"))
        self.assertEqual(self.call("GET", f"/api/v1/jobs/{job['job_id']}",
                                   token=self.alice)[:2],
                         self.call("GET", "/api/v1/jobs/job-" + "0" * 22,
                                   token=self.alice)[:2])
        self.assertEqual(self.call("GET", "/api/v1/jobs", token=self.alice)[1]["jobs"], [])
