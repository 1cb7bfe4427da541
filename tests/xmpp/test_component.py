"""Tests for remotecomm.xmpp.component: presence and hellos drive the device records."""

from pathlib import Path

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from twisted.words.protocols.jabber import component as jabber_component, error

from remotecomm.sessions.messages import Hello
from remotecomm.store.accounts import insert_unit
from remotecomm.store.devices import insert_device, revoke_device
from remotecomm.store.schema import devices
from remotecomm.testing.fakes import migrated_inline_store
from remotecomm.testing.xmpp import PipeConnection
from remotecomm.xmpp.component import DeviceDirectory, DeviceRequests, build_component
from remotecomm.xmpp.payloads import NS_DEVICE
from remotecomm.xmpp.stream import UnknownIqHandler, XmppStream

DOMAIN = "devices.test"
COMPONENT = "rms.test"
T0 = 1_800_000_000


class DirectoryTests(SynchronousTestCase):
    """The component's view of devices, with an in-memory stream and a real SQLite file."""

    def setUp(self):
        self.clock = Clock()
        self.clock.advance(T0)
        self.store = migrated_inline_store(Path(self.mktemp()) / "manager.sqlite3")
        self.addCleanup(self.store.engine.dispose)
        self.store.run_sync(insert_unit, "acme", "ACME", "UTC", 0)
        for device_id in ("mfp-1", "mfp-2", "gone"):
            self.store.run_sync(insert_device, device_id, "acme", device_id, "M", 0)
        self.store.run_sync(revoke_device, "gone", 1)
        factory = jabber_component.componentFactory(COMPONENT, "secret")
        self.stream = XmppStream(factory, self.clock)
        self.directory = DeviceDirectory(self.store, self.clock, DOMAIN, COMPONENT,
                                         settle_time=10)
        self.directory.setHandlerParent(self.stream)
        requests = DeviceRequests(DOMAIN)
        requests.register(Hello, self.directory.handle_hello)
        requests.setHandlerParent(self.stream)
        UnknownIqHandler().setHandlerParent(self.stream)
        self.connection = PipeConnection(self.stream).connect()

    def device(self, device_id):
        return self.store.run_sync(lambda c: c.execute(
            devices.select().where(devices.c.device_id == device_id)).first())

    def test_probes_registered_devices_on_connect(self):
        """Each (re)connect sends every non-revoked device a directed presence."""
        probes = self.connection.take()
        self.assertEqual(sorted(p["to"] for p in probes),
                         [f"mfp-1@{DOMAIN}", f"mfp-2@{DOMAIN}"])
        self.assertTrue(all(p.name == "presence" and p["from"] == COMPONENT for p in probes))

    def test_presence_drives_online_state(self):
        """Available presence: online with last-seen time; unavailable: offline."""
        self.connection.receive(f"<presence from='mfp-1@{DOMAIN}/agent' to='{COMPONENT}'/>")
        row = self.device("mfp-1")
        self.assertEqual((row.online, row.last_seen_us), (True, T0 * 1_000_000))
        self.clock.advance(5)
        self.connection.receive(f"<presence from='mfp-1@{DOMAIN}/agent' type='unavailable'/>")
        row = self.device("mfp-1")
        self.assertEqual((row.online, row.last_seen_us), (False, (T0 + 5) * 1_000_000))

    def test_device_with_two_resources_stays_online_until_both_leave(self):
        """A second connection of the same device keeps it online when the first goes."""
        self.connection.receive(f"<presence from='mfp-1@{DOMAIN}/a'/>")
        self.connection.receive(f"<presence from='mfp-1@{DOMAIN}/b'/>")
        self.connection.receive(f"<presence from='mfp-1@{DOMAIN}/a' type='unavailable'/>")
        self.assertTrue(self.device("mfp-1").online)
        self.connection.receive(f"<presence from='mfp-1@{DOMAIN}/b' type='unavailable'/>")
        self.assertFalse(self.device("mfp-1").online)

    def test_revoked_and_unknown_devices_stay_offline(self):
        """Presence of a revoked or unregistered account changes nothing."""
        self.connection.receive(f"<presence from='gone@{DOMAIN}/agent'/>")
        self.connection.receive(f"<presence from='stranger@{DOMAIN}/agent'/>")
        self.assertFalse(self.device("gone").online)
        self.assertIsNone(self.device("stranger"))

    def test_silent_devices_go_offline_after_the_probe(self):
        """A device shown online that does not answer the probe within 10 s goes offline."""
        self.store.run_sync(lambda c: c.execute(devices.update().values(
            online=True, last_seen_us=(T0 - 100) * 1_000_000)))
        self.connection.receive(f"<presence from='mfp-2@{DOMAIN}/agent'/>")
        self.clock.advance(10)
        self.assertFalse(self.device("mfp-1").online)
        self.assertTrue(self.device("mfp-2").online)

    def test_hello_is_stored_and_acknowledged(self):
        """A valid hello is written, then answered with a result."""
        self.connection.take()
        self.connection.receive(
            f"<iq type='set' id='h1' from='mfp-1@{DOMAIN}/agent' to='{COMPONENT}'>"
            f"<hello xmlns='{NS_DEVICE}' agent-version='0.1.0' envelope-version='1'>"
            f"<app id='web-server'/><app id='remote-panel'/></hello></iq>")
        [reply] = self.connection.take()
        self.assertEqual((reply["type"], reply["id"], reply["to"]),
                         ("result", "h1", f"mfp-1@{DOMAIN}/agent"))
        row = self.device("mfp-1")
        self.assertEqual((row.agent_version, row.envelope_version, row.apps),
                         ("0.1.0", 1, '["web-server", "remote-panel"]'))

    def assertRefused(self, xml, condition):
        self.connection.take()
        before = self.device("mfp-1")
        self.connection.receive(xml)
        [reply] = self.connection.take()
        self.assertEqual(reply["type"], "error")
        self.assertEqual(error.exceptionFromStanza(reply).condition, condition)
        self.assertEqual(self.device("mfp-1"), before)

    def test_malformed_hello_changes_nothing(self):
        """A hello without versions gets bad-request and leaves the record alone."""
        self.assertRefused(f"<iq type='set' id='h2' from='mfp-1@{DOMAIN}/agent'>"
                           f"<hello xmlns='{NS_DEVICE}'/></iq>", "bad-request")

    def test_unknown_version_gets_feature_not_implemented(self):
        """A newer protocol version is refused clearly."""
        self.assertRefused(f"<iq type='set' id='h3' from='mfp-1@{DOMAIN}/agent'>"
                           f"<hello xmlns='urn:remotecomm:device:2' agent-version='2' "
                           f"envelope-version='2'/></iq>", "feature-not-implemented")

    def test_hello_from_unregistered_device_is_forbidden(self):
        """Only registered devices may introduce themselves."""
        self.connection.take()
        self.connection.receive(f"<iq type='set' id='h4' from='stranger@{DOMAIN}/agent'>"
                                f"<hello xmlns='{NS_DEVICE}' agent-version='1' "
                                f"envelope-version='1'/></iq>")
        [reply] = self.connection.take()
        self.assertEqual(error.exceptionFromStanza(reply).condition, "forbidden")

    def test_hello_from_outside_the_device_domain_is_forbidden(self):
        """A hello from another domain is refused before anything is looked up."""
        self.assertRefused(f"<iq type='set' id='h5' from='mfp-1@elsewhere.test/agent'>"
                           f"<hello xmlns='{NS_DEVICE}' agent-version='1' "
                           f"envelope-version='1'/></iq>", "forbidden")

    def test_unknown_iq_gets_an_error(self):
        """Requests in other namespaces are answered by the fallback."""
        self.assertRefused(f"<iq type='get' id='v1' from='mfp-1@{DOMAIN}/agent'>"
                           f"<query xmlns='jabber:iq:version'/></iq>", "service-unavailable")


class FatalSecretTests(SynchronousTestCase):
    """A refused component secret is fatal; other stream errors are not."""

    def build(self):
        self.fatal = []
        return build_component(Clock(), None, COMPONENT, "wrong", DOMAIN, store=None,
                               on_fatal=self.fatal.append)

    def stream_error(self, component, condition):
        from twisted.python.failure import Failure
        from twisted.words.protocols.jabber.error import StreamError
        from twisted.words.protocols.jabber.xmlstream import STREAM_ERROR_EVENT
        xs = component.stream.factory.buildProtocol(None)
        xs.dispatch(Failure(StreamError(condition)), STREAM_ERROR_EVENT)

    def test_not_authorized_before_handshake_is_fatal(self):
        """not-authorized during the handshake means a wrong secret."""
        component = self.build()
        self.stream_error(component, "not-authorized")
        self.assertEqual(len(self.fatal), 1)
        self.assertIn("refused the component secret", self.fatal[0])

    def test_other_stream_errors_are_not_fatal(self):
        """A conflict or a shutdown is logged, and the connector retries."""
        component = self.build()
        self.stream_error(component, "system-shutdown")
        self.assertEqual(self.fatal, [])
