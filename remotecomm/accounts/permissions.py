"""Who may do what: the one table of roles, actions and API endpoints.

Three roles: a **provider admin** administers every unit; a **unit admin**
their units; a **technician** opens sessions and runs maintenance in their
units.  Every API endpoint that acts for a logged-in user names one action
here (:data:`ENDPOINTS`); the API checks the caller's role against
:data:`ACTIONS` in one place before the handler runs, and refuses with
``403 forbidden`` (audited).  A unit-scoped action runs in one unit: the one
the request names (``X-Remotecomm-Unit``) or the caller's only unit.
``docs/protocol.md`` carries :func:`permissions_table`, generated from this
module, and a test checks they match.
"""

from __future__ import annotations

from dataclasses import dataclass

PROVIDER_ADMIN, UNIT_ADMIN, TECHNICIAN = "provider-admin", "unit-admin", "technician"
ROLES = (PROVIDER_ADMIN, UNIT_ADMIN, TECHNICIAN)
MEMBERSHIP_ROLES = (UNIT_ADMIN, TECHNICIAN)   # a provider admin needs no membership
ADMINS = (PROVIDER_ADMIN, UNIT_ADMIN)
EVERYONE = ROLES


@dataclass(frozen=True)
class Action:
    """What an endpoint does: the roles that may, and whether it acts in one unit."""

    roles: tuple[str, ...]
    meaning: str
    unit_scoped: bool = True


ACTIONS: dict[str, Action] = {
    "devices.list": Action(EVERYONE, "list the unit's devices"),
    "sessions.request": Action(EVERYONE, "ask a device for a session, follow and withdraw "
                                         "one's own requests"),
    "sessions.list": Action(EVERYONE, "list and export the unit's sessions and records"),
    "sessions.end": Action(EVERYONE, "end one's own session"),
    "sessions.end-any": Action(ADMINS, "end anyone's session in the unit"),
    "sessions.collect": Action(EVERYONE, "ask devices for the reports the records lack"),
    "reports.read": Action(EVERYONE, "read the unit's reports, recipients, schedules and "
                                     "mailings"),
    "reports.manage": Action(ADMINS, "change report recipients and schedules, mail a "
                                     "report now"),
    "jobs.run": Action(EVERYONE, "run, follow and withdraw maintenance jobs"),
    "firmware.upload": Action(EVERYONE, "upload and list firmware images"),
    "firmware.delete": Action(ADMINS, "delete the unit's firmware images"),
    "units.create": Action((PROVIDER_ADMIN,), "create units", unit_scoped=False),
    "units.list": Action(ADMINS, "list the units one administers", unit_scoped=False),
    "units.manage": Action(ADMINS, "rename the unit or set its time zone"),
    "users.list": Action(ADMINS, "list and show the unit's users"),
    "users.manage": Action(ADMINS, "create the unit's users, set their roles, disable and "
                                   "enable them, reset their passwords"),
    "providers.manage": Action((PROVIDER_ADMIN,), "make users provider admins or no longer",
                               unit_scoped=False),
    "audit.read": Action(ADMINS, "read and export the unit's audit records"),
    "devices.manage": Action(ADMINS, "register, move, revoke the unit's devices and rotate "
                                     "their credentials"),
    "relays.manage": Action((PROVIDER_ADMIN,), "list the relay nodes, drain and resume them",
                            unit_scoped=False),
}

