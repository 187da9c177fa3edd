"""PostgreSQL over asyncpg: statements in one round trip, ``BEGIN`` and ``COMMIT`` folded in.

SQLAlchemy's asyncpg adapter prepares every statement before running it (two
round trips) and opens a transaction with a ``BEGIN`` of its own. Here an
answer-less statement goes straight to asyncpg's simple protocol (one round
trip, the connection's public ``execute``), the ``BEGIN`` that opens
SQLAlchemy's transaction travels with the first statement, and a
migration's ``COMMIT`` travels with its version-row change.

Folding ``BEGIN``/``COMMIT`` means telling SQLAlchemy's adapter and asyncpg
that a transaction started or ended without them. That bookkeeping lives in
private attributes (:class:`_Bookkeeping`): this module is the only place
that touches them. It checks their shape when first used and, once per
process, that SQLAlchemy's own ``rollback()`` and ``commit()`` behave as
expected after a folded ``BEGIN``/``COMMIT`` (:func:`_verified`); if
either check fails, :meth:`AsyncpgDriver.usable` says no and the migration
takes the plain path through SQLAlchemy.
"""

from __future__ import annotations

import itertools
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine

from ..._greenlet import await_in_loop
from ...exceptions import VersionTableError
from ...masking import get_logger
from . import Driver, ServerSession, Statement

__all__ = ["SESSION_RESET_SQL", "AsyncpgDriver", "reuse_cleanly"]

log = get_logger(__name__)

_BEGIN = {
    "read_committed": " ISOLATION LEVEL READ COMMITTED",
    "read_uncommitted": " ISOLATION LEVEL READ UNCOMMITTED",
    "repeatable_read": " ISOLATION LEVEL REPEATABLE READ",
    "serializable": " ISOLATION LEVEL SERIALIZABLE",
}

class _Bookkeeping:
    """The private transaction state of SQLAlchemy's asyncpg adapter and of asyncpg.

    Two shapes are known: SQLAlchemy 2.0 keeps ``_transaction`` and a
    ``_started`` flag; 2.1 keeps ``_transaction`` alone. asyncpg keeps its
    top transaction on the connection (``_top_xact``) and a state on each
    ``Transaction``.
    """

    def __init__(self, adapter_class: type, flag: bool) -> None:
        self.adapter_class = adapter_class
        self.flag = flag  # SQLAlchemy 2.0's _started

    @classmethod
    def of(cls, adapter: Any) -> _Bookkeeping | None:
        """The bookkeeping of ``adapter``'s class, or None if its shape is not one we know."""
        try:
            from asyncpg.transaction import Transaction, TransactionState  # type: ignore[import-untyped]
        except ImportError:  # pragma: no cover - asyncpg is a core dependency
            return None
        kind = type(adapter)
        slots = {name for klass in kind.__mro__ for name in getattr(klass, "__slots__", ())}
        needed = {
            "_transaction", "_connection", "_execute_mutex", "isolation_level", "readonly", "deferrable"
        }
        if not needed <= slots or not hasattr(kind, "_handle_exception"):
            return None
        if "_state" not in Transaction.__slots__ or not all(
            hasattr(TransactionState, n) for n in ("STARTED", "COMMITTED")
        ):
            return None
        if not hasattr(adapter._connection, "_top_xact"):
            return None
        return cls(kind, "_started" in slots)

    def started(self, adapter: Any) -> bool:
        """Whether the adapter believes it has begun a transaction."""
        return adapter._transaction is not None

    def begin_sql(self, adapter: Any) -> str:
        """The ``BEGIN`` the adapter itself would send."""
        sql = "BEGIN" + _BEGIN.get(adapter.isolation_level or "", "")
        if adapter.readonly:
            sql += " READ ONLY"
        if adapter.deferrable:
            sql += " DEFERRABLE"
        return sql

    def opened(self, adapter: Any) -> None:
        """Record a transaction the server began in a folded ``BEGIN``."""
        from asyncpg.transaction import TransactionState

        raw = adapter._connection
        transaction = raw.transaction(
            isolation=adapter.isolation_level, readonly=adapter.readonly, deferrable=adapter.deferrable
        )
        transaction._state = TransactionState.STARTED
        raw._top_xact = transaction
        adapter._transaction = transaction
        if self.flag:
            adapter._started = True

    def closed(self, adapter: Any) -> None:
        """Record that the server ended the adapter's transaction (a folded ``COMMIT``)."""
        from asyncpg.transaction import TransactionState

        transaction = adapter._transaction
        if transaction is None:
            return
        raw = adapter._connection
        transaction._state = TransactionState.COMMITTED
        if raw._top_xact is transaction:
            raw._top_xact = None
        adapter._transaction = None
        if self.flag:
            adapter._started = False


