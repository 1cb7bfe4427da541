"""Tests for remotecomm.accounts.refusals: a refused administration call is audited by the
service itself, whichever front end (API, portal) made it."""

from pathlib import Path

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from remotecomm.accounts.administration import AccountAdmin, AdminError
from remotecomm.accounts.login import Caller
from remotecomm.store.accounts import insert_unit
from remotecomm.store.audit import audit_records
from remotecomm.testing.fakes import InlinePasswordHasher, migrated_inline_store


class RefusalAuditTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.store = migrated_inline_store(Path(self.mktemp()) / "manager.sqlite3")
        self.addCleanup(self.store.engine.dispose)
        self.store.run_sync(insert_unit, "acme", "ACME", "UTC", 0)
        self.admin = AccountAdmin(self.store, InlinePasswordHasher(), self.clock)
        self.caller = Caller(user_id="una", unit_id="acme", role="unit-admin",
                             terminal_id="t-1", source_address="192.0.2.7")

    def test_a_refusal_is_audited_with_the_call_and_where_it_came_from(self):
        failure = self.failureResultOf(Deferred.fromCoroutine(
            self.admin.set_disabled(self.caller, "nobody", True)), AdminError)
        self.assertEqual(failure.value.code, "user-not-found")
        (record,) = self.store.run_sync(audit_records, "admin-refused")
        self.assertEqual((record["actor"], record["unit_id"], record["source_address"],
                          record["detail"]), ("una", "acme", "192.0.2.7",
                                              {"call": "set_disabled", "code": "user-not-found"}))

    def test_a_granted_call_leaves_no_refusal(self):
        self.successResultOf(Deferred.fromCoroutine(self.admin.users(self.caller)))
        self.assertEqual(self.store.run_sync(audit_records, "admin-refused"), [])
