"""Refused relay admissions in the audit (remotecomm.sessions.relay_api): under the session's
unit when it exists, and bounded per minute so a flood cannot fill the table."""

from pathlib import Path

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from remotecomm.relay.gateway import Refusal
from remotecomm.sessions.relay_api import MAX_REFUSAL_ROWS_PER_MINUTE, ManagerForRelay
from remotecomm.store.audit import audit_records
from remotecomm.testing.fakes import migrated_inline_store


class RefusalAuditTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.clock.advance(1_800_000_000)
        self.store = migrated_inline_store(Path(self.mktemp()) / "manager.sqlite3")
        self.addCleanup(self.store.engine.dispose)
        self.manager = ManagerForRelay(self.store, self.clock, devices=None)

    def refuse(self, n: int) -> None:
        for _ in range(n):
            self.successResultOf(Deferred.fromCoroutine(self.manager.record_refusal(Refusal(
                code="wrong-token", session_id="S" * 22, side="device",
                source_address="198.51.100.7"))))

    def test_a_flood_writes_a_bounded_number_of_rows_and_says_how_many_it_left_out(self):
        self.refuse(MAX_REFUSAL_ROWS_PER_MINUTE + 40)
        rows = self.store.run_sync(audit_records, "relay-admission-refused")
        self.assertEqual(len(rows), MAX_REFUSAL_ROWS_PER_MINUTE)
        self.clock.advance(60)
        self.refuse(1)
        last = self.store.run_sync(audit_records, "relay-admission-refused")[-1]
        self.assertEqual(last["detail"]["unwritten_before"], 40)
        self.assertIsNone(last["unit_id"])  # no such session: no unit to file it under
