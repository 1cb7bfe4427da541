"""Tests for remotecomm.store.engine and the migrations."""

import threading
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import event, insert, select, text, update
from sqlalchemy.exc import DatabaseError
from twisted.internet import reactor
from twisted.trial.unittest import SynchronousTestCase, TestCase

from remotecomm.store.accounts import insert_unit, login_record
from remotecomm.store.audit import append_audit, audit_records
from remotecomm.store.devices import devices_of_unit, insert_device
from remotecomm.store.engine import (SchemaTooNew, Store, StoreBusy, current_revision,
                                     head_revision, migrate, open_sqlite)
from remotecomm.store.schema import audit, metadata, sessions


class MigrationTests(SynchronousTestCase):
    """Databases reach the newest schema from empty and from older versions."""

    def setUp(self):
        self.engine = open_sqlite(Path(self.mktemp()) / "manager.sqlite3")
        self.addCleanup(self.engine.dispose)

    def test_fresh_database_reaches_head(self):
        """An empty file is migrated to the newest revision."""
        self.assertIsNone(current_revision(self.engine))
        migrate(self.engine)
        self.assertEqual(current_revision(self.engine), head_revision())

    def test_migrations_build_the_schema_the_code_uses(self):
        """The migrated database matches schema.py exactly (no drift between the two)."""
        migrate(self.engine)
        with self.engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), metadata)
        self.assertEqual(differences, [])

    def test_upgrade_keeps_existing_data(self):
        """A database at the first schema upgrades in place, keeping its rows."""
        migrate(self.engine, "0001")
        self.assertEqual(current_revision(self.engine), "0001")
        with self.engine.begin() as connection:
            insert_unit(connection, "acme", "ACME", "Europe/Berlin", 1)
            # Rows as the first schema had them (today's insert_user knows newer columns).
            connection.exec_driver_sql(
                "INSERT INTO users (user_id, display_name, password_hash, disabled, created_us)"
                " VALUES ('alice', 'Alice', '$argon2id$x', 0, 2)")
            connection.exec_driver_sql(
                "INSERT INTO memberships (user_id, unit_id, role, created_us)"
                " VALUES ('alice', 'acme', 'technician', 2)")
            insert_device(connection, "mfp-1", "acme", "MFP", "M1", 3)
            self.assertFalse(self.engine.dialect.has_table(connection, "sessions"))
        migrate(self.engine)
        self.assertEqual(current_revision(self.engine), head_revision())
        with self.engine.begin() as connection:
            self.assertEqual(login_record(connection, "alice").memberships,
                             (("acme", "technician"),))
            self.assertEqual([d["device_id"] for d in devices_of_unit(connection, "acme")],
                             ["mfp-1"])
            self.assertEqual(connection.execute(select(sessions)).all(), [])

    def test_migrating_twice_changes_nothing(self):
        """The server migrates at every start; a second run is a no-op."""
        migrate(self.engine)
        migrate(self.engine)
        self.assertEqual(current_revision(self.engine), head_revision())

    def test_newer_schema_is_refused(self):
        """A database migrated by a newer remotecomm is not touched."""
        migrate(self.engine)
        with self.engine.begin() as connection:
            connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
        with self.assertRaises(SchemaTooNew) as e:
            migrate(self.engine)
        self.assertIn("9999", str(e.exception))

    def test_sqlite_runs_in_wal_mode_with_foreign_keys(self):
        """WAL lets readers and the writer work at once; foreign keys are enforced."""
        migrate(self.engine)
        with self.engine.connect() as connection:
            self.assertEqual(connection.exec_driver_sql("PRAGMA journal_mode").scalar(), "wal")
            self.assertEqual(connection.exec_driver_sql("PRAGMA foreign_keys").scalar(), 1)
        with self.engine.begin() as connection:
            insert_unit(connection, "acme", "ACME", "UTC", 1)
            insert_device(connection, "mfp-1", "acme", "MFP", "M1", 3)
        with self.assertRaises(DatabaseError):
            with self.engine.begin() as connection:
                connection.execute(text("UPDATE devices SET unit_id = 'nowhere'"))


