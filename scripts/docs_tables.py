"""Rewrite the tables docs/ carries from code: the audit kinds (the end of
docs/protocol.md) and the permissions (the end of docs/permissions.md).

Run it after changing remotecomm/store/audit.py's AUDIT_KINDS or
remotecomm/accounts/permissions.py: ``.venv/bin/python scripts/docs_tables.py``.
The tests check that the pages end with these tables.
"""

from pathlib import Path

from remotecomm.accounts.permissions import permissions_table
from remotecomm.store.audit import audit_kinds_table

DOCS = Path(__file__).resolve().parent.parent / "docs"


def rewrite_tail(page: Path, table: str) -> None:
    """Replace the page's last table (from the table's header row on) with ``table``."""
    text = page.read_text()
    start = text.rindex(table.splitlines()[0])
    page.write_text(text[:start] + table)


if __name__ == "__main__":
    rewrite_tail(DOCS / "protocol.md", audit_kinds_table())
    rewrite_tail(DOCS / "permissions.md", permissions_table())
