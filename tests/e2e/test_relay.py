"""End to end: the relay with real Prosody, TLS, the agent and the terminal (S171–S214, S261–S299)."""

import sqlite3

from twisted.internet import reactor

from remotecomm.relay import envelope as env
from remotecomm.relay.client import RelayClient
from remotecomm.testing.processes import sleep
from tests.e2e.test_approval import OPERATOR, OPERATOR_PASSWORD, ApprovalTestCase


class RelayTestCase(ApprovalTestCase):
    """Helpers to read what the manager filed."""

    def connections(self) -> dict[str, dict]:
        with sqlite3.connect(self.setup.folder / "data" / "manager.sqlite3") as db:
            db.row_factory = sqlite3.Row
            return {row["side"]: dict(row) for row in db.execute(
                "SELECT * FROM session_connections")}

    async def wait_for_end(self, timeout: float = 10) -> dict:
        """Until the manager shows the last session ended (both end logs filed)."""
        start = reactor.seconds()
        while reactor.seconds() - start < timeout:
            row = self.session_row()
            if row["state"] == "ended":
                return row
            await sleep(reactor, 0.1)
        raise AssertionError(f"session not ended within {timeout} s: {self.session_row()}")

    def assertEnded(self, reason: str, normal: bool) -> None:
        connections = self.connections()
        self.assertEqual(sorted(connections), ["device", "terminal"])
        for side, record in connections.items():
            self.assertTrue(record["started_log_key"] and record["ended_log_key"], side)
            self.assertEqual((record["ended_normally"], record["end_reason"]),
                             (int(normal), reason), side)
        self.assertEqual(connections["device"]["party_id"], "mfp-1")


class PanelRelayTests(RelayTestCase):
    """Approved on the panel; the terminal is the test itself, then the CLI."""

    async def test_frames_forwarded_then_normal_end(self):
        """Both sides joined; frames pass both ways; the terminal's end is normal on both."""
        code, answer = await self.setup.api("POST", "/api/v1/sessions",
                                            {"device_id": "mfp-1", "app_id": "web-server"})
        await self.panel.login(OPERATOR, OPERATOR_PASSWORD)
        await self.panel.answer(await self.panel.wait_for_request(), "yes")
        approved = await self.setup.wait_for_state(answer["request_id"], "approved")
        frames = []
        terminal = RelayClient(reactor, approved["relay_url"], "terminal",
                               approved["session_id"], approved["terminal_token"], self.setup.ca,
                               frames.append)
        await terminal.connect()
        terminal.send(env.encode_open(1, "web-server", approved["session_id"],
                                      b"GET / HTTP/1.1\r\nHost: mfp\r\n\r\n"))
        terminal.send(env.encode_end(1))
        terminal.send(env.encode_open(3, "remote-panel", approved["session_id"],
                                      b"GET / HTTP/1.1\r\n\r\n"))
        for _ in range(100):
            if any(env.decode(f).kind == env.END for f in frames) and len(frames) >= 4:
                break
            await sleep(reactor, 0.05)
        decoded = [env.decode(f) for f in frames]
        hello = decoded[0]
        self.assertEqual((hello.kind, hello.info["device_id"], hello.info["app"]),
                         (env.HELLO, "mfp-1", "web-server"))
        # The approved app is served (its local server is down here: 502 on that stream) …
        answer = [f for f in decoded if f.stream_id == 1]
        self.assertTrue(answer[0].data.startswith(b"HTTP/1.1 502 Bad Gateway"))
        self.assertEqual(answer[-1].kind, env.END)
        # … and an app not approved for this session is refused.
        [refused] = [f for f in decoded if f.stream_id == 3]
        self.assertEqual((refused.kind, refused.code), (env.RESET, env.RESET_REFUSED))
        self.assertEqual(self.session_row()["state"], "active")
        ended = await terminal.end()
        self.assertEqual(ended.code, 1000)
        row = await self.wait_for_end()
        self.assertEqual(row["end_reason"], "normal")
        self.assertEnded("normal", True)
        self.assertGreater(self.connections()["terminal"]["bytes_from_side"], 0)
        events = [e["event"] for e in self.history()]
        self.assertIn("end-requested", events)
        self.assertIn("relay-ended", events)

    async def test_remotecomm_close_ends_both_sides_normally(self):
        """`remotecomm close` ends the session `open` holds: four logs, all normal."""
        opening = self.setup.cli_process("open", "mfp-1", "web-server")
        await self.panel.login(OPERATOR, OPERATOR_PASSWORD)
        await self.panel.answer(await self.panel.wait_for_request(), "yes")
        await opening.wait_for_output("Session with mfp-1 is open")
        code, output = await self.setup.cli("close", "mfp-1")
        self.assertEqual(code, 0, output)
        self.assertEqual(await opening.ended(), 0, opening.output)
        self.assertIn("Session with mfp-1 ended after", opening.output)
        await self.wait_for_end()
        self.assertEnded("normal", True)
        metrics = await self.setup.metrics()
        self.assertEqual(metrics["remotecomm_relay_setups_total"], 1)
        self.assertEqual(metrics['remotecomm_relay_logs_written_total{kind="started"}'],
                         2 * metrics["remotecomm_relay_setups_total"])
        self.assertEqual(metrics['remotecomm_relay_logs_written_total{kind="ended"}'], 2)
        self.assertEqual(metrics["remotecomm_relay_logs_filed_total"], 4)
        self.assertEqual(metrics["remotecomm_relay_logs_pending"], 0)
        self.assertEqual(metrics["remotecomm_relay_sessions_open"], 0)
        self.assertEqual(metrics["remotecomm_relay_admission_seconds_count"], 2)


