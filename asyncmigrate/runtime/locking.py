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

:meth:`MigrationLock.holding` is the lock's whole life for one run, as one
context manager: it waits for the lock, and on the way out gives it back
exactly once -- in the same round trip as the run's ``COMMIT`` where the
driver allows (:meth:`LockHold.fold_release`), else with a statement of its
own. If giving it back fails, the connection is invalidated: a pooled
connection never goes back to its pool holding the lock.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from sqlalchemy import text
from sqlalchemy.engine import Connection

from .._greenlet import sleep
from ..config import DEFAULT_LOCK_TIMEOUT
from ..exceptions import LockTimeoutError
from ..masking import get_logger
from .drivers import Driver
from .version_table import quote_literal

__all__ = ["DEFAULT_LOCK_TIMEOUT", "LockHold", "MigrationLock", "lock_for"]

log = get_logger(__name__)


class MigrationLock:
    """Serialize migrations of one version table across processes and tasks."""

    def __init__(self, version_table: str, schema: str | None) -> None:
        self.version_table = version_table
        self.schema = schema
        self.held = False
        self.transactional = False
        """Whether the lock lives and dies with the caller's transaction (not given back by us)."""

    def describe(self) -> str:
        """Name what the lock protects, for messages."""
        where = f"{self.schema}." if self.schema else ""
        return f"version table {where}{self.version_table}"

    def try_acquire(self, connection: Connection, driver: Driver | None, in_transaction: bool) -> bool:
        """Take the lock if it is free; never wait."""
        raise NotImplementedError

    def release(self, connection: Connection, driver: Driver | None) -> None:
        """Give the lock back (a no-op when it is not held)."""
        raise NotImplementedError

    def release_sql(self) -> str | None:
        """SQL that gives the lock back, for a caller that sends it after its ``COMMIT``.

        None where the lock is not given back by a statement on this session.
        """
        return None

    def released(self) -> None:
        """The caller gave the lock back with :meth:`release_sql`'s statement."""

    def acquire(
        self, connection: Connection, driver: Driver | None, timeout: float, in_transaction: bool = False
    ) -> None:
        """Wait up to ``timeout`` seconds for the lock.

        :param in_transaction: the caller owns an open transaction the lock
            should live and die with.
        :raises LockTimeoutError: when another migrator holds it that long.
        """
        deadline = time.monotonic() + timeout
        delay = 0.01
        waited = False
        while not self.try_acquire(connection, driver, in_transaction):
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

    @contextmanager
    def holding(
        self,
        connection: Connection,
        driver: Driver | None,
        timeout: float,
        in_transaction: bool = False,
    ) -> Iterator[LockHold]:
        """Hold the lock for the block: wait for it, then give it back exactly once."""
        self.acquire(connection, driver, timeout, in_transaction)
        hold = LockHold(self, connection, driver)
        try:
            yield hold
        finally:
            hold.release()


class LockHold:
    """One run's hold on a :class:`MigrationLock`: given back exactly once, or the connection dropped."""

    def __init__(self, lock: MigrationLock, connection: Connection, driver: Driver | None) -> None:
        self.lock = lock
        self.connection = connection
        self.driver = driver

    def fold_release(self) -> list[str]:
        """The SQL that gives the lock back, to send right after the run's ``COMMIT``.

        Empty where that does not apply. The caller reports the outcome with
        :meth:`released_with_commit`.
        """
        if not self.lock.held or self.lock.transactional:
            return []
        sql = self.lock.release_sql()
        return [sql] if sql else []

    def released_with_commit(self) -> None:
        """The commit that carried :meth:`fold_release`'s SQL succeeded: the lock is free."""
        self.lock.held = False
        self.lock.released()

    def release(self) -> None:
        """Give the lock back if it is still held; if that fails, invalidate the connection.

        A transaction-level lock ends with its transaction and is left alone.
        """
        lock = self.lock
        if not lock.held:
            return
        if lock.transactional or self.connection.invalidated or self.connection.closed:
            lock.held = False  # it ends with its transaction, or ended with the session
            lock.released()
            return
        try:
            lock.release(self.connection, self.driver)
        except Exception as exc:
            lock.held = False
            log.debug("Could not give the migration lock on %s back: %s", lock.describe(), exc)
            # The lock is a session lock: ending the session frees it. Never let a pooled
            # connection go back to its pool still holding it.
            if not self.connection.closed and not self.connection.invalidated:
                self.connection.invalidate(exc)


