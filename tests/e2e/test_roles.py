"""End to end: ``twistd remotecomm --role manager`` and ``--role relay`` as separate processes.

Each role has its own database file; the relay calls the manager over the
authenticated HTTPS API.  The manager is stopped while the relay has end
logs to push and started again: every log is filed exactly once and the
session's records are right.
"""

import json
import sqlite3
from pathlib import Path

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from remotecomm.testing.http import LocalPortClient, http_client
from remotecomm.testing.processes import ServerProcess, free_port, sleep
from remotecomm.testing.servers import ServerSetup


def rows(database: Path, query: str) -> list[dict]:
    with sqlite3.connect(database) as db:
        db.row_factory = sqlite3.Row
        return [dict(row) for row in db.execute(query)]


class RoleSplitTests(TestCase):
    """Manager and relay apart, with a device agent, the simulator and the CLI."""

    timeout = 30

    async def setUp(self):
        self.setup = ServerSetup(reactor, Path(self.mktemp()), separate_relay=True,
                                 extra_config="[sessions]\nallow_test_approver = true\n")
        self.addCleanup(self.setup.stop)
        self.setup.provision({"acme": {"users": ["alice"], "devices": ["mfp-1"]}})
        self.app_ports = {app: free_port() for app in ("web-server", "remote-panel")}
        self.setup.configure_agent("mfp-1", self.setup.app_urls(self.app_ports),
                                   test_approver="bench")
        await self.setup.start()
        await self.setup.start_relay()
        self.agent = self.setup.start_agent("mfp-1")
        simulator, _ = self.setup.start_simulator("mfp-1", {"olga": "panel password"},
                                                  app_ports=self.app_ports)
        await simulator.wait_for_output("remote-panel on")
        await self.setup.login("alice")
        await self.agent.wait_for_output("announced to rms.localhost")
        await self.setup.wait_device("mfp-1", online=True)
        self.manager_db = self.setup.folder / "data" / "manager.sqlite3"
        self.relay_db = self.setup.folder / "relay-data" / "relay.sqlite3"

    async def relay_pending(self) -> float:
        response = await http_client(reactor).get(
            f"http://127.0.0.1:{self.setup.relay_metrics_port}/metrics")
        for line in (await response.text()).splitlines():
            if line.startswith("remotecomm_relay_logs_pending "):
                return float(line.split()[1])
        raise AssertionError("no logs-pending metric")

    async def test_separate_processes_and_log_delivery_across_a_manager_restart(self):
        # Each role has its own database file, and only its own.
        self.assertTrue(self.relay_db.exists())
        self.assertFalse((self.setup.folder / "data" / "relay.sqlite3").exists())
        self.assertFalse((self.setup.folder / "relay-data" / "manager.sqlite3").exists())
        # A session through the separate relay: admission and started logs via the API.
        opening = self.setup.cli_process("open", "mfp-1", "web-server")
        await opening.wait_for_output("Scripts: ", timeout=15)
        # (the terminal joined the relay the manager stored below: the session works there)
        session = json.loads((self.setup.terminal_home / "sessions" / "mfp-1.json").read_text())
        # The relay made the session ID (S145–S147) and the manager stored what it returned.
        self.assertIn("allocated on relay-a", self.setup.relay.output)
        (stored,) = rows(self.manager_db, "SELECT session_id, relay_node, relay_url FROM sessions")
        self.assertEqual(stored, {"session_id": session["session_id"], "relay_node": "relay-a",
                                  "relay_url": f"wss://127.0.0.1:{self.setup.relay_port}/relay"})
        response = await LocalPortClient(reactor, session).request("GET", "/api/status")
        self.assertEqual(response.code, 200)
        await response.content()
        for _ in range(50):
            if rows(self.manager_db, "SELECT state FROM sessions")[0]["state"] == "active":
                break
            await sleep(reactor, 0.1)
        self.assertEqual(rows(self.manager_db, "SELECT state FROM sessions")[0]["state"],
                         "active")
        # The manager goes away; the session ends; the relay keeps the end logs.
        await self.setup.server.stop()
        opening.signal("INT")
        await opening.ended()
        for _ in range(50):
            if await self.relay_pending() == 2:
                break
            await sleep(reactor, 0.1)
        self.assertEqual(await self.relay_pending(), 2)
        unacked = rows(self.relay_db, "SELECT log_key FROM log_outbox WHERE acked_us IS NULL")
        self.assertEqual(sorted(r["log_key"] for r in unacked),
                         [f"{session['session_id']}:device:ended",
                          f"{session['session_id']}:terminal:ended"])
        # The manager comes back: the relay files both, once each.
        first_manager = self.setup.server
        self.setup.server = ServerProcess(reactor, "remotecomm", [
            "--config", str(self.setup.config), "--role", "manager"], cwd=self.setup.folder)
        self.addCleanup(lambda: (self.setup.folder / "first-manager.log").write_text(
            first_manager.output))
        await self.setup.server.wait_ready(self.setup.url + "/readyz", self.setup.ca)
        for _ in range(100):
            if await self.relay_pending() == 0:
                break
            await sleep(reactor, 0.1)
        self.assertEqual(await self.relay_pending(), 0)
        (row,) = rows(self.manager_db, "SELECT * FROM sessions")
        self.assertEqual((row["state"], row["end_reason"]), ("ended", "normal"))
        records = {r["side"]: r for r in rows(self.manager_db,
                                              "SELECT * FROM session_connections")}
        self.assertEqual({side: (r["ended_normally"], r["end_reason"], r["ended_log_key"])
                          for side, r in records.items()},
                         {side: (1, "normal", f"{session['session_id']}:{side}:ended")
                          for side in ("device", "terminal")})
        self.assertGreater(records["terminal"]["bytes_from_side"], 0)
        filed = self.setup.server.output.count("filed ended log")
        self.assertEqual(filed, 2, self.setup.server.output[-3000:])
        self.assertEqual(rows(self.relay_db,
                              "SELECT COUNT(*) AS n FROM log_outbox WHERE acked_us IS NULL"),
                         [{"n": 0}])

    async def test_the_relay_api_refuses_callers_without_the_secret(self):
        client = http_client(reactor, self.setup.ca)
        for headers in ({}, {"Authorization": "Bearer not-the-secret"}):
            response = await client.post(self.setup.url + "/internal/v1/relay/logs",
                                         json={"key": "x"}, headers=headers)
            self.assertEqual(response.code, 401)
            self.assertEqual((await response.json())["code"], "unauthenticated")
        # Audited, once a minute per address (the second refusal adds no record).
        refused = rows(self.setup.folder / "data" / "manager.sqlite3",
                       "SELECT source_address FROM audit WHERE kind = 'relay-api-refused'")
        self.assertEqual(refused, [{"source_address": "127.0.0.1"}])

    async def wait_until(self, check, seconds: float, what: str):
        started = reactor.seconds()
        while reactor.seconds() - started < seconds:
            value = await check() if callable(check) else check
            if value:
                return value
            await sleep(reactor, 0.1)
        self.fail(f"{what} did not happen within {seconds} s")

    async def test_a_rejected_log_is_set_aside_and_later_logs_are_filed(self):
        """A log the manager rejects goes to the relay's dead letters with the reason; the
        logs after it are filed; /metrics and /readyz show it."""
        bogus = {"key": "X" * 32 + ":device:started", "kind": "started",
                 "session_id": "X" * 32, "request_id": "Q" * 22, "side": "device",
                 "party_id": "mfp-1", "at_us": 1, "relay_node": "relay-a", "normal": None,
                 "reason": None, "bytes_from_side": None, "bytes_to_side": None}
        with sqlite3.connect(self.relay_db) as db:
            db.execute("INSERT INTO log_outbox (log_key, body, created_us, attempts) "
                       "VALUES (?, ?, 1, 0)", (bogus["key"], json.dumps(bogus)))
        opening = self.setup.cli_process("open", "mfp-1", "web-server")
        await opening.wait_for_output("Scripts: ", timeout=15)

        async def active():
            return rows(self.manager_db, "SELECT state FROM sessions")[0]["state"] == "active"

        await self.wait_until(active, 10, "the session becoming active")
        opening.signal("INT")
        await opening.ended()

        async def ended():
            return rows(self.manager_db, "SELECT state FROM sessions")[0]["state"] == "ended"

        await self.wait_until(ended, 10, "the session ending")
        (row,) = rows(self.manager_db, "SELECT end_reason FROM sessions")
        self.assertEqual(row["end_reason"], "normal")
        (dead,) = rows(self.relay_db, "SELECT * FROM dead_letters")
        self.assertEqual(dead["log_key"], bogus["key"])
        self.assertIn("names no known session", dead["reason"])
        response = await http_client(reactor).get(
            f"http://127.0.0.1:{self.setup.relay_metrics_port}/metrics")
        self.assertIn("remotecomm_relay_logs_dead 1.0", await response.text())
        response = await http_client(reactor, self.setup.ca).get(
            f"https://127.0.0.1:{self.setup.relay_port}/readyz")
        self.assertEqual((response.code, (await response.json())["dead_letters"]), (200, 1))

    async def test_a_killed_relay_is_lost_and_its_sessions_end_once(self):
        """SIGKILL on the relay: its session ends relay-lost once; new sessions work again
        when the relay is back, and its late logs reopen nothing."""
        opening = self.setup.cli_process("open", "mfp-1", "web-server")
        await opening.wait_for_output("Scripts: ", timeout=15)

        async def state():
            return rows(self.manager_db, "SELECT state, end_reason FROM sessions "
                                         "ORDER BY requested_us DESC")[0]

        await self.wait_until(lambda: _is(state, "active"), 10, "the session becoming active")
        self.setup.relay.signal("KILL")
        await self.setup.relay.ended()
        self.assertEqual(await opening.ended(), 17)  # the terminal saw its session lost
        await self.wait_until(lambda: _is(state, "ended"), 8, "the manager ending the session")
        self.assertEqual((await state())["end_reason"], "relay-lost")
        (node,) = rows(self.manager_db, "SELECT node, state FROM relay_nodes")
        self.assertEqual(node, {"node": "relay-a", "state": "lost"})
        # No relay: a new request cannot be placed (it ends as an error, not locked).
        code, output = await self.setup.cli("open", "mfp-1", "web-server")
        self.assertNotEqual(code, 0, output)
        # The relay comes back: it files relay-restart end logs, which reopen nothing.
        await self.setup.start_relay()
        await self.wait_until(lambda: _node_active(self.manager_db), 5, "the relay's heartbeat")
        opening = self.setup.cli_process("open", "mfp-1", "web-server")
        await opening.wait_for_output("Scripts: ", timeout=15)
        lost = rows(self.manager_db, "SELECT * FROM sessions WHERE end_reason = 'relay-lost'")
        self.assertEqual(len(lost), 1)
        self.assertEqual(self.setup.server.output.count("sessions end relay-lost"), 1)
        opening.signal("INT")
        await opening.ended()


async def _is(state, wanted: str) -> bool:
    return (await state())["state"] == wanted


async def _node_active(database) -> bool:
    return rows(database, "SELECT state FROM relay_nodes")[0]["state"] == "active"
