"""The fault soak: many sessions through the real processes while SIGKILL hits them.

Prosody, the manager (``--role manager``) and the relay (``--role relay``) run
as separate processes, and each device as a ``twistd device-agent`` whose test
approver says YES.  This process plays the terminals (the REST API, then the
relay with :class:`~remotecomm.relay.client.RelayClient`, one page fetched
through the session, then a normal end) and the devices' local web app.
Sessions run a few at a time until ``sessions`` requests were accepted.  At
seeded random points (a number of accepted requests, then a short random
delay) one of the relay, the manager, Prosody or an agent is killed with
SIGKILL and started again.

Once every process is back and every deadline has passed, :meth:`Soak.check`
reads both stores and lists what does not hold: every session ended; each
side that joined has exactly one started and one end log, filed under the
key the relay wrote it with, none duplicated, none left in the relay's
outbox or dead letters (a side the manager admitted but whose relay died
before establishing it has no logs and is closed with its session); a
session that ended ``normal`` had both sides; the relay's connection records
and byte counts match the manager's; no page came back altered; the audit
holds only the refusals a fault explains, each naming a session of the
store; no process printed a traceback.

``tests/e2e/test_soak.py`` runs it small (within the suite's 30 s per test);
``scripts/soak`` runs it as long as asked (``--sessions``, ``--seed``).
"""

from __future__ import annotations

import json
import random
import sqlite3
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from twisted.internet.defer import Deferred, DeferredList, ensureDeferred
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.web import resource, server

from remotecomm.relay import envelope as env
from remotecomm.relay.client import RelayClient
from remotecomm.sessions.lifecycle import END_REASONS
from remotecomm.store.sessions import MANAGER, UNSTARTED_DETAIL
from remotecomm.testing.http import call_api, http_client
from remotecomm.testing.processes import sleep
from remotecomm.testing.servers import PASSWORD, ServerSetup

RELAY_LOST_PAUSE = 4.0  # seconds: past the split setup's lost_after of 3 s
VICTIMS = ("relay", "manager", "prosody", "agent")
UNIT = "soak"
USER = "soak"
APP = "web-server"
PAGE = bytes(range(256)) * 32  # 8 KiB, within one stream window
# Short deadlines, so that what a fault leaves open ends within seconds.
SOAK_CONFIG = ("[sessions]\nallow_test_approver = true\n"
               "approval_timeout = '2s'\njoin_window = '2s'\n")
CALL_TIMEOUT = 3.0       # one REST call
JOIN_TIMEOUT = 4.0       # the terminal's WebSocket to the relay, until established
EXCHANGE_TIMEOUT = 4.0   # one page through the session
# Why a session may end without both sides (or abnormally) when processes are killed.
FAULT_REASONS = {"approval-timeout", "expired", "dropped-device", "dropped-terminal",
                 "relay-restart", "relay-lost", "device-offline", "cancelled", "error",
                 "heartbeat-timeout", "ended-by-device"}
# Relay refusals a fault explains (a side arriving after its session ended elsewhere).
FAULT_REFUSALS = {"join-window-closed", "unknown-session", "token-used", "manager-unavailable"}


class _Page(resource.Resource):
    """The devices' local app: every path answers :data:`PAGE`."""

    isLeaf = True

    def render_GET(self, request):
        request.setHeader(b"content-type", b"application/octet-stream")
        return PAGE


def within(reactor, deferred: Deferred, seconds: float) -> Deferred:
    """Fires as ``deferred`` does, or with ``TimeoutError`` after ``seconds`` (``deferred``
    itself is left alone: it may still fire later)."""
    outer: Deferred = Deferred()

    def done(result):
        if not outer.called:
            outer.callback(result)

    def late():
        if not outer.called:
            outer.errback(TimeoutError(f"no answer within {seconds} s"))

    timer = reactor.callLater(seconds, late)
    deferred.addBoth(done)
    outer.addBoth(lambda result: (timer.cancel() if timer.active() else None, result)[1])
    return outer


@dataclass
class Fault:
    """One process killed and started again."""

    after_sessions: int     # accepted requests when it was killed
    victim: str             # relay, manager, prosody, agent:<device>
    at: float               # seconds into the run
    back_after: float       # seconds from the kill until it was ready again


