"""Tests for remotecomm.store.jobs: the newest answer of an action per device."""

from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from remotecomm.store.jobs import insert_job, latest_results
from remotecomm.testing.fakes import migrated_inline_store


class LatestResultsTests(SynchronousTestCase):
    def setUp(self):
        self.store = migrated_inline_store(Path(self.mktemp()) / "manager.sqlite3")
        self.addCleanup(self.store.engine.dispose)
        for n, (unit, device, action, state, finished) in enumerate((
                ("acme", "mfp-1", "supplies", "done", 10),
                ("acme", "mfp-1", "supplies", "done", 30),   # the newest done one
                ("acme", "mfp-1", "supplies", "failed", 40),  # failed: not an answer
                ("acme", "mfp-1", "counters", "done", 50),    # another action
                ("acme", "mfp-2", "supplies", "done", 20),
                ("globex", "gx-1", "supplies", "done", 60))):  # another unit
            self.store.run_sync(insert_job, dict(
                job_id=f"job-{n:022d}", unit_id=unit, device_id=device, user_id="alice",
                action=action, state=state, created_us=finished - 1,
                finished_us=finished, result=f'{{"n": {n}}}'))

    def test_newest_done_answer_per_device_of_the_unit(self):
        self.assertEqual(self.store.run_sync(latest_results, "acme", "supplies"),
                         {"mfp-1": ('{"n": 1}', 30), "mfp-2": ('{"n": 4}', 20)})
        self.assertEqual(self.store.run_sync(latest_results, "acme", "log"), {})
