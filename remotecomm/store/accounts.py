"""Transaction functions for units, users, memberships, terminals and API tokens."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, delete, insert, select, update

from remotecomm.store.schema import api_tokens, memberships, terminals, units, users


class AlreadyExists(Exception):
    """A record with that ID exists already."""


class NotFound(Exception):
    """No record with that ID."""


@dataclass(frozen=True)
class LoginRecord:
    """What a login needs to know of a user."""

    user_id: str
    password_hash: str
    disabled: bool
    unit_id: str
    role: str


@dataclass(frozen=True)
class TokenRecord:
    """Who an API token belongs to, and whether it still holds."""

    user_id: str
    terminal_id: str
    expires_us: int
    revoked_us: int | None
    disabled: bool
    unit_id: str
    role: str


def insert_unit(connection: Connection, unit_id: str, name: str, time_zone: str,
                now_us: int) -> None:
    """Create a management unit."""
    if connection.execute(select(units.c.unit_id).where(units.c.unit_id == unit_id)).first():
        raise AlreadyExists(f"unit {unit_id} exists already")
    connection.execute(insert(units).values(unit_id=unit_id, name=name, time_zone=time_zone,
                                            created_us=now_us))


def insert_user(connection: Connection, user_id: str, display_name: str, password_hash: str,
                unit_id: str, role: str, now_us: int) -> None:
    """Create a user with their one membership (one unit per user, for now)."""
    if connection.execute(select(users.c.user_id).where(users.c.user_id == user_id)).first():
        raise AlreadyExists(f"user {user_id} exists already")
    if not connection.execute(select(units.c.unit_id).where(units.c.unit_id == unit_id)).first():
        raise NotFound(f"no unit {unit_id}")
    connection.execute(insert(users).values(user_id=user_id, display_name=display_name,
                                            password_hash=password_hash, disabled=False,
                                            created_us=now_us))
    connection.execute(insert(memberships).values(user_id=user_id, unit_id=unit_id, role=role,
                                                  created_us=now_us))


def login_record(connection: Connection, user_id: str) -> LoginRecord | None:
    """The user's password hash and membership, or ``None`` if there is no such user."""
    row = connection.execute(
        select(users.c.user_id, users.c.password_hash, users.c.disabled,
               memberships.c.unit_id, memberships.c.role)
        .join(memberships, memberships.c.user_id == users.c.user_id)
        .where(users.c.user_id == user_id)
    ).first()
    return LoginRecord(**row._mapping) if row else None


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


def token_record(connection: Connection, token_hash: str) -> TokenRecord | None:
    """The API token's owner and validity, or ``None`` if no such token was issued."""
    row = connection.execute(
        select(api_tokens.c.user_id, api_tokens.c.terminal_id, api_tokens.c.expires_us,
               api_tokens.c.revoked_us, users.c.disabled, memberships.c.unit_id,
               memberships.c.role)
        .join(users, users.c.user_id == api_tokens.c.user_id)
        .join(memberships, memberships.c.user_id == api_tokens.c.user_id)
        .where(api_tokens.c.token_hash == token_hash)
    ).first()
    return TokenRecord(**row._mapping) if row else None


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