_PG_KEY = (
    "hashtextextended(current_database() || '/' || coalesce(CAST({schema} AS text), "
    "current_schema()) || '/' || CAST({table} AS text), 0)"
)


class PostgresLock(MigrationLock):
    """A PostgreSQL advisory lock (session, or transaction inside a caller's transaction).

    Taking and giving back a session lock are one simple-protocol round trip
    each where the driver allows (asyncpg). While the lock is held, the
    session asks PostgreSQL (14 and later) to check every second that its
    client is still there (``client_connection_check_interval``): a
    migrator killed outright (SIGKILL, out of memory, a lost machine whose
    kernel still answers) leaves no statement running and no lock held for
    longer than that, even in the middle of a long statement.
    """

    CHECK_INTERVAL_MS = 1000

    def __init__(self, version_table: str, schema: str | None) -> None:
        super().__init__(version_table, schema)
        schema_sql = "NULL" if schema is None else quote_literal(schema, "postgresql")
        self._key = _PG_KEY.format(schema=schema_sql, table=quote_literal(version_table, "postgresql"))
        self._guarded = False

    def try_acquire(self, connection: Connection, driver: Driver | None, in_transaction: bool) -> bool:
        self.transactional = in_transaction
        if in_transaction:  # through SQLAlchemy, so the caller's transaction has begun on the server
            got = connection.execute(text(f"SELECT pg_try_advisory_xact_lock({self._key})")).scalar()
            return bool(got)
        sql = f"SELECT 1 WHERE pg_try_advisory_lock({self._key})"
        version = connection.dialect.server_version_info or (0,)
        guard = version >= (14,)
        if guard:
            sql = f"SET client_connection_check_interval = {self.CHECK_INTERVAL_MS};\n{sql}"
        status = driver.simple_status(sql) if driver else None
        if status is not None:
            self._guarded = guard
            return status == "SELECT 1"
        return bool(connection.execute(text(f"SELECT pg_try_advisory_lock({self._key})")).scalar())

    def release_sql(self) -> str | None:
        if not self.held:
            return None
        sql = f"SELECT pg_advisory_unlock({self._key})"
        return f"{sql};\nRESET client_connection_check_interval" if self._guarded else sql

    def released(self) -> None:
        self._guarded = False

    def release(self, connection: Connection, driver: Driver | None) -> None:
        if not self.held:
            return
        sql = self.release_sql()
        assert sql is not None
        self.held = False
        self._guarded = False
        if driver is None or driver.simple_status(sql) is None:
            connection.execute(text(f"SELECT pg_advisory_unlock({self._key})"))


class MySQLLock(MigrationLock):
    """A MySQL/MariaDB named lock (``GET_LOCK``), held by the session."""

    def __init__(self, version_table: str, schema: str | None) -> None:
        super().__init__(version_table, schema)
        self._name: str | None = None

    def _lock_name(self, connection: Connection) -> str:
        if self._name is None:
            database = connection.execute(text("SELECT DATABASE()")).scalar() or ""
            digest = hashlib.sha1(
                f"{database}/{self.schema or ''}/{self.version_table}".encode()
            ).hexdigest()
            self._name = f"asyncmigrate:{digest[:40]}"
        return self._name

    def try_acquire(self, connection: Connection, driver: Driver | None, in_transaction: bool) -> bool:
        got = connection.execute(
            text("SELECT GET_LOCK(:name, 0)"), {"name": self._lock_name(connection)}
        ).scalar()
        return got == 1

    def release(self, connection: Connection, driver: Driver | None) -> None:
        if not self.held:
            return
        self.held = False
        connection.execute(text("SELECT RELEASE_LOCK(:name)"), {"name": self._lock_name(connection)})


class SQLiteLock(MigrationLock):
    """An exclusive ``flock`` on ``<database>.asyncmigrate-lock``."""

    def __init__(self, version_table: str, schema: str | None, database: str) -> None:
        super().__init__(version_table, schema)
        suffix = f".{schema}" if schema else ""
        self.path = Path(f"{database}{suffix}.asyncmigrate-lock")
        self._file: IO[bytes] | None = None

    def try_acquire(self, connection: Connection, driver: Driver | None, in_transaction: bool) -> bool:
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

    def release(self, connection: Connection, driver: Driver | None) -> None:
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
    def try_acquire(self, connection: Connection, driver: Driver | None, in_transaction: bool) -> bool:
        return True

    def release(self, connection: Connection, driver: Driver | None) -> None:
        self.held = False


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
    from ..urls import sqlite_file_path

    database = sqlite_file_path(connection.engine.url)
    return None if database is None else os.path.abspath(database)