# Every endpoint for logged-in users → its action.  Endpoints absent here need no login
# (login, health, a device's firmware download) or another credential (the relay API).
ENDPOINTS: dict[str, str] = {
    "POST /api/v1/logout": "",   # any logged-in user, in no particular unit
    "GET /api/v1/devices": "devices.list",
    "POST /api/v1/sessions": "sessions.request",
    "GET /api/v1/sessions": "sessions.list",
    "POST /api/v1/sessions/collect": "sessions.collect",
    "GET /api/v1/sessions/{request_id}": "sessions.request",
    "DELETE /api/v1/sessions/{request_id}": "sessions.request",
    "POST /api/v1/sessions/{request_id}/end": "sessions.end",
    "GET /api/v1/sessions.csv": "sessions.list",
    "GET /api/v1/reports/sessions": "reports.read",
    "GET /api/v1/reports/sessions.csv": "reports.read",
    "GET /api/v1/reports/recipients": "reports.read",
    "POST /api/v1/reports/recipients": "reports.manage",
    "DELETE /api/v1/reports/recipients/{address}": "reports.manage",
    "GET /api/v1/reports/schedules": "reports.read",
    "POST /api/v1/reports/schedules": "reports.manage",
    "DELETE /api/v1/reports/schedules/{schedule_id}": "reports.manage",
    "POST /api/v1/reports/send": "reports.manage",
    "GET /api/v1/reports/mailings": "reports.read",
    "POST /api/v1/devices/{device_id}/jobs": "jobs.run",
    "GET /api/v1/devices/{device_id}/jobs": "jobs.run",
    "GET /api/v1/jobs": "jobs.run",
    "GET /api/v1/jobs/{job_id}": "jobs.run",
    "DELETE /api/v1/jobs/{job_id}": "jobs.run",
    "POST /api/v1/firmware": "firmware.upload",
    "GET /api/v1/firmware": "firmware.upload",
    "DELETE /api/v1/firmware/{image_id}": "firmware.delete",
    "POST /api/v1/password": "",  # one's own password
    "POST /api/v1/units": "units.create",
    "GET /api/v1/units": "units.list",
    "PATCH /api/v1/units/{unit_id}": "units.manage",
    "GET /api/v1/users": "users.list",
    "POST /api/v1/users": "users.manage",
    "GET /api/v1/users/{user_id}": "users.list",
    "PUT /api/v1/units/{unit_id}/users/{user_id}": "users.manage",
    "DELETE /api/v1/units/{unit_id}/users/{user_id}": "users.manage",
    "POST /api/v1/users/{user_id}/disable": "users.manage",
    "POST /api/v1/users/{user_id}/enable": "users.manage",
    "POST /api/v1/users/{user_id}/password": "users.manage",
    "PUT /api/v1/users/{user_id}/provider-admin": "providers.manage",
    "POST /api/v1/devices": "devices.manage",
    "POST /api/v1/devices/{device_id}/move": "devices.manage",
    "DELETE /api/v1/devices/{device_id}": "devices.manage",
    "POST /api/v1/devices/{device_id}/rotate-credentials": "devices.manage",
    "GET /api/v1/audit": "audit.read",
    "GET /api/v1/audit.csv": "audit.read",
    "GET /api/v1/relays": "relays.manage",
    "POST /api/v1/relays/{node}/drain": "relays.manage",
    "POST /api/v1/relays/{node}/resume": "relays.manage",
}
PUBLIC_ENDPOINTS = ("POST /api/v1/login", "GET /healthz", "GET /readyz",
                    "GET /api/v1/firmware-downloads/{job_id}", "POST /api/v1/password/set")


def allowed(role: str, action: str) -> bool:
    """Whether ``role`` may do ``action`` (an unknown action: nobody may)."""
    found = ACTIONS.get(action)
    return found is not None and role in found.roles


def permissions_table() -> str:
    """The Markdown table of endpoints, actions and roles, as docs/protocol.md shows it."""
    rows = ["| endpoint | action | " + " | ".join(ROLES) + " |",
            "|---|---|" + "---|" * len(ROLES)]
    for endpoint, action in ENDPOINTS.items():
        roles = ACTIONS[action].roles if action else ROLES
        marks = " | ".join("yes" if role in roles else "--" for role in ROLES)
        rows.append(f"| `{endpoint}` | {action or '(logged in)'} | {marks} |")
    return "\n".join(rows) + "\n"
