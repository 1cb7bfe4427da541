"""Opening, migrating and using the database, off the reactor thread.

A transaction function is a plain function ``fn(connection, *args)`` with
no side effects beyond the database: it may be retried, and it never waits
on the network.  :meth:`Store.run` runs one in a dedicated thread pool
(never the reactor's default pool, which DNS uses) inside one transaction
and fires its Deferred after the commit.
"""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path
from typing import Any, Callable, TypeVar

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, make_url, text
from sqlalchemy.exc import DBAPIError, OperationalError
from twisted.internet.defer import Deferred, fail
from twisted.internet.threads import deferToThreadPool
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

from remotecomm.service_errors import ServiceError

T = TypeVar("T")

MIGRATIONS = Path(__file__).parent / "migrations"
SQLITE_BUSY_TIMEOUT_S = 10
UNAVAILABLE_BACKOFF_S = 5.0


class StoreBusy(ServiceError):
    """Too many transactions are already waiting for the store (a service refusal like any
    other: ``503 busy``, try again shortly)."""

    def __init__(self, detail: str = ""):
        super().__init__(503, "busy", "the server is busy; try again shortly")
        self.detail = detail

    def __str__(self) -> str:
        return self.detail or self.message


class StoreUnavailable(StoreBusy):
    """The database did not answer: locked by another connection past the busy timeout, or
    gone.  Callers answer it as they answer :class:`StoreBusy` (``503``, try again)."""


def _unavailable(error: OperationalError) -> bool:
    message = str(error.orig).lower()
    return any(sign in message for sign in (
        "database is locked", "unable to open", "disk i/o error", "database is busy",
        # PostgreSQL (psycopg): the server is down, refuses, or went away
        "connection refused", "connection failed", "server closed the connection",
        "terminating connection", "could not connect", "the database system is"))


# PostgreSQL's answers to a transaction that collided with another (serialization failure,
# deadlock): the transaction changed nothing and is run again.
_RETRIED_SQLSTATES = ("40001", "40P01")
TRANSACTION_ATTEMPTS = 10
RETRY_PAUSE_CAP_S = 0.25
POSTGRESQL_SCHEME = "postgresql+psycopg://"


def _collided(error: DBAPIError) -> bool:
    return getattr(error.orig, "sqlstate", None) in _RETRIED_SQLSTATES


class SchemaTooNew(Exception):
    """The database was migrated by a newer remotecomm than this one."""


def open_sqlite(path: Path, pool_size: int = 1,
                busy_timeout: float = SQLITE_BUSY_TIMEOUT_S) -> Engine:
    """An engine on a SQLite file in WAL mode, with a busy timeout and foreign keys on."""
    path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        f"sqlite:///{path}",
        connect_args={"timeout": busy_timeout, "check_same_thread": False},
        pool_size=pool_size, max_overflow=0,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.close()

    return engine


def open_postgresql(url: str, pool_size: int = 1, schema: str | None = None) -> Engine:
    """An engine on PostgreSQL through psycopg 3 (``postgresql+psycopg://…``): serializable
    transactions (what a SQLite file gives by having one writer; a collision is run
    again), connections checked before use; ``schema``: the one its tables live in."""
    if not url.startswith(POSTGRESQL_SCHEME):
        raise ValueError(f"a PostgreSQL URL starts with {POSTGRESQL_SCHEME}")
    connect_args = {"connect_timeout": 10}
    if schema is not None:
        connect_args["options"] = f"-c search_path={schema}"
    return create_engine(url, isolation_level="SERIALIZABLE", pool_pre_ping=True,
                         pool_size=pool_size, max_overflow=0, connect_args=connect_args)


def open_database(location: Path | str, pool_size: int = 1) -> Engine:
    """The manager's store: a ``postgresql+psycopg://`` URL, or a SQLite file's path."""
    if isinstance(location, str) and location.startswith(POSTGRESQL_SCHEME):
        return open_postgresql(location, pool_size)
    return open_sqlite(Path(location), pool_size)


def describe_database(location: Path | str) -> str:
    """Where the store is, for logs and messages (a URL's password hidden)."""
    if isinstance(location, str) and location.startswith(POSTGRESQL_SCHEME):
        return make_url(location).render_as_string(hide_password=True)
    return str(location)


def _alembic_config(location: Path, connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(location))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision(location: Path = MIGRATIONS) -> str:
    """The newest migration this code knows (of the manager's store, by default)."""
    return ScriptDirectory.from_config(_alembic_config(location)).get_current_head()


