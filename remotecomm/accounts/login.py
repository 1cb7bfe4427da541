"""Login (S101–S103) and API-token authentication.

Wrong user and wrong password answer identically and take the same time;
failed logins are throttled and land in the audit table before the answer
goes out.  An API token is bound to the terminal that logged in with it.
"""

from __future__ import annotations

from dataclasses import dataclass

from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import deferLater
from twisted.logger import Logger

from remotecomm.accounts.passwords import PasswordHasherPool
from remotecomm.accounts.permissions import ACTIONS, PROVIDER_ADMIN, TECHNICIAN, UNIT_ADMIN, allowed
from remotecomm.accounts.throttle import LoginThrottle
from remotecomm.clock import now_us, seconds_to_us
from remotecomm.store import accounts as account_queries
from remotecomm.store.audit import (LOGIN_FAILED, LOGIN_THROTTLED, PERMISSION_DENIED, TOKEN_REFUSED,
                                    append_audit)
from remotecomm.store.engine import Store
from remotecomm.tokens import looks_like_token, new_token, token_hash

log = Logger()


class Refused(Exception):
    """A login or an authentication was refused; ``code`` is stable, ``message`` for people."""

    def __init__(self, code: str, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after = retry_after


# The terminal IDs the portal makes for its browser logins start so; the other terminals
# of a user are their CLIs.
PORTAL_TERMINAL_PREFIX = "portal-"

INVALID_CREDENTIALS = Refused("invalid-credentials", "user ID or password is wrong")


@dataclass(frozen=True)
class Caller:
    """An authenticated API caller: who, acting in which unit (``None``: no unit named and
    none implied) with which role there, from which terminal."""

    user_id: str
    unit_id: str | None
    role: str
    terminal_id: str
    memberships: tuple[tuple[str, str], ...] = ()
    source_address: str | None = None  # where the call came from (for audit records)


@dataclass(frozen=True)
class IssuedToken:
    """A fresh API token, returned once to the terminal that logged in, with the units the
    user acts in (``unit_id``: the one the requests default to, if there is one)."""

    token: str
    expires_us: int
    user_id: str
    unit_id: str | None
    terminal_id: str
    provider_admin: bool = False
    memberships: tuple[tuple[str, str], ...] = ()


def acting_unit(provider_admin: bool, memberships: tuple[tuple[str, str], ...],
                unit_id: str | None) -> tuple[str | None, str]:
    """The unit a request acts in and the caller's role there: the unit it names, or the
    caller's only unit; without either, the caller's highest role and no unit.  A named
    unit the caller has no part in is :class:`Refused` ``unit-not-found`` (for a provider
    admin, the caller checks that it exists)."""
    roles = dict(memberships)
    if unit_id is None and len(roles) == 1:
        unit_id = next(iter(roles))
    if unit_id is not None and not provider_admin and unit_id not in roles:
        raise Refused("unit-not-found", f"no unit {unit_id} of yours")
    if provider_admin:
        return unit_id, PROVIDER_ADMIN
    if unit_id is not None:
        return unit_id, roles[unit_id]
    return None, UNIT_ADMIN if UNIT_ADMIN in roles.values() else TECHNICIAN


class Accounts:
    """Logs users in and authenticates API tokens."""

    def __init__(self, store: Store, hasher: PasswordHasherPool, throttle: LoginThrottle,
                 clock: IReactorTime, token_lifetime: float):
        self._store = store
        self._hasher = hasher
        self.hasher = hasher  # administration hashes new passwords with the same pool
        self._throttle = throttle
        self._clock = clock
        self._token_lifetime_us = seconds_to_us(token_lifetime)

    async def login(self, user_id: str, password: str, terminal_id: str,
                    source_address: str) -> IssuedToken:
        """Check the password and issue an API token bound to ``terminal_id``."""
        retry_after, delay = await self._throttle.check(user_id, source_address)
        if retry_after is not None:
            await self._store.run(append_audit, now_us(self._clock), LOGIN_THROTTLED,
                                  actor=user_id, source_address=source_address,
                                  terminal_id=terminal_id)
            raise Refused("too-many-attempts", "too many failed logins; try again later",
                          retry_after=retry_after)

        if delay:  # this account failed often lately: every attempt waits (never locked)
            await deferLater(self._clock, delay, lambda: None)
        record = await self._store.run(account_queries.login_record, user_id)
        matches = await self._hasher.verify(record.password_hash if record else None, password)
        if not matches or record.disabled:
            await self._throttle.record_failure(user_id, source_address)
            reason = ("unknown-user" if record is None else
                      "disabled" if matches else "wrong-password")
            units = record.memberships if record else ()
            await self._store.run(append_audit, now_us(self._clock), LOGIN_FAILED,
                                  actor=user_id, source_address=source_address,
                                  unit_id=units[0][0] if len(units) == 1 else None,
                                  terminal_id=terminal_id, reason=reason)
            log.info("login refused for {user_id} from {source_address}",
                     user_id=user_id, source_address=source_address)
            raise INVALID_CREDENTIALS

        await self._throttle.record_success(user_id, source_address)
        token = new_token()
        issued_us = now_us(self._clock)
        expires_us = issued_us + self._token_lifetime_us
        await self._store.run(account_queries.record_login, token_hash(token), user_id,
                              terminal_id, issued_us, expires_us, source_address)
        log.info("user {user_id} logged in on terminal {terminal_id}",
                 user_id=user_id, terminal_id=terminal_id)
        default_unit, _ = acting_unit(record.provider_admin, record.memberships, None)
        return IssuedToken(token=token, expires_us=expires_us, user_id=user_id,
                           unit_id=default_unit, terminal_id=terminal_id,
                           provider_admin=record.provider_admin,
                           memberships=record.memberships)

    async def authenticate(self, token: str | None, terminal_id: str | None,
                           source_address: str, unit_id: str | None = None) -> Caller:
        """The caller an API token stands for, if it is valid for ``terminal_id`` now,
        acting in ``unit_id`` (default: their only unit)."""
        if token is None:
            raise Refused("unauthenticated", "this call needs an API token: log in first")
        record = (await self._store.run(account_queries.token_record, token_hash(token))
                  if looks_like_token(token) else None)
        now = now_us(self._clock)
        if record is None or record.revoked_us is not None or record.disabled:
            refusal = Refused("invalid-token", "the API token is not valid: log in again")
        elif record.expires_us <= now:
            refusal = Refused("token-expired", "the API token has expired: log in again")
        elif terminal_id != record.terminal_id:
            refusal = Refused("terminal-mismatch",
                              "the API token belongs to another terminal: log in again")
        else:
            unit, role = acting_unit(record.provider_admin, record.memberships, unit_id)
            if unit is not None and record.provider_admin and unit not in dict(
                    record.memberships) and not await self._store.run(
                    account_queries.unit_exists, unit):
                raise Refused("unit-not-found", f"no unit {unit}")
            return Caller(user_id=record.user_id, unit_id=unit, role=role,
                          terminal_id=record.terminal_id, memberships=record.memberships,
                          source_address=source_address)
        units = record.memberships if record else ()
        await self._store.run(append_audit, now, TOKEN_REFUSED,
                              actor=record.user_id if record else None,
                              source_address=source_address,
                              unit_id=units[0][0] if len(units) == 1 else None,
                              terminal_id=terminal_id, reason=refusal.code)
        raise refusal

    async def terminals(self, user_id: str) -> list[dict]:
        """The user's CLI terminals: those they hold a valid API token on now (the portal's
        own logins aside), the latest login first."""
        return await self._store.run(account_queries.live_terminals, user_id,
                                     now_us(self._clock), PORTAL_TERMINAL_PREFIX)

    async def require(self, caller: Caller, action: str, endpoint: str,
                      source_address: str) -> None:
        """Let the caller go on if their role may do ``action``; otherwise audit the refusal
        and raise :class:`Refused` ``forbidden``.  The one permission check of the API and
        the portal (:mod:`remotecomm.accounts.permissions` says who may)."""
        if allowed(caller.role, action):
            return
        await self._store.run(append_audit, now_us(self._clock), PERMISSION_DENIED,
                              actor=caller.user_id, source_address=source_address,
                              unit_id=caller.unit_id, endpoint=endpoint, action=action,
                              role=caller.role)
        raise Refused("forbidden", f"a {caller.role} may not {ACTIONS[action].meaning}")

    async def logout(self, caller_token: str) -> None:
        """Revoke an API token (after :meth:`authenticate` accepted it)."""
        await self._store.run(account_queries.revoke_token, token_hash(caller_token),
                              now_us(self._clock))