_VERIFIED: dict[tuple[type, bool], bool] = {}


def _verified(bookkeeping: _Bookkeeping, adapter: Any) -> bool | None:
    """Whether folding is known to work with this SQLAlchemy and asyncpg (None: not yet known).

    Checked once per process on a connection outside any transaction: after
    a folded ``BEGIN``, SQLAlchemy's own ``rollback()`` must end it on the
    server and clear every record of it; after a folded ``BEGIN``/``COMMIT``,
    SQLAlchemy's ``commit()`` must have nothing left to do. Two round trips.
    """
    key = (bookkeeping.adapter_class, bookkeeping.flag)
    known = _VERIFIED.get(key)
    if known is not None:
        return known
    raw = adapter._connection
    if bookkeeping.started(adapter) or raw.is_in_transaction():
        return None  # ask again on a connection outside a transaction
    try:
        await_in_loop(raw.execute(f"{bookkeeping.begin_sql(adapter)};\nSELECT 1"))
        bookkeeping.opened(adapter)
        adapter.rollback()
        ok = not raw.is_in_transaction() and not bookkeeping.started(adapter) and raw._top_xact is None
        if ok:
            await_in_loop(raw.execute(f"{bookkeeping.begin_sql(adapter)};\nSELECT 1;\nCOMMIT"))
            bookkeeping.opened(adapter)
            bookkeeping.closed(adapter)
            adapter.commit()
            ok = not raw.is_in_transaction() and not bookkeeping.started(adapter) and raw._top_xact is None
    except Exception as exc:
        if raw.is_closed():
            # The connection was lost, which says nothing about the adapter: this session
            # takes the plain path (where the loss is a connect failure a retry covers) and
            # the next one checks again.
            log.debug("asyncpg self-check lost its connection: %r", exc)
            return False
        log.debug("asyncpg fast path disabled: its self-check failed: %r", exc)
        ok = False
        if raw.is_in_transaction():
            await_in_loop(raw.execute("ROLLBACK"))
    if not ok:
        log.debug("asyncpg fast path disabled: SQLAlchemy's adapter does not behave as expected")
    _VERIFIED[key] = ok
    return ok


