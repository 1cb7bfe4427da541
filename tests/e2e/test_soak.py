"""End to end: 50 sessions while SIGKILL hits the relay, the manager, Prosody and an agent.

The soak itself (:mod:`remotecomm.testing.soak`) starts the processes once; this test is
about killing them.  The seed is random and printed; ``REMOTECOMM_SOAK_SEED=N`` repeats a
run's plan (which process dies after how many sessions), not its timing.
"""

import os
from pathlib import Path

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from remotecomm.testing.soak import VICTIMS, Soak


class FaultSoakTests(TestCase):
    """Every session ends with its logs filed once, whatever process was killed."""

    timeout = 30

    async def test_fifty_sessions_while_each_process_is_killed_once(self):
        seed = os.environ.get("REMOTECOMM_SOAK_SEED")
        soak = Soak(reactor, Path(self.mktemp()), sessions=50, faults=len(VICTIMS),
                    seed=int(seed) if seed else None)
        self.addCleanup(soak.stop)
        print(f"\nsoak seed {soak.seed} (REMOTECOMM_SOAK_SEED={soak.seed} repeats its plan)")
        figures = await soak.run(settle_timeout=10)
        print(figures.report())
        self.assertEqual(sorted(f.victim.partition(":")[0] for f in figures.faults),
                         sorted(VICTIMS))
        self.assertEqual(figures.sessions, 50)
        self.assertEqual(figures.problems, [])
