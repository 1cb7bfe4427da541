"""Test stores on SQLite or on PostgreSQL.

``scripts/test`` runs the store tests twice: on SQLite files, then on PostgreSQL.
For the second pass it makes one database for the run (dropped afterwards) and
names it in ``REMOTECOMM_TEST_POSTGRESQL``; every store a test makes then gets
a schema of its own in that database.

``python -m remotecomm.testing.databases check|create|drop URL`` is what the
test command uses: ``check`` exits 0 if a server answers at ``URL``,
``create`` makes a fresh database on the server of ``URL`` and prints its URL,
``drop`` removes one.
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

from sqlalchemy import Engine, create_engine, make_url, text

from remotecomm.store.engine import open_postgresql, open_sqlite

ENVIRONMENT = "REMOTECOMM_TEST_POSTGRESQL"
# The server the test command found or started (a URL of its maintenance database), for
# tests that make a database of their own.
SERVER_ENVIRONMENT = "REMOTECOMM_TEST_POSTGRESQL_SERVER"


def postgresql_server() -> str:
    """The PostgreSQL server of this test run; without one the test fails (a store test
    is never skipped for want of PostgreSQL)."""
    url = os.environ.get(SERVER_ENVIRONMENT)
    if not url:
        raise RuntimeError(f"no PostgreSQL server: run the tests with scripts/test, which "
                           f"finds or starts one ({SERVER_ENVIRONMENT} is not set)")
    return url


def postgresql_url() -> str | None:
    """The run's PostgreSQL database, when this is the PostgreSQL pass."""
    return os.environ.get(ENVIRONMENT) or None


def test_engine(path: Path) -> Engine:
    """A fresh, empty store: a SQLite file at ``path``, or in the PostgreSQL pass a new
    schema of the run's database (``path``'s folder is made either way: tests keep files
    beside their store)."""
    url = postgresql_url()
    if url is None:
        return open_sqlite(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    schema = "store_" + secrets.token_hex(8)
    _autocommit(url, f"CREATE SCHEMA {schema}")
    return open_postgresql(url, schema=schema)


def _autocommit(url: str, statement: str) -> None:
    engine = create_engine(url, isolation_level="AUTOCOMMIT",
                           connect_args={"connect_timeout": 10})
    try:
        with engine.connect() as connection:
            connection.execute(text(statement))
    finally:
        engine.dispose()


def check(url: str) -> bool:
    """Whether a PostgreSQL server answers at ``url``."""
    try:
        _autocommit(url, "SELECT 1")
    except Exception:
        return False
    return True


def create(server_url: str) -> str:
    """A new database on the server of ``server_url``; its URL."""
    name = "remotecomm_test_" + secrets.token_hex(6)
    _autocommit(server_url, f"CREATE DATABASE {name}")
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


def drop(url: str) -> None:
    """Remove a test database (its connections closed first)."""
    parsed = make_url(url)
    if not (parsed.database or "").startswith("remotecomm_test_"):
        raise ValueError(f"{parsed.database!r} is not a test database of ours")
    maintenance = parsed.set(database="postgres").render_as_string(hide_password=False)
    _autocommit(maintenance, f"DROP DATABASE IF EXISTS {parsed.database} WITH (FORCE)")


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("check", "create", "drop"):
        print("usage: python -m remotecomm.testing.databases check|create|drop URL",
              file=sys.stderr)
        return 2
    command, url = argv
    if command == "check":
        return 0 if check(url) else 1
    if command == "create":
        print(create(url))
        return 0
    drop(url)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
