"""End to end: asking for a session, approval on the simulated panel (S141–S150, S201–S202)."""

import json
import sqlite3
from pathlib import Path

from twisted.internet import reactor
from twisted.internet.defer import ensureDeferred
from twisted.trial.unittest import TestCase

from remotecomm.simulator.agent_client import AgentChannelClient, AgentRefused
from remotecomm.testing.panel import PanelUser
from remotecomm.testing.processes import sleep
from remotecomm.testing.servers import ServerSetup

OPERATOR, OPERATOR_PASSWORD = "olga", "panel password 1"
APPS = {"web-server": "http://127.0.0.1:9", "remote-panel": "http://127.0.0.1:9"}


class ApprovalTestCase(TestCase):
    """A server, Prosody, one device with its agent, and (unless a test approver answers)
    the simulated MFP with one operator."""

    timeout = 30
    server_config = ""
    test_approver = None
    apps = APPS

    async def setUp(self):
        self.setup = ServerSetup(reactor, Path(self.mktemp()), extra_config=self.server_config)
        self.addCleanup(self.setup.stop)
        self.setup.provision({"acme": {"users": ["alice"], "devices": ["mfp-1"]}})
        self.setup.configure_agent("mfp-1", self.apps, test_approver=self.test_approver)
        await self.setup.start()
        self.agent = self.setup.start_agent("mfp-1")
        if self.test_approver is None:
            self.simulator, url = self.setup.start_simulator("mfp-1", {OPERATOR: OPERATOR_PASSWORD})
            self.panel = PanelUser(reactor, url)
            await self.simulator.wait_for_output("panel on")
        await self.setup.login("alice")
        await self.agent.wait_for_output("announced to rms.localhost")
        await self.setup.wait_device("mfp-1", online=True)

    def session_row(self, request_id=None) -> dict:
        database = self.setup.folder / "data" / "manager.sqlite3"
        with sqlite3.connect(database) as db:
            db.row_factory = sqlite3.Row
            query = "SELECT * FROM sessions ORDER BY requested_us DESC LIMIT 1"
            return dict(db.execute(query).fetchone())

    def history(self) -> list[dict]:
        path = self.setup.agent_dir("mfp-1") / "data" / "history.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()]

    def open(self, app="web-server"):
        return ensureDeferred(self.setup.cli("open", "mfp-1", app))


