"""Tests for remotecomm.relay.placement: fresh session IDs (S146)."""

import base64

from twisted.trial.unittest import SynchronousTestCase

from remotecomm.relay.placement import IRelayPlacement, LocalRelayPlacement, new_session_id


class PlacementTests(SynchronousTestCase):
    """Every request gets a new, unguessable session ID and the relay's URL."""

    def request(self, n=0):
        return {"request_id": f"r-{n}", "device_id": "mfp-1", "terminal_id": "t-1",
                "app_id": "web-server"}

    def test_session_ids_are_base64url_with_at_least_128_bits(self):
        """The ID travels in HTTP headers and carries 192 random bits."""
        session_id = new_session_id()
        self.assertRegex(session_id, r"^[A-Za-z0-9_-]+$")
        self.assertGreaterEqual(len(base64.urlsafe_b64decode(session_id)) * 8, 128)

    def test_every_request_gets_a_new_id(self):
        """IDs are never reused, even for the same request."""
        placement = LocalRelayPlacement("relay-1", "wss://relay.test/relay")
        ids = {self.successResultOf(placement.allocate(self.request()))["session_id"]
               for _ in range(1000)}
        self.assertEqual(len(ids), 1000)

    def test_answer_is_plain_values(self):
        """The result is a dict of strings (it crosses processes later)."""
        placement = LocalRelayPlacement("relay-1", "wss://relay.test/relay")
        self.assertTrue(IRelayPlacement.providedBy(placement))
        answer = self.successResultOf(placement.allocate(self.request()))
        self.assertEqual(set(answer), {"session_id", "relay_node", "relay_url"})
        self.assertEqual((answer["relay_node"], answer["relay_url"]),
                         ("relay-1", "wss://relay.test/relay"))
        self.assertTrue(all(isinstance(v, str) for v in answer.values()))

    def test_memory_is_bounded(self):
        """The relay forgets the oldest allocations past its bound."""
        placement = LocalRelayPlacement("relay-1", "wss://relay.test/relay", max_remembered=10)
        for n in range(50):
            placement.allocate(self.request(n))
        self.assertEqual(len(placement.allocated), 10)
