"""The append-only audit table: failed attempts and refusals, with source and time."""

from __future__ import annotations

import json

from sqlalchemy import Connection, insert, select

from remotecomm.store.schema import audit

# The kinds of audit record; each is a stable, documented code.
LOGIN_FAILED = "login-failed"
LOGIN_THROTTLED = "login-throttled"
TOKEN_REFUSED = "api-token-refused"

# The one table of audit kinds: what each means.  docs/protocol.md's table is this one
# (tests/store/test_audit_kinds.py checks it); append_audit takes no other kind.
PERMISSION_DENIED = "permission-denied"
RELAY_DRAINED = "relay-drained"
RELAY_EMPTIED = "relay-emptied"
RELAY_RESUMED = "relay-resumed"

AUDIT_KINDS = {
    PERMISSION_DENIED: "an API call the caller's role does not allow (`endpoint`, `action`, "
                       "`role`)",
    LOGIN_FAILED: "a login was refused (`reason`: unknown-user, wrong-password, disabled)",
    LOGIN_THROTTLED: "a login was refused by the throttle",
    TOKEN_REFUSED: "an API call's token was refused (`reason`: the error code)",
    "relay-api-refused": "a caller without the relay API's secret (`path`; one record per "
                         "source address a minute)",
    "relay-admission-refused": "the relay refused a side (refusal code, side, session; under "
                               "the session's unit when it exists); at most 60 rows a "
                               "minute, `unwritten_before` counts those left out",
    "approval-refused": "an operator's answer the manager could not take (e.g. a test "
                        "approver it does not allow)",
    "session-force-ended": "a unit admin ended a session of their unit",
    "user-disabled": "a user was disabled (`remotecomm-admin disable-user`, or an admin "
                     "through the API: `user_id`)",
    "user-enabled": "a user was enabled again (likewise)",
    "admin-refused": "an admin call the rules refused (`call`, `code`: e.g. "
                     "last-provider-admin, already-exists, user-not-found)",
    "unit-created": "a provider admin created a unit (`name`, `time_zone`)",
    "unit-changed": "an admin renamed a unit or changed its time zone",
    "user-created": "an admin created a user in the unit (`user_id`, `role`, "
                    "`set_password_token`: whether they got one instead of a password)",
    "membership-set": "an admin gave a user a role in the unit (`user_id`, `role`)",
    "membership-removed": "an admin took the unit from a user (`user_id`)",
    "provider-admin-changed": "a provider admin made a user one, or no longer one",
    "password-reset": "an admin reset a user's password (their tokens were revoked)",
    "password-changed": "a user changed their own password",
    "password-set": "a new user set their password with a one-time token",
    "password-token-refused": "a set-password token was wrong, used or expired",
    RELAY_DRAINED: "a provider admin drained a relay node (`relay_node`, `open_sessions` "
                   "still running then); it takes no new sessions",
    RELAY_EMPTIED: "a draining relay node holds no session any more (`relay_node`): it can "
                   "be stopped",
    RELAY_RESUMED: "a provider admin put a drained relay node back into placement "
                   "(`relay_node`)",
    "device-revoked": "a device was revoked (`remotecomm-admin revoke-device`, or an admin "
                      "through the API)",
    "device-registered": "an admin registered a device in the unit (`device_id`, `name`, "
                         "`model`)",
    "panel-login-failed": "someone failed to log in at a device's panel (`actor`: the name "
                          "typed; `device_id`); reported by its agent, at most 10 a minute",
    "device-moved": "an admin moved a device to another unit (`to_unit`)",
    "device-credentials-rotated": "an admin rotated a device's XMPP credentials (`version`; "
                                  "never the password)",
    "report-recipient-added": "a unit admin added a report recipient (`address`)",
    "report-recipient-removed": "a unit admin removed a report recipient (`address`)",
    "report-schedule-added": "a unit admin added a report schedule (`schedule`)",
    "report-schedule-removed": "a unit admin removed a report schedule (`schedule_id`)",
    "report-mail-sent": "a report e-mail was accepted by the SMTP server (`mailing_id`, "
                        "`recipients`)",
    "report-mail-failed": "an attempt to send one failed (`mailing_id`, `attempt`, `error`, "
                          "`final`)",
    "job-created": "a maintenance job was asked for (`device_id`, `action`, `key`, `state`)",
    "job-finished": "a maintenance job ended (`state`, `error_code`)",
    "firmware-uploaded": "a firmware image was uploaded (`image_id`, `version`, `size`, "
                         "`sha256`)",
    "firmware-deleted": "a firmware image and its file were removed (`image_id`, `version`)",
    "firmware-download-refused": "a firmware job's download reference was refused (`job_id`, "
                                 "`reason`: wrong-token, used, expired, job-over)",
}


def audit_kinds_table() -> str:
    """The audit kinds as the Markdown table docs/protocol.md shows."""
    rows = ["| kind | written when |", "|---|---|"]
    rows += [f"| `{kind}` | {meaning} |" for kind, meaning in AUDIT_KINDS.items()]
    return "\n".join(rows) + "\n"


def audited(change, at_us: int, kind: str, *, actor: str | None = None,
            unit_id: str | None = None, **detail: object):
    """A transaction function: ``change(connection, *args)``, then its audit record, in
    the same transaction."""
    def run(connection: Connection, *args):
        result = change(connection, *args)
        append_audit(connection, at_us, kind, actor=actor, unit_id=unit_id, **detail)
        return result

    return run


def append_audit(connection: Connection, at_us: int, kind: str, *, actor: str | None = None,
                 source_address: str | None = None, unit_id: str | None = None,
                 **detail: object) -> None:
    """Append one audit record.  ``detail`` must hold no secrets."""
    if kind not in AUDIT_KINDS:
        raise ValueError(f"unknown audit kind {kind!r} (add it to AUDIT_KINDS)")
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


def unit_audit(connection: Connection, unit_id: str, kind: str | None = None,
               actor: str | None = None, from_us: int | None = None, to_us: int | None = None,
               before_id: int | None = None, limit: int = 100) -> list[dict]:
    """A unit's audit records, newest first, filtered; ``before_id`` pages back."""
    query = select(audit).where(audit.c.unit_id == unit_id)
    for column, value in ((audit.c.kind, kind), (audit.c.actor, actor)):
        if value is not None:
            query = query.where(column == value)
    if from_us is not None:
        query = query.where(audit.c.at_us >= from_us)
    if to_us is not None:
        query = query.where(audit.c.at_us < to_us)
    if before_id is not None:
        query = query.where(audit.c.audit_id < before_id)
    rows = connection.execute(query.order_by(audit.c.audit_id.desc()).limit(limit))
    return [dict(row._mapping, detail=json.loads(row.detail)) for row in rows]