class AsyncpgDriver(Driver):
    """One round trip per statement over asyncpg; ``BEGIN`` and ``COMMIT`` folded in."""

    name = "asyncpg"
    raw_statements = True

    def __init__(self, connection: Connection) -> None:
        super().__init__(connection)
        self._adapter: Any = connection.connection.dbapi_connection
        bookkeeping = _Bookkeeping.of(self._adapter)
        assert bookkeeping is not None  # usable() said so
        self._books = bookkeeping

    @classmethod
    def usable(cls, connection: Connection) -> bool:
        """Whether the fast path applies to ``connection`` (checking the installation once)."""
        try:
            adapter = connection.connection.dbapi_connection
        except Exception:  # pragma: no cover - a connection without a DBAPI connection
            return False
        bookkeeping = _Bookkeeping.of(adapter)
        if bookkeeping is None:
            log.debug("asyncpg fast path disabled: unknown adapter shape %s", type(adapter).__name__)
            return False
        return bool(_verified(bookkeeping, adapter))

    @property
    def _raw(self) -> Any:
        return self._adapter._connection

    # -- sending -----------------------------------------------------------------------------

    def _opening(self) -> str | None:
        """The ``BEGIN`` to send first: SQLAlchemy began a transaction the driver has not started."""
        adapter = self._adapter
        if getattr(adapter, "autocommit", False) or self._books.started(adapter):
            return None
        if not self.connection.in_transaction():
            self.connection.begin()  # what SQLAlchemy's autobegin would do before a statement
        return self._books.begin_sql(adapter)

    def run(self, statement: Statement) -> None:
        opening = self._opening()
        parts = [opening] if opening else []
        parts.append(_self_checking(statement) if statement.expect_rows is not None else statement.sql)
        self._send(parts, opening is not None, [statement], failing=statement.sql)

    def commit_with(self, statements: list[Statement], after: list[str]) -> bool:
        adapter = self._adapter
        if getattr(adapter, "autocommit", False):
            return False
        started = self._books.started(adapter)
        if not started and not statements:  # no transaction on the server: nothing to commit
            if after:
                self._send(list(after), False, [], failing=after[0])
            return True
        parts = [] if started else [self._books.begin_sql(adapter)]
        parts.extend(_self_checking(s) if s.expect_rows is not None else s.sql for s in statements)
        parts.append("COMMIT")
        parts.extend(after)
        self._send(parts, not started, statements, failing="COMMIT", commits=True)
        return True

    def _send(
        self,
        parts: list[str],
        opens: bool,
        statements: list[Statement],
        failing: str,
        commits: bool = False,
    ) -> None:
        """Send ``parts`` as one simple-protocol query; keep both bookkeepings true to the server.

        :param failing: the statement to name when the server refuses the query
            for a reason no check claims (the one statement it carried, or ``COMMIT``).
        """
        adapter, raw = self._adapter, self._raw

        async def send() -> None:
            async with adapter._execute_mutex:
                await raw.execute(";\n".join(parts))

        try:
            await_in_loop(send())
        except Exception as exc:
            check = _failed_check(statements, exc)
            if check is not None:
                self._settle(opens, commits)
                raise check from None
            self._settle(opens, commits)
            if commits and raw.is_in_transaction():
                failing = next((s.sql for s in statements), failing)  # COMMIT was never reached
            raise self._translate(exc, failing) from exc
        self._settle(opens, commits)

    def _settle(self, opens: bool, commits: bool) -> None:
        """Record what the server now says about the transaction our query opened or closed."""
        in_transaction = self._raw.is_in_transaction()
        if opens and in_transaction and not self._books.started(self._adapter):
            self._books.opened(self._adapter)
        elif commits and not in_transaction:
            self._books.closed(self._adapter)

    def _translate(self, exc: Exception, statement: str) -> Exception:
        """The error SQLAlchemy would raise for ``exc``, naming ``statement``."""
        if isinstance(exc, DBAPIError):
            return exc
        try:
            self._adapter._handle_exception(exc)
        except Exception as translated:  # the adapter raises its DBAPI error class
            dbapi_error: Exception = translated
        else:  # pragma: no cover - _handle_exception always raises
            dbapi_error = exc
        dialect = self.connection.dialect
        return DBAPIError.instance(statement, None, dbapi_error, dialect.loaded_dbapi.Error, dialect=dialect)

    # -- reading and identity -------------------------------------------------------------------

    def read_outside_transaction(self, sql: str, *args: Any) -> tuple[bool, Any]:
        adapter, raw = self._adapter, self._raw
        if self._books.started(adapter) or raw.is_in_transaction():
            return False, None

        async def fetch() -> Any:
            async with adapter._execute_mutex:
                return await raw.fetchrow(sql, *args)

        try:
            return True, await_in_loop(fetch())
        except Exception as exc:
            raise self._translate(exc, sql) from exc

    def simple_status(self, sql: str) -> str | None:
        adapter, raw = self._adapter, self._raw

        async def send() -> str:
            async with adapter._execute_mutex:
                status: str = await raw.execute(sql)
                return status

        try:
            result: str = await_in_loop(send())
        except Exception as exc:
            raise self._translate(exc, sql) from exc
        return result

    def server_in_transaction(self) -> bool | None:
        return bool(self._raw.is_in_transaction())

    def session(self) -> ServerSession | None:
        raw = self._raw
        port = None
        transport = getattr(raw, "_transport", None)
        if transport is not None:
            sockname = transport.get_extra_info("sockname")
            if isinstance(sockname, tuple) and len(sockname) >= 2 and isinstance(sockname[1], int):
                port = sockname[1]
        return ServerSession("postgresql", int(raw.get_server_pid()), port)

    def interrupt(self) -> None:
        # asyncpg sends PostgreSQL a cancel request itself when an awaited query is cancelled.
        return None


def _self_checking(statement: Statement) -> str:
    """``statement`` as SQL that fails, naming a token, unless it changed the expected rows.

    A simple-protocol answer carries only the last statement's status, so
    the statement checks itself; the ``CASE`` depends on ``count(*)``, so
    the failing cast is never folded at plan time.
    """
    token = statement.token
    return (
        f"WITH changed AS ({statement.sql} RETURNING 1) "
        f"SELECT CAST(CASE WHEN count(*) = {statement.expect_rows} THEN '0' "
        f"ELSE '{token}:' || count(*) END AS integer) FROM changed"
    )




