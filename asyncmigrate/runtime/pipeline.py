"""Send a migration step's statements to the database together, and share compiled DDL.

Round trips are the cost of migrating: SQLAlchemy's asyncpg driver prepares
every statement before running it (two round trips each), and aiosqlite
hands every statement to its worker thread and back. A step that creates a
table, an index and moves its version row pays that six times.

A :class:`StatementPipeline` queues what needs no answer -- DDL, and
statements whose values are rendered inline, such as version-row updates --
and sends the queue at once inside SQLAlchemy's own transaction:

* PostgreSQL over asyncpg: one simple-protocol batch, one round trip;
* SQLite over aiosqlite: one hand-off to the connection's worker thread;
* other databases: statements run one by one as they come (only the
  compiled-SQL sharing below applies).

It sends (flushes) before anything else reaches the connection: any
statement run through SQLAlchemy (queries, ``op.get_bind().execute()``,
savepoints), a commit, and the end of every migration step, so events,
callbacks and errors still belong to the right step. A rollback drops the
queue. In autocommit mode (``autocommit_block``) nothing is queued: such
statements must run one by one, outside a transaction block. A version-row
``UPDATE``/``DELETE`` is queued :class:`Checked`: the batch fails unless it
matched exactly one row, as it would run on its own.

Inside one transaction over several steps, a step's batch is sent without
waiting (:meth:`StatementPipeline.end_step`): the next step's Python runs
while the server executes it. Steps whose code finishes while a batch is
still running wait for it and then leave together, each after the first
behind a savepoint; if that batch fails, rolling back to the last savepoint
it reached tells which step failed (and leaves the transaction at that
step's start). The pipeline reports which steps are done and which failed
(:meth:`StatementPipeline.take_results`); the migration context turns that
into events and errors.

Compiled SQL can be shared: a fan-out hands every tenant's pipeline one
:class:`CompiledCache`, so a thousand tenants running the same revision do
not compile the same DDL a thousand times. Sharing rests on the step being
tenant-independent: the SQL of a step's N-th statement is reused only while
that step has not queried the database and has not looked at what differs
per tenant (``context.tenant``, ``context.config``, ``op.get_context()``,
``op.get_bind()``, ``op.migration_context``), for
the same revision and direction, dialect and server version -- and only if
a cheap fingerprint (statement kind, table, column names) still matches.
Describing a construct fully costs as much as compiling it, so the guard is
the step's independence, not the fingerprint.

Whole operations can be shared the same way: in a tenant-independent step,
an operation that returns nothing and only emits DDL (``create_index``,
``add_column``, ``drop_constraint`` ...) is recorded as the SQL it queued, and
the next tenant's same operation queues that SQL without building the
SQLAlchemy objects again (:meth:`StatementPipeline.replay`); ``create_table``
also hands back the ``Table`` the first tenant built. ``bulk_insert`` and
``execute`` (their values may differ per call) always run.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import re
from collections.abc import Callable
from typing import Any, NoReturn

from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.exc import CompileError, DBAPIError
from sqlalchemy.sql.ddl import BaseDDLElement
from sqlalchemy.sql.dml import UpdateBase
from sqlalchemy.sql.elements import ClauseElement, TextClause
from sqlalchemy.sql.expression import Executable
from sqlalchemy.sql.schema import DefaultGenerator
from sqlalchemy.sql.selectable import Select

from .._greenlet import await_in_loop, in_loop_greenlet
from ..exceptions import AsyncMigrateError, VersionTableError

__all__ = [
    "Checked",
    "CompiledCache",
    "StatementPipeline",
    "aiosqlite_worker",
    "commit_then",
    "fetch_before_transaction",
    "send_together",
]

log = logging.getLogger(__name__)


class CompiledCache:
    """SQL compiled for one run's tenants, shared across them (see the module docstring)."""

    def __init__(self) -> None:
        self._entries: dict[tuple[Any, ...], str] = {}
        self._operations: dict[tuple[Any, ...], tuple[tuple[str, ...], int, Any]] = {}
        self.hits = 0
        self.misses = 0

    def _count(self, entry: Any) -> Any:
        if entry is None:
            self.misses += 1
        else:
            self.hits += 1
        return entry

    def get(self, key: tuple[Any, ...]) -> str | None:
        sql: str | None = self._count(self._entries.get(key))
        return sql

    def put(self, key: tuple[Any, ...], sql: str) -> None:
        self._entries[key] = sql

    def get_op(self, key: tuple[Any, ...]) -> tuple[tuple[str, ...], int, Any] | None:
        """The statements, statement count and result a shared operation produced."""
        entry: tuple[tuple[str, ...], int, Any] | None = self._count(self._operations.get(key))
        return entry

    def put_op(self, key: tuple[Any, ...], entry: tuple[tuple[str, ...], int, Any]) -> None:
        self._operations[key] = entry


