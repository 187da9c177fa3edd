"""Cross-process migration locks, one per (database, version-table schema, version table).

* PostgreSQL: a session advisory lock keyed by a hash of the database, the
  version table's schema (``current_schema()`` when none is configured) and
  the table name -- so tenants in different schemas of one database never
  wait for each other. Inside a caller's own transaction it is a
  transaction-level lock, released when that transaction ends.
* MySQL/MariaDB: ``GET_LOCK`` on a name derived from the same triple.
* SQLite: an exclusive ``flock`` on a lock file next to the database file.

Session locks die with their connection, so a crashed migrator never leaves
a lock behind. Waiting polls without blocking the event loop and gives up
with :class:`~asyncmigrate.exceptions.LockTimeoutError`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from pathlib import Path
from typing import IO, Any

from sqlalchemy import text
from sqlalchemy.engine import Connection

from .._greenlet import await_in_loop, in_loop_greenlet, sleep
from ..config import DEFAULT_LOCK_TIMEOUT
from ..exceptions import LockTimeoutError

__all__ = ["DEFAULT_LOCK_TIMEOUT", "MigrationLock", "lock_for", "sql_literal"]

log = logging.getLogger(__name__)


_PG_KEY = (
    "hashtextextended(current_database() || '/' || coalesce(CAST(:schema AS text), "
    "current_schema()) || '/' || CAST(:table AS text), 0)"
)


class MigrationLock:
    """Serialize migrations of one version table across processes and tasks."""

    def __init__(self, version_table: str, schema: str | None) -> None:
        self.version_table = version_table
        self.schema = schema
        self.held = False

    def describe(self) -> str:
        """Name what the lock protects, for messages."""
        where = f"{self.schema}." if self.schema else ""
        return f"version table {where}{self.version_table}"

    def try_acquire(self, connection: Connection, in_transaction: bool) -> bool:
        """Take the lock if it is free; never wait."""
        raise NotImplementedError

    def release(self, connection: Connection) -> None:
        """Give the lock back (a no-op when it is not held)."""
        raise NotImplementedError

    def release_sql(self, connection: Connection) -> str | None:
        """SQL that gives the lock back, for a caller that sends it with other statements.

        None where the lock is not given back by a statement on this connection.
        After the caller has run it, it sets :attr:`held` to False.
        """
        return None

    def acquire(self, connection: Connection, timeout: float, in_transaction: bool = False) -> None:
        """Wait up to ``timeout`` seconds for the lock.

        :param in_transaction: the caller owns an open transaction the lock
            should live and die with.
        :raises LockTimeoutError: when another migrator holds it that long.
        """
        deadline = time.monotonic() + timeout
        delay = 0.01
        waited = False
        while not self.try_acquire(connection, in_transaction):
            if not waited:
                log.info("Waiting for the migration lock on %s", self.describe())
                waited = True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LockTimeoutError(
                    f"Timed out after {timeout:g}s waiting for the migration lock on "
                    f"{self.describe()}; another process is migrating this database "
                    f"(raise lock_timeout, or disable locking with lock = false)"
                )
            sleep(min(delay, remaining))
            delay = min(delay * 2, 0.25)
        self.held = True


class PostgresLock(MigrationLock):
    """A PostgreSQL advisory lock (session, or transaction inside a caller's transaction).

    Over asyncpg, taking and giving back the lock are one simple-protocol round
    trip each (no prepared statement, no transaction of their own).
    """

    def __init__(self, version_table: str, schema: str | None) -> None:
        super().__init__(version_table, schema)
        self._transactional = False

    def _key_sql(self, connection: Connection) -> str:
        schema = "NULL" if self.schema is None else sql_literal(self.schema)
        return _PG_KEY.replace(":schema", schema).replace(":table", sql_literal(self.version_table))

    def try_acquire(self, connection: Connection, in_transaction: bool) -> bool:
        fn = "pg_try_advisory_xact_lock" if in_transaction else "pg_try_advisory_lock"
        self._transactional = in_transaction
        raw = _raw_asyncpg(connection)
        if raw is not None:
            status = await_in_loop(raw.execute(f"SELECT 1 WHERE {fn}({self._key_sql(connection)})"))
            return bool(status == "SELECT 1")
        got = connection.execute(
            text(f"SELECT {fn}({_PG_KEY})"), {"schema": self.schema, "table": self.version_table}
        ).scalar()
        return bool(got)

    def release_sql(self, connection: Connection) -> str | None:
        """The statement that gives a session lock back, to send with others; None if not held so."""
        if not self.held or self._transactional:
            return None
        return f"SELECT pg_advisory_unlock({self._key_sql(connection)})"

    def release(self, connection: Connection) -> None:
        if not self.held:
            return
        self.held = False
        if self._transactional:
            return
        raw = _raw_asyncpg(connection)
        if raw is not None:
            await_in_loop(raw.execute(f"SELECT pg_advisory_unlock({self._key_sql(connection)})"))
            return
        connection.execute(
            text(f"SELECT pg_advisory_unlock({_PG_KEY})"),
            {"schema": self.schema, "table": self.version_table},
        )


class MySQLLock(MigrationLock):
    """A MySQL/MariaDB named lock (``GET_LOCK``), held by the session."""

    def _name(self, connection: Connection) -> str:
        database = connection.execute(text("SELECT DATABASE()")).scalar() or ""
        digest = hashlib.sha1(
            f"{database}/{self.schema or ''}/{self.version_table}".encode()
        ).hexdigest()
        return f"asyncmigrate:{digest[:40]}"

    def try_acquire(self, connection: Connection, in_transaction: bool) -> bool:
        got = connection.execute(
            text("SELECT GET_LOCK(:name, 0)"), {"name": self._name(connection)}
        ).scalar()
        return got == 1

    def release(self, connection: Connection) -> None:
        if not self.held:
            return
        self.held = False
        connection.execute(text("SELECT RELEASE_LOCK(:name)"), {"name": self._name(connection)})


class SQLiteLock(MigrationLock):
    """An exclusive ``flock`` on ``<database>.asyncmigrate-lock``."""

    def __init__(self, version_table: str, schema: str | None, database: str) -> None:
        super().__init__(version_table, schema)
        suffix = f".{schema}" if schema else ""
        self.path = Path(f"{database}{suffix}.asyncmigrate-lock")
        self._file: IO[bytes] | None = None

    def try_acquire(self, connection: Connection, in_transaction: bool) -> bool:
        import fcntl

        handle = open(self.path, "a+b")  # noqa: SIM115 - held until release()
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        except BaseException:
            handle.close()
            raise
        self._file = handle
        return True

    def release(self, connection: Connection) -> None:
        if not self.held or self._file is None:
            return
        import fcntl

        self.held = False
        try:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
        finally:
            self._file.close()
            self._file = None


class _NoLock(MigrationLock):
    def try_acquire(self, connection: Connection, in_transaction: bool) -> bool:
        return True

    def release(self, connection: Connection) -> None:
        self.held = False


def sql_literal(value: str) -> str:
    """Render ``value`` as a SQL string literal (quotes doubled)."""
    return "'" + value.replace("'", "''") + "'"


def _raw_asyncpg(connection: Connection) -> Any:
    """The asyncpg connection under ``connection`` when it is safe to use directly, else None."""
    if connection.dialect.driver != "asyncpg" or not in_loop_greenlet():
        return None
    adapter = connection.connection.dbapi_connection
    return getattr(adapter, "_connection", None)


def lock_for(connection: Connection, version_table: str, schema: str | None) -> MigrationLock:
    """Return the lock that fits ``connection``'s database."""
    name = connection.dialect.name
    if name == "postgresql":
        return PostgresLock(version_table, schema)
    if name in ("mysql", "mariadb"):
        return MySQLLock(version_table, schema)
    if name == "sqlite":
        database = _sqlite_file(connection)
        if database and os.name == "posix":
            return SQLiteLock(version_table, schema, database)
    log.debug("No cross-process lock for dialect %s; running unlocked", name)
    return _NoLock(version_table, schema)


def _sqlite_file(connection: Connection) -> str | None:
    database: str | None = connection.engine.url.database
    if not database or database == ":memory:" or database.startswith("file::memory:"):
        return None
    if database.startswith("file:"):
        database = database[5:].split("?", 1)[0]
    return os.path.abspath(database)
