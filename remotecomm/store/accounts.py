"""Transaction functions for units, users, memberships, terminals and API tokens."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, delete, func, insert, select, update

from remotecomm.store.schema import (api_tokens, devices, login_failures, memberships,
                                     password_tokens, terminals, units, users)


class AlreadyExists(Exception):
    """A record with that ID exists already."""


class NotFound(Exception):
    """No record with that ID."""


@dataclass(frozen=True)
class LoginRecord:
    """What a login needs to know of a user: password, state, and the units they act in
    (``memberships``: (unit ID, role) pairs, by unit ID)."""

    user_id: str
    password_hash: str
    disabled: bool
    provider_admin: bool
    memberships: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class TokenRecord:
    """Who an API token belongs to, whether it still holds, and the owner's units."""

    user_id: str
    terminal_id: str
    expires_us: int
    revoked_us: int | None
    disabled: bool
    provider_admin: bool
    memberships: tuple[tuple[str, str], ...]


def insert_unit(connection: Connection, unit_id: str, name: str, time_zone: str,
                now_us: int) -> None:
    """Create a management unit."""
    if connection.execute(select(units.c.unit_id).where(units.c.unit_id == unit_id)).first():
        raise AlreadyExists(f"unit {unit_id} exists already")
    connection.execute(insert(units).values(unit_id=unit_id, name=name, time_zone=time_zone,
                                            created_us=now_us))


def insert_user(connection: Connection, user_id: str, display_name: str, password_hash: str,
                unit_id: str | None, role: str | None, now_us: int,
                provider_admin: bool = False) -> None:
    """Create a user with a first membership (``unit_id`` and ``role``; none for a provider
    admin, who needs none)."""
    if connection.execute(select(users.c.user_id).where(users.c.user_id == user_id)).first():
        raise AlreadyExists(f"user {user_id} exists already")
    if unit_id is not None and not unit_exists(connection, unit_id):
        raise NotFound(f"no unit {unit_id}")
    connection.execute(insert(users).values(user_id=user_id, display_name=display_name,
                                            password_hash=password_hash, disabled=False,
                                            created_us=now_us, provider_admin=provider_admin))
    if unit_id is not None:
        add_membership(connection, user_id, unit_id, role, now_us)


def add_membership(connection: Connection, user_id: str, unit_id: str, role: str,
                   now_us: int) -> None:
    """Give a user a role in one more unit (or a new role in one of theirs)."""
    if not unit_exists(connection, unit_id):
        raise NotFound(f"no unit {unit_id}")
    connection.execute(delete(memberships).where(memberships.c.user_id == user_id,
                                                 memberships.c.unit_id == unit_id))
    connection.execute(insert(memberships).values(user_id=user_id, unit_id=unit_id, role=role,
                                                  created_us=now_us))


def memberships_of(connection: Connection, user_id: str) -> tuple[tuple[str, str], ...]:
    """The user's (unit ID, role) pairs, by unit ID."""
    return tuple((row.unit_id, row.role) for row in connection.execute(
        select(memberships.c.unit_id, memberships.c.role)
        .where(memberships.c.user_id == user_id).order_by(memberships.c.unit_id)))


def unit_exists(connection: Connection, unit_id: str) -> bool:
    """Whether the unit exists."""
    return connection.execute(select(units.c.unit_id).where(units.c.unit_id == unit_id)
                              ).first() is not None


def login_record(connection: Connection, user_id: str) -> LoginRecord | None:
    """The user's password hash and memberships, or ``None`` if there is no such user."""
    row = connection.execute(
        select(users.c.user_id, users.c.password_hash, users.c.disabled,
               users.c.provider_admin).where(users.c.user_id == user_id)).first()
    if row is None:
        return None
    return LoginRecord(**row._mapping, memberships=memberships_of(connection, user_id))


def record_login(connection: Connection, token_hash: str, user_id: str, terminal_id: str,
                 now_us: int, expires_us: int, source_address: str) -> None:
    """Register (or refresh) the terminal and store the new API token's hash."""
    known = connection.execute(
        select(terminals.c.terminal_id).where(terminals.c.terminal_id == terminal_id)).first()
    if known:
        connection.execute(update(terminals).where(terminals.c.terminal_id == terminal_id)
                           .values(last_login_us=now_us, last_user_id=user_id))
    else:
        connection.execute(insert(terminals).values(terminal_id=terminal_id,
                                                    registered_us=now_us, last_login_us=now_us,
                                                    last_user_id=user_id))
    connection.execute(insert(api_tokens).values(
        token_hash=token_hash, user_id=user_id, terminal_id=terminal_id, created_us=now_us,
        expires_us=expires_us, revoked_us=None, source_address=source_address))