class PanelApprovalTests(ApprovalTestCase):
    """The operator answers on the panel; the CLI reports it."""

    async def test_yes_on_the_panel_approves(self):
        """YES: the CLI reports approval, the session row names the operator, the device
        history too, and the terminal token was handed out exactly once."""
        opening = self.setup.cli_process("open", "mfp-1", "web-server")
        # A wrong password first: the agent reports it, the manager audits it under acme.
        self.assertEqual(await self.panel.login(OPERATOR, "not the password"), 401)
        self.assertEqual(await self.panel.login(OPERATOR, OPERATOR_PASSWORD), 303)
        request_id = await self.panel.wait_for_request()
        self.assertEqual(await self.panel.answer(request_id, "yes"), 303)
        await opening.wait_for_output("Session with mfp-1 is open")
        self.assertIn("Waiting for approval on mfp-1", opening.output)
        with sqlite3.connect(self.setup.folder / "data" / "manager.sqlite3") as db:
            failed = db.execute("SELECT actor, unit_id FROM audit WHERE kind = "
                                "'panel-login-failed'").fetchall()
        self.assertEqual(failed, [(OPERATOR, "acme")])
        self.assertIn("Approved by olga on mfp-1;", opening.output)
        # The terminal is told "open" once it is in; "active" needs the device too.
        for _ in range(100):
            row = self.session_row()
            if row["state"] == "active":
                break
            await sleep(reactor, 0.05)
        self.assertEqual((row["request_id"], row["state"], row["approver"], row["user_id"],
                          row["app_id"], row["approved_by_test_approver"]),
                         (request_id, "active", "olga", "alice", "web-server", 0))
        self.assertTrue(row["session_id"] and row["device_token_hash"])
        self.assertEqual(row["terminal_token_delivered"], 1)
        self.assertIsNotNone(row["device_notified_us"])
        events = {e["event"]: e for e in self.history()}
        self.assertEqual(events["approval-decided"]["operator"], "olga")
        self.assertEqual(events["session-ready"]["session_id"], row["session_id"])
        # The token went to the CLI once; later reads give the record, never the token.
        code, answer = await self.setup.api("GET", f"/api/v1/sessions/{request_id}")
        self.assertEqual((code, answer["state"], answer["operator"]), (200, "active", "olga"))
        self.assertNotIn("terminal_token", answer)
        self.assertEqual(answer["terminal"]["client_name"], "remotecomm-cli")
        code, output = await self.setup.cli("close", "mfp-1")
        self.assertEqual(code, 0, output)
        self.assertEqual(await opening.ended(), 0)

    async def test_no_on_the_panel_refuses(self):
        """NO: the CLI says who refused and exits 10; no session ID, no token."""
        opening = self.open()
        await self.panel.login(OPERATOR, OPERATOR_PASSWORD)
        request_id = await self.panel.wait_for_request()
        await self.panel.answer(request_id, "no")
        code, output = await opening
        self.assertEqual(code, 10, output)
        self.assertIn("Refused by olga on mfp-1.", output)
        row = self.session_row()
        self.assertEqual((row["state"], row["end_reason"], row["approver"]),
                         ("ended", "refused", "olga"))
        self.assertIsNone(row["session_id"])
        self.assertIsNone(row["device_token_hash"])

    async def test_panel_refuses_answers_without_login_or_csrf(self):
        """YES without panel login → 403; YES with a wrong CSRF token → 403; still pending."""
        opening = self.open()
        stranger = PanelUser(reactor, self.panel.url)
        await stranger.get()
        await self.panel.login(OPERATOR, OPERATOR_PASSWORD)
        request_id = await self.panel.wait_for_request()
        self.assertEqual(await stranger.answer(request_id, "yes"), 403)
        self.assertEqual(await self.panel.answer(request_id, "yes", csrf="forged"), 403)
        self.assertEqual(self.session_row()["state"], "pending")
        await self.panel.answer(request_id, "no")
        self.assertEqual((await opening)[0], 10)

    async def test_ctrl_c_while_waiting_withdraws_the_request(self):
        """Ctrl-C on `open`: no traceback, the card leaves the panel within 2 s, a YES is
        refused, the request ends cancelled, and a new `open` works at once."""
        opening = self.setup.cli_process("open", "mfp-1", "web-server")
        await self.panel.login(OPERATOR, OPERATOR_PASSWORD)
        request_id = await self.panel.wait_for_request()
        opening.signal("INT")
        self.assertEqual(await opening.ended(), 130)
        self.assertIn("Cancelled: the request to mfp-1 was withdrawn", opening.output)
        self.assertNotIn("Traceback", opening.output)
        gone_after = None
        started = reactor.seconds()
        while reactor.seconds() - started < 2:
            _, page = await self.panel.get()
            if request_id not in page:
                gone_after = reactor.seconds() - started
                break
            await sleep(reactor, 0.1)
        self.assertIsNotNone(gone_after, "the card stayed on the panel for 2 s")
        from remotecomm.device.config import load_device_config
        panel = load_device_config(self.setup.agent_dir("mfp-1") / "device-agent.toml").panel
        with self.assertRaises(AgentRefused) as refused:
            await AgentChannelClient(reactor, panel.socket, panel.secret).answer(
                request_id, True, OPERATOR)
        self.assertEqual(refused.exception.status, 410)
        row = self.session_row()
        self.assertEqual((row["request_id"], row["state"], row["end_reason"]),
                         (request_id, "ended", "cancelled"))
        self.assertNotIn("approval-decided", [e["event"] for e in self.history()])
        again = self.open()
        second = await self.panel.wait_for_request()
        self.assertNotEqual(second, request_id)
        await self.panel.answer(second, "no")
        self.assertEqual((await again)[0], 10)

    async def test_answers_from_outside_the_agent_channel_are_ignored(self):
        """The agent takes answers only with the panel secret on its own socket."""
        opening = self.open()
        await self.panel.login(OPERATOR, OPERATOR_PASSWORD)
        request_id = await self.panel.wait_for_request()
        config = self.setup.agent_dir("mfp-1") / "device-agent.toml"
        from remotecomm.device.config import load_device_config
        socket = load_device_config(config).panel.socket
        intruder = AgentChannelClient(reactor, socket, "x" * 32)
        with self.assertRaises(AgentRefused) as e:
            await intruder.answer(request_id, True, "mallory")
        self.assertEqual(e.exception.status, 401)
        self.assertEqual(self.session_row()["state"], "pending")
        self.assertNotIn("approval-decided", [e["event"] for e in self.history()])
        await self.panel.answer(request_id, "no")
        await opening


