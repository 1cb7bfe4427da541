"""Tests for remotecomm.accounts.passwords."""

from twisted.internet import reactor
from twisted.trial.unittest import SynchronousTestCase, TestCase

from remotecomm.accounts.passwords import (MAX_PASSWORD_BYTES, HasherBusy, PasswordHashConfig,
                                           PasswordHasherPool, PasswordRuleError,
                                           check_new_password, make_hasher, verify_password)
from remotecomm.testing.fakes import CHEAP_HASHING, InlinePasswordHasher


class PasswordRuleTests(SynchronousTestCase):
    """New passwords follow simple, explained rules."""

    def test_short_password_is_refused(self):
        """Fewer than 12 characters is too short."""
        with self.assertRaises(PasswordRuleError) as e:
            check_new_password("short pw")
        self.assertIn("at least 12", str(e.exception))

    def test_long_password_is_refused(self):
        """Very long passwords are refused so hashing cost stays bounded."""
        with self.assertRaises(PasswordRuleError):
            check_new_password("x" * (MAX_PASSWORD_BYTES + 1))

    def test_control_characters_are_refused(self):
        """A pasted newline or escape is a mistake, not a password."""
        with self.assertRaises(PasswordRuleError):
            check_new_password("correct horse\nbattery")

    def test_good_password_passes(self):
        """A long passphrase with spaces and non-ASCII letters is fine."""
        check_new_password("correct horse battery staple ü")


class HashingTests(SynchronousTestCase):
    """Hashes are argon2id and verify only the right password."""

    def test_hash_is_argon2id(self):
        """The stored form names the algorithm and its costs."""
        stored = make_hasher(CHEAP_HASHING).hash("correct horse battery")
        self.assertTrue(stored.startswith("$argon2id$"))

    def test_verify_right_and_wrong(self):
        """The right password verifies; a wrong one and a malformed hash do not."""
        hasher = make_hasher(CHEAP_HASHING)
        stored = hasher.hash("correct horse battery")
        self.assertTrue(verify_password(hasher, stored, "correct horse battery"))
        self.assertFalse(verify_password(hasher, stored, "wrong horse battery"))
        self.assertFalse(verify_password(hasher, "not a hash", "correct horse battery"))

    def test_unknown_user_verifies_against_dummy(self):
        """With no stored hash the pool still hashes (same cost) and says no."""
        pool = InlinePasswordHasher()
        self.assertFalse(self.successResultOf(pool.verify(None, "anything at all")))

    def test_oversized_password_never_matches(self):
        """A password beyond the byte limit is refused without hashing all of it."""
        pool = InlinePasswordHasher()
        big = "x" * (MAX_PASSWORD_BYTES + 10)
        stored = make_hasher(CHEAP_HASHING).hash(big)
        self.assertFalse(self.successResultOf(pool.verify(stored, big)))


class PoolTests(TestCase):
    """The hashing pool runs off the reactor thread and bounds its queue."""

    def setUp(self):
        config = PasswordHashConfig(time_cost=1, memory_kib=8, parallelism=1, threads=1,
                                    max_waiting=2)
        self.pool = PasswordHasherPool(reactor, config)
        self.pool.start()
        self.addCleanup(self.pool.stop)

    async def test_hash_and_verify_in_threads(self):
        """Hashing works through the thread pool."""
        stored = await self.pool.hash("correct horse battery")
        self.assertTrue(await self.pool.verify(stored, "correct horse battery"))

    async def test_queue_is_bounded(self):
        """Past max_waiting, a hash is refused at once instead of queueing."""
        first = self.pool.hash("one password here")
        second = self.pool.hash("two password here")
        third = self.pool.hash("three password here")
        self.failureResultOf(third, HasherBusy)
        await first
        await second
        await self.pool.hash("four password here")
