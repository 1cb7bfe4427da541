"""Administering units and users (issue "Running the service"): the rules, free of HTTP.

The API has already checked the caller's role for the action (in the unit
the call acts in: :mod:`remotecomm.accounts.permissions`); what is left here
is what no table can say: a user is administered only through a unit they
belong to (another unit's user looks like no user), a unit admin cannot
make provider admins nor disable or reset the password of a user who also
belongs to other units, nobody disables or demotes the last active provider
admin, a password follows the password rules.  Every change is audited,
with the admin who made it and where they called from; so is every refusal
(:mod:`remotecomm.accounts.refusals`).
"""

from __future__ import annotations

import zoneinfo

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from remotecomm.accounts.login import Caller
from remotecomm.accounts.passwords import PasswordRuleError, check_new_password
from remotecomm.accounts.permissions import MEMBERSHIP_ROLES, PROVIDER_ADMIN
from remotecomm.accounts.refusals import refusals_audited
from remotecomm.clock import now_us, seconds_to_us
from remotecomm.service_errors import ServiceError
from remotecomm.store import accounts as account_rows
from remotecomm.store.audit import AUDIT_KINDS, append_audit, audited, unit_audit
from remotecomm.store.engine import Store
from remotecomm.tokens import new_token, token_hash

log = Logger()

SET_PASSWORD_LIFETIME = 24 * 3600.0


class AdminError(ServiceError):
    """An administration request refused."""


