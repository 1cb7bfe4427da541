"""Tests for remotecomm.server.tap: how the server listens."""

from twisted.internet.endpoints import serverFromString
from twisted.internet.protocol import Factory
from twisted.internet.testing import MemoryReactor
from twisted.trial.unittest import SynchronousTestCase

from remotecomm.server.tap import LISTEN_BACKLOG, with_backlog


class ListenBacklogTests(SynchronousTestCase):
    def test_a_tcp_listener_queues_a_burst_of_connections(self):
        reactor = MemoryReactor()
        serverFromString(reactor, with_backlog("tcp:8443:interface=127.0.0.1")).listen(
            Factory())
        (port, _, backlog, interface) = reactor.tcpServers[0]
        self.assertEqual((port, backlog, interface), (8443, LISTEN_BACKLOG, "127.0.0.1"))

    def test_a_backlog_the_config_names_is_kept(self):
        self.assertEqual(with_backlog("tcp:8443:backlog=10"), "tcp:8443:backlog=10")
        self.assertEqual(with_backlog("unix:/run/x.sock"), "unix:/run/x.sock")
