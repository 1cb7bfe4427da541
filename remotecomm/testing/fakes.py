"""Fakes for unit tests: the real logic, without threads.

:class:`InlineStore` runs transaction functions on the calling thread and
:class:`InlinePasswordHasher` hashes inline, so REST tests with ``StubTreq``
and a ``Clock`` get their answers without a running reactor.
"""

from __future__ import annotations

from pathlib import Path

from twisted.internet.defer import Deferred, fail, succeed

from remotecomm.accounts.passwords import PasswordHashConfig, PasswordHasherPool
from remotecomm.store.engine import Store, migrate
from remotecomm.testing.databases import test_engine

# Cheap argon2id costs: the rules under test are the same, the waiting is not.
CHEAP_HASHING = PasswordHashConfig(time_cost=1, memory_kib=8, parallelism=1, threads=1,
                                   max_waiting=4)


class InlineStore(Store):
    """A :class:`Store` on a real SQLite file whose transactions run synchronously."""

    def run(self, fn, *args, **kwargs) -> Deferred:
        try:
            return succeed(self.run_sync(fn, *args, **kwargs))
        except Exception:
            return fail()

    def run_grouped(self, fn, *args) -> Deferred:
        return self.run(fn, *args)

    def check(self) -> Deferred:
        return self.run(lambda connection: connection.exec_driver_sql("SELECT 1").scalar() == 1)


def migrated_inline_store(path: Path) -> InlineStore:
    """A fresh database at ``path`` (or, in the test command's PostgreSQL pass, a fresh
    schema of its database: :mod:`remotecomm.testing.databases`), migrated to the newest
    schema."""
    engine = test_engine(path)
    migrate(engine)
    return InlineStore(engine, reactor=None)


class InlinePasswordHasher(PasswordHasherPool):
    """A :class:`PasswordHasherPool` that hashes on the calling thread (cheap costs)."""

    def __init__(self, config: PasswordHashConfig = CHEAP_HASHING):
        super().__init__(reactor=None, config=config)

    def _submit(self, fn, *args) -> Deferred:
        try:
            return succeed(fn(*args))
        except Exception:
            return fail()