class DropAndRestartTests(RelayTestCase):
    """Sessions end abnormally when a side or the relay goes away."""

    server_config = "[sessions]\nallow_test_approver = true\n"
    test_approver = "bench"

    async def open_session(self):
        opening = self.setup.cli_process("open", "mfp-1", "web-server")
        await opening.wait_for_output("Session with mfp-1 is open")
        for _ in range(50):
            if self.session_row()["state"] == "active":
                return opening
            await sleep(reactor, 0.1)
        self.fail("the session did not become active")

    async def test_killed_terminal_ends_the_session_abnormally(self):
        """A terminal that vanishes: the relay closes the device; both logs abnormal."""
        opening = await self.open_session()
        opening.signal("KILL")
        row = await self.wait_for_end()
        self.assertEqual(row["end_reason"], "dropped-terminal")
        self.assertEnded("dropped-terminal", False)

    async def test_restarted_relay_closes_what_was_open(self):
        """A relay killed mid-session files relay-restart end logs when it starts again."""
        opening = await self.open_session()
        self.setup.server.signal("KILL")
        await self.setup.server.ended()
        await opening.ended()
        self.assertEqual(self.session_row()["state"], "active")
        await self.setup.start()
        row = await self.wait_for_end()
        self.assertEqual(row["end_reason"], "relay-restart")
        self.assertEnded("relay-restart", False)

    async def test_sigterm_ends_sessions_as_shutdown(self):
        """SIGTERM: open sessions end as shutdown, and the logs are filed before exit."""
        opening = await self.open_session()
        await self.setup.server.stop()
        await opening.ended()
        self.assertIn("ended abnormally", opening.output)
        self.assertEqual(self.session_row()["end_reason"], "shutdown")
        self.assertEnded("shutdown", False)


class HttpThroughSessionTests(RelayTestCase):
    """S231–S243 with a terminal client: requests reach the device's local app and back."""

    server_config = "[sessions]\nallow_test_approver = true\n"
    test_approver = "bench"

    async def setUp(self):
        from twisted.internet.endpoints import TCP4ServerEndpoint
        from twisted.web import server

        from tests.device.test_http_streams import LocalApp
        self.app = LocalApp()
        self.app_port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(
            server.Site(self.app))
        self.addCleanup(self.app_port.stopListening)
        self.apps = {"web-server": f"http://127.0.0.1:{self.app_port.getHost().port}"}
        await super().setUp()

    async def exchange(self, terminal, frames, stream_id, head, body=b""):
        terminal.send(env.encode_open(stream_id, "web-server", self.session_id, head))
        for start in range(0, len(body), env.MAX_DATA):
            terminal.send(env.encode_data(stream_id, body[start:start + env.MAX_DATA]))
        terminal.send(env.encode_end(stream_id))
        for _ in range(200):
            mine = [env.decode(f) for f in frames]
            mine = [f for f in mine if f.stream_id == stream_id]
            if mine and mine[-1].kind in (env.END, env.RESET):
                return mine
            await sleep(reactor, 0.05)
        self.fail(f"stream {stream_id} did not finish")

    async def test_get_and_post_through_the_session(self):
        """A page comes back head first; a 2 MiB body reaches the app byte for byte."""
        code, answer = await self.setup.api("POST", "/api/v1/sessions",
                                            {"device_id": "mfp-1", "app_id": "web-server"})
        approved = await self.setup.wait_for_state(answer["request_id"], "approved")
        self.session_id = approved["session_id"]
        frames = []
        terminal = RelayClient(reactor, approved["relay_url"], "terminal", self.session_id,
                               approved["terminal_token"], self.setup.ca, frames.append)
        await terminal.connect()
        page = await self.exchange(terminal, frames, 1,
                                   b"GET /status HTTP/1.1\r\nHost: s1.localhost:9000\r\n\r\n")
        self.assertTrue(page[0].data.startswith(b"HTTP/1.1 200 OK"))
        self.assertNotIn(b"Domain=", page[0].data)
        self.assertEqual(b"".join(f.data for f in page[1:] if f.kind == env.DATA),
                         b"status: ready\n")
        host = self.app.requests[0][2].getRawHeaders(b"host")
        self.assertEqual(host, [f"127.0.0.1:{self.app_port.getHost().port}".encode()])
        upload = bytes(range(256)) * 8192  # 2 MiB
        posted = await self.exchange(
            terminal, frames, 3,
            b"POST /firmware HTTP/1.1\r\nHost: s1.localhost:9000\r\nContent-Length: %d\r\n\r\n"
            % len(upload), upload)
        head = next(f for f in posted if f.kind == env.DATA)
        self.assertTrue(head.data.startswith(b"HTTP/1.1 200"))
        self.assertEqual(self.app.requests[1][3], upload)
        granted = sum(f.increment for f in posted if f.kind == env.WINDOW)
        self.assertTrue(0 < granted <= len(upload), granted)  # none owed once a stream is done
        await terminal.end()
        row = await self.wait_for_end()
        self.assertEqual(row["end_reason"], "normal")