class AuditTests(SynchronousTestCase):
    """The audit table only grows."""

    def setUp(self):
        self.engine = open_sqlite(Path(self.mktemp()) / "manager.sqlite3")
        self.addCleanup(self.engine.dispose)
        migrate(self.engine)
        with self.engine.begin() as connection:
            append_audit(connection, 10, "login-failed", actor="alice",
                         source_address="127.0.0.1", reason="wrong-password")

    def test_records_keep_their_fields(self):
        """Kind, actor, source, time and details are kept."""
        with self.engine.begin() as connection:
            [record] = audit_records(connection)
        self.assertEqual((record["kind"], record["actor"], record["source_address"],
                          record["at_us"]), ("login-failed", "alice", "127.0.0.1", 10))
        self.assertEqual(record["detail"], {"reason": "wrong-password"})

    def test_updates_and_deletes_are_refused(self):
        """An append-only table refuses UPDATE and DELETE."""
        for statement in (update(audit).values(actor="mallory"), audit.delete()):
            with self.assertRaises(DatabaseError):
                with self.engine.begin() as connection:
                    connection.execute(statement)
        with self.engine.begin() as connection:
            connection.execute(insert(audit).values(at_us=11, kind="x", detail="{}"))
            self.assertEqual(len(audit_records(connection)), 2)


class StoreTests(TestCase):
    """Transactions run in a dedicated thread pool with a bounded queue."""

    def setUp(self):
        engine = open_sqlite(Path(self.mktemp()) / "manager.sqlite3")
        migrate(engine)
        self.store = Store(engine, reactor, max_waiting=2)
        self.store.start()
        self.addCleanup(self.store.stop)

    async def test_transactions_run_off_the_reactor_thread(self):
        """The reactor thread never waits on SQLite."""
        thread = await self.store.run(lambda connection: threading.current_thread())
        self.assertIsNot(thread, threading.current_thread())
        self.assertIn("remotecomm-store", thread.name)

    async def test_failed_transaction_rolls_back(self):
        """An exception inside a transaction function leaves nothing behind."""
        def half_done(connection):
            insert_unit(connection, "acme", "ACME", "UTC", 1)
            raise ValueError("boom")

        with self.assertRaises(ValueError):
            await self.store.run(half_done)
        self.assertEqual(await self.store.run(devices_of_unit, "acme"), [])
        self.assertIsNone(await self.store.run(lambda c: c.execute(
            text("SELECT unit_id FROM units")).first()))

    async def test_waiting_transactions_are_bounded(self):
        """Past max_waiting the store answers busy at once."""
        first = self.store.run(lambda c: 1)
        second = self.store.run(lambda c: 2)
        self.failureResultOf(self.store.run(lambda c: 3), StoreBusy)
        self.assertEqual((await first, await second), (1, 2))
        self.assertEqual(await self.store.run(lambda c: 4), 4)

    async def test_check_answers_true(self):
        """The readiness check runs a trivial query."""
        self.assertTrue(await self.store.check())


class GroupedTransactionTests(TestCase):
    """Store.run_grouped: calls that queue up share one commit; a failure stays its own."""

    def setUp(self):
        engine = open_sqlite(Path(self.mktemp()) / "manager.sqlite3")
        migrate(engine)
        self.commits = []
        event.listen(engine, "commit", lambda connection: self.commits.append(1))
        self.store = Store(engine, reactor)
        self.store.start()
        self.addCleanup(self.store.stop)

    def units(self):
        return self.store.run(lambda c: sorted(r[0] for r in c.execute(
            text("SELECT unit_id FROM units"))))

    async def test_calls_queued_behind_a_busy_store_share_one_commit(self):
        release = threading.Event()
        blocking = self.store.run(lambda connection: release.wait(5))
        grouped = [self.store.run_grouped(insert_unit, f"unit-{n}", "U", "UTC", n)
                   for n in range(10)]
        self.commits.clear()
        release.set()
        await blocking
        for call in grouped:
            self.assertIsNone(await call)
        self.assertEqual(len(self.commits), 2)  # the blocking transaction's, and the group's
        self.assertEqual(len(await self.units()), 10)

    async def test_a_call_that_raises_gets_its_error_and_the_others_commit(self):
        def half_done(connection):
            insert_unit(connection, "broken", "B", "UTC", 1)
            raise ValueError("boom")

        release = threading.Event()
        blocking = self.store.run(lambda connection: release.wait(5))
        first = self.store.run_grouped(insert_unit, "acme", "A", "UTC", 1)
        failing = self.store.run_grouped(half_done)
        last = self.store.run_grouped(insert_unit, "globex", "G", "UTC", 1)
        release.set()
        await blocking
        await first
        with self.assertRaises(ValueError):
            await failing
        await last
        self.assertEqual(await self.units(), ["acme", "globex"])