def live_terminals(connection: Connection, user_id: str, now_us: int,
                   excluded_prefix: str) -> list[dict]:
    """The terminals a user holds a valid API token on now (not those whose ID starts with
    ``excluded_prefix``), the latest login first."""
    latest = func.max(api_tokens.c.created_us).label("last_login_us")
    rows = connection.execute(
        select(api_tokens.c.terminal_id, latest)
        .where(api_tokens.c.user_id == user_id, api_tokens.c.revoked_us.is_(None),
               api_tokens.c.expires_us > now_us,
               api_tokens.c.terminal_id.not_like(excluded_prefix + "%"))
        .group_by(api_tokens.c.terminal_id).order_by(latest.desc()))
    return [{"terminal_id": row.terminal_id, "last_login_us": row.last_login_us}
            for row in rows]


def token_record(connection: Connection, token_hash: str) -> TokenRecord | None:
    """The API token's owner and validity, or ``None`` if no such token was issued."""
    row = connection.execute(
        select(api_tokens.c.user_id, api_tokens.c.terminal_id, api_tokens.c.expires_us,
               api_tokens.c.revoked_us, users.c.disabled, users.c.provider_admin)
        .join(users, users.c.user_id == api_tokens.c.user_id)
        .where(api_tokens.c.token_hash == token_hash)
    ).first()
    if row is None:
        return None
    return TokenRecord(**row._mapping, memberships=memberships_of(connection, row.user_id))


def revoke_token(connection: Connection, token_hash: str, now_us: int) -> bool:
    """Revoke an API token; whether it was valid until now."""
    result = connection.execute(
        update(api_tokens)
        .where(api_tokens.c.token_hash == token_hash, api_tokens.c.revoked_us.is_(None))
        .values(revoked_us=now_us))
    return result.rowcount == 1


def purge_tokens(connection: Connection, before_us: int) -> int:
    """Delete API tokens that expired or were revoked before ``before_us``; how many.

    They can no longer authenticate anything; sessions and the audit table keep
    the user and terminal IDs, never the token.
    """
    result = connection.execute(delete(api_tokens).where(
        (api_tokens.c.expires_us < before_us) | (api_tokens.c.revoked_us < before_us)))
    return result.rowcount


def set_user_disabled(connection: Connection, user_id: str, disabled: bool) -> None:
    """Disable a user (no login, no API call, their sessions end) or enable them again."""
    result = connection.execute(update(users).where(users.c.user_id == user_id)
                                .values(disabled=disabled))
    if result.rowcount != 1:
        raise NotFound(f"no user {user_id}")


# -- administration ------------------------------------------------------------------------

def unit_rows(connection: Connection, unit_ids: tuple[str, ...] | None = None) -> list[dict]:
    """Units (all, or those of ``unit_ids``), by ID, with how many users and devices."""
    query = select(units).order_by(units.c.unit_id)
    if unit_ids is not None:
        query = query.where(units.c.unit_id.in_(unit_ids))
    found = []
    for row in connection.execute(query):
        members = connection.execute(select(memberships.c.user_id).where(
            memberships.c.unit_id == row.unit_id)).all()
        device_count = connection.execute(select(devices.c.device_id).where(
            devices.c.unit_id == row.unit_id, devices.c.revoked_us.is_(None))).all()
        found.append({"unit_id": row.unit_id, "name": row.name, "time_zone": row.time_zone,
                      "created_us": row.created_us, "users": len(members),
                      "devices": len(device_count)})
    return found


def update_unit(connection: Connection, unit_id: str, changes: dict) -> None:
    """Rename a unit or change its time zone."""
    result = connection.execute(update(units).where(units.c.unit_id == unit_id)
                                .values(**changes))
    if result.rowcount != 1:
        raise NotFound(f"no unit {unit_id}")


def user_row(connection: Connection, user_id: str) -> dict | None:
    """A user as an admin sees them (never the password hash)."""
    row = connection.execute(select(users.c.user_id, users.c.display_name, users.c.disabled,
                                    users.c.provider_admin, users.c.created_us)
                             .where(users.c.user_id == user_id)).first()
    if row is None:
        return None
    return {"user_id": row.user_id, "display_name": row.display_name,
            "disabled": bool(row.disabled), "provider_admin": bool(row.provider_admin),
            "created_us": row.created_us,
            "memberships": [{"unit_id": unit, "role": role}
                            for unit, role in memberships_of(connection, user_id)]}


def users_of_unit(connection: Connection, unit_id: str) -> list[dict]:
    """The unit's users, by ID."""
    ids = connection.execute(select(memberships.c.user_id).where(
        memberships.c.unit_id == unit_id).order_by(memberships.c.user_id)).scalars().all()
    return [user_row(connection, user_id) for user_id in ids]


