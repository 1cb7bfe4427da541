"""The store when the database does not answer (another connection holds its write lock --
tests run as root, so file modes prove nothing): a clear StoreUnavailable within the busy
timeout, then fast refusals until the readiness probe finds it back; reads go on (WAL)."""

import sqlite3
import time
from pathlib import Path

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from remotecomm.store.accounts import insert_unit
from remotecomm.store.engine import Store, StoreUnavailable, migrate, open_sqlite


def count_units(connection) -> int:
    return connection.exec_driver_sql("SELECT COUNT(*) FROM units").scalar()


class StoreUnavailableTests(TestCase):
    timeout = 15

    async def test_a_locked_database_is_refused_clearly_then_found_again(self):
        path = Path(self.mktemp()) / "manager.sqlite3"
        engine = open_sqlite(path, busy_timeout=0.2)
        migrate(engine)
        store = Store(engine, reactor)
        store.start()
        self.addCleanup(store.stop)
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")  # the write lock, held
        holder.execute("INSERT INTO units VALUES ('held', 'Held', 'UTC', 0)")
        started = time.monotonic()
        with self.assertRaises(StoreUnavailable):
            await store.run(insert_unit, "acme", "ACME", "UTC", 1)
        self.assertLess(time.monotonic() - started, 3)
        started = time.monotonic()
        with self.assertRaises(StoreUnavailable):  # at once now: no wait on the thread
            await store.run(count_units)
        self.assertLess(time.monotonic() - started, 0.1)
        self.assertTrue(await store.check())  # the probe: reads still work (WAL) …
        holder.execute("ROLLBACK")
        holder.close()
        await store.run(insert_unit, "acme", "ACME", "UTC", 1)  # … and writes are back
        self.assertEqual(await store.run(count_units), 1)