def current_revision(engine: Engine) -> str | None:
    """The migration the database is at (``None`` for an empty database)."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def migrate(engine: Engine, revision: str = "head", location: Path = MIGRATIONS) -> None:
    """Bring the database to ``revision`` with the migrations at ``location``, in one transaction.

    Refuses a database that a newer remotecomm has migrated beyond what
    this code knows, instead of running against a schema it cannot read.
    """
    scripts = ScriptDirectory.from_config(_alembic_config(location))
    known = {script.revision for script in scripts.walk_revisions()}
    current = current_revision(engine)
    if current is not None and current not in known:
        raise SchemaTooNew(f"the database is at schema revision {current}, which this "
                           f"remotecomm does not know (newest known: "
                           f"{head_revision(location)})")
    with engine.begin() as connection:
        command.upgrade(_alembic_config(location, connection), revision)


class Store:
    """Runs transaction functions in a dedicated, bounded thread pool."""

    def __init__(self, engine: Engine, reactor, threads: int = 1, max_waiting: int = 1000):
        self.engine = engine
        self._reactor = reactor
        self._pool = ThreadPool(minthreads=threads, maxthreads=threads, name="remotecomm-store")
        self._max_waiting = max_waiting
        self._waiting = 0
        # After the database did not answer, transactions fail at once for a few seconds
        # (only the readiness probe tries it again), instead of each waiting out the
        # busy timeout on the store's thread.
        self.unavailable_until: float | None = None
        self._group: list[tuple[Callable, tuple, Deferred]] = []
        self._group_lock = threading.Lock()
        self._group_scheduled = False

    def start(self) -> None:
        """Start the thread pool."""
        self._pool.start()

    def stop(self) -> None:
        """Finish queued transactions and stop the thread pool."""
        self._pool.stop()
        self.engine.dispose()

    def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> Deferred[T]:
        """Run ``fn(connection, *args, **kwargs)`` in one transaction, off the reactor."""
        return self._run(fn, args, kwargs, probe=False)

    def _run(self, fn, args, kwargs, probe: bool) -> Deferred:
        refused = self._refusal(probe)
        if refused is not None:
            return refused
        d = deferToThreadPool(self._reactor, self._pool, self.run_sync, fn, *args, **kwargs)
        d.addBoth(self._settled)
        return d

    def _refusal(self, probe: bool) -> Deferred | None:
        """A call refused at once (too many waiting, or the database did not answer a moment
        ago, unless ``probe``); ``None``: it may go ahead, and counts as waiting."""
        if self._waiting >= self._max_waiting:
            return fail(StoreBusy(f"{self._waiting} transactions already waiting"))
        if not probe and self.unavailable_until is not None and \
                self._reactor.seconds() < self.unavailable_until:
            return fail(StoreUnavailable("the database did not answer a moment ago"))
        self._waiting += 1
        return None

    def _settled(self, result):
        """A call is over: one fewer waiting; whether the database answered decides whether
        the next calls fail fast for a while."""
        self._waiting -= 1
        if isinstance(result, Failure) and result.check(StoreUnavailable):
            self.unavailable_until = self._reactor.seconds() + UNAVAILABLE_BACKOFF_S
        elif not isinstance(result, Failure):
            self.unavailable_until = None
        return result

    def run_grouped(self, fn: Callable[..., T], *args: Any) -> Deferred[T]:
        """Like :meth:`run`, for short writes that come in bursts (a relay's token checks and
        session logs): the calls that arrive while the store's thread is busy share one
        transaction, so one commit -- one fsync -- serves them all, and each caller hears
        of its result only once it is committed.  If one of them raises, the shared
        transaction is rolled back and each is run again in its own, so a refusal or an
        error never takes the others' writes with it."""
        refused = self._refusal(probe=False)
        if refused is not None:
            return refused
        answer: Deferred = Deferred()
        with self._group_lock:
            self._group.append((fn, args, answer))
            start = not self._group_scheduled
            self._group_scheduled = True
        if start:
            deferToThreadPool(self._reactor, self._pool, self._run_group).addCallback(
                self._deliver_group)
        return answer

    def _run_group(self) -> list[tuple[Deferred, object]]:
        """On the store's thread: take every call queued so far and run them."""
        with self._group_lock:
            group, self._group = self._group, []
            self._group_scheduled = False
        try:
            results = self.run_sync(
                lambda connection: [fn(connection, *args) for fn, args, _ in group])
        except StoreUnavailable:
            failure = Failure()
            return [(answer, failure) for _, _, answer in group]
        except Exception:
            if len(group) == 1:
                return [(group[0][2], Failure())]
        else:
            return [(answer, result) for (_, _, answer), result in zip(group, results)]
        outcomes = []
        for fn, args, answer in group:
            try:
                outcomes.append((answer, self.run_sync(fn, *args)))
            except Exception:
                outcomes.append((answer, Failure()))
        return outcomes

    def _deliver_group(self, outcomes: list[tuple[Deferred, object]]) -> None:
        for answer, result in outcomes:
            result = self._settled(result)
            if isinstance(result, Failure):
                answer.errback(result)
            else:
                answer.callback(result)

    def run_sync(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a transaction function on this thread (admin commands, the pool's threads);
        a database that does not answer raises :class:`StoreUnavailable`.  A transaction
        that collided with another (PostgreSQL) changed nothing and is run again, up to
        :data:`TRANSACTION_ATTEMPTS` times with growing pauses (transaction functions have
        no side effects outside the database); then :class:`StoreBusy`."""
        for attempt in range(1, TRANSACTION_ATTEMPTS + 1):
            try:
                with self.engine.begin() as connection:
                    return fn(connection, *args, **kwargs)
            except DBAPIError as e:
                if _collided(e):
                    if attempt == TRANSACTION_ATTEMPTS:
                        raise StoreBusy(f"the transaction collided with others "
                                        f"{attempt} times") from None
                    # Colliding transactions back off by different, growing amounts.
                    time.sleep(min(RETRY_PAUSE_CAP_S, 0.002 * 2 ** attempt)
                               * (0.5 + random.random()))
                    continue
                if isinstance(e, OperationalError) and _unavailable(e):
                    raise StoreUnavailable(f"the database did not answer: {e.orig}") from None
                raise
        raise AssertionError("unreachable")

    def check(self) -> Deferred[bool]:
        """Whether the database answers a trivial query (for ``/readyz``; it probes even
        while transactions fail fast after the database did not answer)."""
        return self._run(lambda connection: connection.execute(text("SELECT 1")).scalar() == 1,
                         (), {}, probe=True)