def _check_time_zone(time_zone: str) -> None:
    try:
        zoneinfo.ZoneInfo(time_zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise AdminError(400, "invalid-field", f"unknown time zone {time_zone!r} (an IANA "
                                               f"name such as Europe/Berlin)") from None


def _check_password(password: str) -> None:
    try:
        check_new_password(password)
    except PasswordRuleError as e:
        raise AdminError(400, "weak-password", str(e)) from None


class AccountAdmin:
    """Units, users, memberships, passwords; each change audited."""

    def __init__(self, store: Store, hasher, clock: IReactorTime):
        self._store = store
        self._hasher = hasher  # hash(password) -> Deferred[str], verify(hash, password)
        self._clock = clock

    async def _audited(self, caller: Caller, kind: str, unit_id: str | None, change,
                       *args, **detail):
        run = audited(change, now_us(self._clock), kind, actor=caller.user_id, unit_id=unit_id,
                      source_address=caller.source_address, **detail)
        try:
            return await self._store.run(run, *args)
        except account_rows.AlreadyExists as e:
            raise AdminError(409, "already-exists", str(e)) from None
        except account_rows.NotFound as e:
            raise AdminError(404, "not-found", str(e)) from None

    # -- units -------------------------------------------------------------------------

    @refusals_audited
    async def create_unit(self, caller: Caller, unit_id: str, name: str,
                          time_zone: str) -> dict:
        """A new unit."""
        _check_time_zone(time_zone)
        await self._audited(caller, "unit-created", unit_id, account_rows.insert_unit,
                            unit_id, name, time_zone, now_us(self._clock), name=name,
                            time_zone=time_zone)
        log.info("unit {unit_id} created by {user_id}", unit_id=unit_id,
                 user_id=caller.user_id)
        return (await self._store.run(account_rows.unit_rows, (unit_id,)))[0]

    @refusals_audited
    async def units(self, caller: Caller) -> list[dict]:
        """Every unit for a provider admin; a unit admin's own units."""
        mine = None if caller.role == PROVIDER_ADMIN else tuple(
            unit for unit, role in caller.memberships if role == "unit-admin")
        return await self._store.run(account_rows.unit_rows, mine)

    @refusals_audited
    async def change_unit(self, caller: Caller, name: str | None,
                          time_zone: str | None) -> dict:
        """Rename the caller's unit or set its time zone."""
        changes = {}
        if name is not None:
            changes["name"] = name
        if time_zone is not None:
            _check_time_zone(time_zone)
            changes["time_zone"] = time_zone
        if changes:
            await self._audited(caller, "unit-changed", caller.unit_id,
                                account_rows.update_unit, caller.unit_id, changes, **changes)
        return (await self._store.run(account_rows.unit_rows, (caller.unit_id,)))[0]

    # -- users -------------------------------------------------------------------------

    @refusals_audited
    async def user(self, caller: Caller, user_id: str) -> dict:
        """A user of the caller's unit (anyone else looks like no user)."""
        return await self._user(caller, user_id)

    async def _user(self, caller: Caller, user_id: str) -> dict:
        found = await self._store.run(account_rows.user_row, user_id)
        if found is None or caller.unit_id not in [m["unit_id"] for m in found["memberships"]]:
            raise AdminError(404, "user-not-found", f"no user {user_id} in unit "
                                                    f"{caller.unit_id}")
        return found

    @refusals_audited
    async def users(self, caller: Caller) -> list[dict]:
        """The users of the caller's unit."""
        return await self._store.run(account_rows.users_of_unit, caller.unit_id)

    @refusals_audited
    async def create_user(self, caller: Caller, user_id: str, display_name: str, role: str,
                          password: str | None) -> tuple[dict, str | None]:
        """A new user in the caller's unit, with a password or (without one) a one-time
        set-password token valid for 24 h; the user and the token."""
        if role not in MEMBERSHIP_ROLES:
            raise AdminError(400, "invalid-field", f"role: one of {', '.join(MEMBERSHIP_ROLES)}")
        if password is not None:
            _check_password(password)
        stored = await self._hasher.hash(password if password is not None else new_token())
        at = now_us(self._clock)
        token = new_token() if password is None else None

        def create(connection, *_):
            account_rows.insert_user(connection, user_id, display_name, stored,
                                     caller.unit_id, role, at)
            if token is not None:
                account_rows.insert_password_token(
                    connection, token_hash(token), user_id, at,
                    at + seconds_to_us(SET_PASSWORD_LIFETIME))

        await self._audited(caller, "user-created", caller.unit_id, create, user_id=user_id,
                            role=role, set_password_token=token is not None)
        log.info("user {user_id} created in {unit_id} by {admin}", user_id=user_id,
                 unit_id=caller.unit_id, admin=caller.user_id)
        return await self._user(caller, user_id), token

    @refusals_audited
    async def set_role(self, caller: Caller, user_id: str, role: str | None) -> dict:
        """Give an existing user a role in the caller's unit (``None``: take the unit from
        them).  Adding a user of no unit of the caller's is allowed only to provider
        admins (a unit admin cannot see other units' users)."""
        found = await self._store.run(account_rows.user_row, user_id)
        member = found is not None and caller.unit_id in [m["unit_id"]
                                                         for m in found["memberships"]]
        if found is None or (not member and caller.role != PROVIDER_ADMIN):
            raise AdminError(404, "user-not-found", f"no user {user_id} in unit "
                                                    f"{caller.unit_id}")
        if role is None:
            if not member:
                raise AdminError(404, "user-not-found", f"{user_id} is not in this unit")
            await self._audited(caller, "membership-removed", caller.unit_id,
                                account_rows.remove_membership, user_id, caller.unit_id,
                                user_id=user_id)
        else:
            if role not in MEMBERSHIP_ROLES:
                raise AdminError(400, "invalid-field",
                                 f"role: one of {', '.join(MEMBERSHIP_ROLES)}")
            await self._audited(caller, "membership-set", caller.unit_id,
                                account_rows.add_membership, user_id, caller.unit_id, role,
                                now_us(self._clock), user_id=user_id, role=role)
        return await self._store.run(account_rows.user_row, user_id)

    @refusals_audited
    async def set_provider_admin(self, caller: Caller, user_id: str, flag: bool) -> dict:
        """Make a user a provider admin or no longer one (never the last active one)."""
        found = await self._store.run(account_rows.user_row, user_id)
        if found is None:
            raise AdminError(404, "user-not-found", f"no user {user_id}")
        if not flag:
            await self._keep_a_provider_admin(user_id)
        await self._audited(caller, "provider-admin-changed", None,
                            account_rows.set_provider_admin, user_id, flag, user_id=user_id,
                            provider_admin=flag)
        return await self._store.run(account_rows.user_row, user_id)

    async def _keep_a_provider_admin(self, user_id: str) -> None:
        remaining = await self._store.run(account_rows.active_provider_admins)
        if remaining == [user_id]:
            raise AdminError(409, "last-provider-admin", "the service needs at least one "
                                                         "active provider admin")

    @staticmethod
    def _only_in_callers_unit(caller: Caller, found: dict, what: str) -> None:
        """A unit admin's change to the account itself (disable, password) reaches every
        unit the user belongs to: only a provider admin makes it for a user of other units
        too."""
        others = sorted(m["unit_id"] for m in found["memberships"]
                        if m["unit_id"] != caller.unit_id)
        if others and caller.role != PROVIDER_ADMIN:
            raise AdminError(409, "user-in-other-units",
                             f"{found['user_id']} also belongs to {', '.join(others)}: a "
                             f"provider admin can {what}, or take this unit from them")

    @refusals_audited
    async def set_disabled(self, caller: Caller, user_id: str, disabled: bool) -> dict:
        """Disable a user of the caller's unit (their tokens stop at once, their sessions
        end within seconds) or enable them again; a user who also belongs to other units,
        only a provider admin."""
        found = await self._user(caller, user_id)
        self._only_in_callers_unit(caller, found, "disable or enable them")
        if disabled and found["provider_admin"]:
            if caller.role != PROVIDER_ADMIN:
                raise AdminError(404, "user-not-found", f"no user {user_id} in unit "
                                                        f"{caller.unit_id}")
            await self._keep_a_provider_admin(user_id)
        await self._audited(caller, "user-disabled" if disabled else "user-enabled",
                            caller.unit_id, account_rows.set_user_disabled, user_id, disabled,
                            user_id=user_id)
        log.info("user {user_id} {what} by {admin}", user_id=user_id,
                 what="disabled" if disabled else "enabled", admin=caller.user_id)
        return await self._store.run(account_rows.user_row, user_id)

    audit_kinds = tuple(sorted(AUDIT_KINDS))  # what an audit record can be

    @refusals_audited
    async def audit(self, caller: Caller, **filters) -> list[dict]:
        """The audit records of the caller's unit, newest first (filters: ``kind``,
        ``actor``, ``from_us``, ``to_us``, ``before_id``, ``limit``)."""
        return await self._store.run(unit_audit, caller.unit_id, **filters)

    @refusals_audited
    async def reset_password(self, caller: Caller, user_id: str,
                             password: str | None) -> str | None:
        """Give a user of the caller's unit a new password, or (without one) a one-time
        set-password token; their API tokens are revoked (a user who also belongs to other
        units: only a provider admin).  The token, if any."""
        found = await self._user(caller, user_id)
        if found["provider_admin"] and caller.role != PROVIDER_ADMIN:
            raise AdminError(404, "user-not-found", f"no user {user_id} in unit "
                                                    f"{caller.unit_id}")
        self._only_in_callers_unit(caller, found, "reset their password")
        if password is not None:
            _check_password(password)
        stored = await self._hasher.hash(password if password is not None else new_token())
        at = now_us(self._clock)
        token = new_token() if password is None else None

        def reset(connection, *_):
            account_rows.set_password_hash(connection, user_id, stored, at)
            if token is not None:
                account_rows.insert_password_token(
                    connection, token_hash(token), user_id, at,
                    at + seconds_to_us(SET_PASSWORD_LIFETIME))

        await self._audited(caller, "password-reset", caller.unit_id, reset, user_id=user_id)
        return token

    @refusals_audited
    async def change_own_password(self, caller: Caller, current: str, new: str) -> None:
        """A user changes their own password (the current one first); their other tokens
        are revoked."""
        stored = await self._store.run(account_rows.password_hash_of, caller.user_id)
        if not await self._hasher.verify(stored, current):
            raise AdminError(403, "wrong-password", "the current password is wrong")
        _check_password(new)
        fresh = await self._hasher.hash(new)
        await self._audited(caller, "password-changed", caller.unit_id,
                            account_rows.set_password_hash, caller.user_id, fresh,
                            now_us(self._clock), user_id=caller.user_id)

    async def redeem_password_token(self, user_id: str, token: str, new: str,
                                    source: str) -> None:
        """A new user sets their password with a one-time token (no login needed)."""
        _check_password(new)
        fresh = await self._hasher.hash(new)
        at = now_us(self._clock)

        def redeem(connection):
            # Audited under the user's (first) unit, where its admins look.
            units = account_rows.memberships_of(connection, user_id)
            unit_id = units[0][0] if units else None
            if not account_rows.use_password_token(connection, token_hash(token), user_id, at):
                append_audit(connection, at, "password-token-refused", actor=user_id,
                             source_address=source, unit_id=unit_id)
                return False
            account_rows.set_password_hash(connection, user_id, fresh, at)
            append_audit(connection, at, "password-set", actor=user_id, source_address=source,
                         unit_id=unit_id)
            return True

        if not await self._store.run(redeem):
            raise AdminError(403, "invalid-password-token", "the token is not valid (wrong, "
                                                            "used or expired)")
