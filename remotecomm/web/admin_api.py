"""The admin routes of the REST API: units, users, memberships, passwords, the audit log.

Each route's action is checked in one place before it runs
(:mod:`remotecomm.accounts.permissions`); the rules beyond roles live in
:mod:`remotecomm.accounts.administration`.  Routes under
``/api/v1/units/{unit_id}/…`` act in that unit; the others in the unit the
request names (``X-Remotecomm-Unit``) or the caller's only one.
``POST /api/v1/password/set`` needs no login: a new user redeems the one-time
token an admin was given for them.
"""

from __future__ import annotations

from typing import Awaitable, Callable

from twisted.web import server

from remotecomm.accounts.administration import AccountAdmin, AdminError
from remotecomm.accounts.login import Caller
from remotecomm.accounts.passwords import MAX_PASSWORD_BYTES, HasherBusy
from remotecomm.fleet.registry import DeviceRegistry, FleetError
from remotecomm.identifiers import DEVICE_ID, RELAY_NODE, TOKEN, UNIT_ID, USER_ID, is_valid
from remotecomm.json_http import ApiError, Download, Route, no_more_fields, read_json, take_str
from remotecomm.reports.csv_export import audit_csv
from remotecomm.reports.sessions import unit_zone
from remotecomm.sessions.relays import RelayDirectory, RelayError
from remotecomm.store.audit import AUDIT_KINDS, unit_audit
from remotecomm.store.engine import Store, StoreBusy
from remotecomm.web.answers import BUSY, with_iso_times

MAX_AUDIT_PAGE = 500
MAX_AUDIT_CSV = 10_000
_PASSWORD_FIELD = 4 * MAX_PASSWORD_BYTES


def _text(body: dict, field: str, max_length: int = 200, required: bool = True) -> str | None:
    if field not in body and not required:
        return None
    value = take_str(body, field, max_length=max_length)
    if not value.isprintable() or value != value.strip():
        raise ApiError(400, "invalid-field", f"{field}: printable text without surrounding "
                                             f"spaces", field=field)
    return value


