"""End to end: maintenance jobs over real XMPP (Prosody), the real agent and the simulated MFP
(S121–S125): counters, a setting set and read back, supplies, the log; a job that waits for
an offline device runs when its agent starts."""

import hashlib
import json
import sqlite3
from pathlib import Path

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from remotecomm.command_line import EXIT_DEVICE_OFFLINE
from remotecomm.testing.http import http_client
from remotecomm.testing.processes import free_port, sleep
from remotecomm.testing.servers import ServerSetup


class MaintenanceTestCase(TestCase):
    """One manager, one device with its agent and simulator, one technician."""

    timeout = 30

    async def setUp(self):
        self.setup = ServerSetup(reactor, Path(self.mktemp()))
        self.addCleanup(self.setup.stop)
        self.setup.provision({"acme": {"users": ["alice"], "devices": ["mfp-1"]}})
        app_ports = {app: free_port() for app in ("web-server", "remote-panel")}
        self.setup.configure_agent("mfp-1", self.setup.app_urls(app_ports))
        await self.setup.start()
        self.agent = self.setup.start_agent("mfp-1")
        simulator, _ = self.setup.start_simulator("mfp-1", {"olga": "panel password"},
                                                  app_ports=app_ports)
        await simulator.wait_for_output("remote-panel on")
        await self.setup.login("alice")
        await self.setup.wait_device("mfp-1", online=True)

    async def maintain(self, *words: str) -> tuple[int, str]:
        return await self.setup.cli("maintain", "mfp-1", *words)


class MaintenanceTests(MaintenanceTestCase):
    """Each action, and a job that waits for its device."""

    async def test_actions_and_a_job_that_waits_for_its_device(self):
        # The device declared its settings in its hello (the simulator told its agent).
        database = self.setup.folder / "data" / "manager.sqlite3"
        for _ in range(50):
            with sqlite3.connect(database) as db:
                (declared,) = db.execute("SELECT settings FROM devices").fetchone()
            if "sleep_minutes" in declared:
                break
            await sleep(reactor, 0.1)
        code, output = await self.maintain("config", "get", "sleep_minutes")
        self.assertEqual((code, output.strip()), (0, "sleep_minutes = 15"))
        code, output = await self.maintain("config", "set", "sleep_minutes", "30")
        self.assertEqual((code, output.splitlines()), (0, ["sleep_minutes = 30", "(was 15)"]))
        code, output = await self.maintain("config", "get", "sleep_minutes")
        self.assertEqual(output.strip(), "sleep_minutes = 30")
        # Checked before anything is sent: a value out of range, a setting it lacks.
        code, output = await self.maintain("config", "set", "sleep_minutes", "999")
        self.assertEqual(code, 1)
        self.assertIn("sleep_minutes takes 1 to 240", output)
        # The other actions through the API (the CLI's output of them has unit tests).
        results = {}
        for action in ("counters", "supplies", "log"):
            status, job = await self.setup.api("POST", "/api/v1/devices/mfp-1/jobs",
                                               {"action": action})
            self.assertEqual(status, 202, job)
            for _ in range(50):
                status, job = await self.setup.api("GET", f"/api/v1/jobs/{job['job_id']}")
                if job["state"] == "done":
                    break
                await sleep(reactor, 0.1)
            results[action] = job["result"]
        self.assertEqual(results["counters"]["printed"],
                         {"total": 12840, "colour": 4120, "mono": 8720})
        self.assertEqual((results["supplies"]["toner"]["cyan"], results["supplies"]["status"]),
                         (72, "ready"))
        self.assertIn("setting sleep_minutes changed from 15 to 30", results["log"]["lines"])

        # The agent stops; a job asked with --wait-online runs when it is back.
        await self.agent.stop()
        await self.setup.wait_device("mfp-1", online=False)
        code, output = await self.maintain("counters")
        self.assertEqual(code, EXIT_DEVICE_OFFLINE, output)
        self.assertIn("offline", output)
        waiting = self.setup.cli_process("maintain", "mfp-1", "counters", "--wait-online",
                                         "60")
        await waiting.wait_for_output("waits for it to come online")
        self.agent = self.setup.start_agent("mfp-1")
        self.assertEqual(await waiting.ended(), 0, waiting.output)
        self.assertIn("printed", waiting.output)
        code, output = await self.setup.cli("jobs", "mfp-1", "--json")
        states = [job["state"] for job in json.loads(output)["jobs"]]
        self.assertEqual(states.count("done"), 7)  # get, set, get, 3 by API, the waiting one
        self.assertEqual(states.count("failed"), 1)  # the offline one, at once


class RestartTests(MaintenanceTestCase):
    """A restart: the device's apps and its agent's link go away, and the job completes when
    the device reports back (a test about the agent's link going, so its own processes)."""

    async def test_the_restart_job_completes_when_the_device_is_back(self):
        code, output = await self.maintain("restart", "--json")
        self.assertEqual(code, 0, output)
        job = json.loads(output)
        self.assertEqual((job["state"], job["result"]), ("done", {"restarted": True,
                                                                  "down_seconds": 3}))
        self.assertIn("the device restarts", self.agent.output)
        # Its link went away and came back: it said hello again before it reported.
        self.assertGreaterEqual(self.agent.output.count("announced to rms.localhost"), 2)
        self.assertEqual((await self.setup.device_list())["mfp-1"]["online"], True)
        history = (self.setup.agent_dir("mfp-1") / "data" / "history.jsonl").read_text()
        self.assertIn('"event": "restarting"', history)