@dataclass
class SoakFigures:
    """What a soak run did and found."""

    seed: int
    sessions: int = 0                   # requests the manager accepted (terminals' count)
    refused: Counter = field(default_factory=Counter)    # requests not accepted, by code
    outcomes: Counter = field(default_factory=Counter)   # what each terminal saw
    faults: list[Fault] = field(default_factory=list)
    end_reasons: Counter = field(default_factory=Counter)  # from the manager's store
    stored_sessions: int = 0
    logs_filed: int = 0
    audit: Counter = field(default_factory=Counter)
    run_seconds: float = 0.0
    settle_seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    def report(self) -> str:
        """The figures as lines for people."""
        lines = [f"soak seed {self.seed}: {self.sessions} sessions accepted in "
                 f"{self.run_seconds:.1f} s, settled {self.settle_seconds:.1f} s later",
                 "  faults: " + (", ".join(f"{f.victim} after {f.after_sessions} "
                                             f"(back in {f.back_after:.1f} s)"
                                             for f in self.faults) or "none"),
                 f"  terminals saw: {_counts(self.outcomes)}",
                 f"  requests not accepted: {_counts(self.refused) or 'none'}",
                 f"  store: {self.stored_sessions} sessions, {self.logs_filed} logs filed; "
                 f"ended {_counts(self.end_reasons)}",
                 f"  audit: {_counts(self.audit) or 'nothing'}"]
        lines += [f"  PROBLEM: {problem}" for problem in self.problems] or ["  no problems"]
        return "\n".join(lines)


def _counts(counter: Counter) -> str:
    return ", ".join(f"{key} {value}" for key, value in sorted(counter.items()))


class _Terminal:
    """One logged-in terminal of the soak user, calling the REST API in this process."""

    def __init__(self, soak: Soak, number: int):
        self.soak = soak
        self.terminal_id = f"soak-terminal-{number:04d}"
        self.token = ""
        self.rng = random.Random(f"{soak.seed}:{number}")

    async def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        """One REST call (raises if the manager does not answer)."""
        return await call_api(self.soak.http, self.soak.setup.url, method, path,
                              terminal_id=self.terminal_id, token=self.token, body=body,
                              timeout=CALL_TIMEOUT)

    async def login(self) -> None:
        code, answer = await self.call("POST", "/api/v1/login", {
            "user_id": USER, "password": PASSWORD, "terminal_id": self.terminal_id})
        if code != 200:
            raise AssertionError(f"soak login refused: {code} {answer}")
        self.token = answer["token"]