def _fingerprint(construct: ClauseElement) -> tuple[Any, ...]:
    """A cheap sanity check on a shared statement: its kind, table and columns.

    Sharing rests on the step being tenant-independent (see the module
    docstring); this only guards against a step whose output changes anyway.
    """
    if isinstance(construct, TextClause):
        return ("text", construct.text)
    element = getattr(construct, "element", None)
    table = getattr(element, "table", element) if element is not None else getattr(construct, "table", None)
    columns = getattr(table, "columns", None)
    names = tuple(c.name for c in columns) if columns is not None else ()
    return (
        type(construct).__name__,
        getattr(table, "fullname", None) or getattr(element, "name", None),
        names,
        getattr(construct, "column_name", None) or getattr(getattr(construct, "column", None), "name", None),
    )


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return type(value).__name__


def _plain_name(value: Any) -> str | None:
    name = getattr(value, "name", None)
    return name if isinstance(name, str) else None


def _op_fingerprint(operation: Any) -> tuple[Any, ...]:
    """A cheap sanity check on a shared operation: its class and its plain arguments."""
    parts: list[Any] = [type(operation).__name__]
    for name, value in sorted(vars(operation).items()):
        if value is None or isinstance(value, (str, int, float, bool)):
            parts.append((name, value))
        elif isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            parts.append((name, tuple(value)))
        elif isinstance(value, (list, tuple)):  # columns, constraints: kinds and names
            parts.append((name, tuple((type(v).__name__, _plain_name(v)) for v in value)))
        elif isinstance(value, dict):
            parts.append((name, tuple(sorted((str(k), _plain(v)) for k, v in value.items()))))
        elif isinstance(value, TextClause):
            parts.append((name, value.text))
        else:
            parts.append((name, type(value).__name__, _plain_name(value)))
    return tuple(parts)


class Checked(str):
    """A queued statement (an ``UPDATE`` or ``DELETE``) that must affect exactly ``rows`` rows.

    Version-row changes are checked this way: an ``UPDATE`` that matched no
    row means another migrator (or the migration itself) moved the version
    table, and the step must fail rather than be recorded twice. Where the
    driver reports each statement's row count (aiosqlite), it is read there;
    in a PostgreSQL batch, whose answer carries only the last statement's
    status, the statement checks itself (:meth:`self_checking`).
    """

    rows: int
    message: str
    token: str

    def __new__(cls, sql: str, rows: int, message: str) -> Checked:
        checked = super().__new__(cls, sql)
        checked.rows = rows
        checked.message = message
        checked.token = f"asyncmigrate-row-check-{next(_CHECKS)}"
        return checked

    def verify(self, count: int) -> None:
        """Raise :class:`VersionTableError` unless ``count`` is the expected number of rows."""
        if count != self.rows:
            raise VersionTableError(f"{self.message}; {count} found")

    def self_checking(self) -> str:
        """The statement as PostgreSQL SQL that fails, naming :attr:`token`, on another count."""
        # The CASE depends on count(*), so the failing cast is never folded at plan time.
        return (
            f"WITH changed AS ({self} RETURNING 1) "
            f"SELECT CAST(CASE WHEN count(*) = {self.rows} THEN '0' "
            f"ELSE '{self.token}:' || count(*) END AS integer) FROM changed"
        )

    @staticmethod
    def failed_in(batch: list[str], exc: BaseException) -> VersionTableError | None:
        """The check of ``batch`` that ``exc`` (a self-checking statement's error) reports."""
        text = str(exc)
        for statement in batch:
            if isinstance(statement, Checked) and f"{statement.token}:" in text:
                found = text.split(f"{statement.token}:", 1)[1]
                digits = "".join(itertools.takewhile(str.isdigit, found))
                try:
                    statement.verify(int(digits) if digits else -1)
                except VersionTableError as error:
                    return error
        return None


_CHECKS = itertools.count(1)


class _Transport:
    """How queued statements reach the database."""

    batches = True
    groups = False
    """Whether several steps may travel in one batch (:meth:`locate` then finds the failing one)."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    def autocommit(self) -> bool:
        return False

    def folds_commit(self) -> bool:
        """Whether a batch can carry the transaction's ``COMMIT`` (see :meth:`send`)."""
        return False

    def send(self, batch: list[str], commit: bool = False) -> None:
        """Send ``batch`` and wait for the database to finish it.

        With ``commit`` (only where :meth:`folds_commit`) the batch also
        commits the transaction, and the driver knows it is over.
        """
        try:
            await_in_loop(self.sending(batch, commit))
        except Exception as exc:
            _reraise(self.connection, self.connection.connection.dbapi_connection, batch, exc)

    async def sending(self, batch: list[str], commit: bool = False) -> None:
        """The coroutine that sends ``batch`` (awaited now, or later when deferred)."""
        raise NotImplementedError

    async def locate(self, savepoints: list[str]) -> int:
        """After a batch failed: how many of its ``savepoints`` it had passed."""
        return 0


