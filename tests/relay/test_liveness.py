"""Tests for remotecomm.relay.liveness: a relay node's heartbeats to the manager."""

from twisted.internet.defer import fail, succeed
from twisted.internet.task import Clock
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from remotecomm.relay.core import RelayCore
from remotecomm.relay.liveness import HeartbeatSender
from remotecomm.relay.node import RelayNode
from remotecomm.testing.relay import FakeConnection
from tests.relay.test_gateway_contract import AdmitAll, MemoryLogs


class Manager(AdmitAll):
    def __init__(self):
        self.beats = []
        self.down = False

    def heartbeat(self, beat):
        if self.down:
            return fail(ConnectionRefusedError("manager down"))
        self.beats.append(beat)
        return succeed(None)


class HeartbeatTests(SynchronousTestCase):
    """Registration, load and live counters, every interval."""

    def setUp(self):
        self.clock = Clock()
        self.manager = Manager()
        self.core = RelayCore(self.clock, self.manager, MemoryLogs())
        self.addCleanup(self.core.shutdown)
        self.node = RelayNode(self.core, "relay-3", "wss://relay-3.test/relay")
        self.manager_back = []
        self.sender = HeartbeatSender(self.node, self.manager, self.clock,
                                      "https://relay-3.test", interval=5,
                                      on_manager_back=lambda: self.manager_back.append(
                                          self.clock.seconds()))
        self.addCleanup(self.sender.stop)

    def test_beats_at_start_and_every_interval(self):
        self.sender.start()
        self.clock.advance(5)
        self.clock.advance(5)
        self.assertEqual(len(self.manager.beats), 3)
        beat = self.manager.beats[0]
        self.assertEqual((beat.relay_node, beat.api_url, beat.public_url, beat.state,
                          beat.open_sessions), ("relay-3", "https://relay-3.test",
                                                "wss://relay-3.test/relay", "active", 0))

    def test_counters_only_for_sessions_that_moved(self):
        session_id = "S" * 32
        device = FakeConnection("device")
        self.successResultOf(self.core.join(device, session_id, "device", "d" * 43, "::1"))
        self.sender.start()
        first = self.manager.beats[-1]
        self.assertEqual([(c.session_id, c.side, c.bytes_from_side) for c in first.counters],
                         [(session_id, "device", 0)])
        self.clock.advance(5)
        self.assertEqual(self.manager.beats[-1].counters, ())  # nothing moved
        self.core.sessions[session_id].sides["device"].bytes_from_side = 99
        self.clock.advance(5)
        self.assertEqual([c.bytes_from_side for c in self.manager.beats[-1].counters], [99])

    def test_a_draining_node_says_so(self):
        self.node.drain()
        self.sender.start()
        self.assertEqual(self.manager.beats[-1].state, "draining")

    def test_beats_carry_the_nodes_capacity(self):
        self.node.capacity = 250
        self.sender.start()
        self.assertEqual(self.manager.beats[-1].capacity, 250)

    def test_a_draining_node_logs_once_when_it_is_empty(self):
        session_id = "S" * 32
        device = FakeConnection("device")
        self.successResultOf(self.core.join(device, session_id, "device", "d" * 43, "::1"))
        self.node.drain()
        logged = []
        observer = logged.append
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)
        self.sender.start()
        self.assertEqual(self.manager.beats[-1].open_sessions, 1)
        self.core.end_session(session_id, "normal")
        self.core.closed(device, normal_request=False)
        for _ in range(3):
            self.clock.advance(5)
        self.assertEqual((self.manager.beats[-1].state, self.manager.beats[-1].open_sessions),
                         ("draining", 0))
        drained = [e for e in logged if "is drained" in e.get("log_format", "")]
        self.assertEqual(len(drained), 1)

    def test_the_loop_survives_a_manager_that_is_down(self):
        self.manager.down = True
        self.sender.start()
        self.clock.advance(5)
        self.manager.down = False
        self.clock.advance(5)
        self.assertEqual(len(self.manager.beats), 1)

    def test_the_first_beat_after_an_outage_says_the_manager_is_back(self):
        self.sender.start()
        self.manager.down = True
        self.clock.advance(5)
        self.clock.advance(5)
        self.manager.down = False
        self.clock.advance(5)
        self.clock.advance(5)
        self.assertEqual(self.manager_back, [15])
