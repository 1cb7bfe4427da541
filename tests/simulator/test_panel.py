"""Tests for remotecomm.simulator.panel: only a logged-in operator can answer (S143)."""

from argon2 import PasswordHasher
from treq.testing import StubTreq
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from remotecomm.simulator import panel as panel_module
from remotecomm.simulator.agent_client import AgentRefused
from remotecomm.simulator.panel import Panel
from remotecomm.testing.panel import PanelUser

HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
REQUEST = {"request_id": "r" * 22, "app_id": "web-server", "user_id": "alice",
           "user_name": "Alice <Smith>", "unit_id": "acme", "unit_name": "ACME",
           "expires_at_us": 1_800_000_120_000_000}


class FakeAgent:
    """The agent's channel, as the panel sees it."""

    def __init__(self):
        self.requests = [REQUEST]
        self.running = []
        self.ended = []
        self.answers = []
        self.failed_logins = []
        self.refuse = None

    def approvals(self):
        return succeed(list(self.requests))

    def sessions(self):
        return succeed(list(self.running))

    def end(self, request_id, operator):
        self.ended.append((request_id, operator))
        return succeed(None)

    def panel_login_failed(self, operator):
        self.failed_logins.append(operator)
        return succeed(None)

    def answer(self, request_id, approve, operator):
        if self.refuse:
            return fail(self.refuse)
        self.answers.append((request_id, approve, operator))
        return succeed(None)