class _AsyncpgTransport(_Transport):
    """One simple-protocol batch on the asyncpg connection, in SQLAlchemy's transaction.

    A batch that opens the transaction carries its ``BEGIN``, and one that
    ends a migration's own transaction its ``COMMIT``: a step in a
    transaction of its own is one round trip. The driver's transaction
    object is then set to what the server says (its transaction status after
    the batch), so SQLAlchemy's later rollback or commit does the right thing.
    """

    groups = True

    def autocommit(self) -> bool:
        adapter = self.connection.connection.dbapi_connection
        return getattr(adapter, "isolation_level", None) == "autocommit"

    async def locate(self, savepoints: list[str]) -> int:
        """Roll back to the last savepoint the failed batch reached; return its number (1-based).

        The transaction is then usable again at the start of the failing
        step. 0: the batch failed before its first savepoint (or the
        connection cannot tell).
        """
        adapter: Any = self.connection.connection.dbapi_connection
        raw = adapter._connection
        async with adapter._execute_mutex:
            for number in range(len(savepoints), 0, -1):
                try:
                    await raw.execute(f"ROLLBACK TO SAVEPOINT {savepoints[number - 1]}")
                except Exception as exc:
                    if getattr(exc, "sqlstate", None) == "3B001":  # not reached: an earlier one
                        continue
                    return 0
                return number
        return 0

    def folds_commit(self) -> bool:
        return _asyncpg_transactions_foldable(self.connection.connection.dbapi_connection)

    async def sending(self, batch: list[str], commit: bool = False, after: tuple[str, ...] = ()) -> None:
        adapter: Any = self.connection.connection.dbapi_connection
        raw = adapter._connection
        statements = [s.self_checking() if isinstance(s, Checked) else s for s in batch]
        async with adapter._execute_mutex:
            opening = None
            if adapter._transaction is None and adapter.isolation_level != "autocommit":
                if _asyncpg_transactions_foldable(adapter) and not raw.is_in_transaction():
                    opening = raw.transaction(
                        isolation=adapter.isolation_level,
                        readonly=adapter.readonly,
                        deferrable=adapter.deferrable,
                    )
                    statements.insert(0, _begin_sql(opening))
                else:
                    await adapter._start_transaction()
            if commit:
                statements.append("COMMIT")
                statements.extend(after)
            try:
                await raw.execute(";\n".join(statements))
            except Exception as exc:
                check = Checked.failed_in(batch, exc)
                if check is None:
                    raise
                raise check from None
            finally:
                if opening is not None or commit:
                    _track_asyncpg_transaction(adapter, opening)


def _asyncpg_transactions_foldable(adapter: Any) -> bool:
    """Whether asyncpg's transaction bookkeeping is what :func:`_track_asyncpg_transaction` sets."""
    return _asyncpg_transaction_parts() and hasattr(adapter._connection, "_top_xact")


@functools.cache
def _asyncpg_transaction_parts() -> bool:
    try:
        from asyncpg.transaction import (  # type: ignore[import-untyped]
            Transaction,
            TransactionState,
        )
    except ImportError:  # pragma: no cover - asyncpg is a core dependency
        return False
    return "_state" in getattr(Transaction, "__slots__", ()) and all(
        hasattr(TransactionState, n) for n in ("STARTED", "COMMITTED")
    )


def _begin_sql(transaction: Any) -> str:
    """The ``BEGIN`` asyncpg's ``Transaction.start()`` would send."""
    levels = {
        "read_committed": " ISOLATION LEVEL READ COMMITTED",
        "read_uncommitted": " ISOLATION LEVEL READ UNCOMMITTED",
        "repeatable_read": " ISOLATION LEVEL REPEATABLE READ",
        "serializable": " ISOLATION LEVEL SERIALIZABLE",
    }
    sql = "BEGIN" + levels.get(transaction._isolation or "", "")
    if transaction._readonly:
        sql += " READ ONLY"
    if transaction._deferrable:
        sql += " DEFERRABLE"
    return sql


def _track_asyncpg_transaction(adapter: Any, opening: Any) -> None:
    """After a batch that began or committed a transaction, record what the server says.

    In a transaction (the batch's own ``BEGIN`` ran, or its error left the
    block aborted): the driver holds a started transaction, which
    SQLAlchemy will commit or roll back. Out of one (the batch committed):
    the driver holds none.
    """
    from asyncpg.transaction import TransactionState

    raw = adapter._connection
    if raw.is_in_transaction():
        if opening is not None and adapter._transaction is None:
            opening._state = TransactionState.STARTED
            raw._top_xact = opening
            adapter._transaction = opening
        return
    current = adapter._transaction
    if current is not None:
        current._state = TransactionState.COMMITTED
        if raw._top_xact is current:
            raw._top_xact = None
        adapter._transaction = None


