"""Tests for remotecomm.streams.credit: the same flow control at both ends of a stream."""

from twisted.trial.unittest import SynchronousTestCase

from remotecomm.relay.envelope import INITIAL_WINDOW, MAX_DATA
from remotecomm.streams.credit import WINDOW_BATCH, ReceiveWindow, SendWindow


class SendWindowTests(SynchronousTestCase):
    """Data goes out within credit, in frames of at most MAX_DATA; the rest waits."""

    def setUp(self):
        self.sent = []
        self.window = SendWindow(self.sent.append, initial=10)

    def test_split_at_the_edge_of_credit(self):
        self.assertFalse(self.window.send(b"a" * 15))
        self.assertEqual(self.sent, [b"a" * 10])
        self.assertTrue(self.window.blocked)
        self.assertFalse(self.window.send(b"b"))  # behind what waits, in order
        self.assertTrue(self.window.grant(6))
        self.assertEqual(b"".join(self.sent), b"a" * 15 + b"b")
        self.assertFalse(self.window.blocked)

    def test_frames_are_at_most_max_data(self):
        window = SendWindow(self.sent.append)
        window.send(b"x" * (MAX_DATA * 2 + 1))
        self.assertEqual([len(piece) for piece in self.sent], [MAX_DATA, MAX_DATA, 1])
        self.assertEqual(window.credit, INITIAL_WINDOW - 2 * MAX_DATA - 1)

    def test_clear_drops_what_waits(self):
        self.window.send(b"a" * 20)
        self.window.clear()
        self.window.grant(100)
        self.assertEqual(self.sent, [b"a" * 10])


class ReceiveWindowTests(SynchronousTestCase):
    """Overruns are caught; credit goes back in batches."""

    def test_overrun(self):
        window = ReceiveWindow(initial=100)
        self.assertTrue(window.received(100))
        self.assertFalse(window.received(1))

    def test_credit_returns_in_batches(self):
        window = ReceiveWindow()
        window.received(WINDOW_BATCH * 2)
        self.assertEqual(window.consumed(WINDOW_BATCH - 1), 0)
        self.assertEqual(window.consumed(1), WINDOW_BATCH)
        self.assertEqual(window.consumed(0), 0)
        self.assertEqual(window.credit, INITIAL_WINDOW - WINDOW_BATCH)
