"""End to end: sessions the manager ends -- force-end, disabled users, revoked devices.

One set of processes (Prosody, the server, the agent with a test approver) serves every
scenario in turn, each with a session held by a real `remotecomm open`.
"""

import sqlite3
from pathlib import Path

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from remotecomm.testing.processes import sleep
from remotecomm.testing.servers import ServerSetup

APPS = {"web-server": "http://127.0.0.1:9", "remote-panel": "http://127.0.0.1:9"}


class ManagerEndsTests(TestCase):
    """A unit admin, a technician of another unit, revocation and disabling, during sessions."""

    timeout = 30

    async def setUp(self):
        self.setup = ServerSetup(reactor, Path(self.mktemp()),
                                 extra_config="[sessions]\nallow_test_approver = true\n")
        self.addCleanup(self.setup.stop)
        self.setup.provision({"acme": {"users": ["alice", "adam:unit-admin"],
                                       "devices": ["mfp-1"]},
                              "globex": {"users": ["gina"]}})
        self.setup.configure_agent("mfp-1", APPS, test_approver="bench")
        await self.setup.start()
        self.agent = self.setup.start_agent("mfp-1")
        self.homes = {name: self.setup.folder / f"terminal-{name}" for name in ("adam", "gina")}
        await self.setup.login("alice")
        for name, home in self.homes.items():
            await self.setup.login(name, home=home)
        await self.agent.wait_for_output("announced to rms.localhost")
        await self.setup.wait_device("mfp-1", online=True)

    def row(self) -> dict:
        with sqlite3.connect(self.setup.folder / "data" / "manager.sqlite3") as db:
            db.row_factory = sqlite3.Row
            return dict(db.execute("SELECT * FROM sessions ORDER BY requested_us DESC "
                                   "LIMIT 1").fetchone())

    def connections(self, request_id: str) -> dict:
        with sqlite3.connect(self.setup.folder / "data" / "manager.sqlite3") as db:
            db.row_factory = sqlite3.Row
            return {r["side"]: dict(r) for r in db.execute(
                "SELECT * FROM session_connections WHERE request_id = ?", (request_id,))}

    async def held_session(self):
        opening = self.setup.cli_process("open", "mfp-1", "web-server")
        await opening.wait_for_output("Session with mfp-1 is open", timeout=10)
        for _ in range(50):  # both sides' started logs filed: active
            if self.row()["state"] == "active":
                break
            await sleep(reactor, 0.1)
        self.assertEqual(self.row()["state"], "active")
        return opening, self.row()["request_id"]

    async def ended_within(self, seconds: float) -> dict:
        started = reactor.seconds()
        while reactor.seconds() - started < seconds:
            row = self.row()
            if row["state"] == "ended":
                return row
            await sleep(reactor, 0.1)
        self.fail(f"the session did not end within {seconds} s: {self.row()}")

    async def test_force_end_disable_and_revoke_during_sessions(self):
        # A technician of another unit cannot end it (nor learn that it exists) …
        opening, request_id = await self.held_session()
        code, answer = await self.setup.api("POST", f"/api/v1/sessions/{request_id}/end", {},
                                            home=self.homes["gina"])
        self.assertEqual((code, answer["code"]), (404, "session-not-found"))
        self.assertEqual(self.row()["state"], "active")
        # … a unit admin of its unit can: the relay closes both sides, the logs say revoked.
        code, answer = await self.setup.api("POST", f"/api/v1/sessions/{request_id}/end", {},
                                            home=self.homes["adam"])
        self.assertEqual((code, answer["ending"]), (202, "revoked"))
        row = await self.ended_within(5)
        self.assertEqual(row["end_reason"], "revoked")
        await opening.ended()
        self.assertEqual({side: r["end_reason"] for side, r in
                          self.connections(request_id).items()},
                         {"device": "revoked", "terminal": "revoked"})

        # Disabling the user (a unit admin, through the admin API) ends their session within
        # 5 s, and their API calls stop.
        opening, request_id = await self.held_session()
        code, answer = await self.setup.api("POST", "/api/v1/users/alice/disable",
                                            home=self.homes["adam"])
        self.assertEqual((code, answer["disabled"]), (200, True))
        row = await self.ended_within(5)
        self.assertEqual((row["request_id"], row["end_reason"], row["end_detail"]),
                         (request_id, "revoked", "user disabled"))
        await opening.ended()
        code, answer = await self.setup.api("GET", "/api/v1/devices")
        self.assertEqual(code, 401)
        code, answer = await self.setup.api("POST", "/api/v1/users/alice/enable",
                                            home=self.homes["adam"])
        self.assertEqual((code, answer["disabled"]), (200, False))
        await self.setup.login("alice")

        # Revoking the device ends its session within 5 s.
        opening, request_id = await self.held_session()
        code, output = await self.setup.admin("revoke-device", "mfp-1")
        self.assertEqual(code, 0, output)
        row = await self.ended_within(5)
        self.assertEqual((row["request_id"], row["end_reason"], row["end_detail"]),
                         (request_id, "revoked", "device revoked"))
        await opening.ended()
        self.assertNotIn("Traceback", self.setup.server.output)