def remove_membership(connection: Connection, user_id: str, unit_id: str) -> bool:
    """Take a unit from a user; whether they had it."""
    return connection.execute(delete(memberships).where(
        memberships.c.user_id == user_id, memberships.c.unit_id == unit_id)).rowcount == 1


def set_provider_admin(connection: Connection, user_id: str, provider_admin: bool) -> None:
    """Make a user a provider admin, or no longer one."""
    result = connection.execute(update(users).where(users.c.user_id == user_id)
                                .values(provider_admin=provider_admin))
    if result.rowcount != 1:
        raise NotFound(f"no user {user_id}")


def active_provider_admins(connection: Connection) -> list[str]:
    """The provider admins who are not disabled."""
    return list(connection.execute(select(users.c.user_id).where(
        users.c.provider_admin.is_(True), users.c.disabled.is_(False))).scalars())


def set_password_hash(connection: Connection, user_id: str, password_hash: str,
                      now_us: int) -> int:
    """Give a user a new password; their API tokens are revoked (how many were valid)."""
    result = connection.execute(update(users).where(users.c.user_id == user_id)
                                .values(password_hash=password_hash))
    if result.rowcount != 1:
        raise NotFound(f"no user {user_id}")
    return revoke_user_tokens(connection, user_id, now_us)


def revoke_user_tokens(connection: Connection, user_id: str, now_us: int) -> int:
    """Revoke every valid API token of a user; how many."""
    return connection.execute(update(api_tokens).where(
        api_tokens.c.user_id == user_id, api_tokens.c.revoked_us.is_(None),
        api_tokens.c.expires_us > now_us).values(revoked_us=now_us)).rowcount


def password_hash_of(connection: Connection, user_id: str) -> str | None:
    """The user's stored password hash (for a change of their own password)."""
    return connection.execute(select(users.c.password_hash).where(
        users.c.user_id == user_id)).scalar()


def insert_password_token(connection: Connection, token_hash: str, user_id: str,
                          now_us: int, expires_us: int) -> None:
    """A one-time set-password token for a user (earlier ones stop working)."""
    connection.execute(update(password_tokens).where(
        password_tokens.c.user_id == user_id, password_tokens.c.used_us.is_(None))
        .values(used_us=now_us))
    connection.execute(insert(password_tokens).values(
        token_hash=token_hash, user_id=user_id, created_us=now_us, expires_us=expires_us))


def use_password_token(connection: Connection, token_hash: str, user_id: str,
                       now_us: int) -> bool:
    """Spend a set-password token of ``user_id`` that is still valid; whether it was."""
    return connection.execute(update(password_tokens).where(
        password_tokens.c.token_hash == token_hash, password_tokens.c.user_id == user_id,
        password_tokens.c.used_us.is_(None), password_tokens.c.expires_us > now_us)
        .values(used_us=now_us)).rowcount == 1


# -- the login throttle --------------------------------------------------------------------

@dataclass(frozen=True)
class FailureCounts:
    """Failed logins since a moment: of the account from this address, from this address
    (any account), of the account (any address), with the oldest of the first two."""

    pair: int
    address: int
    account: int
    oldest_pair_us: int | None
    oldest_address_us: int | None


def login_failure_counts(connection: Connection, account: str, address: str,
                         since_us: int) -> FailureCounts:
    """How many logins failed after ``since_us``, counted three ways."""
    recent = login_failures.c.at_us > since_us

    def count(*where):
        return connection.execute(select(func.count(), func.min(login_failures.c.at_us))
                                  .where(recent, *where)).one()

    pair = count(login_failures.c.account == account, login_failures.c.address == address)
    by_address = count(login_failures.c.address == address)
    by_account = count(login_failures.c.account == account)
    return FailureCounts(pair[0], by_address[0], by_account[0], pair[1], by_address[1])


def add_login_failure(connection: Connection, account: str, address: str, at_us: int) -> None:
    """Count one failed login."""
    connection.execute(insert(login_failures).values(account=account[:200],
                                                     address=address[:64], at_us=at_us))


def clear_login_failures(connection: Connection, account: str, address: str) -> None:
    """The account logged in from this address: its failures from there are forgiven (not
    the address's with other accounts, nor the account's from elsewhere)."""
    connection.execute(delete(login_failures).where(login_failures.c.account == account,
                                                    login_failures.c.address == address))


def purge_login_failures(connection: Connection, before_us: int) -> int:
    """Forget failures older than the throttle's window; how many."""
    return connection.execute(delete(login_failures).where(
        login_failures.c.at_us < before_us)).rowcount
