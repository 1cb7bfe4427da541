"""Tests for remotecomm.sessions.relays: placement on live nodes and lost relays."""

from pathlib import Path

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from remotecomm.relay.gateway import (Allocation, AllocationRequest, DrainReport, Heartbeat,
                                      NodeDraining, PeerUnavailable)
from remotecomm.sessions.relays import NoRelayAvailable, RelayDirectory, RelayError
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

    def beat(self, name, open_sessions=0, state="active"):
        self.successResultOf(Deferred.fromCoroutine(self.directory.record_heartbeat(Heartbeat(
            relay_node=name, api_url=f"https://{name}.test", public_url=f"wss://{name}.test/r",
            state=state, open_sessions=open_sessions, counters=()))))

    def allocate(self):
        return Deferred.fromCoroutine(self.directory.allocate(REQUEST))

    def test_the_least_loaded_live_node_gets_the_session(self):
        self.nodes = {"a": Node("a"), "b": Node("b")}
        self.beat("a", open_sessions=5)
        self.beat("b", open_sessions=1)
        self.assertEqual(self.successResultOf(self.allocate()).relay_node, "b")

    def test_a_refusing_node_passes_to_the_next(self):
        self.nodes = {"a": Node("a", refuse=True), "b": Node("b")}
        self.beat("a")
        self.beat("b", open_sessions=9)
        self.assertEqual(self.successResultOf(self.allocate()).relay_node, "b")

    def test_no_live_node_fails_clearly(self):
        self.nodes = {"a": Node("a")}
        self.beat("a")
        self.clock.advance(31)
        self.failureResultOf(self.allocate(), NoRelayAvailable)
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
