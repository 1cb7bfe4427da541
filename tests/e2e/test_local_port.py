"""End to end: HTTP through a session, from the terminal's local port to the simulated MFP.

Real Prosody, ``twistd remotecomm`` (TLS), ``twistd device-agent``, ``twistd
mfp-simulator`` and ``remotecomm open`` on 127.0.0.1; the test is the script
a technician would write against the local port (S203, S231–S243).
"""

import hashlib
import json
from pathlib import Path

from treq import collect
from twisted.internet import reactor
from twisted.internet.defer import ensureDeferred, gatherResults
from twisted.trial.unittest import TestCase

from remotecomm.testing.http import LocalPortClient, PatternBody, http_client
from remotecomm.testing.memory import GrowthMeter
from remotecomm.testing.processes import free_port, sleep
from remotecomm.testing.servers import ServerSetup

MiB = 1024 * 1024


class LocalPortTestCase(TestCase):
    """A device whose agent serves the simulator's apps and approves with its test
    approver, and a terminal holding a ``web-server`` session with ``remotecomm open``."""

    timeout = 30
    app = "web-server"

    async def setUp(self):
        self.setup = ServerSetup(reactor, Path(self.mktemp()),
                                 extra_config="[sessions]\nallow_test_approver = true\n")
        self.addCleanup(self.setup.stop)
        self.setup.provision({"acme": {"users": ["alice"], "devices": ["mfp-1"]}})
        self.app_ports = {"web-server": free_port(), "remote-panel": free_port()}
        self.setup.configure_agent("mfp-1", self.setup.app_urls(self.app_ports),
                                   test_approver="bench")
        await self.setup.start()
        self.agent = self.setup.start_agent("mfp-1")
        self.simulator = self.start_simulator()
        await self.simulator.wait_for_output("remote-panel on")
        await self.setup.login("alice")
        await self.agent.wait_for_output("announced to rms.localhost")
        await self.setup.wait_device("mfp-1", online=True)
        self.opening = self.setup.cli_process("open", "mfp-1", self.app)
        await self.opening.wait_for_output("Scripts: ", timeout=15)
        marker = self.setup.terminal_home / "sessions" / "mfp-1.json"
        self.session = json.loads(marker.read_text())
        self.assertEqual(marker.stat().st_mode & 0o777, 0o600)
        self.client = LocalPortClient(reactor, self.session)
        self.web_direct = f"http://127.0.0.1:{self.app_ports['web-server']}"

    def start_simulator(self):
        simulator, self.panel_url = self.setup.start_simulator(
            "mfp-1", {"olga": "panel password"}, app_ports=self.app_ports)
        return simulator

    async def get(self, path: str, **kwargs) -> tuple[int, bytes]:
        response = await self.client.request("GET", path, **kwargs)
        return response.code, await response.content()

    async def progress(self) -> list[dict]:
        """The simulator's uploads in progress, asked directly (not through the session)."""
        response = await http_client(reactor).get(self.web_direct + "/firmware/progress")
        return json.loads(await response.content())["uploads"]