class _AiosqliteTransport(_Transport):
    """One hand-off to aiosqlite's worker thread that runs every statement there."""

    def autocommit(self) -> bool:
        adapter = self.connection.connection.dbapi_connection
        return getattr(adapter, "isolation_level", "") is None

    async def sending(self, batch: list[str], commit: bool = False) -> None:
        adapter: Any = self.connection.connection.dbapi_connection
        worker = adapter._connection  # the aiosqlite.Connection

        def run_all() -> None:
            raw = worker._conn  # the sqlite3.Connection, used in its own thread
            for statement in batch:
                cursor = raw.execute(statement)
                if isinstance(statement, Checked):
                    statement.verify(cursor.rowcount)

        await worker._execute(run_all)


class _ImmediateTransport(_Transport):
    """No batching: each statement runs as it comes (its compiled SQL may be shared)."""

    batches = False

    def __init__(self, connection: Connection, pipeline: StatementPipeline) -> None:
        super().__init__(connection)
        self._pipeline = pipeline

    def send(self, batch: list[str], commit: bool = False) -> None:
        for statement in batch:
            with self._pipeline.own_execution():
                result = self.connection.exec_driver_sql(statement)
            if isinstance(statement, Checked) and self.connection.dialect.supports_sane_rowcount:
                statement.verify(result.rowcount)


def send_together(connection: Connection, statements: list[str]) -> bool:
    """Run answer-less ``statements`` in one round trip when the driver allows it.

    PostgreSQL over asyncpg: one simple-protocol batch in the connection's
    transaction, instead of a prepare and an execute per statement. Returns
    False (nothing sent) for other drivers; the caller runs them one by one.
    """
    if not in_loop_greenlet() or not _speaks_asyncpg(connection):
        return False
    _AsyncpgTransport(connection).send(statements)
    return True


def commit_then(connection: Connection, after: str) -> bool:
    """Commit ``connection``'s transaction and run ``after`` in the same round trip.

    PostgreSQL over asyncpg, with a transaction open on the server: returns
    True once both ran (``after`` runs only if the ``COMMIT`` succeeded; a
    failed commit raises, the transaction rolled back). The driver then
    holds no transaction, so SQLAlchemy's own commit that follows sends
    nothing. False (nothing sent) elsewhere.
    """
    if not in_loop_greenlet() or not _speaks_asyncpg(connection):
        return False
    transport = _AsyncpgTransport(connection)
    adapter: Any = connection.connection.dbapi_connection
    if not transport.folds_commit() or adapter._transaction is None:
        return False
    try:
        await_in_loop(transport.sending([], commit=True, after=(after,)))
    except Exception as exc:
        with contextlib.suppress(Exception):
            adapter.rollback()
        _reraise(connection, adapter, ["COMMIT", after], exc)
    return True


def fetch_before_transaction(connection: Connection, sql: str, *args: Any) -> tuple[bool, Any]:
    """Fetch one row straight over asyncpg while the driver has no transaction open.

    A read before the migration's first change then needs no ``BEGIN`` of
    its own (the first batch carries it). ``sql`` takes ``$1``-style
    parameters. Returns ``(False, None)`` where this does not apply (another
    driver, or a transaction already open): the caller reads the usual way.
    """
    if not in_loop_greenlet() or not _speaks_asyncpg(connection):
        return False, None
    adapter: Any = connection.connection.dbapi_connection
    if adapter._transaction is not None:
        return False, None

    async def fetch() -> Any:
        async with adapter._execute_mutex:
            return await adapter._connection.fetchrow(sql, *args)

    try:
        return True, await_in_loop(fetch())
    except Exception as exc:
        _reraise(connection, adapter, [sql], exc)
        raise  # pragma: no cover - _reraise always raises


def aiosqlite_worker(connection: Connection | None) -> Any:
    """The aiosqlite connection under ``connection`` when statements can run in its thread."""
    if connection is None or connection.dialect.driver != "aiosqlite" or not in_loop_greenlet():
        return None
    try:
        adapter = connection.connection.dbapi_connection
    except Exception:  # pragma: no cover - a connection without a DBAPI connection
        return None
    worker = getattr(adapter, "_connection", None)
    if worker is None or not hasattr(worker, "_execute") or not hasattr(worker, "_conn"):
        return None
    return worker


