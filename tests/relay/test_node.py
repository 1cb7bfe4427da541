"""Tests for remotecomm.relay.node: the relay makes a fresh session ID for every request (S146)."""

import base64

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from remotecomm.relay.core import RelayCore
from remotecomm.relay.gateway import AllocationRequest, IRelayForManager, NodeDraining
from remotecomm.relay.node import RelayNode, new_session_id


def request(n=0) -> AllocationRequest:
    return AllocationRequest(request_id=f"request-{n:016d}", device_id="mfp-1",
                             terminal_id="t-" + "0" * 32, app_id="web-server")


class RelayNodeTests(SynchronousTestCase):
    """Every request gets a new, unguessable session ID and the node's URL."""

    def node(self, **kwargs) -> RelayNode:
        return RelayNode(RelayCore(Clock(), None, None), "relay-1", "wss://relay.test/relay",
                         **kwargs)

    def test_session_ids_are_base64url_with_at_least_128_bits(self):
        """The ID travels in HTTP headers and carries 192 random bits."""
        session_id = new_session_id()
        self.assertRegex(session_id, r"^[A-Za-z0-9_-]+$")
        self.assertGreaterEqual(len(base64.urlsafe_b64decode(session_id)) * 8, 128)

    def test_every_request_gets_a_new_id(self):
        """IDs are never reused, even for the same request."""
        node = self.node()
        ids = {self.successResultOf(node.allocate(request())).session_id for _ in range(1000)}
        self.assertEqual(len(ids), 1000)

    def test_answer_names_the_node_and_its_public_url(self):
        """The manager stores what the relay returned: ID, node and URL."""
        node = self.node()
        self.assertTrue(IRelayForManager.providedBy(node))
        answer = self.successResultOf(node.allocate(request()))
        self.assertEqual((answer.relay_node, answer.relay_url),
                         ("relay-1", "wss://relay.test/relay"))
        self.assertEqual(node.allocated[answer.session_id], request())

    def test_memory_is_bounded(self):
        """The node forgets the oldest allocations past its bound."""
        node = self.node(max_remembered=10)
        for n in range(50):
            node.allocate(request(n))
        self.assertEqual(len(node.allocated), 10)

    def test_a_draining_node_allocates_nothing(self):
        """After drain, allocation fails with NodeDraining; the report counts open sessions."""
        node = self.node()
        report = self.successResultOf(node.drain())
        self.assertEqual((report.relay_node, report.open_sessions), ("relay-1", 0))
        self.failureResultOf(node.allocate(request()), NodeDraining)

    def test_ending_an_unknown_session_says_it_was_not_open(self):
        from remotecomm.relay.gateway import EndOrder
        result = self.successResultOf(self.node().end_session(
            EndOrder(session_id=new_session_id(), reason="revoked")))
        self.assertFalse(result.was_open)


class CapacityTests(SynchronousTestCase):
    def test_a_full_node_refuses_new_sessions(self):
        core = RelayCore(Clock(), None, None)
        node = RelayNode(core, "relay-1", "wss://relay.test/relay", capacity=1)
        self.successResultOf(node.allocate(request(1)))  # allocated, nobody joined yet
        core.sessions["S" * 32] = object()  # one session connected: the node is full
        error = self.failureResultOf(node.allocate(request(2)), NodeDraining).value
        self.assertIn("is full (1 sessions)", str(error))
        del core.sessions["S" * 32]
        self.successResultOf(node.allocate(request(3)))