class Soak:
    """One soak run in ``folder``: :meth:`start`, :meth:`run`, :meth:`stop`."""

    def __init__(self, reactor, folder: Path, *, sessions: int = 50, seed: int | None = None,
                 concurrency: int = 4, devices: int = 2, faults: int | None = None):
        self.reactor = reactor
        self.folder = folder
        self.sessions = sessions
        self.seed = seed if seed is not None else random.SystemRandom().randrange(10**6)
        self.rng = random.Random(self.seed)
        self.concurrency = concurrency
        self.device_ids = [f"mfp-{n}" for n in range(1, devices + 1)]
        self.fault_count = faults if faults is not None else max(len(VICTIMS), sessions // 12)
        self.figures = SoakFigures(seed=self.seed)
        self.setup = ServerSetup(reactor, folder, extra_config=SOAK_CONFIG, separate_relay=True)
        self.http = None
        self.terminals: list[_Terminal] = []
        self._accepted = 0        # requests the manager accepted
        self._reserved = 0        # … plus those being asked for now
        self._faults_left = 0     # planned faults that have not struck yet
        self._clients: set[RelayClient] = set()
        self._app_port = None
        self._started_at = 0.0

    # -- processes ----------------------------------------------------------------------

    async def start(self) -> None:
        """Provision, start every process, log the terminals in, wait for the devices."""
        self.setup.provision({UNIT: {"users": [USER], "devices": self.device_ids}})
        self._app_port = await TCP4ServerEndpoint(self.reactor, 0, interface="127.0.0.1") \
            .listen(server.Site(_Page()))
        app_url = f"http://127.0.0.1:{self._app_port.getHost().port}"
        for device_id in self.device_ids:
            self.setup.configure_agent(device_id, {APP: app_url}, test_approver="soak")
        self.http = http_client(self.reactor, self.setup.ca)
        await self.setup.start()
        await self.setup.start_relay()
        for device_id in self.device_ids:
            self.setup.start_agent(device_id)
        self.terminals = [_Terminal(self, n) for n in range(self.concurrency)]
        for terminal in self.terminals:
            await terminal.login()
        for device_id in self.device_ids:
            await self._device_online(device_id, timeout=10)

    async def _device_online(self, device_id: str, timeout: float) -> None:
        deadline = self.reactor.seconds() + timeout
        while self.reactor.seconds() < deadline:
            try:
                _, answer = await self.terminals[0].call("GET", "/api/v1/devices")
                if any(d["device_id"] == device_id and d["online"]
                       for d in answer.get("devices", [])):
                    return
            except Exception:
                pass
            await sleep(self.reactor, 0.1)
        raise AssertionError(f"{device_id} not online within {timeout} s")

    async def stop(self) -> None:
        """End what is still connected and stop every process."""
        for client in list(self._clients):
            client.end()
        await self.setup.stop()
        if self._app_port is not None:
            await self._app_port.stopListening()

    async def _kill_and_restart(self, victim: str) -> str:
        """SIGKILL one process, wait a random moment, start it again until ready."""
        setup = self.setup
        if victim == "relay":
            setup.relay.signal("KILL")
            await setup.relay.ended()
        elif victim == "manager":
            setup.server.signal("KILL")
            await setup.server.ended()
        elif victim == "prosody":
            setup.prosody.kill()
            await setup.prosody.ended()
        else:
            device_id = self.rng.choice(self.device_ids)
            victim = f"agent:{device_id}"
            setup.agents[device_id].signal("KILL")
            await setup.agents[device_id].ended()
        # A killed relay stays down past the manager's lost_after every other time: its
        # sessions then end relay-lost, with the end logs the manager writes for it.
        lost = victim == "relay" and self.rng.random() < 0.5
        await sleep(self.reactor, RELAY_LOST_PAUSE if lost else self.rng.uniform(0, 0.5))
        if victim == "relay":
            await setup.start_relay()
        elif victim == "manager":
            await setup.start()
        elif victim == "prosody":
            await setup.start_prosody()
        else:
            agent = setup.start_agent(victim.partition(":")[2])
            await agent.wait_for_output("announced to", timeout=10)
        return victim

    # -- the run --------------------------------------------------------------------------

    async def run(self, settle_timeout: float = 15) -> SoakFigures:
        """Start, run the sessions and the faults, settle, check; the figures."""
        await self.start()
        self._started_at = self.reactor.seconds()
        workers = [ensureDeferred(self._terminal_loop(t)) for t in self.terminals]
        chaos = ensureDeferred(self._chaos())
        await DeferredList(workers + [chaos], fireOnOneErrback=True, consumeErrors=True)
        self.figures.run_seconds = self.reactor.seconds() - self._started_at
        for client in list(self._clients):
            client.end()
        settled = self.reactor.seconds()
        await self._settle(settle_timeout)
        self.figures.settle_seconds = self.reactor.seconds() - settled
        self.check()
        return self.figures

    def _plan(self) -> list[tuple[int, str]]:
        """When (after how many accepted requests) each fault strikes, and whom: every kind
        of process once in a random order, then random ones."""
        victims = self.rng.sample(VICTIMS, len(VICTIMS))
        victims += [self.rng.choice(VICTIMS) for _ in range(self.fault_count - len(VICTIMS))]
        victims = victims[:self.fault_count]
        first, last = 2, max(3, self.sessions - 4)
        points = sorted(self.rng.sample(range(first, last), min(len(victims), last - first)))
        return list(zip(points, victims))

    async def _chaos(self) -> None:
        plan = self._plan()
        self._faults_left = len(plan)
        try:
            await self._strike(plan)
        finally:
            self._faults_left = 0  # whatever happened, no session waits for a fault now

    async def _strike(self, plan: list[tuple[int, str]]) -> None:
        accepted_at_last = -1
        for point, victim in plan:
            # At least one session between two faults (a fault can hold every session up).
            while self._accepted < max(point, accepted_at_last + 1):
                if self._accepted >= self.sessions:
                    return
                await sleep(self.reactor, 0.02)
            accepted_at_last = self._accepted
            await sleep(self.reactor, self.rng.uniform(0, 0.3))
            killed_at = self.reactor.seconds()
            victim = await self._kill_and_restart(victim)
            self.figures.faults.append(Fault(
                after_sessions=self._accepted, victim=victim,
                at=round(killed_at - self._started_at, 2),
                back_after=self.reactor.seconds() - killed_at))
            self._faults_left -= 1

    async def _terminal_loop(self, terminal: _Terminal) -> None:
        while self._reserved < self.sessions:
            if self.sessions - self._reserved <= self._faults_left:
                # The last sessions wait for the faults still to come, one each at least:
                # sessions that run faster than the faults never leave a fault out.
                await sleep(self.reactor, 0.02)
                continue
            self._reserved += 1
            request_id = await self._request(terminal)
            if request_id is None:
                self._reserved -= 1
                await sleep(self.reactor, 0.2)
                continue
            self._accepted += 1
            self.figures.sessions += 1
            outcome = await self._one_session(terminal, request_id)
            self.figures.outcomes[outcome] += 1

    async def _request(self, terminal: _Terminal) -> str | None:
        device_id = terminal.rng.choice(self.device_ids)
        try:
            code, answer = await terminal.call("POST", "/api/v1/sessions",
                                               {"device_id": device_id, "app_id": APP})
        except Exception:
            self.figures.refused["manager-unreachable"] += 1
            return None
        if code != 202:
            self.figures.refused[answer.get("code", str(code))] += 1
            return None
        return answer["request_id"]

    async def _one_session(self, terminal: _Terminal, request_id: str) -> str:
        """Wait for approval, join, fetch the page, hold a moment, end; what happened."""
        approved = await self._approval(terminal, request_id)
        if isinstance(approved, str):
            return approved
        frames: list[bytes] = []
        client = RelayClient(self.reactor, approved["relay_url"], "terminal",
                             approved["session_id"], approved["terminal_token"],
                             self.setup.ca, frames.append)
        self._clients.add(client)
        client.closed.addBoth(lambda result: (self._clients.discard(client), result)[1])
        joining = client.connect()
        try:
            await within(self.reactor, joining, JOIN_TIMEOUT)
        except Exception:
            joining.addCallback(lambda _: client.end())  # if it gets through after all
            joining.addErrback(lambda _: None)
            return "join-failed"
        outcome = await self._fetch_page(client, frames, approved["session_id"])
        if outcome == "page":
            await sleep(self.reactor, terminal.rng.uniform(0, 0.3))
        try:
            closed = await within(self.reactor, client.end(), CALL_TIMEOUT)
        except TimeoutError:
            return outcome + ", end-timeout"
        return outcome + (", ended normally" if closed.code == 1000 else
                          f", closed {closed.code}")

    async def _approval(self, terminal: _Terminal, request_id: str) -> dict | str:
        """Poll until approved (the answer with the token) or not: why not."""
        deadline = self.reactor.seconds() + 8
        while self.reactor.seconds() < deadline:
            try:
                code, answer = await terminal.call("GET", f"/api/v1/sessions/{request_id}")
            except Exception:
                await sleep(self.reactor, 0.1)
                continue
            if code == 200 and answer.get("terminal_token"):
                return answer
            if code != 200:
                return f"poll refused ({answer.get('code', code)})"
            if answer.get("state") not in ("pending", "allocating", "approved"):
                return f"not approved ({answer.get('end_reason') or answer.get('state')})"
            await sleep(self.reactor, 0.05)
        return "approval-timeout (terminal)"

    async def _fetch_page(self, client: RelayClient, frames: list[bytes],
                          session_id: str) -> str:
        client.send(env.encode_open(1, APP, session_id,
                                    b"GET /page HTTP/1.1\r\nHost: soak\r\n\r\n"))
        client.send(env.encode_end(1))
        deadline = self.reactor.seconds() + EXCHANGE_TIMEOUT
        while self.reactor.seconds() < deadline:
            mine = [f for f in map(env.decode, frames) if f.stream_id == 1]
            if mine and mine[-1].kind in (env.END, env.RESET):
                break
            if client.closed.called:
                return "page interrupted"
            await sleep(self.reactor, 0.02)
        else:
            return "page timeout"
        if mine[-1].kind == env.RESET:
            return "page reset"
        answer = b"".join(f.data for f in mine if f.kind == env.DATA)
        head, _, body = answer.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200") or body != PAGE:
            self.figures.problems.append(
                f"session {session_id}: the page came back altered ({head[:40]!r}, "
                f"{len(body)} bytes)")
            return "page altered"
        return "page"

    # -- afterwards -----------------------------------------------------------------------

    def _manager_db(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.setup.folder / "data" / "manager.sqlite3")
        db.row_factory = sqlite3.Row
        return db

    def _relay_db(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.setup.folder / "relay-data" / "relay.sqlite3")
        db.row_factory = sqlite3.Row
        return db

    def _unsettled(self) -> list[str]:
        with self._manager_db() as db:
            open_sessions = db.execute(
                "SELECT count(*) FROM sessions WHERE state != 'ended'").fetchone()[0]
        with self._relay_db() as db:
            pending = db.execute(
                "SELECT count(*) FROM log_outbox WHERE acked_us IS NULL").fetchone()[0]
            connected = db.execute(
                "SELECT count(*) FROM relay_connections WHERE ended_us IS NULL").fetchone()[0]
        return [f"{count} {what}" for count, what in (
            (open_sessions, "sessions not ended"), (pending, "logs not filed"),
            (connected, "relay connections open")) if count]

    async def _settle(self, timeout: float) -> None:
        """Wait until nothing is open or unfiled (or ``timeout``; :meth:`check` reports)."""
        deadline = self.reactor.seconds() + timeout
        while self.reactor.seconds() < deadline and self._unsettled():
            await sleep(self.reactor, 0.2)

    def check(self) -> list[str]:
        """Compare both stores and the logs; the problems (also in the figures)."""
        problems = self.figures.problems
        problems += [f"after settling: {what}" for what in self._unsettled()]
        with self._manager_db() as db:
            sessions = {r["request_id"]: dict(r) for r in db.execute("SELECT * FROM sessions")}
            connections = [dict(r) for r in db.execute("SELECT * FROM session_connections")]
            audit = [dict(r) for r in db.execute("SELECT * FROM audit")]
        with self._relay_db() as db:
            outbox = [dict(r) for r in db.execute("SELECT * FROM log_outbox")]
            dead = db.execute("SELECT count(*) FROM dead_letters").fetchone()[0]
            relay_connections = {(r["session_id"], r["side"]): dict(r)
                                 for r in db.execute("SELECT * FROM relay_connections")}
        figures = self.figures
        figures.stored_sessions = len(sessions)
        figures.end_reasons = Counter(s["end_reason"] or s["state"] for s in sessions.values())
        if len(sessions) < figures.sessions:
            problems.append(f"{figures.sessions} requests accepted, {len(sessions)} stored")
        if dead:
            problems.append(f"{dead} logs in the relay's dead letters")

        by_session: dict[str, list[dict]] = {}
        manager_keys: list[str] = []
        started = 0
        for row in connections:
            by_session.setdefault(row["request_id"], []).append(row)
            name = f"{row['request_id']} {row['side']}"
            for_lost_relay = row["ended_by"] == MANAGER
            if row["started_log_key"] is None:
                # Admitted, then the relay died before the side was established: no logs,
                # closed with the session (the documented record), or ended by the manager
                # for a relay it lost.
                if not for_lost_relay and (row["ended_log_key"] is not None or
                                           row["ended_us"] is None or
                                           row["end_detail"] != UNSTARTED_DETAIL):
                    problems.append(f"{name}: never started, but not closed as such")
                continue
            started += 1
            if row["ended_log_key"] is None:
                problems.append(f"{name}: started, but no end log")
            # A side the manager ended for a lost relay: the relay's own end log is the
            # late one kept beside the manager's.
            relay_end = row["late_log_key"] if for_lost_relay else row["ended_log_key"]
            manager_keys += [key for key in (row["started_log_key"], relay_end) if key]
        figures.logs_filed = len(manager_keys)
        for request_id, session in sessions.items():
            reason = session["end_reason"]
            sides = by_session.get(request_id, [])
            if reason not in END_REASONS:
                problems.append(f"{request_id}: ended {reason!r}, not a documented reason")
            elif reason == "normal" and (len(sides) != 2 or not all(
                    side["ended_normally"] for side in sides)):
                problems.append(f"{request_id}: ended normal without two normal sides")
            elif reason != "normal" and reason not in FAULT_REASONS:
                problems.append(f"{request_id}: ended {reason}, which no fault explains")
        relay_keys = [entry["log_key"] for entry in outbox]
        if len(set(manager_keys)) != len(manager_keys):
            problems.append("the manager holds a log key twice")
        if set(manager_keys) != set(relay_keys):
            problems.append(f"logs the relay wrote but the manager lacks: "
                            f"{sorted(set(relay_keys) - set(manager_keys))[:5]}; logs the "
                            f"manager holds the relay never wrote: "
                            f"{sorted(set(manager_keys) - set(relay_keys))[:5]}")
        session_ids = {s["session_id"]: s["request_id"] for s in sessions.values()
                       if s["session_id"]}
        for (session_id, side), relay_row in relay_connections.items():
            request_id = session_ids.get(session_id)
            mine = [r for r in by_session.get(request_id, []) if r["side"] == side]
            if not mine:
                problems.append(f"relay connection {session_id} {side}: not in the manager's "
                                f"record")
            elif _relay_bytes(mine[0]) != (relay_row["bytes_from_side"],
                                           relay_row["bytes_to_side"]):
                problems.append(f"{request_id} {side}: bytes differ between relay and manager")
        if started != len(relay_connections):
            problems.append(f"{started} started connection records at the manager, "
                            f"{len(relay_connections)} at the relay")

        for row in audit:
            detail = json.loads(row["detail"] or "{}")
            code = detail.get("reason", "")
            figures.audit[f"{row['kind']} {code}".strip()] += 1
            if row["kind"] != "relay-admission-refused" or code not in FAULT_REFUSALS:
                problems.append(f"audit {row['kind']} {detail}: no fault explains it")
            elif detail.get("session_id") and detail["session_id"] not in session_ids:
                problems.append(f"audit {row['kind']} names session {detail['session_id']}, "
                                f"which the store does not hold")
        for log in sorted(self.setup.folder.glob("*.log")):
            if "Traceback" in log.read_text(errors="replace"):
                problems.append(f"{log.name} holds a traceback")
        return problems



def _relay_bytes(record: dict) -> tuple:
    """The bytes the relay logged for a side: its late log's, if the manager ended the side
    for a lost relay."""
    if record["ended_by"] == MANAGER:
        return record["late_bytes_from_side"], record["late_bytes_to_side"]
    return record["bytes_from_side"], record["bytes_to_side"]


def main(argv: list[str] | None = None) -> int:
    """``scripts/soak``: run one soak, print its figures; exit 1 if a problem was found."""
    import argparse
    import shutil
    import tempfile

    from twisted.internet import reactor, task

    parser = argparse.ArgumentParser(prog="scripts/soak", description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=200, help="requests to run (200)")
    parser.add_argument("--seed", type=int, help="repeat a run (default: a random seed)")
    parser.add_argument("--concurrency", type=int, default=4, help="terminals at once (4)")
    parser.add_argument("--devices", type=int, default=2, help="device agents (2)")
    parser.add_argument("--faults", type=int, help="processes killed (default: one per 12 "
                                                   "sessions, at least 4)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder and logs")
    arguments = parser.parse_args(argv)
    for name in ("sessions", "concurrency", "devices"):
        if getattr(arguments, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if arguments.concurrency > 10:
        parser.error("--concurrency must be at most 10 (the default sessions per user)")
    folder = Path(tempfile.mkdtemp(prefix="remotecomm-soak-"))
    soak = Soak(reactor, folder / "run", sessions=arguments.sessions, seed=arguments.seed,
                concurrency=arguments.concurrency, devices=arguments.devices,
                faults=arguments.faults)
    print(f"soak seed {soak.seed}: {arguments.sessions} sessions, work folder {folder}",
          flush=True)
    began = time.monotonic()

    async def go(reactor):
        try:
            return await soak.run()
        finally:
            await soak.stop()

    figures: list[SoakFigures] = []
    try:
        task.react(lambda r: ensureDeferred(go(r)).addCallback(figures.append), [])
    except SystemExit as e:
        if e.code:
            print(f"the soak itself failed (exit {e.code}); logs in {folder}")
            return 1
    finally:
        if figures and not figures[0].problems and not arguments.keep:
            shutil.rmtree(folder, ignore_errors=True)
    print(figures[0].report())
    print(f"  whole run {time.monotonic() - began:.0f} s"
          + (f"; work folder kept: {folder}" if arguments.keep or figures[0].problems else ""))
    return 1 if figures[0].problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
