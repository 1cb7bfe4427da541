"""Tests for remotecomm.relay.autobahn_logging: autobahn's debug values format lazily."""

import pprint

from autobahn.websocket import protocol
from twisted.trial.unittest import SynchronousTestCase

from remotecomm.relay.autobahn_logging import Lazy, format_debug_lazily


class LazyFormatTests(SynchronousTestCase):

    def setUp(self):
        format_debug_lazily()  # as importing the relay or its client does (idempotent)

    def test_autobahn_formats_nothing_until_a_debug_observer_reads_it(self):
        calls = []
        self.patch(pprint, "pformat", lambda value: calls.append(value) or "formatted")
        value = protocol.pformat([("autoPingInterval", 20, "factory")])
        self.assertIsInstance(value, Lazy)
        self.assertEqual(calls, [])
        self.assertEqual("\n{attrs}".format(attrs=value), "\nformatted")
        self.assertEqual(len(calls), 1)

    def test_every_sent_message_formats_nothing(self):
        from autobahn import util
        calls = []
        self.patch(util, "hltype", lambda value: calls.append(value) or "<f>")
        self.patch(util, "hlval", lambda value, **kw: calls.append(value) or "v")
        func, length = protocol.hltype(len), protocol.hlval(3)
        self.assertEqual(calls, [])
        self.assertEqual(f"{func} sent {length} bytes", "<f> sent v bytes")

    def test_the_message_reads_as_before(self):
        options = [("autoPingInterval", 20, "WebSocketServerFactory")]
        self.assertEqual(f"{protocol.pformat(options)}", pprint.pformat(options))
        timings = protocol.Timings()
        timings.track("onOpen")
        self.assertEqual(str(timings), pprint.pformat(timings._timings))