class ManagerSideOutageTests(MaintenanceTestCase):
    """A job waiting for its device survives a manager restart and runs once; while the
    manager's link to Prosody is down, a new job fails saying so (a test about stopping
    processes, so its own)."""

    async def test_a_waiting_job_survives_a_manager_restart_and_runs_once(self):
        await self.agent.stop()
        await self.setup.wait_device("mfp-1", online=False)
        status, job = await self.setup.api("POST", "/api/v1/devices/mfp-1/jobs",
                                           {"action": "counters", "wait_online": 120})
        self.assertEqual((status, job["state"]), (202, "queued"))
        await self.setup.server.stop()
        await self.setup.start()
        await self.setup.stop_prosody()
        for _ in range(50):
            status, refused = await self.setup.api("POST", "/api/v1/devices/mfp-1/jobs",
                                                   {"action": "counters"})
            if refused.get("code") == "xmpp-link-down":
                break
            await sleep(reactor, 0.1)
        self.assertEqual((status, refused["code"]), (503, "xmpp-link-down"))
        await self.setup.start_prosody()
        self.agent = self.setup.start_agent("mfp-1")
        for _ in range(100):
            status, job = await self.setup.api("GET", f"/api/v1/jobs/{job['job_id']}")
            if job["state"] == "done":
                break
            await sleep(reactor, 0.1)
        self.assertEqual(job["state"], "done", job)
        history = [json.loads(line) for line in (self.setup.agent_dir("mfp-1") / "data" /
                                                 "history.jsonl").read_text().splitlines()]
        received = [e for e in history if e["event"] == "job-received"
                    and e["job_id"] == job["job_id"]]
        self.assertEqual(len(received), 1)


class FirmwareTests(MaintenanceTestCase):
    """A firmware image uploaded to the manager, downloaded by the agent over HTTPS with a
    one-time reference, installed by the simulated MFP (its reported version changes, it
    restarts); a wrong checksum is refused and reported, the old firmware stays (one set of
    processes for both)."""

    timeout = 60

    async def wait_job(self, job_id: str, seconds: float = 30) -> dict:
        for _ in range(int(seconds * 10)):
            status, job = await self.setup.api("GET", f"/api/v1/jobs/{job_id}")
            if job["state"] not in ("queued", "sent", "running"):
                return job
            await sleep(reactor, 0.1)
        self.fail(f"job {job_id} is still {job['state']}")

    async def upload(self, data: bytes, version: str) -> dict:
        state = json.loads((self.setup.terminal_home / "state.json").read_text())
        response = await http_client(reactor, self.setup.ca).post(
            f"{self.setup.url}/api/v1/firmware?version={version}", data=data, timeout=10,
            headers={"Authorization": f"Bearer {state['token']}",
                     "X-Remotecomm-Terminal": state["terminal_id"]})
        self.assertEqual(response.code, 201)
        return json.loads(await response.content())

    async def test_an_image_is_installed_and_a_wrong_one_is_refused(self):
        image = Path(self.mktemp())
        image.write_bytes(bytes(range(256)) * 8192)  # 2 MiB
        code, output = await self.maintain("firmware", str(image), "--version", "4.3.0")
        self.assertEqual(code, 0, output)
        self.assertIn("Uploaded", output)
        self.assertIn("Firmware 4.3.0 installed (was 4.2.1); the device restarted.", output)
        # The manager's device list shows the new version once the device is back.
        for _ in range(100):
            device = (await self.setup.device_list())["mfp-1"]
            if device.get("firmware_version") == "4.3.0" and device["online"]:
                break
            await sleep(reactor, 0.1)
        self.assertEqual(device["firmware_version"], "4.3.0")
        _, jobs = await self.setup.api("GET", "/api/v1/devices/mfp-1/jobs")
        (done,) = jobs["jobs"]
        self.assertEqual((done["state"], done["progress"]),
                         ("done", {"phase": "install", "percent": 100}))
        self.assertEqual(done["result"]["sha256"], hashlib.sha256(image.read_bytes()).hexdigest())
        installed = self.setup.agent_dir("mfp-1") / "mfp-data" / "firmware" / "firmware.bin"
        self.assertEqual(installed.read_bytes(), image.read_bytes())

        # An image whose bytes changed on the manager after its upload: the agent's check
        # refuses it, the job fails saying so, the device keeps 4.3.0.
        newest = await self.upload(image.read_bytes(), "4.4.0")
        _, uploaded = await self.setup.api("GET", "/api/v1/firmware")
        self.assertEqual([i["version"] for i in uploaded["images"]], ["4.4.0", "4.3.0"])
        stored = self.setup.folder / "data" / "firmware" / "images" / f"{newest['image_id']}.bin"
        data = bytearray(stored.read_bytes())
        data[1000] ^= 0xFF
        stored.write_bytes(bytes(data))
        status, job = await self.setup.api("POST", "/api/v1/devices/mfp-1/jobs",
                                           {"action": "firmware",
                                            "image_id": newest["image_id"]})
        self.assertEqual(status, 202, job)
        job = await self.wait_job(job["job_id"])
        self.assertEqual((job["state"], job["error_code"]), ("failed", "checksum-mismatch"))
        self.assertEqual((await self.setup.device_list())["mfp-1"]["firmware_version"], "4.3.0")
        self.assertEqual(sorted(p.name for p in (self.setup.agent_dir("mfp-1") / "data" /
                                                 "firmware").iterdir()), [])