def _failed_check(statements: list[Statement], exc: BaseException) -> VersionTableError | None:
    """The row check among ``statements`` that ``exc`` reports, as the error to raise."""
    text = str(exc)
    for statement in statements:
        if statement.expect_rows is None:
            continue
        token = statement.token
        if not token or f"{token}:" not in text:
            continue
        found = text.split(f"{token}:", 1)[1]
        digits = "".join(itertools.takewhile(str.isdigit, found))
        return VersionTableError(f"{statement.mismatch}; {digits or 'another number of rows'} found")
    return None


_NEW_CONNECTION = "asyncmigrate_new_connection"

#: What makes a used session like a new one, sent as one simple-protocol query after the
#: rollback: cursors, the session user and role, every setting (search_path, timeouts,
#: ``set_config`` values; those given at connect time are kept), LISTENs, advisory locks,
#: temporary tables, sequence state and statements PREPAREd in SQL. Unlike ``DISCARD
#: ALL`` it keeps the protocol-level statements asyncpg and SQLAlchemy have prepared
#: and cache by name: no tenant's values are in them, and PostgreSQL re-plans them when
#: the search_path changes.
SESSION_RESET_SQL = (
    "CLOSE ALL; SET SESSION AUTHORIZATION DEFAULT; RESET ALL; UNLISTEN *; "
    "SELECT pg_advisory_unlock_all(); DISCARD TEMP; DISCARD SEQUENCES; "
    "DO $asyncmigrate$DECLARE s text; BEGIN "
    "FOR s IN SELECT name FROM pg_prepared_statements WHERE from_sql LOOP "
    "EXECUTE 'DEALLOCATE ' || quote_ident(s); END LOOP; END$asyncmigrate$"
)


def reuse_cleanly(engine: AsyncEngine) -> None:
    """Let tenants take turns on ``engine``'s pooled asyncpg connections, each seeing a new session.

    * **On return**, after SQLAlchemy's rollback, :data:`SESSION_RESET_SQL`
      undoes whatever the run (its env.py, its revisions' arbitrary SQL) set
      on the session, in one round trip. If it fails, SQLAlchemy discards
      the connection instead of pooling it.
    * **On checkout** of a connection used before, one ``SELECT 1`` checks
      that it still answers (SQLAlchemy's ``pool_pre_ping`` on asyncpg wraps
      its ping in a transaction: three round trips). A connection that does
      not answer is discarded (``DisconnectionError``) and the pool hands out
      a new one; a connection made for this checkout is not pinged.

    Where SQLAlchemy's adapter is not the shape this module knows, its own
    ``ping()`` does the check and the connection is closed on return instead
    of being reset.
    """
    pool = engine.sync_engine.pool

    @event.listens_for(pool, "connect")
    def made(dbapi_connection: Any, record: Any) -> None:
        record.info[_NEW_CONNECTION] = True

    @event.listens_for(pool, "checkout")
    def ping(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        if record.info.pop(_NEW_CONNECTION, False):
            return
        try:
            if not _send_simple(dbapi_connection, "SELECT 1"):
                dbapi_connection.ping()
        except Exception as exc:
            raise DisconnectionError(f"the pooled connection did not answer: {exc}") from exc

    @event.listens_for(pool, "reset")
    def reset(dbapi_connection: Any, record: Any, state: Any) -> None:
        if state.terminate_only or not state.asyncio_safe:
            return  # it is being closed, not pooled
        dbapi_connection.rollback()  # the reset must not run (and roll back) inside a transaction
        if not _send_simple(dbapi_connection, SESSION_RESET_SQL):
            raise DisconnectionError("this driver's session cannot be reset: closing it")


def _send_simple(dbapi_connection: Any, sql: str) -> bool:
    """Send ``sql`` over asyncpg's simple protocol; False where the adapter is not the known shape."""
    raw = getattr(dbapi_connection, "_connection", None)
    mutex = getattr(dbapi_connection, "_execute_mutex", None)
    if raw is None or mutex is None:
        return False

    async def send() -> None:
        async with mutex:
            await raw.execute(sql)

    await_in_loop(send())
    return True