class LocalPortTests(LocalPortTestCase):
    """Pages, rules, concurrency, large and slow bodies."""

    async def test_status_page_rules_redirects_and_ten_concurrent_requests(self):
        code, page = await self.get("/")
        self.assertEqual(code, 200, page[:200])
        self.assertIn(b"mfp-1 (simulated)", page)
        self.assertIn(b"Toner", page)
        self.assertIn("Browser: open http://mfp-1-", self.opening.output)
        # The local port's rules hold with real processes too.
        anonymous = LocalPortClient(reactor, self.session, authenticated=False)
        self.assertEqual((await anonymous.request("GET", "/")).code, 403)
        cross = await self.client.request("POST", "/error", headers={
            "Origin": "http://evil.example"}, data={"error": "paper-jam"})
        self.assertEqual(cross.code, 403)
        # A form redirects to the app's own address; the terminal points it back here.
        response = await self.client.request("POST", "/error", data={"error": "paper-jam"},
                                             allow_redirects=False)
        self.assertEqual(response.code, 303)
        self.assertEqual(response.headers.getRawHeaders("location"),
                         [self.session["local_url"]])
        codes = await gatherResults([ensureDeferred(self.get("/api/status"))
                                     for _ in range(10)])
        self.assertEqual([code for code, _ in codes], [200] * 10)
        self.assertTrue(all(json.loads(body)["status"] == "paper-jam" for _, body in codes))

    async def test_64_mib_up_and_down_byte_for_byte_within_16_mib_growth(self):
        """DECISIONS.md's method: no process grows by more than 16 MiB."""
        meter = GrowthMeter({"server": self.setup.server.pid, "agent": self.agent.pid,
                             "simulator": self.simulator.pid, "cli": self.opening.pid})
        meter.start()
        body = PatternBody(reactor, 64 * MiB, chunk=MiB)
        response = await self.client.request("PUT", "/firmware", data=body, headers={
            "Content-Type": "application/octet-stream"})
        answer = json.loads(await response.content())
        self.assertEqual(response.code, 200, answer)
        self.assertEqual(answer, {"size": 64 * MiB, "sha256": body.sha256.hexdigest()})
        response = await self.client.request("GET", "/firmware/image")
        self.assertEqual(response.code, 200)
        digest, size = hashlib.sha256(), [0]

        def take(data):
            digest.update(data)
            size[0] += len(data)
        await collect(response, take)
        self.assertEqual((size[0], digest.hexdigest()), (64 * MiB, body.sha256.hexdigest()))
        growth = meter.growth()
        (self.setup.folder / "growth.json").write_text(json.dumps(growth))
        for name, grown in growth.items():
            self.assertLessEqual(grown, 16 * MiB, f"{name} grew {grown / MiB:.1f} MiB: {growth}")

    async def test_slow_upload_reaches_the_app_before_the_last_chunk_is_sent(self):
        body = PatternBody(reactor, 4 * MiB, chunk=MiB, delay=0.6)
        uploading = ensureDeferred(self.client.request("PUT", "/firmware", data=body))
        seen_while_sending = None
        for _ in range(100):
            uploads = await self.progress()
            if uploads and uploads[0]["received"] > 0:
                seen_while_sending = body.sent < body.length
                break
            await sleep(reactor, 0.05)
        self.assertTrue(seen_while_sending, "the first chunk did not arrive while sending")
        response = await uploading
        self.assertEqual(json.loads(await response.content())["sha256"],
                         PatternBody.expected_sha256(4 * MiB))

    async def test_client_disconnecting_mid_body(self):
        """The app sees the upload broken off and keeps nothing; the session goes on."""
        body = PatternBody(reactor, 64 * MiB, chunk=256 * 1024, delay=0.05)
        uploading = ensureDeferred(self.client.request("PUT", "/firmware", data=body))
        for _ in range(100):
            uploads = await self.progress()
            if uploads and uploads[0]["received"] > MiB:
                break
            await sleep(reactor, 0.05)
        uploading.cancel()
        await self.assertFailure(uploading, Exception)
        for _ in range(100):
            if not await self.progress():
                break
            await sleep(reactor, 0.05)
        self.assertEqual(await self.progress(), [])
        folder = self.setup.agent_dir("mfp-1") / "mfp-data" / "firmware"
        self.assertEqual([p.name for p in folder.iterdir()], [])
        code, _ = await self.get("/api/status")
        self.assertEqual(code, 200)

    async def test_local_app_stopped_and_restarted(self):
        """The app down gives 502 on that request; the session outlives it."""
        await self.simulator.stop()
        code, page = await self.get("/")
        self.assertEqual(code, 502, page)
        self.simulator = self.start_simulator()
        await self.simulator.wait_for_output("remote-panel on")
        code, page = await self.get("/")
        self.assertEqual(code, 200)
        self.assertIsNone(self.opening.exit_code)
