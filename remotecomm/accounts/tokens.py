"""Bearer tokens: random, at least 256 bits, stored only as SHA-256 hashes."""

import hashlib
import re
import secrets

TOKEN_BYTES = 32
# base64url of 32 bytes, without padding
TOKEN_PATTERN = re.compile(r"[A-Za-z0-9_-]{43}")


def new_token() -> str:
    """A fresh random token (256 bits, base64url)."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_hash(token: str) -> str:
    """The SHA-256 hex digest under which a token is stored and looked up."""
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def looks_like_token(value: object) -> bool:
    """Whether ``value`` has the shape of one of our tokens (checked before hashing)."""
    return isinstance(value, str) and TOKEN_PATTERN.fullmatch(value) is not None
