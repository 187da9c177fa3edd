"""SQLite over aiosqlite: each statement in one hand-off to the driver's thread.

aiosqlite runs every ``sqlite3`` call in a worker thread; SQLAlchemy's
adapter makes several hand-offs per statement (a cursor, the execute, the
description, the close). Here a statement -- with the ``BEGIN`` that makes
the step's DDL transactional, when one is due -- runs in a single hand-off
through aiosqlite's private ``_execute`` (this module is the only place that
uses it; :meth:`AiosqliteDriver.usable` checks it is there, else the plain
path applies). ``sqlite3`` reports its transaction state itself
(``in_transaction``), so nothing needs to be kept in step with SQLAlchemy:
its own ``commit()`` after a folded one finds nothing to commit -- and
does not hand off to the thread to find it out: the adapter's ``commit()``
and ``rollback()`` return at once when ``sqlite3`` has no transaction open
(:func:`_skip_idle_calls`), which is what ``sqlite3`` itself would do there.
"""

from __future__ import annotations

import sqlite3
import weakref
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from ..._greenlet import await_in_loop
from ...exceptions import VersionTableError
from ...masking import get_logger
from . import Driver, Statement

__all__ = ["AiosqliteDriver"]

log = get_logger(__name__)


class AiosqliteDriver(Driver):
    """One thread hand-off per statement; a due ``BEGIN`` travels with the next statement."""

    name = "aiosqlite"
    raw_statements = True

    def __init__(self, connection: Connection) -> None:
        super().__init__(connection)
        self._worker: Any = connection.connection.driver_connection  # the aiosqlite.Connection
        self._begin_due = False
        # One listener per connection, calling its newest driver (noted, weakly, in the
        # connection's info): a caller's connection used for many runs gathers no more.
        connection.info[_DRIVER] = weakref.ref(self)
        if not event.contains(connection, "before_cursor_execute", _before_execute):
            event.listen(connection, "before_cursor_execute", _before_execute)
        _skip_idle_calls(connection.connection.dbapi_connection)

    @classmethod
    def usable(cls, connection: Connection) -> bool:
        """Whether aiosqlite has the hand-off this path relies on."""
        try:
            worker = connection.connection.driver_connection
        except Exception:  # pragma: no cover - a connection without a DBAPI connection
            return False
        ok = callable(getattr(worker, "_execute", None)) and isinstance(
            getattr(worker, "_conn", None), sqlite3.Connection
        )
        if not ok:
            log.debug("aiosqlite fast path disabled: no _execute/_conn on %s", type(worker).__name__)
        return ok

    def close(self) -> None:
        """Stop watching the connection (sending a due ``BEGIN`` first is not needed: nothing ran)."""
        ref = self.connection.info.get(_DRIVER)
        if ref is not None and ref() is self:
            del self.connection.info[_DRIVER]

    def begin(self) -> None:
        """Open the transaction for real before the next statement, DDL included.

        ``sqlite3`` begins a transaction only before DML; DDL before that
        would commit by itself. The ``BEGIN`` travels with the next statement.
        """
        if not self._sqlite.in_transaction and self._sqlite.isolation_level is not None:
            self._begin_due = True

    @property
    def _sqlite(self) -> sqlite3.Connection:
        conn: sqlite3.Connection = self._worker._conn
        return conn

    def before_execute(self) -> None:
        """SQLAlchemy is about to run a statement of its own: send a due ``BEGIN`` first."""
        if self._begin_due:
            self._begin_due = False
            self._hand_off(lambda raw: raw.execute("BEGIN"), "BEGIN")

    def _hand_off(self, work: Any, statement: str = "") -> Any:
        """Run ``work(sqlite3_connection)`` in the driver's thread; raise errors as SQLAlchemy would."""
        worker = self._worker
        if _LEGACY is not None and not hasattr(worker, _MODE_SEEN):
            task = work

            def work(raw: sqlite3.Connection) -> Any:
                setattr(worker, _MODE_SEEN, getattr(raw, "autocommit", None))
                return task(raw)

        try:
            return await_in_loop(worker._execute(work, self._sqlite))
        except sqlite3.Error as exc:
            dialect = self.connection.dialect
            raise DBAPIError.instance(
                statement, None, exc, dialect.loaded_dbapi.Error, dialect=dialect
            ) from exc

    def run(self, statement: Statement) -> None:
        begin, self._begin_due = self._begin_due and not self._sqlite.in_transaction, False

        def work(raw: sqlite3.Connection) -> None:
            if begin:
                raw.execute("BEGIN")
            _checked(raw.execute(statement.sql), statement)

        self._hand_off(work, statement.sql)

    def commit_with(self, statements: list[Statement], after: list[str]) -> bool:
        begin, self._begin_due = self._begin_due and not self._sqlite.in_transaction, False

        failing = ["COMMIT"]

        def work(raw: sqlite3.Connection) -> None:
            if begin:
                raw.execute("BEGIN")
            for statement in statements:
                failing[0] = statement.sql
                _checked(raw.execute(statement.sql), statement)
            failing[0] = "COMMIT"
            raw.commit()
            for sql in after:
                failing[0] = sql
                raw.execute(sql)

        try:
            self._hand_off(work)
        except DBAPIError as exc:
            exc.statement = failing[0]
            raise
        return True

    def fetch(self, sql: str) -> list[tuple[Any, ...]]:
        """Run a query in one hand-off and return its rows."""

        def work(raw: sqlite3.Connection) -> list[tuple[Any, ...]]:
            return list(raw.execute(sql).fetchall())

        result: list[tuple[Any, ...]] = self._hand_off(work, sql)
        return result

    def server_in_transaction(self) -> bool | None:
        return bool(self._sqlite.in_transaction)

    def interrupt(self) -> None:
        # sqlite3's interrupt() may be called from any thread; the running statement stops.
        self._sqlite.interrupt()


