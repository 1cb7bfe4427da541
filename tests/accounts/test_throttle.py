"""Tests for remotecomm.accounts.throttle."""

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from remotecomm.accounts.throttle import LoginThrottle


class ThrottleTests(SynchronousTestCase):
    """Failed logins are throttled per account and per address, within a window."""

    def setUp(self):
        self.clock = Clock()
        self.throttle = LoginThrottle(self.clock, per_account=3, per_address=5, window=60)

    def test_account_is_throttled_after_limit(self):
        """After 3 failures the account must wait until the oldest leaves the window."""
        for _ in range(3):
            self.assertIsNone(self.throttle.retry_after("alice", "10.0.0.1"))
            self.throttle.record_failure("alice", "10.0.0.1")
            self.clock.advance(10)
        self.assertEqual(self.throttle.retry_after("alice", "10.0.0.2"), 30)
        self.clock.advance(30)
        self.assertIsNone(self.throttle.retry_after("alice", "10.0.0.2"))

    def test_address_is_throttled_across_accounts(self):
        """Guessing many accounts from one address hits the address limit."""
        for n in range(5):
            self.throttle.record_failure(f"user{n}", "10.0.0.9")
        self.assertIsNotNone(self.throttle.retry_after("someone-else", "10.0.0.9"))
        self.assertIsNone(self.throttle.retry_after("someone-else", "10.0.0.8"))

    def test_success_clears_account_failures(self):
        """A correct login resets the account's count."""
        self.throttle.record_failure("alice", "10.0.0.1")
        self.throttle.record_failure("alice", "10.0.0.1")
        self.throttle.record_success("alice")
        self.throttle.record_failure("alice", "10.0.0.1")
        self.assertIsNone(self.throttle.retry_after("alice", "10.0.0.1"))

    def test_unknown_accounts_are_throttled_alike(self):
        """The throttle does not reveal which user IDs exist."""
        for _ in range(3):
            self.throttle.record_failure("nobody", "10.0.0.1")
        self.assertIsNotNone(self.throttle.retry_after("nobody", "10.0.0.3"))

    def test_memory_is_bounded(self):
        """The least recently failing keys are forgotten past max_keys."""
        throttle = LoginThrottle(self.clock, per_account=1, per_address=1000, window=60,
                                 max_keys=10)
        for n in range(100):
            throttle.record_failure(f"user{n}", "10.0.0.1")
        self.assertIsNone(throttle.retry_after("user0", "10.0.0.2"))
        self.assertIsNotNone(throttle.retry_after("user99", "10.0.0.2"))
        self.assertLessEqual(len(throttle._accounts._failures), 10)