def _speaks_asyncpg(connection: Connection) -> bool:
    """True when ``connection`` is SQLAlchemy's asyncpg adapter with the parts we drive."""
    if connection.dialect.name != "postgresql" or connection.dialect.driver != "asyncpg":
        return False
    try:
        adapter = connection.connection.dbapi_connection
    except Exception:  # pragma: no cover - a connection without a DBAPI connection
        return False
    return all(hasattr(adapter, n) for n in ("_execute_mutex", "_start_transaction", "_connection"))


_TRANSACTION_CONTROL = re.compile(
    r"(?:^|;)(?:\s|--[^\n]*(?:\n|$)|/\*.*?\*/)*"
    r"(?:COMMIT|END|ROLLBACK|ABORT|BEGIN|START|SAVEPOINT|RELEASE|PREPARE)\b",
    re.IGNORECASE | re.DOTALL,
)
"""SQL that may end the transaction or touch savepoints (a migration's own ``COMMIT``, say)."""

STEP_SAVEPOINTS = 32
"""At most this many step savepoints per transaction.

PostgreSQL keeps 64 subtransaction ids per session in shared memory; past
that, every other session's snapshot checks pay for it, so a long run groups
its first steps and then sends one batch per step.
"""


class _Batch:
    """Statements on their way to the database, and the steps they belong to."""

    __slots__ = ("ended", "failed_at", "owners", "savepoints", "statements")

    def __init__(
        self, statements: list[str], owners: list[Any], savepoints: list[str], ended: list[Any]
    ) -> None:
        self.statements = statements
        self.owners = owners  # the steps, in order; owner i > 0 starts after savepoint i - 1
        self.savepoints = savepoints
        self.ended = ended  # the owners whose step has ended (done when the batch is)
        self.failed_at = 0  # on failure: the index of the failing owner


