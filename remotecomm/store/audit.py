"""The append-only audit table: failed attempts and refusals, with source and time."""

from __future__ import annotations

import json

from sqlalchemy import Connection, insert, select

from remotecomm.store.schema import audit

# The kinds of audit record; each is a stable, documented code.
LOGIN_FAILED = "login-failed"
LOGIN_THROTTLED = "login-throttled"
TOKEN_REFUSED = "api-token-refused"


def append_audit(connection: Connection, at_us: int, kind: str, *, actor: str | None = None,
                 source_address: str | None = None, unit_id: str | None = None,
                 **detail: object) -> None:
    """Append one audit record.  ``detail`` must hold no secrets."""
    connection.execute(insert(audit).values(
        at_us=at_us, kind=kind, actor=actor, source_address=source_address, unit_id=unit_id,
        detail=json.dumps(detail, sort_keys=True)))


def audit_records(connection: Connection, kind: str | None = None) -> list[dict]:
    """Audit records, oldest first (optionally of one kind)."""
    query = select(audit).order_by(audit.c.audit_id)
    if kind is not None:
        query = query.where(audit.c.kind == kind)
    return [dict(row._mapping, detail=json.loads(row.detail))
            for row in connection.execute(query)]
