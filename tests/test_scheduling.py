"""Tests for remotecomm.scheduling: once per period, claimed through the store."""

from pathlib import Path

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from remotecomm.scheduling import Job, Scheduler, every
from remotecomm.store.schedule import last_run
from remotecomm.testing.fakes import migrated_inline_store

T0 = 1_800_000_000
S = 1_000_000


class SchedulerTests(SynchronousTestCase):
    """A job runs once in each of its periods, whoever and however often looks."""

    def setUp(self):
        self.clock = Clock()
        self.clock.advance(T0)
        self.store = migrated_inline_store(Path(self.mktemp()) / "manager.sqlite3")
        self.addCleanup(self.store.engine.dispose)
        self.runs = []

    async def job(self, period_start_us):
        self.runs.append(period_start_us)
        return f"ran {len(self.runs)}"

    def scheduler(self, run=None, **kwargs):
        return Scheduler(self.store, self.clock, (Job("collect", every(600), run or self.job),),
                         **kwargs)

    def check(self, scheduler):
        return self.successResultOf(Deferred.fromCoroutine(scheduler.check()))

    def test_each_period_runs_once(self):
        """Looking again in the same period runs nothing; the next period runs again."""
        scheduler = self.scheduler()
        self.assertEqual(self.check(scheduler), ["collect"])
        self.clock.advance(100)
        self.assertEqual(self.check(scheduler), [])
        self.clock.advance(600)
        self.assertEqual(self.check(scheduler), ["collect"])
        period = T0 * S - T0 * S % (600 * S)
        self.assertEqual(self.runs, [period, period + 600 * S])
        run = self.store.run_sync(last_run, "collect")
        self.assertEqual((run.outcome, run.finished_us), ("ran 2", (T0 + 700) * S))

    def test_a_restarted_or_second_manager_does_not_run_it_again(self):
        """The claim is in the store: another scheduler on it skips the period."""
        self.check(self.scheduler())
        self.assertEqual(self.check(self.scheduler()), [])
        self.assertEqual(len(self.runs), 1)

    def test_a_failed_run_is_recorded_and_not_repeated_in_its_period(self):
        async def broken(period_start_us):
            raise RuntimeError("no luck")
        scheduler = self.scheduler(run=broken)
        self.check(scheduler)
        self.assertTrue(self.store.run_sync(last_run, "collect").outcome.startswith(
            "failed: RuntimeError"))
        self.assertEqual(self.check(scheduler), [])
        self.flushLoggedErrors(RuntimeError)

    def test_a_run_whose_process_died_is_taken_over_after_the_lease(self):
        """Claimed but never finished: after the lease another process runs it."""
        hung = Deferred()

        async def hangs(period_start_us):
            await hung
            return "late"
        Deferred.fromCoroutine(self.scheduler(run=hangs, lease=60).check())
        second = self.scheduler(lease=60)
        self.assertEqual(self.check(second), [])
        self.clock.advance(61)
        self.assertEqual(self.check(second), ["collect"])

    def test_started_it_looks_now_and_then_periodically(self):
        """start() runs a due job at once; stop() ends the looking."""
        scheduler = self.scheduler(check_every=30)
        scheduler.start()
        self.assertEqual(len(self.runs), 1)
        self.clock.advance(600)
        self.assertEqual(len(self.runs), 2)
        scheduler.stop()
        self.clock.advance(600)
        self.assertEqual(len(self.runs), 2)

    def test_a_job_idempotent_by_itself_runs_at_every_look_and_stores_nothing(self):
        scheduler = Scheduler(self.store, self.clock,
                              (Job("mail", every(600), self.job, claimed=False),))
        self.assertEqual(self.check(scheduler), ["mail"])
        self.assertEqual(self.check(scheduler), ["mail"])
        self.assertIsNone(self.store.run_sync(last_run, "mail"))

    def test_periods_must_have_a_length(self):
        with self.assertRaises(ValueError):
            every(0)
