"""Bearer tokens: random, at least 256 bits, stored only as SHA-256 hashes.

Neutral ground: the manager mints tokens (API and session tokens), the relay
hashes the one a side presents before it asks the manager, so that a token
never travels further than the first server that sees it.
"""

import hashlib
import secrets

from remotecomm.identifiers import TOKEN, TOKEN_HASH, is_valid

TOKEN_BYTES = 32


def new_token() -> str:
    """A fresh random token (256 bits, base64url)."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_hash(token: str) -> str:
    """The SHA-256 hex digest under which a token is stored and looked up."""
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def looks_like_token(value: object) -> bool:
    """Whether ``value`` has the shape of one of our tokens (checked before hashing)."""
    return is_valid(TOKEN, value)


def looks_like_token_hash(value: object) -> bool:
    """Whether ``value`` has the shape of :func:`token_hash`'s result."""
    return is_valid(TOKEN_HASH, value)
