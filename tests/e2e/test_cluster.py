"""End to end: ``scripts/cluster-demo`` smaller -- PostgreSQL, one manager, two relay
processes, Prosody, ten bench devices and ten sessions; one relay killed and restarted,
the other drained and resumed (bench/cluster.py)."""

from pathlib import Path

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from bench.cluster import run_cluster
from remotecomm.testing import databases


class ClusterTests(TestCase):
    timeout = 30

    async def test_a_killed_relay_loses_no_record_and_a_drained_one_empties(self):
        figures = await run_cluster(reactor, Path(self.mktemp()).absolute(),
                                    databases.postgresql_server(), relays=2, devices=10,
                                    sessions=10)
        # The first sessions spread over both relays; bytes went both ways through all.
        self.assertEqual(set(figures.placed_at_first), {"relay-a", "relay-b"})
        self.assertGreater(figures.bytes_checked, 0)
        # relay-b was killed: its sessions ended relay-lost, logged once; new ones went to
        # relay-a; restarted, relay-b took new ones; relay-a drained took none.
        self.assertGreater(figures.lost_sessions, 0)
        self.assertEqual(figures.lost_logged, 1)
        self.assertEqual(set(figures.after_kill), {"relay-a"})
        self.assertIn("relay-b", figures.after_restart)
        self.assertEqual(set(figures.after_drain), {"relay-b"})
        self.assertIn("relay-a", figures.after_resume)  # resumed, it takes sessions again
        # Every session is accounted for: two started and two end logs from its relay, or
        # relay-lost with both end logs the manager wrote (and the relay's late ones beside).
        self.assertEqual(figures.sessions, 18)
        self.assertEqual(figures.ended, {"normal": 18 - figures.lost_sessions,
                                         "relay-lost": figures.lost_sessions})
        self.assertEqual(figures.complete_by_relay, 18 - figures.lost_sessions)
        self.assertEqual(figures.ended_by_manager, figures.lost_sessions)
        self.assertEqual(figures.late_relay_logs, 2 * figures.lost_sessions)
        self.assertEqual(figures.open_sessions, 0)
