"""Several relays on PostgreSQL, shown: placement, a killed relay, its return, a drain.

``scripts/cluster-demo`` runs :func:`run_cluster` on 127.0.0.1 with a
PostgreSQL database of its own, one manager (``twistd remotecomm --role
manager``), three relays (``--role relay``, each its own process and outbox),
Prosody and 50 bench devices in this process (:mod:`bench.system`), and 30
sessions running.  Then:

1. bytes go both ways through every session, checked;
2. one relay is killed with SIGKILL: each of its sessions ends ``relay-lost``
   exactly once, the others keep forwarding (checked again), and new
   sessions go to the survivors;
3. the killed relay is started again: it rejoins, files its late logs, and
   takes new sessions;
4. another relay is drained (``remotecomm admin relay drain``, the real CLI):
   new sessions go elsewhere; once its sessions end it is listed ``drained``;
5. it is resumed (``remotecomm admin relay resume``) and takes new sessions;
6. every session still open ends normally.

At the end every session in the store has two started and two end logs
from its relay, or ended ``relay-lost`` with the end logs the manager wrote
on the relay's behalf; no session is open.  :class:`ClusterFigures` holds
what the run saw; a check that fails raises :class:`ClusterProblem`.
``tests/e2e/test_cluster.py`` runs the same code smaller (two relays, ten
sessions).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import text
from twisted.internet.defer import ensureDeferred, gatherResults

from bench.system import BenchSystem, Session
from remotecomm.store.engine import open_database
from remotecomm.testing import databases
from remotecomm.testing.processes import sleep

PROVIDER_ADMIN = "olivia"
CHUNK = 16 * 1024


class ClusterProblem(Exception):
    """Something the demonstration checks did not hold."""


@dataclass
class ClusterFigures:
    """What one run saw."""

    relays: list[str]
    placed_at_first: dict[str, int] = field(default_factory=dict)
    bytes_checked: int = 0
    killed: str = ""
    lost_sessions: int = 0
    lost_logged: int = 0
    after_kill: dict[str, int] = field(default_factory=dict)
    after_restart: dict[str, int] = field(default_factory=dict)
    drained: str = ""
    after_drain: dict[str, int] = field(default_factory=dict)
    after_resume: dict[str, int] = field(default_factory=dict)
    sessions: int = 0
    ended: dict[str, int] = field(default_factory=dict)
    complete_by_relay: int = 0
    ended_by_manager: int = 0
    late_relay_logs: int = 0
    open_sessions: int = -1
    seconds: float = 0.0

    def lines(self) -> list[str]:
        """The figures, for people."""
        def per_node(counts):
            return ", ".join(f"{node} {counts.get(node, 0)}" for node in self.relays)
        return [
            f"relays: {', '.join(self.relays)}",
            f"first sessions placed: {per_node(self.placed_at_first)}",
            f"bytes checked through the relays: {self.bytes_checked}",
            f"killed {self.killed} (SIGKILL): {self.lost_sessions} sessions ended relay-lost, "
            f"the manager logged it {self.lost_logged} time(s)",
            f"new sessions after the kill: {per_node(self.after_kill)}",
            f"new sessions after {self.killed} restarted: {per_node(self.after_restart)}",
            f"drained {self.drained}; new sessions after the drain: "
            f"{per_node(self.after_drain)}",
            f"new sessions after {self.drained} resumed: {per_node(self.after_resume)}",
            f"sessions in the store: {self.sessions}; "
            + ", ".join(f"{reason} {count}" for reason, count in sorted(self.ended.items())),
            f"  with two started and two end logs from their relay: {self.complete_by_relay}",
            f"  relay-lost with both end logs written by the manager: {self.ended_by_manager} "
            f"(the relay's own late end logs kept beside them: {self.late_relay_logs})",
            f"open sessions: {self.open_sessions}",
            f"took {self.seconds:.1f} s",
        ]


class Cluster:
    """The processes of one demonstration and the checks it makes."""

    def __init__(self, reactor, folder: Path, store_url: str, relays: int, devices: int,
                 terminals: int = 2):
        self.reactor = reactor
        self.nodes = [f"relay-{chr(ord('a') + n)}" for n in range(relays)]
        self.system = BenchSystem(reactor, folder, tls=True, devices=devices,
                                  terminals=terminals, relays=tuple(self.nodes),
                                  store_url=store_url)
        self.setup = self.system.setup
        self.admin_home = folder / "admin-terminal"
        self.engine = open_database(store_url)
        self.figures = ClusterFigures(relays=self.nodes)
        self.running: list[Session] = []

    async def start(self) -> None:
        await self.system.start(provider_admin=PROVIDER_ADMIN)
        await self.setup.login(PROVIDER_ADMIN, home=self.admin_home)
        await self.wait(lambda: all(self.node_states().get(n) == "active" for n in self.nodes),
                        20, "every relay registered")

    async def stop(self) -> None:
        self.engine.dispose()
        await self.system.stop()

    # -- reading the store (the demonstration's own checks) ---------------------------------

    def query(self, sql: str, **values) -> list:
        with self.engine.connect() as connection:
            return list(connection.execute(text(sql), values))

    def node_states(self) -> dict[str, str]:
        return dict(self.query("SELECT node, state FROM relay_nodes"))

    def placement(self, sessions: list[Session]) -> dict[str, int]:
        """Sessions per relay node, as the manager stored them."""
        ids = {s.request_id for s in sessions}
        return dict(Counter(node for request_id, node in self.query(
            "SELECT request_id, relay_node FROM sessions") if request_id in ids))

    def node_of(self, session: Session) -> str:
        (row,) = self.query("SELECT relay_node FROM sessions WHERE request_id = :r",
                            r=session.request_id)
        return row[0]

    async def wait(self, check, seconds: float, what: str):
        deadline = self.reactor.seconds() + seconds
        while True:
            value = check()
            if value:
                return value
            if self.reactor.seconds() > deadline:
                raise ClusterProblem(f"{what}: not within {seconds} s")
            await sleep(self.reactor, 0.1)

    # -- sessions ---------------------------------------------------------------------------

    async def open_sessions(self, count: int) -> list[Session]:
        """``count`` new sessions, approved, joined by both sides."""
        sessions = await self.system.prepare(count, concurrency=8)
        await gatherResults([ensureDeferred(self.system.join(s)) for s in sessions])
        self.running.extend(sessions)
        return sessions

    async def exchange(self, sessions: list[Session], seconds: float = 15) -> int:
        """Random bytes both ways through every session, each checked where it arrives;
        how many."""
        received: dict[tuple[str, str], bytearray] = {}
        sent: dict[tuple[str, str], bytes] = {}
        for session in sessions:
            for name, sender, receiver in (("up", session.terminal, session.device_end),
                                           ("down", session.device_end, session.terminal)):
                key = (session.request_id, name)
                buffer = received[key] = bytearray()
                receiver.on_data = buffer.extend
                sent[key] = os.urandom(2 * CHUNK)
                sender.send(sent[key][:CHUNK])
                sender.send(sent[key][CHUNK:])
        await self.wait(lambda: all(len(received[k]) >= len(sent[k]) for k in sent), seconds,
                        f"bytes through {len(sessions)} sessions")
        for key, data in sent.items():
            if bytes(received[key]) != data:
                raise ClusterProblem(f"session {key[0]}: the bytes {key[1]} arrived changed")
        total = sum(len(data) for data in sent.values())
        self.figures.bytes_checked += total
        return total

    async def end(self, sessions: list[Session]) -> None:
        """The terminal ends each normally; the device closes when the manager tells it."""
        await gatherResults([ensureDeferred(self.system.end(s)) for s in sessions])
        for session in sessions:
            self.running.remove(session)

    # -- the demonstration ------------------------------------------------------------------

    async def run(self, sessions: int) -> ClusterFigures:
        started = self.reactor.seconds()
        more = max(2, sessions // 5)
        first = await self.open_sessions(sessions)
        self.figures.placed_at_first = self.placement(first)
        if len(self.figures.placed_at_first) != len(self.nodes):
            raise ClusterProblem(f"the first sessions did not spread over every relay: "
                                 f"{self.figures.placed_at_first}")
        await self.exchange(self.running)
        await self.kill_one(more)
        await self.restart_it(more)
        await self.drain_another(more)
        await self.resume_it(more)
        await self.end(list(self.running))
        await self.wait(self.all_filed, 20, "every session ended, every log filed")
        self.count()
        self.figures.seconds = self.reactor.seconds() - started
        return self.figures

    async def kill_one(self, more: int) -> None:
        killed = self.figures.killed = self.nodes[1]
        on_it = [s for s in self.running if self.node_of(s) == killed]
        self.setup.relays[killed].signal("KILL")
        await self.setup.relays[killed].ended()
        await gatherResults([s.terminal.closed for s in on_it])
        await self.wait(lambda: self.node_states()[killed] == "lost", 15, f"{killed} lost")

        def ended_relay_lost():
            return self.query("SELECT COUNT(*) FROM sessions WHERE relay_node = :n AND "
                              "end_reason = 'relay-lost'", n=killed)[0][0] == len(on_it)

        await self.wait(ended_relay_lost, 10, f"the sessions on {killed} ending relay-lost")
        for session in on_it:
            self.running.remove(session)
        others = self.query("SELECT COUNT(*) FROM sessions WHERE relay_node != :n AND "
                            "end_reason = 'relay-lost'", n=killed)[0][0]
        if others:
            raise ClusterProblem(f"{others} sessions on other relays ended relay-lost")
        self.figures.lost_sessions = len(on_it)
        self.figures.lost_logged = self.manager_log().count(f"relay node {killed} is lost")
        await self.exchange(self.running)  # the others keep forwarding
        new = await self.open_sessions(more)
        self.figures.after_kill = self.placement(new)
        if killed in self.figures.after_kill:
            raise ClusterProblem(f"a new session went to the lost relay {killed}")

    async def admin(self, *args: str) -> str:
        """``remotecomm admin ARGS`` as the provider admin (the real CLI); its output."""
        code, output = await self.setup.cli("admin", *args, home=self.admin_home)
        if code != 0:
            raise ClusterProblem(f"remotecomm admin {' '.join(args)}: {output}")
        return output

    async def new_sessions_reach(self, node: str, more: int, what: str) -> dict[str, int]:
        """``more`` new sessions, at least one of them on ``node`` (bytes checked through
        them); where they went."""
        new = await self.open_sessions(more)
        placed = self.placement(new)
        if not placed.get(node):
            raise ClusterProblem(f"the {what} {node} took no new session: {placed}")
        await self.exchange(new)
        return placed

    async def restart_it(self, more: int) -> None:
        killed = self.figures.killed
        await self.setup.start_relay(killed)
        await self.wait(lambda: self.node_states()[killed] == "active", 10,
                        f"{killed} active again")
        self.figures.after_restart = await self.new_sessions_reach(killed, more, "restarted")

    async def drain_another(self, more: int) -> None:
        drained = self.figures.drained = self.nodes[-1] if len(self.nodes) > 2 else \
            self.nodes[0]
        await self.admin("relay", "drain", drained)
        new = await self.open_sessions(more)
        self.figures.after_drain = self.placement(new)
        if drained in self.figures.after_drain:
            raise ClusterProblem(f"a new session went to the draining {drained}")
        await self.end([s for s in self.running if self.node_of(s) == drained])
        deadline = self.reactor.seconds() + 15
        while not any(line.split()[:2] == [drained, "drained"]
                      for line in (await self.admin("relays")).splitlines()):
            if self.reactor.seconds() > deadline:
                raise ClusterProblem(f"{drained} was not listed drained within 15 s")
            await sleep(self.reactor, 0.3)

    async def resume_it(self, more: int) -> None:
        drained = self.figures.drained
        await self.admin("relay", "resume", drained)
        self.figures.after_resume = await self.new_sessions_reach(drained, more, "resumed")

    def manager_log(self) -> str:
        return (self.setup.folder / "server.log").read_text(errors="replace")

    def all_filed(self) -> bool:
        open_sessions = self.query("SELECT COUNT(*) FROM sessions WHERE state != 'ended'")[0][0]
        unfiled = self.query("SELECT COUNT(*) FROM session_connections "
                             "WHERE ended_log_key IS NULL OR started_log_key IS NULL")[0][0]
        late_missing = self.query("SELECT COUNT(*) FROM session_connections "
                                  "WHERE ended_by = 'manager' AND late_log_key IS NULL")[0][0]
        return open_sessions == 0 and unfiled == 0 and late_missing == 0

    def count(self) -> None:
        figures = self.figures
        rows = self.query("SELECT request_id, state, end_reason FROM sessions")
        figures.sessions = len(rows)
        figures.ended = dict(Counter(row.end_reason for row in rows))
        figures.open_sessions = sum(1 for row in rows if row.state != "ended")
        sides: dict[str, list] = {}
        for side in self.query("SELECT * FROM session_connections"):
            sides.setdefault(side.request_id, []).append(side)
        for row in rows:
            records = sides.get(row.request_id, [])
            started = sum(1 for r in records if r.started_log_key)
            by_relay = sum(1 for r in records if r.ended_log_key and r.ended_by == "relay")
            by_manager = sum(1 for r in records if r.ended_by == "manager")
            if row.end_reason == "relay-lost" and started == 2 and by_manager == 2:
                figures.ended_by_manager += 1
                figures.late_relay_logs += sum(1 for r in records if r.late_log_key)
            elif row.end_reason != "relay-lost" and started == 2 and by_relay == 2:
                figures.complete_by_relay += 1
            else:
                raise ClusterProblem(f"session {row.request_id} ({row.end_reason}) has "
                                     f"{started} started logs, {by_relay} end logs from its "
                                     f"relay and {by_manager} from the manager")
        if figures.open_sessions:
            raise ClusterProblem(f"{figures.open_sessions} sessions are still open")
        if figures.lost_logged != 1:
            raise ClusterProblem(f"the manager logged {figures.killed} lost "
                                 f"{figures.lost_logged} times")


async def run_cluster(reactor, folder: Path, server_url: str, *, relays: int = 3,
                      devices: int = 50, sessions: int = 30) -> ClusterFigures:
    """The demonstration on a new database of the PostgreSQL server at ``server_url``
    (dropped afterwards); its figures, or :class:`ClusterProblem`."""
    store_url = databases.create(server_url)
    try:
        cluster = Cluster(reactor, folder, store_url, relays, devices)
        try:
            await cluster.start()
            return await cluster.run(sessions)
        finally:
            await cluster.stop()
    finally:
        databases.drop(store_url)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="scripts/cluster-demo", description=__doc__.split(
        "\n\n")[0])
    parser.add_argument("--relays", type=int, default=3, choices=range(2, 9),
                        metavar="N", help="relay processes (2 to 8; default 3)")
    parser.add_argument("--devices", type=int, default=50, help="bench devices (default 50)")
    parser.add_argument("--sessions", type=int, default=30,
                        help="sessions running at first (default 30)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the work folder (the processes' data and logs)")
    args = parser.parse_args(argv)
    if not 1 <= args.devices <= 500 or not 1 <= args.sessions <= 1000:
        parser.error("--devices must be 1-500 and --sessions 1-1000")
    if args.sessions < args.relays or \
            args.sessions + 4 * max(2, args.sessions // 5) > 2 * args.devices:
        parser.error("need at least one session per relay, and devices for every session "
                     "(two terminals each)")
    server = databases.postgresql_server()
    folder = Path(tempfile.mkdtemp(prefix="remotecomm-cluster-"))
    print(f"cluster demo in {folder}: PostgreSQL, one manager, {args.relays} relays, "
          f"Prosody, {args.devices} bench devices, {args.sessions} sessions", flush=True)
    from twisted.internet import reactor
    outcome: dict = {}

    async def demonstrate():
        try:
            outcome["figures"] = await run_cluster(reactor, folder, server,
                                                   relays=args.relays, devices=args.devices,
                                                   sessions=args.sessions)
        except ClusterProblem as problem:
            outcome["problem"] = str(problem)
        except Exception as error:
            outcome["problem"] = f"{error!r}"

    reactor.callWhenRunning(lambda: ensureDeferred(demonstrate()).addBoth(
        lambda _: reactor.stop()))
    reactor.run()
    if "figures" in outcome:
        print("\n".join(outcome["figures"].lines()))
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
        return 0
    print(f"cluster demo failed: {outcome.get('problem', 'interrupted')}\n"
          f"the processes' data and logs are in {folder}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
