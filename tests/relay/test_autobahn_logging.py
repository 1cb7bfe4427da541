"""Tests for remotecomm.relay.autobahn_logging: autobahn's debug values format lazily."""

import pprint

from autobahn.websocket import protocol
from twisted.trial.unittest import SynchronousTestCase

from remotecomm.relay import client  # noqa: F401  (importing it installs the lazy format)
from remotecomm.relay.autobahn_logging import LazyPformat


class LazyFormatTests(SynchronousTestCase):

    def test_autobahn_formats_nothing_until_a_debug_observer_reads_it(self):
        calls = []
        self.patch(pprint, "pformat", lambda value: calls.append(value) or "formatted")
        value = protocol.pformat([("autoPingInterval", 20, "factory")])
        self.assertIsInstance(value, LazyPformat)
        self.assertEqual(calls, [])
        self.assertEqual("\n{attrs}".format(attrs=value), "\nformatted")
        self.assertEqual(len(calls), 1)

    def test_the_message_reads_as_before(self):
        options = [("autoPingInterval", 20, "WebSocketServerFactory")]
        self.assertEqual(f"{protocol.pformat(options)}", pprint.pformat(options))
        timings = protocol.Timings()
        timings.track("onOpen")
        self.assertEqual(str(timings), pprint.pformat(timings._timings))