class AdminRoutes:
    """Units, users and the audit log, for admins (and one's own password)."""

    def __init__(self, admin: AccountAdmin, store: Store,
                 caller: Callable[[server.Request], Awaitable[tuple[Caller, str]]],
                 instant: Callable[[str, str], int], source: Callable[[server.Request], str],
                 registry: DeviceRegistry | None = None, relays: RelayDirectory | None = None):
        self._admin = admin
        self._registry = registry
        self._relays = relays
        self._store = store
        self._caller = caller
        self._instant = instant
        self._source = source

    def routes(self) -> list[Route]:
        """The routes to add to the API's router."""
        return [Route("/api/v1/units", post=self.create_unit, get=self.units),
                Route("/api/v1/units/{unit_id}", patch=self.change_unit),
                Route("/api/v1/users", get=self.users, post=self.create_user),
                Route("/api/v1/users/{user_id}", get=self.user),
                Route("/api/v1/units/{unit_id}/users/{user_id}", put=self.set_role,
                      delete=self.remove_from_unit),
                Route("/api/v1/users/{user_id}/disable", post=self.disable),
                Route("/api/v1/users/{user_id}/enable", post=self.enable),
                Route("/api/v1/users/{user_id}/password", post=self.reset_password),
                Route("/api/v1/users/{user_id}/provider-admin", put=self.provider_admin),
                Route("/api/v1/password", post=self.change_own_password),
                Route("/api/v1/password/set", post=self.set_password),
                Route("/api/v1/devices/{device_id}/move", post=self.move_device),
                Route("/api/v1/devices/{device_id}", delete=self.revoke_device),
                Route("/api/v1/devices/{device_id}/rotate-credentials",
                      post=self.rotate_credentials),
                Route("/api/v1/relays", get=self.relay_nodes),
                Route("/api/v1/relays/{node}/drain", post=self.drain_relay),
                Route("/api/v1/relays/{node}/resume", post=self.resume_relay),
                Route("/api/v1/audit", get=self.audit),
                Route("/api/v1/audit.csv", get=self.audit_csv)]

    async def _run(self, call, *args):
        """An administration call; its refusal as the API's error (the service audited
        it: :mod:`remotecomm.accounts.refusals`)."""
        try:
            return await call(*args)
        except (AdminError, FleetError) as e:
            raise ApiError(e.status, e.code, e.message) from None
        except (StoreBusy, HasherBusy):
            raise BUSY from None

    # -- units -------------------------------------------------------------------------

    async def create_unit(self, request: server.Request):
        """A provider admin creates a unit."""
        caller, _ = await self._caller(request)
        body = read_json(request)
        unit_id = take_str(body, "unit_id", UNIT_ID)
        name = _text(body, "name")
        time_zone = take_str(body, "time_zone", r"[A-Za-z0-9_+/-]{1,64}")
        no_more_fields(body)
        return 201, with_iso_times(await self._run(self._admin.create_unit, caller, unit_id,
                                                   name, time_zone))

    async def units(self, request: server.Request):
        """The units the caller administers."""
        caller, _ = await self._caller(request)
        found = await self._run(self._admin.units, caller)
        return 200, {"units": [with_iso_times(unit) for unit in found]}

    async def change_unit(self, request: server.Request, unit_id: str):
        """Rename a unit or set its time zone."""
        caller, _ = await self._caller(request)
        body = read_json(request)
        name = _text(body, "name", required=False)
        time_zone = (take_str(body, "time_zone", r"[A-Za-z0-9_+/-]{1,64}")
                     if "time_zone" in body else None)
        no_more_fields(body)
        return 200, with_iso_times(await self._run(self._admin.change_unit, caller, name,
                                                   time_zone))

    # -- users -------------------------------------------------------------------------

    async def users(self, request: server.Request):
        """The unit's users."""
        caller, _ = await self._caller(request)
        found = await self._run(self._admin.users, caller)
        return 200, {"unit_id": caller.unit_id,
                     "users": [with_iso_times(user) for user in found]}

    async def user(self, request: server.Request, user_id: str):
        """One user of the unit."""
        caller, _ = await self._caller(request)
        if not is_valid(USER_ID, user_id):
            raise ApiError(404, "user-not-found", "no such user")
        return 200, with_iso_times(await self._run(self._admin.user, caller, user_id))

    async def create_user(self, request: server.Request):
        """A new user in the unit: with ``password``, or without one (the answer carries a
        one-time ``set_password_token`` for them, valid 24 h, shown once)."""
        caller, _ = await self._caller(request)
        body = read_json(request)
        user_id = take_str(body, "user_id", USER_ID)
        display_name = _text(body, "display_name", required=False) or user_id
        role = take_str(body, "role", r"technician|unit-admin")
        password = (take_str(body, "password", max_length=_PASSWORD_FIELD)
                    if "password" in body else None)
        no_more_fields(body)
        user, token = await self._run(self._admin.create_user, caller, user_id, display_name,
                                      role, password)
        answer = with_iso_times(user)
        if token is not None:
            answer["set_password_token"] = token
        return 201, answer

    async def set_role(self, request: server.Request, unit_id: str, user_id: str):
        """Give a user a role in the unit (adding them to it)."""
        caller, _ = await self._caller(request)
        body = read_json(request)
        role = take_str(body, "role", r"technician|unit-admin")
        no_more_fields(body)
        if not is_valid(USER_ID, user_id):
            raise ApiError(404, "user-not-found", "no such user")
        return 200, with_iso_times(await self._run(self._admin.set_role, caller, user_id, role))

    async def remove_from_unit(self, request: server.Request, unit_id: str, user_id: str):
        """Take the unit from a user."""
        caller, _ = await self._caller(request)
        if not is_valid(USER_ID, user_id):
            raise ApiError(404, "user-not-found", "no such user")
        return 200, with_iso_times(await self._run(self._admin.set_role, caller, user_id, None))

    async def disable(self, request: server.Request, user_id: str):
        """Disable a user: their tokens stop at once, their sessions end within seconds."""
        return await self._set_disabled(request, user_id, True)

    async def enable(self, request: server.Request, user_id: str):
        """Enable a disabled user again."""
        return await self._set_disabled(request, user_id, False)

    async def _set_disabled(self, request: server.Request, user_id: str, disabled: bool):
        caller, _ = await self._caller(request)
        if not is_valid(USER_ID, user_id):
            raise ApiError(404, "user-not-found", "no such user")
        return 200, with_iso_times(await self._run(self._admin.set_disabled, caller, user_id,
                                                   disabled))

    async def reset_password(self, request: server.Request, user_id: str):
        """Reset a user's password: to ``password``, or (without one) a one-time token."""
        caller, _ = await self._caller(request)
        body = read_json(request)
        password = (take_str(body, "password", max_length=_PASSWORD_FIELD)
                    if "password" in body else None)
        no_more_fields(body)
        if not is_valid(USER_ID, user_id):
            raise ApiError(404, "user-not-found", "no such user")
        token = await self._run(self._admin.reset_password, caller, user_id, password)
        answer = {"user_id": user_id, "status": "reset"}
        if token is not None:
            answer["set_password_token"] = token
        return 200, answer

    async def provider_admin(self, request: server.Request, user_id: str):
        """Make a user a provider admin, or no longer one."""
        caller, _ = await self._caller(request)
        body = read_json(request)
        flag = body.pop("provider_admin", None)
        no_more_fields(body)
        if not isinstance(flag, bool):
            raise ApiError(400, "invalid-field", "provider_admin: true or false",
                           field="provider_admin")
        if not is_valid(USER_ID, user_id):
            raise ApiError(404, "user-not-found", "no such user")
        return 200, with_iso_times(await self._run(self._admin.set_provider_admin, caller,
                                                   user_id, flag))

    # -- passwords ---------------------------------------------------------------------

    async def change_own_password(self, request: server.Request):
        """The caller changes their own password (their other tokens are revoked)."""
        caller, _ = await self._caller(request)
        body = read_json(request)
        current = take_str(body, "current_password", max_length=_PASSWORD_FIELD)
        new = take_str(body, "new_password", max_length=_PASSWORD_FIELD)
        no_more_fields(body)
        await self._run(self._admin.change_own_password, caller, current, new)
        return 200, {"status": "changed"}

    async def set_password(self, request: server.Request):
        """A new user sets their password with the one-time token (no login)."""
        body = read_json(request)
        user_id = take_str(body, "user_id", max_length=200).strip().lower()
        token = take_str(body, "token", max_length=100)
        new = take_str(body, "new_password", max_length=_PASSWORD_FIELD)
        no_more_fields(body)
        if not is_valid(USER_ID, user_id) or not is_valid(TOKEN, token):
            raise ApiError(403, "invalid-password-token", "the token is not valid (wrong, "
                                                          "used or expired)")
        await self._run(self._admin.redeem_password_token, user_id, token, new,
                        self._source(request))
        return 200, {"status": "set"}

    # -- devices -------------------------------------------------------------------------

    def _devices(self) -> DeviceRegistry:
        if self._registry is None:
            raise ApiError(503, "unavailable", "devices are not administered by this manager")
        return self._registry

    async def register_device(self, request: server.Request):
        """Register a device in the unit: its agent config (with its XMPP password) and the
        CA certificate, in this answer only."""
        caller, _ = await self._caller(request)
        body = read_json(request)
        device_id = take_str(body, "device_id", DEVICE_ID)
        name = _text(body, "name", required=False) or device_id
        model = _text(body, "model", required=False) or "unknown"
        no_more_fields(body)
        return 201, await self._run(self._devices().register, caller, device_id, name, model)

    async def move_device(self, request: server.Request, device_id: str):
        """Move a device of the unit to another unit the caller administers."""
        caller, _ = await self._caller(request)
        body = read_json(request)
        to_unit = take_str(body, "unit_id", UNIT_ID)
        no_more_fields(body)
        if not is_valid(DEVICE_ID, device_id):
            raise ApiError(404, "device-not-found", "no such device")
        return 200, await self._run(self._devices().move, caller, device_id, to_unit)

    async def revoke_device(self, request: server.Request, device_id: str):
        """Revoke a device of the unit."""
        caller, _ = await self._caller(request)
        if not is_valid(DEVICE_ID, device_id):
            raise ApiError(404, "device-not-found", "no such device")
        return 200, await self._run(self._devices().revoke, caller, device_id)

    async def rotate_credentials(self, request: server.Request, device_id: str):
        """New XMPP credentials for a device of the unit (its agent saves them first)."""
        caller, _ = await self._caller(request)
        if not is_valid(DEVICE_ID, device_id):
            raise ApiError(404, "device-not-found", "no such device")
        return 200, await self._run(self._devices().rotate, caller, device_id)

    # -- relay nodes (provider admins) ---------------------------------------------------

    def _relay_directory(self) -> RelayDirectory:
        if self._relays is None:
            raise ApiError(503, "unavailable", "relays are not managed by this server")
        return self._relays

    async def relay_nodes(self, request: server.Request):
        """Every relay node: state, whether it is alive, its sessions."""
        await self._caller(request)
        try:
            found = await self._relay_directory().nodes()
        except StoreBusy:
            raise BUSY from None
        return 200, {"relays": [with_iso_times(node) for node in found]}

    async def drain_relay(self, request: server.Request, node: str):
        """A relay node takes no new sessions from now on; its running ones finish."""
        return await self._relay_order(request, node, "drain")

    async def resume_relay(self, request: server.Request, node: str):
        """A draining relay node takes new sessions again."""
        return await self._relay_order(request, node, "resume")

    async def _relay_order(self, request: server.Request, node: str, order: str):
        caller, _ = await self._caller(request)
        if not is_valid(RELAY_NODE, node):
            raise ApiError(404, "relay-not-found", "no such relay node")
        try:
            return 200, await getattr(self._relay_directory(), order)(
                node, caller.user_id, self._source(request))
        except RelayError as e:
            raise ApiError(e.status, e.code, e.message) from None
        except StoreBusy:
            raise BUSY from None

    # -- the audit log -----------------------------------------------------------------

    def _audit_filters(self, request: server.Request, max_limit: int) -> dict:
        values = {}
        for raw, found in request.args.items():
            name = raw.decode("ascii", "replace")
            if name not in ("kind", "actor", "from", "to", "limit", "before"):
                raise ApiError(400, "unknown-field", f"unknown query parameter {name!r}",
                               fields=[name])
            values[name] = found[-1].decode("utf-8", "replace")
        filters = {"limit": min(100, max_limit)}
        if "kind" in values:
            if values["kind"] not in AUDIT_KINDS:
                raise ApiError(400, "invalid-field", "kind: one of the audit kinds",
                               field="kind")
            filters["kind"] = values["kind"]
        if "actor" in values:
            if len(values["actor"]) > 200:
                raise ApiError(400, "invalid-field", "actor is too long", field="actor")
            filters["actor"] = values["actor"]
        for name, key in (("from", "from_us"), ("to", "to_us")):
            if name in values:
                filters[key] = self._instant(values[name], name)
        for name, key, top in (("limit", "limit", max_limit), ("before", "before_id", 2**62)):
            if name in values:
                if not values[name].isdigit() or not 1 <= int(values[name]) <= top:
                    raise ApiError(400, "invalid-field", f"{name}: 1 to {top}", field=name)
                filters[key] = int(values[name])
        return filters

    async def audit(self, request: server.Request):
        """The unit's audit records, newest first (``next`` pages back)."""
        caller, _ = await self._caller(request)
        filters = self._audit_filters(request, MAX_AUDIT_PAGE)
        try:
            found = await self._admin.audit(caller, **filters)
        except StoreBusy:
            raise BUSY from None
        answer = {"unit_id": caller.unit_id, "records": [with_iso_times(r) for r in found]}
        if len(found) == filters["limit"]:
            answer["next"] = found[-1]["audit_id"]
        return 200, answer

    async def audit_csv(self, request: server.Request):
        """The unit's audit records as CSV (at most 10,000, newest first)."""
        caller, _ = await self._caller(request)
        filters = self._audit_filters(request, MAX_AUDIT_CSV)
        if b"limit" not in request.args:
            filters["limit"] = MAX_AUDIT_CSV

        def export(connection):
            return (unit_audit(connection, caller.unit_id, **filters),
                    unit_zone(connection, caller.unit_id))

        found, tz = await self._run(self._store.run, export)
        return 200, Download(audit_csv(found, tz), "text/csv; charset=utf-8",
                             f"audit-{caller.unit_id}.csv")
