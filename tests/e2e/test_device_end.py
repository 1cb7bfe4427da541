"""End to end: the device's operator ends a running session on the panel (S291–S299).

Headless Chromium logs in at the simulated MFP's panel, sees the running session
(who, which unit, which app) and clicks **End session**; the device side ends,
then the terminal side; the CLI says the device's operator ended it; both end
logs are filed with the reason ``ended-by-device``.
"""

import json
import sqlite3

from twisted.internet import reactor

from remotecomm.testing.browser import Browser
from remotecomm.testing.processes import sleep
from tests.e2e.test_local_port import LocalPortTestCase


class DeviceEndTests(LocalPortTestCase):
    """A web-server session held by `remotecomm open`, and the panel in Chromium."""

    def rows(self, query: str) -> list[dict]:
        with sqlite3.connect(self.setup.folder / "data" / "manager.sqlite3") as db:
            db.row_factory = sqlite3.Row
            return [dict(row) for row in db.execute(query)]

    async def test_the_operator_ends_the_session_on_the_panel(self):
        panel_url = self.panel_url
        code, _ = await self.get("/api/status")  # some traffic both ways first
        self.assertEqual(code, 200)
        browser = Browser(reactor)
        self.addCleanup(lambda: (self.setup.folder / "chromium.log").write_text(browser.output))
        self.addCleanup(browser.stop)
        await browser.start()
        await browser.navigate(panel_url + "/")
        loaded = browser.next_event("Page.loadEventFired")
        await browser.evaluate(
            "document.querySelector('input[name=operator]').value = 'olga';"
            "document.querySelector('input[name=password]').value = 'panel password';"
            "document.querySelector('form[action=\"/login\"]').submit()")
        await loaded
        request_id = self.rows("SELECT request_id FROM sessions")[0]["request_id"]
        for _ in range(50):  # the device side is established and listed
            if await browser.evaluate(f"!!document.getElementById('end-{request_id}')"):
                break
            await sleep(reactor, 0.1)
            await browser.navigate(panel_url + "/")
        card = await browser.evaluate(
            f"document.querySelector('[data-session-id=\"{request_id}\"]').textContent")
        self.assertIn("Alice (alice) of Acme", card)
        self.assertIn("web configuration pages", card)
        await browser.click(f"#end-{request_id}")
        self.assertEqual(await self.opening.ended(), 0)
        self.assertIn("Session with mfp-1 ended by the device's operator after",
                      self.opening.output)
        for _ in range(50):
            (row,) = self.rows("SELECT state, end_reason FROM sessions")
            if row["state"] == "ended":
                break
            await sleep(reactor, 0.1)
        self.assertEqual((row["state"], row["end_reason"]), ("ended", "ended-by-device"))
        records = {r["side"]: r for r in self.rows("SELECT * FROM session_connections")}
        self.assertEqual({side: (r["ended_normally"], r["end_reason"], bool(r["ended_log_key"]),
                                 bool(r["started_log_key"])) for side, r in records.items()},
                         {side: (1, "ended-by-device", True, True)
                          for side in ("device", "terminal")})
        history = [json.loads(line) for line in
                   (self.setup.agent_dir("mfp-1") / "data" / "history.jsonl")
                   .read_text().splitlines()]
        ended = [e for e in history if e["event"] == "ended-by-operator"]
        self.assertEqual([(e["request_id"], e["operator"]) for e in ended],
                         [(request_id, "olga")])
        # The record, as the technician's command shows it, matches what each process saw.
        code, output = await self.setup.cli("session", request_id, "--json")
        self.assertEqual(code, 0, output)
        record = json.loads(output)
        self.assertEqual((record["state"], record["end_reason"], record["device_id"],
                          record["app_id"], record["user_id"], record["operator"],
                          record["approved_by_test_approver"]),
                         ("ended", "ended-by-device", "mfp-1", "web-server", "alice", "bench",
                          True))
        self.assertEqual(record["terminal"]["client_name"], "remotecomm-cli")
        sides = record["connections"]
        self.assertEqual((sides["device"]["party_id"], sides["terminal"]["party_id"]),
                         ("mfp-1", json.loads((self.setup.terminal_home / "state.json")
                                              .read_text())["terminal_id"]))
        self.assertEqual(sides["device"]["bytes_to_side"],
                         sides["terminal"]["bytes_from_side"])
        self.assertGreater(record["duration_us"], 0)
        # The device's own report (S313, pushed when its side ended) is the third source.
        for _ in range(50):
            code, output = await self.setup.cli("session", request_id, "--json")
            record = json.loads(output)
            if "device" in record:
                break
            await sleep(reactor, 0.1)
        seen = record["device"]
        self.assertEqual((seen["operator"], seen["agent_version"], seen["end_code"]),
                         ("bench", "0.1.0", 1000))
        self.assertGreater(seen["bytes_to_device"], 0)
        self.assertGreater(seen["bytes_from_device"], 0)
        self.assertTrue(seen["app_version"].startswith("TwistedWeb"), seen)
        self.assertLessEqual(seen["started_at_us"], seen["ended_at_us"])
        self.assertIn("received_at", seen)
        code, output = await self.setup.cli("sessions", "--device", "mfp-1")
        self.assertEqual(code, 0, output)
        self.assertIn(f"{request_id}", output)
        self.assertIn("ended: ended-by-device", output)
