"""End to end: the record's three sources, and collecting what a device kept (S311–S317).

A session runs through the real processes; the device agent is killed in the
middle of it, so the device's report is never pushed.  Asked while the agent
is down, the manager says the device is offline; when the agent comes back
its hello makes the manager ask, and the device answers from its history
(what it knew: the operator, its versions, its start; not an end it never
saw).  Asking again changes nothing.  The relay's side and the terminal's are
in the record all along.
"""

import json
import sqlite3
from pathlib import Path

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from remotecomm.testing.http import LocalPortClient
from remotecomm.testing.processes import free_port, sleep
from remotecomm.testing.servers import ServerSetup


class CollectionTests(TestCase):
    """One session, one killed agent, collection before and after it returns."""

    timeout = 30

    async def setUp(self):
        self.setup = ServerSetup(reactor, Path(self.mktemp()),
                                 extra_config="[sessions]\nallow_test_approver = true\n")
        self.addCleanup(self.setup.stop)
        self.setup.provision({"acme": {"users": ["alice"], "devices": ["mfp-1"]}})
        app_ports = {app: free_port() for app in ("web-server", "remote-panel")}
        self.setup.configure_agent("mfp-1", self.setup.app_urls(app_ports),
                                   test_approver="bench")
        await self.setup.start()
        self.agent = self.setup.start_agent("mfp-1")
        simulator, _ = self.setup.start_simulator("mfp-1", {"olga": "panel password"},
                                                  app_ports=app_ports)
        await simulator.wait_for_output("remote-panel on")
        await self.setup.login("alice")
        await self.setup.wait_device("mfp-1", online=True)
        self.database = self.setup.folder / "data" / "manager.sqlite3"

    def rows(self, query: str) -> list[dict]:
        with sqlite3.connect(self.database) as db:
            db.row_factory = sqlite3.Row
            return [dict(row) for row in db.execute(query)]

    async def until(self, check, what: str, timeout: float = 10):
        for _ in range(int(timeout * 10)):
            value = check()
            if value:
                return value
            await sleep(reactor, 0.1)
        raise AssertionError(f"not within {timeout} s: {what}")

    async def record(self, request_id: str) -> dict:
        code, output = await self.setup.cli("session", request_id, "--json")
        self.assertEqual(code, 0, output)
        return json.loads(output)

    async def test_a_report_lost_with_the_agent_is_collected_when_it_returns(self):
        # The simulated device told its agent its firmware, and the agent said it in a hello.
        await self.until(lambda: self.rows("SELECT firmware_version FROM devices")[0]
                         ["firmware_version"] == "4.2.1", "firmware version in the hello")
        opening = self.setup.cli_process("open", "mfp-1", "web-server")
        await opening.wait_for_output("Scripts: ", timeout=15)
        session = json.loads((self.setup.terminal_home / "sessions" / "mfp-1.json").read_text())
        response = await LocalPortClient(reactor, session).request("GET", "/api/status")
        self.assertEqual(response.code, 200)
        await response.content()
        (request_id,) = [r["request_id"] for r in self.rows("SELECT request_id FROM sessions")]
        await self.setup.wait_for_state(request_id, "active")

        # The agent dies mid-session: the relay ends both sides; no device report came.
        self.agent.signal("KILL")
        await self.agent.ended()
        await opening.ended()
        await self.setup.wait_for_state(request_id, "ended")
        await self.setup.wait_device("mfp-1", online=False)
        record = await self.record(request_id)
        self.assertEqual((record["end_reason"], record["connections"]["device"]["end_reason"]),
                         ("dropped-device", "dropped-device"))
        self.assertTrue(record["end_detail"])
        self.assertNotIn("device", record)

        # Asked while the device is offline: the answer says so; nothing is collected.
        code, output = await self.setup.cli("sessions", "--collect")
        self.assertEqual(code, 0, output)
        self.assertIn("0 report(s) collected, 1 still missing", output)
        self.assertIn("Offline now, asked again when they come back: mfp-1.", output)

        # The agent comes back; its hello makes the manager ask; the device answers.
        self.agent = self.setup.start_agent("mfp-1")
        await self.setup.wait_device("mfp-1", online=True)
        await self.until(lambda: self.rows("SELECT COUNT(*) AS n FROM session_device_reports")
                         [0]["n"] == 1, "the device's report collected at its hello")
        record = await self.record(request_id)
        seen = record["device"]
        self.assertEqual((seen["operator"], seen["agent_version"], seen["firmware_version"],
                          seen["end_reason"]), ("bench", "0.1.0", "4.2.1", "agent-stopped"))
        for unknown in ("ended_at_us", "end_code", "bytes_to_device", "bytes_from_device"):
            self.assertNotIn(unknown, seen)
        self.assertLessEqual(seen["started_at_us"], seen["received_at_us"])
        # Each source as it saw it: the relay's sides, the terminal's client, the device.
        sides = record["connections"]
        self.assertEqual((sides["device"]["party_id"], sides["terminal"]["end_reason"]),
                         ("mfp-1", "dropped-device"))
        self.assertGreater(sides["terminal"]["bytes_from_side"], 0)
        self.assertEqual(sides["device"]["bytes_to_side"], sides["terminal"]["bytes_from_side"])
        self.assertEqual(record["terminal"]["client_name"], "remotecomm-cli")

        # Collecting again asks nobody and changes nothing.
        code, answer = await self.setup.api("POST", "/api/v1/sessions/collect", {})
        self.assertEqual((code, answer["asked_devices"], answer["reports_collected"],
                          answer["still_missing"]), (200, [], 0, 0))
        self.assertEqual(self.rows("SELECT COUNT(*) AS n FROM session_device_reports")[0]["n"],
                         1)
        self.assertEqual((await self.record(request_id))["device"], seen)

        # The unit's report over the real CLI: the table, the JSON and the CSV agree.
        code, output = await self.setup.cli("report", "--by", "device", "--json")
        self.assertEqual(code, 0, output)
        report = json.loads(output)
        self.assertEqual((report["totals"]["sessions"], report["totals"]["ends"],
                          [g["key"] for g in report["groups"]], report["missing_device_info"]),
                         (1, {"dropped-device": 1}, ["mfp-1"], 0))
        self.assertEqual(report["totals"]["bytes_to_device"], sides["device"]["bytes_to_side"])
        target = self.setup.folder / "report.csv"
        code, output = await self.setup.cli("report", "--by", "device", "--csv", str(target))
        self.assertEqual(code, 0, output)
        header, group, total = target.read_text().splitlines()
        self.assertEqual(group.split(",")[2:4], ["mfp-1", "1"])
        self.assertEqual(total.split(",")[2], "TOTAL")
        code, output = await self.setup.cli("report")
        self.assertEqual(code, 0, output)
        self.assertIn("Sessions of unit acme from", output)
