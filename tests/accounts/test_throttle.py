"""Tests for remotecomm.accounts.throttle: failed logins counted in the store, per (account,
address), per address and per account; the owner is slowed, never locked out."""

from pathlib import Path

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from remotecomm.accounts.throttle import MAX_DELAY, LoginThrottle
from remotecomm.testing.fakes import migrated_inline_store


class ThrottleTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.clock.advance(1_800_000_000)
        self.store = migrated_inline_store(Path(self.mktemp()) / "manager.sqlite3")
        self.addCleanup(self.store.engine.dispose)
        self.throttle = self.make()

    def make(self) -> LoginThrottle:
        return LoginThrottle(self.store, self.clock, per_account=3, per_address=5, window=60)

    def wait(self, coroutine):
        return self.successResultOf(Deferred.fromCoroutine(coroutine))

    def fail_login(self, account, address, throttle=None):
        self.wait((throttle or self.throttle).record_failure(account, address))

    def check(self, account, address, throttle=None):
        return self.wait((throttle or self.throttle).check(account, address))

    def test_a_guesser_is_stopped_at_their_address_not_the_owner_elsewhere(self):
        """Issue 18 #7: five wrong passwords from one address do not lock the real user out
        from another address; they only slow each attempt a little."""
        for _ in range(3):
            self.assertEqual(self.check("alice", "10.0.0.66"), (None, 0.0))
            self.fail_login("alice", "10.0.0.66")
            self.clock.advance(10)
        retry_after, _ = self.check("alice", "10.0.0.66")
        self.assertEqual(retry_after, 30)
        self.assertEqual(self.check("alice", "192.0.2.7"), (None, 0.5))  # slowed, not locked
        self.clock.advance(30)
        self.assertIsNone(self.check("alice", "10.0.0.66")[0])

    def test_the_account_delay_grows_and_stays_bounded(self):
        delays = []
        for n in range(12):
            self.fail_login("alice", f"10.0.1.{n}")  # a distributed guesser
            delays.append(self.check("alice", "192.0.2.7")[1])
        self.assertEqual(delays[:6], [0.0, 0.0, 0.5, 1.0, 2.0, 4.0])
        self.assertEqual(max(delays), MAX_DELAY)

    def test_an_address_is_stopped_across_accounts_and_unknown_ones_count_alike(self):
        for n in range(5):
            self.fail_login(f"user{n}", "10.0.0.9")
        self.assertIsNotNone(self.check("someone-else", "10.0.0.9")[0])
        self.assertIsNone(self.check("someone-else", "10.0.0.8")[0])

    def test_a_success_forgives_only_that_address(self):
        for address in ("10.0.0.1", "10.0.0.1", "10.0.0.2"):
            self.fail_login("alice", address)
        self.wait(self.throttle.record_success("alice", "10.0.0.1"))
        self.fail_login("alice", "10.0.0.1")
        self.assertIsNone(self.check("alice", "10.0.0.1")[0])

    def test_the_state_survives_a_restart_and_is_shared(self):
        """Another manager (or this one, restarted) sees the same failures: they live in
        the store."""
        for _ in range(3):
            self.fail_login("alice", "10.0.0.66")
        other_manager = self.make()
        self.assertIsNotNone(self.check("alice", "10.0.0.66", other_manager)[0])
