"""Tests for remotecomm.xmpp.stream: refusing while down, IQ timeouts, reconnect delays."""

from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase
from twisted.words.protocols.jabber import error, xmlstream
from twisted.words.xish import domish

from remotecomm.testing.xmpp import PipeConnection
from remotecomm.xmpp.stream import NotConnected, UnknownIqHandler, XmppConnector, XmppStream


def payload() -> domish.Element:
    return domish.Element(("urn:test", "ping"))


class StreamTests(SynchronousTestCase):
    """IQ requests are never queued and never wait forever."""

    def setUp(self):
        self.clock = Clock()
        self.stream = XmppStream(xmlstream.XmlStreamFactory(xmlstream.Authenticator()),
                                 self.clock, iq_timeout=5)
        self.connection = PipeConnection(self.stream)

    def test_requests_refused_while_down(self):
        """Before the stream is up, a request fails at once and nothing is queued."""
        self.failureResultOf(self.stream.request_iq("peer.test", payload()), NotConnected)
        with self.assertRaises(NotConnected):
            self.stream.send(domish.Element((None, "presence")))
        self.connection.connect()
        self.assertEqual(self.connection.take(), [])

    def test_request_answered(self):
        """A result from the addressed peer fires the request."""
        self.connection.connect()
        d = self.stream.request_iq("peer.test", payload())
        [iq] = self.connection.take()
        self.assertEqual((iq["type"], iq["to"]), ("set", "peer.test"))
        self.assertEqual(len(iq["id"]), 16)
        self.connection.receive(f"<iq type='result' from='peer.test' id='{iq['id']}'/>")
        self.assertEqual(self.successResultOf(d)["type"], "result")

    def test_answer_from_another_peer_is_ignored(self):
        """Someone else replying with the right ID cannot answer for the peer."""
        self.connection.connect()
        d = self.stream.request_iq("peer.test", payload())
        [iq] = self.connection.take()
        self.connection.receive(f"<iq type='result' from='mallory.test' id='{iq['id']}'/>")
        self.assertNoResult(d)
        self.connection.receive(f"<iq type='result' from='peer.test' id='{iq['id']}'/>")
        self.successResultOf(d)

    def test_error_answer(self):
        """An error reply fails the request with the stanza error."""
        self.connection.connect()
        d = self.stream.request_iq("peer.test", payload())
        [iq] = self.connection.take()
        self.connection.receive(
            f"<iq type='error' from='peer.test' id='{iq['id']}'><error type='wait'>"
            f"<service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>")
        failure = self.failureResultOf(d, error.StanzaError)
        self.assertEqual((failure.value.condition, failure.value.type),
                         ("service-unavailable", "wait"))

    def test_request_times_out(self):
        """No answer within the timeout fails the request."""
        self.connection.connect()
        d = self.stream.request_iq("peer.test", payload())
        self.clock.advance(4.9)
        self.assertNoResult(d)
        self.clock.advance(0.1)
        self.failureResultOf(d, xmlstream.TimeoutError)

    def test_pending_requests_fail_when_the_stream_drops(self):
        """A lost connection fails what was waiting as NotConnected (what senders retry on),
        and later requests are refused."""
        self.connection.connect()
        d = self.stream.request_iq("peer.test", payload())
        self.connection.disconnect()
        self.failureResultOf(d, NotConnected)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.failureResultOf(self.stream.request_iq("peer.test", payload()), NotConnected)

    def test_unknown_requests_get_an_error(self):
        """An IQ nobody handles is answered service-unavailable, never left waiting."""
        UnknownIqHandler().setHandlerParent(self.stream)
        self.connection.connect()
        self.connection.receive("<iq type='get' from='peer.test' to='me.test' id='q1'>"
                                "<query xmlns='urn:unknown'/></iq>")
        [reply] = self.connection.take()
        self.assertEqual((reply["type"], reply["id"], reply["to"]), ("error", "q1", "peer.test"))
        self.assertEqual(error.exceptionFromStanza(reply).condition, "service-unavailable")


class ConnectorTests(SynchronousTestCase):
    """Reconnects come quickly, except after a refused password."""

    def setUp(self):
        self.connector = XmppConnector(MemoryReactorClock(), endpoint=None, factory=None,
                                       max_delay=2.0)

    def test_backoff_is_capped(self):
        """Retries wait 0.25 s, 0.5 s, 1 s, then never more than 2 s."""
        delays = [self.connector._retry_delay(n) for n in range(1, 8)]
        self.assertEqual(delays, [0.25, 0.5, 1.0, 2.0, 2.0, 2.0, 2.0])

    def test_hold_off_until_initialized(self):
        """After hold_off(300) every retry waits 300 s until a stream initializes."""
        self.connector.hold_off(300)
        self.assertEqual([self.connector._retry_delay(n) for n in (1, 5)], [300, 300])
        self.connector.initialized()
        self.assertEqual(self.connector._retry_delay(1), 0.25)