class StatementPipeline:
    """Queue a step's answer-less statements and send them together.

    It owns the queue and the connection events that keep it in order; what
    to queue is decided per statement by :meth:`accept`; how the queue
    reaches the database is a transport's business.
    """

    def __init__(
        self, connection: Connection, cache: CompiledCache | None = None, transport: str = "asyncpg"
    ) -> None:
        self.connection = connection
        self._pending: list[str] = []
        self._closed = False
        self._cache = cache
        self._step: tuple[Any, ...] | None = None
        self._ordinal = 0
        self._static = False
        self._own = False
        self._transport: _Transport
        if transport == "asyncpg":
            self._transport = _AsyncpgTransport(connection)
        elif transport == "aiosqlite":
            self._transport = _AiosqliteTransport(connection)
        else:
            self._transport = _ImmediateTransport(connection, self)
        self.sent_batches = 0
        self.statements = 0
        self._recording: list[str] | None = None
        self._op_ordinal = 0
        self._begin_pending = False
        self._commit_follows = False
        self._inflight: tuple[asyncio.Future[None], _Batch] | None = None
        # Steps, for reporting: whose statements are queued, which have ended, which are done.
        self._owners: list[tuple[int, Any]] = []  # (index of the step's first queued statement, step)
        self._current: Any = None
        self._ended: list[Any] = []
        self._done: list[Any] = []
        self._failure: tuple[Any, Exception] | None = None
        self._savepoints_left = STEP_SAVEPOINTS
        self._savepoint_numbers = itertools.count(1)
        self._grouping = False
        event.listen(connection, "before_cursor_execute", self._before_execute)
        event.listen(connection, "commit", self._before_commit)
        event.listen(connection, "rollback", self._on_rollback)

    @classmethod
    def for_connection(
        cls, connection: Connection, cache: CompiledCache | None = None
    ) -> StatementPipeline | None:
        """Return a pipeline fit for the connection's driver, or None when none helps."""
        if not in_loop_greenlet():
            return None
        if _speaks_asyncpg(connection):
            return cls(connection, cache, "asyncpg")
        if aiosqlite_worker(connection) is not None:
            return cls(connection, cache, "aiosqlite")
        if cache is not None:
            return cls(connection, cache, "immediate")
        return None

    @property
    def batches(self) -> bool:
        """True when queued statements travel together (not one by one)."""
        return self._transport.batches

    def add_sql(self, sql: str) -> None:
        """Queue ready-made SQL (already safe to send as it is); a :class:`Checked` one is verified."""
        if self._recording is not None:
            self._recording.append(sql)
        self._pending.append(sql)
        if not self._transport.batches:
            self.flush()

    # -- sharing whole operations ---------------------------------------------------------

    def op_key(self, operation: Any) -> tuple[Any, ...] | None:
        """The sharing key of ``operation`` in this step, or None when it may not be shared."""
        if self._cache is None or self._step is None or not self._static:
            return None
        self._op_ordinal += 1
        dialect = self.connection.dialect
        return (
            "op", dialect.name, dialect.server_version_info, self._step, self._op_ordinal,
            _op_fingerprint(operation),
        )

    def replay(self, key: tuple[Any, ...]) -> tuple[bool, Any]:
        """Queue the SQL another tenant's same operation produced.

        Returns ``(True, result)`` with that operation's result (None, or the
        ``Table`` of a ``create_table``), or ``(False, None)`` when none is known.
        """
        assert self._cache is not None
        entry = self._cache.get_op(key)
        if entry is None:
            return False, None
        statements, ordinals, result = entry
        self._ordinal += ordinals  # keep statement numbering in step with the recorded run
        for sql in statements:
            self.add_sql(sql)
        return True, result

    def record(
        self, key: tuple[Any, ...], run: Callable[[], Any], shareable: Callable[[Any], bool]
    ) -> Any:
        """Run ``run()``; keep the SQL it queued (and its result) under ``key`` if it stayed shareable.

        ``shareable(result)`` says whether the result may be handed to other tenants.
        """
        assert self._cache is not None
        ordinal = self._ordinal
        recording: list[str] = []
        self._recording = recording
        try:
            result = run()
        finally:
            self._recording = None
        if self._static and recording and shareable(result):
            self._cache.put_op(key, (tuple(recording), self._ordinal - ordinal, result))
        return result

    def begin_step(self, key: tuple[Any, ...]) -> None:
        """Start numbering statements for one migration step (the sharing key)."""
        self._step = key
        self._ordinal = 0
        self._op_ordinal = 0
        self._static = True

    def mark_dynamic(self) -> None:
        """Stop sharing compiled SQL for the rest of this step (it depends on the tenant)."""
        self._static = False

    def own(self, step: Any) -> None:
        """Statements queued from now on belong to ``step``: its failure, its completion.

        Anything queued before the first step belongs to it too.
        """
        self._current = step
        self._owners.append((len(self._pending) if self._owners else 0, step))

    def end_step(self, defer: bool = False) -> None:
        """End the step: send its statements, and stop sharing until the next :meth:`begin_step`.

        With ``defer`` the batch is sent without waiting for its answer, so
        the next step's Python code (building and compiling its DDL) runs
        while the database executes this one; whatever touches the
        connection next -- a query, a commit, a rollback, the next batch --
        first waits for it (:meth:`settle`), and a failure surfaces there.
        While an earlier batch is still running, the step's statements wait
        for it and leave with the following steps' in one batch (PostgreSQL:
        each step after the first behind a savepoint, so a failure is still
        the failing step's). :meth:`take_results` tells which steps are done.
        """
        self._step = None
        self._static = False
        if self._current is not None:
            self._ended.append(self._current)
            self._current = None
        if self._commit_follows and self._transport.folds_commit():
            return  # the commit that ends the step's transaction sends the batch with it
        if not (defer and self._transport.batches and self._pending):
            self.flush()
            return
        if self._inflight is not None and self._may_group():
            return  # leaves with the next step's statements, once the batch ahead has answered
        self._send_deferred()

    def send_ahead(self) -> None:
        """Send what is queued now, without waiting: the next step's code runs meanwhile.

        Its failure surfaces where the next step's would (it belongs to that step).
        """
        if self._pending and self._transport.batches and self._inflight is None:
            self._send_deferred()

    def _send_deferred(self) -> None:
        self.settle()
        batch = self._take()
        task = asyncio.ensure_future(self._dispatch(batch))
        self._inflight = (task, batch)
        await_in_loop(asyncio.sleep(0))  # let the batch leave before the next step's work

    def group_steps(self, allowed: bool) -> None:
        """Say whether several steps may share a batch (see :meth:`end_step`)."""
        self._grouping = allowed

    def _watch_transaction_control(self, sql: str) -> None:
        """Stop grouping steps for good before SQL that may end the transaction.

        A migration may ``COMMIT`` by itself (to run ``ALTER TYPE ... ADD
        VALUE`` outside a transaction, say); the statements after it then
        run outside any transaction block, where a savepoint is refused. The
        steps queued so far leave first, while the transaction is still ours.
        """
        if self._grouping and _TRANSACTION_CONTROL.search(sql):
            self.flush()
            self._grouping = False

    def _may_group(self) -> bool:
        """Whether the queue waits for the next step: the batch ahead still runs, savepoints remain."""
        assert self._inflight is not None
        if (
            not self._grouping
            or not self._transport.groups
            or not self._owners
            or len(self._owners) > self._savepoints_left
        ):
            return False
        task = self._inflight[0]
        for _ in range(3):  # let the loop read an answer that has already arrived
            if task.done():
                return False
            await_in_loop(asyncio.sleep(0))
        return not task.done()

    async def _dispatch(self, batch: _Batch) -> None:
        try:
            await self._transport.sending(batch.statements)
        except Exception:
            if batch.savepoints:
                batch.failed_at = await self._transport.locate(batch.savepoints)
            raise

    def take_results(self) -> tuple[list[Any], tuple[Any, Exception] | None]:
        """The steps the database finished since the last call (in order), and a failed one.

        The failure is ``(step, error)``; ``step`` is None when the failed
        statements belonged to no step.
        """
        done, self._done = self._done, []
        failure, self._failure = self._failure, None
        return done, failure

    def settle(self) -> None:
        """Wait for a deferred batch to finish; raise its error as SQLAlchemy would."""
        if self._inflight is None:
            return
        task, batch = self._inflight
        self._inflight = None
        try:
            await_in_loop(task)
        except BaseException as exc:
            if not task.done():  # we were cancelled while it runs: stop it too
                task.cancel()
            if not isinstance(exc, Exception):
                raise
            self._batch_failed(batch, exc)
        self._done.extend(batch.ended)

    def _batch_failed(self, batch: _Batch, exc: Exception) -> NoReturn:
        """Record which step of ``batch`` failed (the steps before it are done); raise the error."""
        index = batch.failed_at
        self._done.extend(batch.owners[:index])
        owner = batch.owners[index] if index < len(batch.owners) else None
        adapter = self.connection.connection.dbapi_connection
        try:
            _reraise(self.connection, adapter, batch.statements, exc)
        except Exception as translated:
            self._failure = (owner, translated)
            raise
        raise AssertionError("_reraise returned")  # pragma: no cover

    def close(self) -> None:
        """Send what is queued and stop listening to the connection."""
        if self._closed:
            return
        try:
            self.flush()
        finally:
            self._closed = True
            for name, fn in (
                ("before_cursor_execute", self._before_execute),
                ("commit", self._before_commit),
                ("rollback", self._on_rollback),
            ):
                if event.contains(self.connection, name, fn):
                    event.remove(self.connection, name, fn)

    # -- deciding -------------------------------------------------------------------------

    def accept(
        self,
        construct: Executable,
        execution_options: Any = None,
        multiparams: Any = None,
        params: Any = None,
    ) -> bool:
        """Queue (or run) ``construct`` if it needs no answer; return whether it was taken."""
        if self._closed or execution_options or multiparams is not None or params:
            return False
        if not isinstance(construct, ClauseElement) or isinstance(construct, (Select, DefaultGenerator)):
            return False
        if isinstance(construct, UpdateBase) and construct._returning:
            return False
        if isinstance(construct, TextClause) and construct._bindparams:
            return False
        if self._transport.autocommit():
            return False
        key = self._cache_key(construct)
        if not self._transport.batches and key is None:
            return False  # nothing gained over running it the usual way
        sql = self._cache.get(key) if key is not None and self._cache is not None else None
        if sql is None:
            try:
                sql = str(
                    construct.compile(
                        dialect=self.connection.dialect, compile_kwargs={"literal_binds": True}
                    )
                ).strip()
            except (CompileError, NotImplementedError, TypeError, ValueError):
                return False
            if key is not None and self._cache is not None and sql:
                self._cache.put(key, sql)
        if not sql:
            return False
        if isinstance(construct, TextClause):
            self._watch_transaction_control(sql)
        if self._recording is not None:
            self._recording.append(sql)
        self._pending.append(sql)
        if not self._transport.batches:
            self.flush()
        return True

    def _cache_key(self, construct: ClauseElement) -> tuple[Any, ...] | None:
        if self._cache is None or self._step is None or not self._static:
            return None
        if not isinstance(construct, (BaseDDLElement, TextClause)):
            return None  # data statements (version rows included) are cheap and per tenant
        self._ordinal += 1
        dialect = self.connection.dialect
        try:
            fingerprint = _fingerprint(construct)
        except Exception:  # an exotic construct: just compile it
            return None
        return (dialect.name, dialect.server_version_info, self._step, self._ordinal, fingerprint)

    # -- sending ----------------------------------------------------------------------------

    def flush(self) -> None:
        """Send the queued statements now (in the connection's transaction) and wait."""
        self.settle()
        if not self._pending and not self._begin_pending:
            self._done.extend(self._ended)  # steps that had nothing to send
            self._ended = []
            return
        batch = self._take()
        if not self._transport.batches:
            self._transport.send(batch.statements)
        else:
            try:
                await_in_loop(self._dispatch(batch))
            except Exception as exc:
                self._batch_failed(batch, exc)
        self._done.extend(batch.ended)

    def _take(self) -> _Batch:
        """Take the queue as a batch: a deferred ``BEGIN`` first, a savepoint before each later step."""
        queued, self._pending = self._pending, []
        owners, self._owners = self._owners, []
        ended, self._ended = self._ended, []
        if self._current is not None:  # the running step's later statements are its too
            self._owners.append((0, self._current))
        statements = ["BEGIN"] if self._begin_pending else []
        self._begin_pending = False
        savepoints: list[str] = []
        for number, (start, _) in enumerate(owners):
            if number:
                savepoints.append(f"asyncmigrate_step_{next(self._savepoint_numbers)}")
                statements.append(f"SAVEPOINT {savepoints[-1]}")
            stop = owners[number + 1][0] if number + 1 < len(owners) else len(queued)
            statements.extend(queued[start:stop])
        if not owners:
            statements.extend(queued)
        self._savepoints_left -= len(savepoints)
        self.sent_batches += 1
        self.statements += len(statements)
        return _Batch(statements, [step for _, step in owners], savepoints, ended)

    def begin_lazily(self) -> bool:
        """Send the transaction's ``BEGIN`` with the next batch; False if this transport can't.

        SQLite over aiosqlite: the ``BEGIN`` that makes a step's DDL
        transactional then costs no hand-off of its own. Anything else that
        reaches the connection first sends it first.
        """
        if not isinstance(self._transport, _AiosqliteTransport) or self._closed:
            return False
        self._begin_pending = True
        return True

    def discard(self) -> None:
        """Drop the queue (its transaction is being rolled back)."""
        self._pending.clear()
        self._ended.clear()
        self._owners = [(0, self._current)] if self._current is not None else []
        self._begin_pending = False
        self._savepoints_left = STEP_SAVEPOINTS
        if self._inflight is not None:
            with contextlib.suppress(Exception):  # the rollback undoes it either way
                self.settle()

    def own_execution(self) -> _OwnExecution:
        """Mark executions as the pipeline's own (they do not make the step dynamic)."""
        return _OwnExecution(self)

    # -- connection events ----------------------------------------------------------------------

    def _before_execute(self, conn: Connection, cursor: Any, statement: Any, *args: Any) -> None:
        if self._own:
            return
        if isinstance(statement, str):
            self._watch_transaction_control(statement)
        # The step reads the database: what it emits next may depend on the answer.
        self._static = False
        self.flush()

    def commit_follows(self, follows: bool) -> None:
        """Say whether each step's transaction is committed as the step ends.

        Then the step's batch waits for that commit and travels with it
        (where the transport can fold a ``COMMIT`` into a batch).
        """
        self._commit_follows = follows

    def _before_commit(self, conn: Connection) -> None:
        self._savepoints_left = STEP_SAVEPOINTS  # the commit ends every savepoint
        if not self._pending:
            self._begin_pending = False  # nothing ran in it: no transaction to open
        if self._pending and self._commit_follows and self._transport.folds_commit():
            self.settle()
            batch = self._take()
            try:
                self._transport.send(batch.statements, commit=True)
                self._done.extend(batch.ended)
            except Exception:
                # The batch failed before its COMMIT: roll the driver's transaction back
                # now (SQLAlchemy only forgets a transaction whose commit failed).
                adapter: Any = self.connection.connection.dbapi_connection
                with contextlib.suppress(Exception):
                    adapter.rollback()
                raise
            return
        self.flush()

    def _on_rollback(self, conn: Connection) -> None:
        self.discard()  # a deferred batch finishes before the rollback reaches the driver


