"""Tests for remotecomm.accounts.housekeeping: dead API tokens are purged."""

from pathlib import Path

from sqlalchemy import insert, select
from twisted.internet.defer import ensureDeferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from remotecomm.accounts import housekeeping
from remotecomm.store.schema import api_tokens, memberships, terminals, units, users
from remotecomm.testing.fakes import migrated_inline_store

DAY_US = 24 * 3600 * 10**6
NOW_US = 1_800_000_000 * 10**6


class TokenPurgeTests(SynchronousTestCase):
    """Tokens dead for over a week go; live and recently dead ones stay."""

    def setUp(self):
        self.store = migrated_inline_store(Path(self.mktemp()) / "manager.sqlite3")
        self.addCleanup(self.store.engine.dispose)
        self.clock = Clock()
        self.clock.advance(NOW_US / 10**6)

    def add_token(self, connection, name, expires_us, revoked_us=None):
        connection.execute(insert(api_tokens).values(
            token_hash=name.ljust(64, "0"), user_id="alice", terminal_id="t-1",
            created_us=NOW_US - 30 * DAY_US, expires_us=expires_us, revoked_us=revoked_us,
            source_address=None))

    def tokens(self):
        return sorted(row.token_hash.rstrip("0") for row in self.store.run_sync(
            lambda c: c.execute(select(api_tokens.c.token_hash)).all()))

    def test_dead_tokens_are_purged_after_a_week(self):
        def fill(c):
            c.execute(insert(units).values(unit_id="acme", name="Acme", time_zone="UTC",
                                           created_us=0))
            c.execute(insert(users).values(user_id="alice", display_name="Alice",
                                           password_hash="x", disabled=False, created_us=0))
            c.execute(insert(memberships).values(user_id="alice", unit_id="acme",
                                                 role="technician", created_us=0))
            c.execute(insert(terminals).values(terminal_id="t-1", registered_us=0,
                                               last_login_us=0, last_user_id="alice"))
            self.add_token(c, "live", NOW_US + DAY_US)
            self.add_token(c, "expiredyesterday", NOW_US - DAY_US)
            self.add_token(c, "expiredlongago", NOW_US - 8 * DAY_US)
            self.add_token(c, "revokedlongago", NOW_US + DAY_US, revoked_us=NOW_US - 9 * DAY_US)
        self.store.run_sync(fill)
        count = self.successResultOf(ensureDeferred(
            housekeeping.purge_dead_tokens(self.store, self.clock)))
        self.assertEqual(count, 2)
        self.assertEqual(self.tokens(), ["expiredyesterday", "live"])
