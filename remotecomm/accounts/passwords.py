"""Password rules and argon2id hashing in a bounded thread pool.

Hashing is deliberately slow, so it never runs on the reactor thread, and
the number of hashes waiting for a thread is capped: past the cap a login
is answered "busy" at once instead of queueing without bound.
"""

from __future__ import annotations

from dataclasses import dataclass

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from twisted.internet.defer import Deferred, fail
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_BYTES = 1024


class PasswordRuleError(ValueError):
    """A new password breaks a rule; the message says which."""


class HasherBusy(Exception):
    """Too many password hashes are already waiting for a thread."""


def check_new_password(password: str) -> None:
    """Refuse passwords that are too short, too long or not printable text."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise PasswordRuleError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    if len(password.encode("utf-8")) > MAX_PASSWORD_BYTES:
        raise PasswordRuleError(f"a password may have at most {MAX_PASSWORD_BYTES} bytes")
    if not password.isprintable():
        raise PasswordRuleError("a password may not contain control characters")


@dataclass(frozen=True)
class PasswordHashConfig:
    """argon2id cost parameters and the bounds of the hashing pool (``[accounts]``)."""

    time_cost: int = 3
    memory_kib: int = 65536
    parallelism: int = 1
    threads: int = 2
    max_waiting: int = 64


def make_hasher(config: PasswordHashConfig) -> PasswordHasher:
    """An argon2id hasher with the configured costs."""
    return PasswordHasher(time_cost=config.time_cost, memory_cost=config.memory_kib,
                          parallelism=config.parallelism, type=Type.ID)


def verify_password(hasher: PasswordHasher, stored_hash: str, password: str) -> bool:
    """Whether ``password`` matches ``stored_hash`` (a malformed hash never matches)."""
    try:
        return hasher.verify(stored_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


class PasswordHasherPool:
    """argon2id hashing and verification in a small dedicated thread pool."""

    def __init__(self, reactor, config: PasswordHashConfig):
        self._reactor = reactor
        self._hasher = make_hasher(config)
        self._pool = ThreadPool(minthreads=0, maxthreads=config.threads,
                                name="remotecomm-passwords")
        self._max_waiting = config.max_waiting
        self._waiting = 0
        # Verifying unknown users against this keeps their answer as slow as a real one.
        self._dummy_hash = self._hasher.hash("remotecomm: no such user")

    def start(self) -> None:
        """Start the thread pool."""
        self._pool.start()

    def stop(self) -> None:
        """Stop the thread pool."""
        self._pool.stop()

    def _submit(self, fn, *args) -> Deferred:
        if self._waiting >= self._max_waiting:
            return fail(HasherBusy(f"{self._waiting} password hashes already waiting"))
        self._waiting += 1

        def done(result):
            self._waiting -= 1
            return result

        return deferToThreadPool(self._reactor, self._pool, fn, *args).addBoth(done)

    def hash(self, password: str) -> Deferred[str]:
        """The argon2id hash of ``password``."""
        return self._submit(self._hasher.hash, password)

    def verify(self, stored_hash: str | None, password: str) -> Deferred[bool]:
        """Whether ``password`` matches; with no stored hash, spend the same time and say no."""
        if len(password.encode("utf-8")) > MAX_PASSWORD_BYTES:
            password = password[:MAX_PASSWORD_BYTES]
            stored_hash = None
        if stored_hash is None:
            return self._submit(verify_password, self._hasher, self._dummy_hash,
                                "not the dummy password").addCallback(lambda _: False)
        return self._submit(verify_password, self._hasher, stored_hash, password)
