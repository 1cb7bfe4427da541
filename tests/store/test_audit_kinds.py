"""The audit kinds: one table in code, the same in docs/protocol.md, and no other kind."""

from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from remotecomm.store.audit import append_audit, audit_kinds_table

PROTOCOL = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"


class AuditKindTests(SynchronousTestCase):
    def test_the_documented_table_is_the_code_table(self):
        """docs/protocol.md ends with exactly the table of AUDIT_KINDS."""
        self.assertIn("\n## Audit record kinds\n", PROTOCOL.read_text())
        self.assertTrue(PROTOCOL.read_text().endswith(audit_kinds_table()))

    def test_an_unknown_kind_is_a_bug(self):
        """append_audit takes only kinds of the table, so every path that audits (each has
        its test) writes a documented kind."""
        with self.assertRaises(ValueError):
            append_audit(None, 0, "made-up-kind")