class ApprovalTimeoutTests(ApprovalTestCase):
    """Nobody answers: no session."""

    server_config = "[sessions]\napproval_timeout = '3s'\n"

    async def test_no_answer_is_no(self):
        """The CLI reports the timeout with exit 11; the row says approval-timeout."""
        code, output = await self.open()
        self.assertEqual(code, 11, output)
        self.assertIn("Nobody answered on mfp-1 in time", output)
        self.assertEqual(self.session_row()["end_reason"], "approval-timeout")


class TestApproverTests(ApprovalTestCase):
    """A device's test approver, with a manager that allows it."""

    server_config = "[sessions]\nallow_test_approver = true\njoin_window = '3s'\n"
    test_approver = "bench"

    async def test_second_open_refused_until_the_first_expired(self):
        """One open session per device and terminal; after the join window, a new one."""
        code, first = await self.setup.api("POST", "/api/v1/sessions",
                                           {"device_id": "mfp-1", "app_id": "web-server"})
        self.assertEqual(code, 202, first)
        answer = await self.setup.wait_for_state(first["request_id"], "approved")
        self.assertEqual(answer["operator"], "bench")  # the terminal never joins
        self.assertEqual(self.session_row()["approved_by_test_approver"], 1)
        code, output = await self.open("remote-panel")
        self.assertEqual(code, 16, output)
        self.assertIn("session-exists", output)
        await self.setup.wait_for_state(first["request_id"], "expired", timeout=6)
        opening = self.setup.cli_process("open", "mfp-1", "remote-panel")
        await opening.wait_for_output("Session with mfp-1 is open")
        code, output = await self.setup.cli("close", "mfp-1")
        self.assertEqual(code, 0, output)
        self.assertEqual(await opening.ended(), 0)


class TestApproverRefusedTests(ApprovalTestCase):
    """A device's test approver, with a manager in its default configuration."""

    test_approver = "bench"

    async def test_test_approver_refused_by_default(self):
        """The manager refuses answers marked as a test approver's, and says so."""
        code, output = await self.open()
        self.assertEqual(code, 10, output)
        self.assertIn("test approver, which this server does not allow", output)
        row = self.session_row()
        self.assertEqual((row["end_reason"], row["end_detail"], row["approved_by_test_approver"]),
                         ("refused", "test-approver-not-allowed", 1))
        self.assertIn("TEST APPROVER ACTIVE", self.agent.output)


class OpenRefusalTests(ApprovalTestCase):
    """Requests that cannot start a session get distinct answers."""

    test_approver = "bench"

    async def test_unknown_device_app_and_offline(self):
        """Not found (14), unknown app (15), offline (12)."""
        code, output = await self.setup.cli("open", "mfp-404", "web-server")
        self.assertEqual(code, 14, output)
        code, output = await self.setup.cli("open", "mfp-1", "fax")
        self.assertEqual(code, 15, output)
        await self.agent.stop()
        await self.setup.wait_device("mfp-1", online=False)
        code, output = await self.setup.cli("open", "mfp-1", "web-server")
        self.assertEqual(code, 12, output)
        self.assertIn("offline", output)