class _OwnExecution:
    def __init__(self, pipeline: StatementPipeline) -> None:
        self._pipeline = pipeline

    def __enter__(self) -> None:
        self._pipeline._own = True

    def __exit__(self, *exc: Any) -> None:
        self._pipeline._own = False


def _reraise(connection: Connection, adapter: Any, batch: list[str], exc: Exception) -> None:
    """Raise a driver error from a batch the way SQLAlchemy would have raised it."""
    log.debug("Batch failed:\n%s", ";\n".join(batch))
    if isinstance(exc, (DBAPIError, AsyncMigrateError)):
        raise exc
    translated = _translate(adapter, exc)
    dialect = connection.dialect
    raise DBAPIError.instance(
        _describe(batch), None, translated, dialect.loaded_dbapi.Error, dialect=dialect
    ) from exc


def _translate(adapter: Any, exc: Exception) -> Exception:
    """Map a driver error to the DBAPI error class SQLAlchemy's adapter would raise."""
    try:
        adapter._handle_exception(exc)
    except Exception as translated:  # the adapter raises the translated error
        return translated
    return exc  # pragma: no cover - _handle_exception always raises


def _describe(batch: list[str]) -> str:
    """Name a failed batch: its statement, or the first of several sent together."""
    first = " ".join(batch[0].split())
    if len(batch) == 1:
        return first
    return f"one of {len(batch)} statements sent together, starting {first}"