class PanelTests(SynchronousTestCase):
    """The panel page, driven in memory."""

    def setUp(self):
        self.clock = Clock()
        self.agent = FakeAgent()
        panel = Panel(self.clock, "Front desk MFP", "MFP 9000",
                      {"olga": HASHER.hash("panel password 1")}, self.agent)
        # Password checks run in a thread in production; inline here.
        self.patch(panel_module, "deferToThread", lambda f, *a: succeed(f(*a)))
        self.stub = StubTreq(panel)
        self.user = PanelUser(self.clock, "http://127.0.0.1", http=self.stub)

    def drive(self, coroutine):
        d = Deferred.fromCoroutine(coroutine)
        self.stub.flush()
        return self.successResultOf(d)

    def test_login_page_until_logged_in(self):
        """Without login the panel shows only the login form."""
        code, page = self.drive(self.user.get())
        self.assertEqual(code, 200)
        self.assertIn("Operator login", page)
        self.assertNotIn("Remote session request", page)

    def test_logged_in_operator_sees_the_request(self):
        """Who asks, from which unit, for which app, escaped."""
        self.assertEqual(self.drive(self.user.login("olga", "panel password 1")), 303)
        code, page = self.drive(self.user.get())
        self.assertIn("Alice &lt;Smith&gt; (alice) of ACME", page)
        self.assertIn("the web configuration pages", page)
        self.assertIn('data-request-id="' + "r" * 22, page)

    def test_wrong_password(self):
        """A wrong password is 401 and no session."""
        self.assertEqual(self.drive(self.user.login("olga", "wrong")), 401)
        self.assertEqual(self.drive(self.user.login("nobody", "panel password 1")), 401)
        self.assertEqual(self.agent.failed_logins, ["olga", "nobody"])  # for the manager's audit

    def test_five_wrong_passwords_stop_that_operator_from_that_address(self):
        for _ in range(5):
            self.assertEqual(self.drive(self.user.login("olga", "wrong")), 401)
        self.assertEqual(self.drive(self.user.login("olga", "panel password 1")), 429)
        self.assertEqual(len(self.agent.failed_logins), 5)  # the throttled try is not one

    def test_yes_without_login_is_403(self):
        """Pressing YES without being logged in is refused; nothing reaches the agent."""
        self.drive(self.user.get())
        self.assertEqual(self.drive(self.user.answer("r" * 22, "yes")), 403)
        self.assertEqual(self.agent.answers, [])

    def test_yes_without_csrf_token_is_403(self):
        """A logged-in operator's form without the CSRF token is refused."""
        self.drive(self.user.login("olga", "panel password 1"))
        self.assertEqual(self.drive(self.user.answer("r" * 22, "yes", csrf="")), 403)
        self.assertEqual(self.drive(self.user.answer("r" * 22, "yes", csrf="forged")), 403)
        self.assertEqual(self.agent.answers, [])

    def test_login_needs_the_csrf_token(self):
        """Even the login form is protected (no login CSRF)."""
        self.drive(self.user.get())
        code, _ = self.drive(self.user.post("/login", {"operator": "olga",
                                                     "password": "panel password 1"}))
        self.assertEqual(code, 403)

    def test_yes_reaches_the_agent_with_the_operator(self):
        """A logged-in YES goes to the agent with the operator's name."""
        self.drive(self.user.login("olga", "panel password 1"))
        self.assertEqual(self.drive(self.user.answer("r" * 22, "yes")), 303)
        self.assertEqual(self.agent.answers, [("r" * 22, True, "olga")])
        _, page = self.drive(self.user.get())
        self.assertIn("You answered YES.", page)

    def test_session_changes_at_login(self):
        """Logging in issues a new session cookie (no session fixation)."""
        self.drive(self.user.get())
        before = self.user.cookie
        self.drive(self.user.login("olga", "panel password 1"))
        self.assertNotEqual(self.user.cookie, before)

    def test_agent_refusal_is_shown(self):
        """If the agent refuses (already answered), the operator is told."""
        self.agent.refuse = AgentRefused(409, "already-decided", "already answered")
        self.drive(self.user.login("olga", "panel password 1"))
        self.drive(self.user.answer("r" * 22, "no"))
        _, page = self.drive(self.user.get())
        self.assertIn("Not sent: already answered.", page)

    def test_unknown_path_is_404(self):
        """Only the panel's own pages exist."""
        response = self.successResultOf(self.stub.get("http://127.0.0.1/admin"))
        self.assertEqual(response.code, 404)

    def test_running_sessions_show_with_an_end_button_for_the_operator(self):
        """S291: who uses which app since when; End goes to the agent with the operator."""
        self.agent.running = [{"request_id": "r" * 22, "app_id": "web-server",
                               "user_id": "alice", "user_name": "Alice <Smith>",
                               "unit_id": "acme", "unit_name": "ACME", "since_us": 0}]
        code, page = self.drive(self.user.get())
        self.assertNotIn("End session", page)  # not logged in: nothing to press
        self.drive(self.user.login("olga", "panel password 1"))
        code, page = self.drive(self.user.get())
        self.assertIn("Running remote sessions", page)
        self.assertIn("Alice &lt;Smith&gt; (alice) of ACME is using", page)
        self.assertIn(f'id="end-{"r" * 22}"', page)
        code, _ = self.drive(self.user.post("/end-session", {
            "request_id": "r" * 22, "csrf": self.drive(self.user.csrf())}))
        self.assertEqual(code, 303)
        self.assertEqual(self.agent.ended, [("r" * 22, "olga")])
        code, _ = self.drive(self.user.post("/end-session", {"request_id": "r" * 22,
                                                             "csrf": "forged"}))
        self.assertEqual(code, 403)


class PanelThrottleTests(SynchronousTestCase):
    """Hardening, issue 18 #9: the panel's operator login is throttled like the manager's."""

    def test_a_guesser_is_stopped_the_operator_elsewhere_only_slowed(self):
        from remotecomm.simulator.panel import LoginFailures
        clock = Clock()
        failures = LoginFailures(clock)
        for _ in range(5):
            self.assertIsNone(failures.check("olga", "10.0.0.66")[0])
            failures.failed("olga", "10.0.0.66")
        retry_after, _ = failures.check("olga", "10.0.0.66")
        self.assertEqual(retry_after, 900)
        self.assertEqual(failures.check("olga", "192.0.2.1"), (None, 0.5))
        failures.succeeded("olga", "192.0.2.1")
        clock.advance(901)
        self.assertEqual(failures.check("olga", "10.0.0.66"), (None, 0.0))
