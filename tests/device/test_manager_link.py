"""Tests for remotecomm.device.manager_link: announcing the device to the manager."""

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from twisted.words.protocols.jabber import client
from twisted.words.protocols.jabber.jid import JID

from remotecomm.device.manager_link import ManagerLink
from remotecomm.sessions.messages import Hello
from remotecomm.testing.xmpp import PipeConnection
from remotecomm.xmpp.payloads import NS_DEVICE, parse_hello
from remotecomm.xmpp.stream import UnknownIqHandler, XmppStream

COMPONENT = "rms.test"
HELLO = Hello(agent_version="0.1.0", envelope_version=1, apps=("web-server",))


class ManagerLinkTests(SynchronousTestCase):
    """After every connect, and when the component returns, the device announces itself."""

    def setUp(self):
        self.clock = Clock()
        factory = client.XMPPClientFactory(JID("mfp-1@devices.test/agent"), "pw")
        self.stream = XmppStream(factory, self.clock, iq_timeout=5)
        self.link = ManagerLink(self.clock, (COMPONENT,), HELLO, retry_delay=2, max_retries=3)
        self.link.setHandlerParent(self.stream)
        UnknownIqHandler().setHandlerParent(self.stream)
        self.connection = PipeConnection(self.stream)

    def announcement(self):
        """The initial presence, the directed presence and the hello sent on connect."""
        initial, directed, hello = self.connection.take()
        return initial, directed, hello

    def test_announces_on_connect(self):
        """Initial presence (priority -1), directed presence, then a hello with versions."""
        self.connection.connect()
        initial, directed, hello = self.announcement()
        self.assertEqual((initial.name, initial.getAttribute("to")), ("presence", None))
        self.assertEqual(str(initial.priority), "-1")
        self.assertEqual((directed.name, directed["to"]), ("presence", COMPONENT))
        self.assertEqual((hello.name, hello["type"], hello["to"]), ("iq", "set", COMPONENT))
        self.assertEqual(parse_hello(hello), HELLO)
        self.connection.receive(f"<iq type='result' from='{COMPONENT}' id='{hello['id']}'/>")
        self.assertEqual(self.link.announced, {COMPONENT})

    def test_reannounces_when_the_component_returns(self):
        """The component's probe (its presence) makes the device announce again."""
        self.connection.connect()
        self.connection.take()
        self.connection.receive(f"<presence from='{COMPONENT}' to='mfp-1@devices.test'/>")
        directed, hello = self.connection.take()
        self.assertEqual((directed["to"], hello["to"]), (COMPONENT, COMPONENT))

    def test_presence_from_others_is_ignored(self):
        """Only configured components trigger an announcement."""
        self.connection.connect()
        self.connection.take()
        for sender in ("evil.test", "devices.test", "mfp-2@devices.test/agent", ""):
            self.connection.receive(f"<presence from='{sender}'/>")
        self.connection.receive(f"<presence from='{COMPONENT}' type='unavailable'/>")
        self.assertEqual(self.connection.take(), [])

    def test_wait_errors_are_retried(self):
        """A hello answered 'wait' (component briefly away) is sent again, a bounded number of times."""
        self.connection.connect()
        *_, hello = self.announcement()
        for _ in range(2):
            self.connection.receive(
                f"<iq type='error' from='{COMPONENT}' id='{hello['id']}'><error type='wait'>"
                f"<service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>")
            self.clock.advance(2)
            directed, hello = self.connection.take()
            self.assertEqual(hello.name, "iq")
        self.connection.receive(
            f"<iq type='error' from='{COMPONENT}' id='{hello['id']}'><error type='wait'>"
            f"<service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>")
        self.clock.advance(2)
        self.assertEqual(self.connection.take(), [])

    def test_timeouts_are_retried(self):
        """A hello nobody answers is retried after its timeout."""
        self.connection.connect()
        self.announcement()
        self.clock.advance(5)
        self.clock.advance(2)
        directed, hello = self.connection.take()
        self.assertEqual(hello["to"], COMPONENT)

    def test_cancel_errors_are_not_retried(self):
        """A refusal (forbidden) is final until the next probe."""
        self.connection.connect()
        *_, hello = self.announcement()
        self.connection.receive(
            f"<iq type='error' from='{COMPONENT}' id='{hello['id']}'><error type='cancel'>"
            f"<forbidden xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>")
        self.clock.advance(10)
        self.assertEqual(self.connection.take(), [])

    def test_nothing_is_sent_while_disconnected(self):
        """A retry that comes due while the stream is down sends nothing."""
        self.connection.connect()
        self.announcement()
        self.connection.disconnect()
        self.clock.advance(10)
        self.assertEqual(self.connection.take(), [])
        self.assertEqual(self.link.announced, set())

    def test_unknown_requests_from_the_manager_get_an_error(self):
        """The agent answers IQs it does not know instead of leaving the sender waiting."""
        self.connection.connect()
        self.announcement()
        self.connection.receive(f"<iq type='set' id='x' from='{COMPONENT}'>"
                                f"<reboot xmlns='{NS_DEVICE}'/></iq>")
        [reply] = self.connection.take()
        self.assertEqual((reply["type"], reply["id"]), ("error", "x"))

    def test_a_new_firmware_version_is_announced_once(self):
        """The panel said which firmware runs: a new hello carries it; the same again is quiet."""
        self.connection.connect()
        self.announcement()
        self.link.set_firmware_version("4.2.1")
        directed, hello = self.connection.take()
        self.assertEqual(parse_hello(hello).firmware_version, "4.2.1")
        self.link.set_firmware_version("4.2.1")
        self.assertEqual(self.connection.take(), [])
        self.connection.disconnect()
        self.link.set_firmware_version("4.3.0")
        self.assertEqual(self.connection.take(), [])
        self.connection.connect()
        *_, hello = self.announcement()
        self.assertEqual(parse_hello(hello).firmware_version, "4.3.0")
