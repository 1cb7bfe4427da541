"""Tests for remotecomm.portal.events: a live stream's lifetime, keepalives and bounds."""

from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from remotecomm.portal.events import KEEPALIVE, LiveUpdates, TooManyStreams


class _Request:
    """What a stream uses of a twisted.web request."""

    def __init__(self):
        self.written, self.finished, self.headers = [], False, {}
        self.channel = self
        self._gone = Deferred()

    def setTimeout(self, timeout):
        self.timeout = timeout

    def setHeader(self, name, value):
        self.headers[name] = value

    def write(self, data):
        self.written.append(data)

    def finish(self):
        self.finished = True
        self._gone.callback(None)

    def notifyFinish(self):
        return self._gone


class StreamTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.live = LiveUpdates(self.clock, interval=1, lifetime=60, per_user=2, total=3)
        self.state = "a"

    def open(self, user="alice"):
        request = _Request()
        self.successResultOf(Deferred.fromCoroutine(self.live.stream(
            request, user, lambda: succeed(self.state), seen="a")))
        return request

    def test_idle_streams_keep_alive_and_end_with_their_lifetime(self):
        request = self.open()
        for _ in range(int(KEEPALIVE)):
            self.clock.advance(1)
        self.assertIn(b": still here\n\n", request.written)
        self.assertFalse(request.finished)
        self.clock.advance(60)
        self.assertTrue(request.finished)
        self.assertEqual(self.live.open_streams, 0)

    def test_a_change_is_said_once_and_ends_the_stream(self):
        request = self.open()
        self.state = "b"
        self.clock.advance(1)
        self.assertEqual(request.written[-1], b"event: change\ndata: \n\n")
        self.assertTrue(request.finished)

    def test_streams_are_bounded_per_user_and_in_all(self):
        self.open(), self.open()
        self.failureResultOf(Deferred.fromCoroutine(self.live.stream(
            _Request(), "alice", lambda: succeed("a"), seen="a")), TooManyStreams)
        self.open("bob")
        self.failureResultOf(Deferred.fromCoroutine(self.live.stream(
            _Request(), "carl", lambda: succeed("a"), seen="a")), TooManyStreams)
