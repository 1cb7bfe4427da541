"""The checks at every session request read only open sessions, through an index (they
scanned every session a device ever had before migration 0017)."""

from pathlib import Path

from sqlalchemy import text
from twisted.trial.unittest import SynchronousTestCase

from remotecomm.store.engine import migrate, open_sqlite

OPEN = "('pending', 'allocating', 'approved', 'active')"


class RequestCheckIndexTests(SynchronousTestCase):

    def plan(self, where: str) -> str:
        engine = open_sqlite(Path(self.mktemp()) / "manager.sqlite3")
        self.addCleanup(engine.dispose)
        migrate(engine)
        with engine.connect() as connection:
            rows = connection.execute(text(
                f"EXPLAIN QUERY PLAN SELECT count(*) FROM sessions WHERE {where}")).fetchall()
        return " ".join(row[-1] for row in rows)

    def test_a_users_open_sessions_are_counted_from_an_index(self):
        self.assertIn("INDEX ix_sessions_user_state (user_id=? AND state=?)",
                      self.plan(f"user_id = 'alice' AND state IN {OPEN}"))

    def test_a_devices_open_sessions_are_counted_from_an_index(self):
        self.assertIn("INDEX ix_sessions_device_state (device_id=? AND state=?)",
                      self.plan(f"device_id = 'mfp-1' AND state IN {OPEN}"))

    def test_the_open_session_of_a_device_and_terminal_is_found_from_an_index(self):
        self.assertIn("ix_sessions_device_terminal (device_id=? AND terminal_id=? AND state=?)",
                      self.plan(f"device_id = 'mfp-1' AND terminal_id = 't' AND state IN {OPEN}"))
