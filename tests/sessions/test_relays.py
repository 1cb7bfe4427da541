"""Tests for remotecomm.sessions.relays: placement on live nodes and lost relays."""

from pathlib import Path

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from remotecomm.relay.gateway import (Allocation, AllocationRequest, DrainReport, EndResult,
                                      Heartbeat, NodeDraining, PeerUnavailable, SessionLog)
from remotecomm.sessions import records as records_of_sessions
from remotecomm.sessions.relay_api import ManagerForRelay
from remotecomm.sessions.relays import NoRelayAvailable, RelayDirectory, RelayError
from remotecomm.store import relays as relay_rows, sessions as session_rows
from remotecomm.store.audit import audit_records
from remotecomm.store.schema import relay_nodes, sessions
from remotecomm.testing.fakes import migrated_inline_store

S = 1_000_000
T0 = 1_800_000_000
REQUEST = AllocationRequest(request_id="R" * 22, device_id="mfp-1",
                            terminal_id="t-" + "0" * 32, app_id="web-server")


class Node:
    """A relay node that allocates (or refuses)."""

    def __init__(self, name, refuse=False):
        self.name, self.refuse, self.calls = name, refuse, 0

    drained = False
    unreachable = False

    def drain(self):
        if self.unreachable:
            return fail(PeerUnavailable("connection refused"))
        self.drained = True
        return succeed(DrainReport(relay_node=self.name, open_sessions=2))

    def end_session(self, order):
        self.ended = getattr(self, "ended", []) + [(order.session_id, order.reason)]
        return succeed(EndResult(session_id=order.session_id, was_open=True))

    def allocate(self, request):
        self.calls += 1
        if self.refuse:
            return fail(NodeDraining("draining"))
        return succeed(Allocation(session_id="S" * 32, relay_node=self.name,
                                  relay_url=f"wss://{self.name}.test/relay"))


class DirectoryTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.clock.advance(T0)
        self.store = migrated_inline_store(Path(self.mktemp()) / "manager.sqlite3")
        self.addCleanup(self.store.engine.dispose)
        self.nodes = {}
        self.directory = RelayDirectory(self.store, self.clock,
                                        lambda name, url: self.nodes[name], lost_after=30)

    def beat(self, name, open_sessions=0, state="active", capacity=None):
        self.successResultOf(Deferred.fromCoroutine(self.directory.record_heartbeat(Heartbeat(
            relay_node=name, api_url=f"https://{name}.test", public_url=f"wss://{name}.test/r",
            state=state, open_sessions=open_sessions, counters=(), capacity=capacity))))

    def allocate(self):
        return Deferred.fromCoroutine(self.directory.allocate(REQUEST))

    def place(self, node, count=1, state="active", prefix=None):
        """``count`` sessions placed on ``node``; their request IDs."""
        placed = []
        for _ in range(count):
            self.placed = getattr(self, "placed", 0) + 1
            request_id = (prefix or f"{node}{state}")[:10].ljust(10, "x") + f"{self.placed:012d}"
            self.store.run_sync(lambda c, r=request_id: c.execute(sessions.insert().values(
                request_id=r, state=state, unit_id="acme", user_id="alice",
                terminal_id="t-1", device_id="mfp-1", app_id="web-server",
                relay_node=node, session_id=r + "s" * 10, terminal_token_delivered=True,
                approved_by_test_approver=False, requested_us=T0 * S,
                lifetime_deadline_us=(T0 + 3600) * S, join_deadline_us=(T0 + 60) * S)))
            placed.append(request_id)
        return placed

    def test_the_least_loaded_live_node_gets_the_session(self):
        """Load is what the manager placed on a node (approved and active sessions), not
        the heartbeat's count, which lags."""
        self.nodes = {"a": Node("a"), "b": Node("b")}
        self.beat("a", open_sessions=0)
        self.beat("b", open_sessions=9)
        self.place("a", 5)
        self.place("b", 1, state="approved")
        self.place("b", 7, state="ended")
        self.assertEqual(self.successResultOf(self.allocate()).relay_node, "b")

    def test_load_is_sessions_over_capacity_and_a_full_node_is_skipped(self):
        self.nodes = {"a": Node("a"), "b": Node("b")}
        self.beat("a", capacity=100)
        self.beat("b", capacity=4)
        self.place("a", 10)
        self.place("b", 1)
        self.assertEqual(self.successResultOf(self.allocate()).relay_node, "a")  # 0.1 < 0.25
        self.place("b", 3)  # full
        self.place("a", 60)
        self.assertEqual(self.successResultOf(self.allocate()).relay_node, "a")
        self.assertEqual(self.nodes["b"].calls, 0)
        listed = {n["node"]: n for n in self.successResultOf(
            Deferred.fromCoroutine(self.directory.nodes()))}
        self.assertEqual((listed["b"]["placed_sessions"], listed["b"]["capacity"],
                          listed["b"]["load"]), (4, 4, 1.0))
        self.place("a", 30)  # full too
        error = self.failureResultOf(self.allocate(), NoRelayAvailable).value
        self.assertEqual(str(error), "of 2 live relay nodes, 0 refused or did not answer and "
                                     "2 were full")

    def test_sessions_placed_but_not_yet_stored_count_until_settled(self):
        """A burst of placements spreads over the nodes even before the approvals that
        store them commit."""
        self.nodes = {"a": Node("a"), "b": Node("b")}
        self.beat("a")
        self.beat("b")
        first = self.successResultOf(self.allocate()).relay_node
        second = self.successResultOf(self.allocate()).relay_node
        self.assertEqual({first, second}, {"a", "b"})
        self.directory.settle(first)
        self.directory.settle(second)
        self.assertEqual(self.successResultOf(self.allocate()).relay_node, "a")

    def test_a_refusing_node_passes_to_the_next(self):
        self.nodes = {"a": Node("a", refuse=True), "b": Node("b")}
        self.beat("a")
        self.beat("b", open_sessions=9)
        self.assertEqual(self.successResultOf(self.allocate()).relay_node, "b")

    def test_no_live_node_fails_clearly(self):
        self.nodes = {"a": Node("a")}
        self.beat("a")
        self.clock.advance(31)
        error = self.failureResultOf(self.allocate(), NoRelayAvailable).value
        self.assertEqual(str(error), "no relay node is live (none heard from within 30 s and "
                                     "not draining)")
        self.beat("a", state="draining")
        self.failureResultOf(self.allocate(), NoRelayAvailable)

    def test_nodes_are_listed_with_their_sessions_and_liveness(self):
        self.beat("a", open_sessions=3)
        self.clock.advance(31)
        self.beat("b", open_sessions=1)
        listed = self.successResultOf(Deferred.fromCoroutine(self.directory.nodes()))
        self.assertEqual([(n["node"], n["state"], n["open_sessions"], n["alive"])
                          for n in listed], [("a", "active", 3, False), ("b", "active", 1, True)])

    def test_a_drained_node_takes_no_new_sessions_at_once(self):
        self.nodes = {"a": Node("a"), "b": Node("b")}
        self.beat("a")
        self.beat("b", open_sessions=9)
        answer = self.successResultOf(Deferred.fromCoroutine(
            self.directory.drain("a", "pat", "127.0.0.1")))
        self.assertEqual(answer, {"node": "a", "state": "draining", "open_sessions": 2})
        self.assertTrue(self.nodes["a"].drained)
        self.assertEqual(self.successResultOf(self.allocate()).relay_node, "b")
        (record,) = self.store.run_sync(audit_records, "relay-drained")
        self.assertEqual((record["actor"], record["detail"]["relay_node"]), ("pat", "a"))

    def test_a_drained_node_is_resumed_without_a_restart(self):
        self.nodes = {"a": Node("a"), "b": Node("b")}
        self.nodes["a"].resume = lambda: succeed(DrainReport(relay_node="a", open_sessions=2))
        self.beat("a")
        self.beat("b")
        self.place("b", 5)
        self.successResultOf(Deferred.fromCoroutine(
            self.directory.drain("a", "pat", "127.0.0.1")))
        self.assertEqual(self.successResultOf(self.allocate()).relay_node, "b")
        answer = self.successResultOf(Deferred.fromCoroutine(
            self.directory.resume("a", "pat", "127.0.0.1")))
        self.assertEqual(answer, {"node": "a", "state": "active", "open_sessions": 2})
        self.assertEqual(self.successResultOf(self.allocate()).relay_node, "a")
        (record,) = self.store.run_sync(audit_records, "relay-resumed")
        self.assertEqual((record["actor"], record["detail"]["relay_node"]), ("pat", "a"))

    def test_a_draining_node_reports_when_it_is_empty_once(self):
        self.nodes = {"a": Node("a")}
        self.beat("a")
        (request_id,) = self.place("a", 1)
        self.successResultOf(Deferred.fromCoroutine(
            self.directory.drain("a", "pat", "127.0.0.1")))
        self.beat("a", state="draining", open_sessions=1)
        self.beat("a", state="draining", open_sessions=0)  # joined sides gone, still placed
        self.assertEqual(self.store.run_sync(audit_records, "relay-emptied"), [])
        self.store.run_sync(lambda c: c.execute(sessions.update().where(
            sessions.c.request_id == request_id).values(state="ended", end_reason="normal")))
        self.beat("a", state="draining", open_sessions=0)
        self.beat("a", state="draining", open_sessions=0)
        (record,) = self.store.run_sync(audit_records, "relay-emptied")
        self.assertEqual(record["detail"]["relay_node"], "a")
        (listed,) = self.successResultOf(Deferred.fromCoroutine(self.directory.nodes()))
        self.assertEqual((listed["state"], listed["drained"]), ("draining", True))
        self.beat("a")  # restarted: takes sessions again
        (listed,) = self.successResultOf(Deferred.fromCoroutine(self.directory.nodes()))
        self.assertEqual((listed["state"], listed["drained"]), ("active", False))

    def test_draining_an_unknown_or_unreachable_node_says_so(self):
        self.nodes = {"a": Node("a")}
        self.nodes["a"].unreachable = True
        self.beat("a")
        for name, code in (("zz", "relay-not-found"), ("a", "relay-unreachable")):
            error = self.failureResultOf(Deferred.fromCoroutine(
                self.directory.drain(name, "pat", "127.0.0.1")), RelayError).value
            self.assertEqual(error.code, code)
        self.assertEqual(self.successResultOf(self.allocate()).relay_node, "a")  # still in

    def test_a_silent_node_is_lost_once_and_its_sessions_end_relay_lost(self):
        self.beat("a")
        for request_id, state in (("R" * 22, "active"), ("Q" * 22, "approved"),
                                  ("P" * 22, "ended")):
            self.store.run_sync(lambda c, r=request_id, st=state: c.execute(
                sessions.insert().values(
                    request_id=r, state=st, unit_id="acme", user_id="alice",
                    terminal_id="t-1", device_id="mfp-1", app_id="web-server",
                    relay_node="a", session_id=r + "s" * 10, terminal_token_delivered=True,
                    approved_by_test_approver=False, requested_us=T0 * S,
                    lifetime_deadline_us=(T0 + 3600) * S, join_deadline_us=(T0 + 60) * S)))
        self.clock.advance(20)
        self.assertEqual(self.successResultOf(Deferred.fromCoroutine(
            self.directory.end_sessions_of_lost_nodes())), [])
        self.clock.advance(11)
        ended = self.successResultOf(Deferred.fromCoroutine(
            self.directory.end_sessions_of_lost_nodes()))
        self.assertEqual(sorted(row.request_id for row in ended), ["Q" * 22, "R" * 22])
        states = dict(self.store.run_sync(lambda c: c.execute(
            sessions.select().with_only_columns(sessions.c.request_id,
                                                sessions.c.end_reason)).all()))
        self.assertEqual(states, {"R" * 22: "relay-lost", "Q" * 22: "relay-lost", "P" * 22: None})
        self.assertEqual(self.successResultOf(Deferred.fromCoroutine(
            self.directory.end_sessions_of_lost_nodes())), [])  # once
        (node,) = self.store.run_sync(lambda c: c.execute(relay_nodes.select()).all())
        self.assertEqual(node.state, "lost")
        self.beat("a")  # it comes back
        (node,) = self.store.run_sync(lambda c: c.execute(relay_nodes.select()).all())
        self.assertEqual(node.state, "active")

    def test_a_lost_relays_sides_get_end_logs_from_the_manager_and_late_logs_reopen_nothing(
            self):
        self.beat("a")
        self.beat("b")
        (lost,) = self.place("a", 1)
        (kept,) = self.place("b", 1)
        for request_id in (lost, kept):
            for side in ("device", "terminal"):
                self.store.run_sync(session_rows.insert_connection_record, request_id, side,
                                    "mfp-1" if side == "device" else "t-1")
            self.store.run_sync(session_rows.record_connection_started, request_id, "device",
                                (T0 + 1) * S, f"{request_id}{'s' * 10}:device:started")
            self.store.run_sync(relay_rows.record_counters, [
                (request_id + "s" * 10, "device", 700, 300)])
        self.clock.advance(20)
        self.beat("b")
        self.clock.advance(11)
        self.successResultOf(Deferred.fromCoroutine(self.directory.end_sessions_of_lost_nodes()))
        records = self.store.run_sync(session_rows.connection_records, lost)
        session_id = lost + "s" * 10
        for side, record in records.items():
            self.assertEqual((record.ended_by, record.end_reason, record.ended_normally,
                              record.ended_log_key),
                             ("manager", "relay-lost", False,
                              f"{session_id}:{side}:ended-by-manager"))
            self.assertIn("written by the manager", record.end_detail)
        self.assertEqual(records["device"].bytes_from_side, 700)  # the last counters
        (row,) = self.store.run_sync(lambda c: c.execute(sessions.select().where(
            sessions.c.request_id == lost)).all())
        self.assertEqual((row.state, row.end_reason, row.bytes_from_device),
                         ("ended", "relay-lost", 700))
        # Sessions on other relays are untouched.
        self.assertTrue(all(r.ended_log_key is None for r in self.store.run_sync(
            session_rows.connection_records, kept).values()))
        # The relay comes back with its own logs: a late started fills in, a late end is
        # kept beside the manager's, twice is once, and nothing reopens.
        manager = ManagerForRelay(self.store, self.clock, devices=None, relays=self.directory)
        late = [SessionLog(key=f"{session_id}:terminal:started", kind="started",
                           session_id=session_id, request_id=lost, side="terminal",
                           party_id="t-1", at_us=(T0 + 2) * S, relay_node="a"),
                SessionLog(key=f"{session_id}:device:ended", kind="ended",
                           session_id=session_id, request_id=lost, side="device",
                           party_id="mfp-1", at_us=(T0 + 40) * S, relay_node="a",
                           normal=False, reason="relay-restart", bytes_from_side=900,
                           bytes_to_side=400)]
        for entry in late + late:
            self.successResultOf(Deferred.fromCoroutine(manager.file_log(entry)))
        records = self.store.run_sync(session_rows.connection_records, lost)
        self.assertEqual(records["terminal"].started_us, (T0 + 2) * S)
        device = records["device"]
        self.assertEqual((device.ended_by, device.end_reason, device.bytes_from_side),
                         ("manager", "relay-lost", 700))
        self.assertEqual((device.late_log_key, device.late_end_reason,
                          device.late_bytes_from_side, device.late_bytes_to_side,
                          device.late_ended_us),
                         (f"{session_id}:device:ended", "relay-restart", 900, 400,
                          (T0 + 40) * S))
        (row,) = self.store.run_sync(lambda c: c.execute(sessions.select().where(
            sessions.c.request_id == lost)).all())
        self.assertEqual((row.state, row.end_reason), ("ended", "relay-lost"))
        record = self.store.run_sync(records_of_sessions.one_record, lost, "acme")
        self.assertEqual(record["connections"]["device"]["end_written_by"], "manager")
        self.assertEqual(record["connections"]["device"]["late_relay_log"], {
            "ended_at_us": (T0 + 40) * S, "end_reason": "relay-restart",
            "bytes_from_side": 900, "bytes_to_side": 400})

    def test_a_node_back_at_another_address_gets_a_new_client(self):
        made, closed = [], []

        class Client(Node):
            def close(self):
                closed.append(self.name)

        def connect(name, url):
            made.append(url)
            return Client(name)

        directory = RelayDirectory(self.store, self.clock, connect, lost_after=30)
        self.directory = directory
        self.beat("a")
        self.successResultOf(self.allocate())
        self.successResultOf(self.allocate())
        self.store.run_sync(lambda c: c.execute(relay_nodes.update().values(
            api_url="https://a-moved.test")))
        self.successResultOf(self.allocate())
        self.assertEqual(made, ["https://a.test", "https://a-moved.test"])
        self.assertEqual(closed, ["a"])

    def test_a_relay_back_from_a_partition_ends_what_the_manager_ended_for_it(self):
        """Silent but not dead (cut off from the manager): when its heartbeats come through
        again it is told to end the sessions that ended relay-lost meanwhile, no others."""
        self.nodes = {"a": Node("a")}
        self.beat("a")
        (lost,) = self.place("a", 1)
        self.clock.advance(31)
        self.successResultOf(Deferred.fromCoroutine(self.directory.end_sessions_of_lost_nodes()))
        (later,) = self.place("a", 1, state="ended")  # ended otherwise: not ordered
        self.beat("a")
        self.assertEqual(self.nodes["a"].ended, [(lost + "s" * 10, "relay-lost")])
        self.beat("a")  # once
        self.assertEqual(len(self.nodes["a"].ended), 1)

    def test_two_managers_end_a_lost_relays_sessions_once(self):
        """Whichever manager notices first ends them; the other finds nothing to do."""
        other = RelayDirectory(self.store, self.clock, lambda name, url: None, lost_after=30)
        self.beat("a")
        (request_id,) = self.place("a", 1)
        self.store.run_sync(session_rows.insert_connection_record, request_id, "device",
                            "mfp-1")
        self.clock.advance(31)
        first = self.successResultOf(Deferred.fromCoroutine(
            other.end_sessions_of_lost_nodes()))
        second = self.successResultOf(Deferred.fromCoroutine(
            self.directory.end_sessions_of_lost_nodes()))
        self.assertEqual(([r.request_id for r in first], second), ([request_id], []))
        (record,) = self.store.run_sync(session_rows.connection_records, request_id).values()
        self.assertEqual(record.ended_by, "manager")

    def test_a_manager_that_just_started_calls_nobody_lost(self):
        """Nodes are not lost for the silence of a manager that was down itself."""
        self.beat("a")
        self.clock.advance(3600)
        restarted = RelayDirectory(self.store, self.clock, lambda name, url: None,
                                   lost_after=30)
        self.assertEqual(self.successResultOf(Deferred.fromCoroutine(
            restarted.end_sessions_of_lost_nodes())), [])
        (node,) = self.store.run_sync(lambda c: c.execute(relay_nodes.select()).all())
        self.assertEqual(node.state, "active")