#: The key of a connection's ``info`` naming the driver of its newest run (a weak
#: reference: the run's context holds the driver).
_DRIVER = "asyncmigrate.aiosqlite_driver"


def _before_execute(connection: Connection, *args: Any) -> None:
    ref = connection.info.get(_DRIVER)
    driver = ref() if ref is not None else None
    if driver is not None:
        driver.before_execute()


_IDLE_SKIPPING: dict[type, type] = {}


def _idle(worker: Any) -> bool:
    """Whether ``sqlite3`` would treat ``commit()``/``rollback()`` as no-ops: no transaction open.

    Only under ``sqlite3``'s legacy transaction control (the default; under
    Python 3.12's ``autocommit=False`` a commit also opens the next
    transaction, so it is never skipped). ``worker`` is the aiosqlite
    connection, asked between hand-offs, so its thread is idle.
    """
    raw = getattr(worker, "_connection", None)
    if not isinstance(raw, sqlite3.Connection):
        return False  # closed or unknown: the adapter's own path reports it
    if _LEGACY is not None and getattr(worker, _MODE_SEEN, None) != _LEGACY:
        return False  # not known to be legacy (the mode is read in the driver's thread)
    try:
        return not raw.in_transaction
    except sqlite3.Error:
        return False


# Python 3.12+: sqlite3's ``autocommit`` (read only in the connection's own thread,
# so the first hand-off notes it on the aiosqlite connection); earlier: always legacy.
_LEGACY: int | None = getattr(sqlite3, "LEGACY_TRANSACTION_CONTROL", None)
_MODE_SEEN = "_asyncmigrate_autocommit"


def _skip_idle_calls(adapter: Any) -> None:
    """Make ``adapter`` (SQLAlchemy's aiosqlite connection) skip the thread for no-op commits and rollbacks.

    SQLAlchemy commits after a commit this driver folded into its last
    hand-off, and rolls back when the pool takes the connection back: with
    no transaction open both are no-ops in ``sqlite3``, yet each costs a
    thread hand-off. The adapter's class becomes a subclass of its own
    (no new state; the connection behaves the same everywhere else).
    """
    base = type(adapter)
    if base in _IDLE_SKIPPING.values():
        return
    skipping = _IDLE_SKIPPING.get(base)
    if skipping is None:
        def commit(self: Any) -> None:
            if not _idle(self._connection):
                base.commit(self)

        def rollback(self: Any) -> None:
            if not _idle(self._connection):
                base.rollback(self)

        skipping = type(base.__name__, (base,), {
            "__slots__": (), "__module__": base.__module__, "__qualname__": base.__qualname__,
            "commit": commit, "rollback": rollback,
        })
        _IDLE_SKIPPING[base] = skipping
    try:
        adapter.__class__ = skipping
    except TypeError:  # pragma: no cover - an adapter whose layout does not allow it
        log.debug("aiosqlite idle commit skip disabled for %s", base.__name__)


def _checked(cursor: sqlite3.Cursor, statement: Statement) -> None:
    if statement.expect_rows is not None and cursor.rowcount != statement.expect_rows:
        raise VersionTableError(f"{statement.mismatch}; {cursor.rowcount} found")
