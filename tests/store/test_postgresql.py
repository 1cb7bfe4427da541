"""Tests for remotecomm.store.engine on PostgreSQL's terms: collisions run again, URLs
named without their passwords.  (The store's own tests run on PostgreSQL too: the test
command's second pass, remotecomm.testing.databases.)"""

from pathlib import Path

from sqlalchemy.exc import OperationalError
from twisted.trial.unittest import SynchronousTestCase

from remotecomm.store.engine import (TRANSACTION_ATTEMPTS, StoreBusy, describe_database,
                                     open_database, open_postgresql)
from remotecomm.testing.databases import postgresql_url
from remotecomm.testing.fakes import migrated_inline_store


class _Collision(Exception):
    sqlstate = "40001"  # serialization_failure, as psycopg says it


def collision() -> OperationalError:
    return OperationalError("UPDATE …", {}, _Collision("could not serialize access"))


class TransactionRetryTests(SynchronousTestCase):
    def setUp(self):
        self.store = migrated_inline_store(Path(self.mktemp()) / "manager.sqlite3")
        self.addCleanup(self.store.engine.dispose)

    def test_a_transaction_that_collided_runs_again(self):
        attempts = []

        def work(connection):
            attempts.append(1)
            if len(attempts) < 3:
                raise collision()
            return "done"

        self.assertEqual(self.store.run_sync(work), "done")
        self.assertEqual(len(attempts), 3)

    def test_it_gives_up_after_a_few_attempts_as_busy(self):
        """Exhausted, the caller answers as to a busy store: 503, try again."""
        attempts = []

        def work(connection):
            attempts.append(1)
            raise collision()

        with self.assertRaises(StoreBusy):
            self.store.run_sync(work)
        self.assertEqual(len(attempts), TRANSACTION_ATTEMPTS)

    def test_other_errors_are_not_run_again(self):
        attempts = []

        def work(connection):
            attempts.append(1)
            raise ValueError("no")

        with self.assertRaises(ValueError):
            self.store.run_sync(work)
        self.assertEqual(len(attempts), 1)


class LocationTests(SynchronousTestCase):
    def test_a_url_is_described_without_its_password(self):
        described = describe_database("postgresql+psycopg://rc:s3cret@db:5432/rc")
        self.assertNotIn("s3cret", described)
        self.assertIn("db:5432/rc", described)
        self.assertEqual(describe_database(Path("/x/manager.sqlite3")), "/x/manager.sqlite3")

    def test_the_url_picks_the_engine(self):
        self.assertEqual(open_database(Path(self.mktemp()) / "m.sqlite3").dialect.name,
                         "sqlite")
        engine = open_database("postgresql+psycopg://rc@127.0.0.1:1/rc")
        self.assertEqual((engine.dialect.name, engine.dialect.driver), ("postgresql", "psycopg"))
        with self.assertRaises(ValueError):
            open_postgresql("postgresql://rc@127.0.0.1/rc")

    def test_the_postgresql_pass_stores_on_postgresql(self):
        """In the test command's second pass every test store is a PostgreSQL schema."""
        store = migrated_inline_store(Path(self.mktemp()) / "manager.sqlite3")
        self.addCleanup(store.engine.dispose)
        expected = "postgresql" if postgresql_url() else "sqlite"
        self.assertEqual(store.engine.dialect.name, expected)
