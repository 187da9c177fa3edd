"""The sync migration context: one connection (or SQL buffer), its transactions, its version table.

This is the sync core of the "sync core, async shell" design. It runs inside
``AsyncConnection.run_sync`` (a greenlet), so every database call it makes
yields to the event loop.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from typing import TYPE_CHECKING, Any, Literal, TextIO

from sqlalchemy import event, inspect, literal, select, text
from sqlalchemy.engine import Connection, Dialect, Engine, Transaction
from sqlalchemy.engine.mock import MockConnection
from sqlalchemy.engine.url import URL, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.schema import CreateTable, Table
from sqlalchemy.sql.expression import Executable

from .._greenlet import await_in_loop, to_thread
from ..ddl import impl_for_dialect
from ..ddl.impl import DefaultImpl
from ..events import StepEvent
from ..exceptions import CommandError, ConfigError, MigrationError, VersionTableError
from ..revision.plan import MigrationInfo, MigrationStep, RevisionStep, VersionChange
from .local import bind_operations
from .locking import DEFAULT_LOCK_TIMEOUT, MigrationLock, lock_for, sql_literal
from .pipeline import (
    Checked,
    StatementPipeline,
    aiosqlite_worker,
    commit_then,
    fetch_before_transaction,
    send_together,
)

if TYPE_CHECKING:
    from ..config import Config
    from ..script import ScriptDirectory
    from .environment import EnvironmentContext

__all__ = ["MigrationContext", "RunRecord"]

log = logging.getLogger("asyncmigrate.runtime.migration")

# Two ways to find the version table. to_regclass() resolves the name through the
# backend's catalog caches: cheapest on a new connection (no join to plan over cold
# catalogs), but a name it did not find earlier in a transaction may stay unfound there
# after another session commits the table. A read in a transaction of its own uses it;
# a read again inside a transaction, after finding no table, goes through pg_class, an
# MVCC read that sees that commit (see _read_version_rows_postgresql).
PG_VERSION_READ = _PG_VERSION_READ_CACHED = (
    "SELECT query_to_xml(format('SELECT version_num FROM %s', r), false, true, '') FROM "
    "(SELECT to_regclass(format('%I.%I', coalesce(CAST($2 AS text), current_schema()), "
    "CAST($1 AS text))) AS r) found WHERE r IS NOT NULL"
)
_PG_VERSION_READ = (
    "SELECT query_to_xml(format('SELECT version_num FROM %I.%I', n.nspname, c.relname), "
    "false, true, '') FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n "
    "ON n.oid = c.relnamespace WHERE c.relname = $1 AND c.relkind IN ('r', 'p') "
    "AND n.nspname = coalesce(CAST($2 AS text), current_schema())"
)
#: The same reads with named parameters, for SQLAlchemy (other drivers, a caller's transaction).
_PG_VERSION_READ_NAMED = {
    sql: text(sql.replace("$1", ":table").replace("$2", ":schema"))
    for sql in (_PG_VERSION_READ_CACHED, _PG_VERSION_READ)
}
_PG_XML_VALUE = re.compile(r"<version_num>([^<]*)</version_num>")

#: ``fn(heads, context)`` returns the steps a command wants run against those heads.
MigrationsFn = Callable[[tuple[str, ...], "MigrationContext"], Iterable[MigrationStep]]


class RunRecord:
    """What one ``run_migrations`` call found and did."""

    def __init__(self) -> None:
        self.starting_heads: tuple[str, ...] = ()
        self.final_heads: tuple[str, ...] = ()
        self.steps: list[MigrationInfo] = []
        self.durations: list[float] = []
        self.waited_for_lock: float = 0.0
        self.ran = False


class _ProxyTransaction:
    """A transaction begun by :meth:`MigrationContext.begin_transaction`."""

    def __init__(self, context: MigrationContext, outer: bool) -> None:
        self.context = context
        self.outer = outer

    @property
    def _transaction(self) -> Transaction | None:
        return self.context._transaction

    def rollback(self) -> None:
        """Roll back now."""
        if self._transaction is not None:
            self._transaction.rollback()
            self.context._transaction = None

    def commit(self) -> None:
        """Commit now."""
        if self._transaction is not None:
            self._transaction.commit()
            self.context._transaction = None

    def __enter__(self) -> _ProxyTransaction:
        if self.outer:
            self.context._outer_depth += 1
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            transaction = self._transaction
            if transaction is not None:
                self.context._transaction = None
                if exc_type is None and transaction.is_active:
                    try:
                        if self.outer and self.context._outer_depth == 1:
                            self.context._commit_releasing_lock()
                        transaction.commit()
                    except BaseException:
                        # The commit failed (e.g. the step's batch sent with it): the
                        # connection must not be left waiting for a rollback.
                        with suppress(Exception):
                            transaction.rollback()
                        raise
                elif transaction.is_active:
                    transaction.rollback()
        finally:
            if self.outer:
                self.context._outer_depth -= 1
                if self.context._outer_depth == 0:
                    self.context._release_lock()


class MigrationContext:
    """Hold the database side of one migration run.

    It owns the connection (or, offline, the SQL output buffer), the
    transaction boundaries, the version table and the loop that runs plan
    steps. What a step changes is the business of the revision's
    ``upgrade()``/``downgrade()`` through :mod:`asyncmigrate.operations`;
    how each change becomes SQL is the dialect implementation's.
    """

    def __init__(
        self,
        dialect: Dialect,
        connection: Connection | None,
        opts: dict[str, Any],
        environment_context: EnvironmentContext | None = None,
    ) -> None:
        self.environment_context = environment_context
        self.opts = opts
        self.dialect = dialect
        self.script: ScriptDirectory | None = opts.get("script")
        self.as_sql: bool = bool(opts.get("as_sql", False))
        self._transaction_per_migration = bool(opts.get("transaction_per_migration", False))
        self.on_version_apply_callbacks: tuple[Callable[..., Any], ...] = tuple(
            opts.get("on_version_apply", ()) or ()
        )
        self._on_step: Callable[[StepEvent], None] | None = opts.get("on_step")
        self._transaction: Transaction | None = None
        self._outer_depth = 0
        self.output_buffer: TextIO = opts.get("output_buffer") or sys.stdout
        if self.as_sql:
            self.connection: Connection | None = self._stdout_connection()
            self._in_external_transaction = False
        else:
            if connection is None:
                raise CommandError("An online migration needs a connection")
            self.connection = connection
            self._in_external_transaction = connection.in_transaction()
        self._migrations_fn: MigrationsFn | None = opts.get("fn")
        self.purge = bool(opts.get("purge", False))
        self.version_table: str = opts.get("version_table", "alembic_version")
        #: The tenant's schema in a schema-per-tenant set-up (see :mod:`asyncmigrate.tenants`).
        self.tenant_schema: str | None = opts.get("tenant_schema")
        if self.tenant_schema is not None:
            from ..tenants.model import check_identifier

            check_identifier(self.tenant_schema, "schema")
        self.version_table_schema: str | None = (
            opts.get("version_table_schema") or self.tenant_schema
        )
        self._start_from_rev: str | Sequence[str] | None = opts.get("starting_rev")
        self.impl = impl_for_dialect(dialect)(
            dialect,
            self.connection,
            self.as_sql,
            opts.get("transactional_ddl"),
            self.output_buffer,
            opts,
        )
        probe = opts.get("session_probe")
        if probe is not None and not self.as_sql and self.connection is not None:
            probe.record(self.connection)
        if self._in_external_transaction:
            self._begin_sqlite_transaction()
        self._version_pk = bool(opts.get("version_table_pk", True))
        self._version_described: Table | None = None
        self._lock: MigrationLock | None = None
        self._portals: _PortalSweeper | None = None
        self._unconfirmed: list[_StepRecord] = []  # steps whose statements the database has not finished
        self._version_table_exists: bool | None = None
        self.record = RunRecord()
        # A command's run reads the version table once, up front: when there is
        # nothing to do, that single query is the whole cost.
        self._prefetched: tuple[str, ...] | None = None
        if not self.as_sql and self._migrations_fn is not None and not self.purge:
            self._prefetched = self._early_version_read()
            if self._prefetched is None:
                self._prefetched = self._read_version_rows()
        if self.tenant_schema is not None:
            self._enter_tenant_schema()
        log.debug(
            "Context impl %s; %s DDL%s",
            type(self.impl).__name__,
            "transactional" if self.impl.transactional_ddl else "non-transactional",
            "; generating static SQL" if self.as_sql else "",
        )

    @classmethod
    def configure(
        cls,
        connection: Connection | None = None,
        url: str | URL | None = None,
        dialect_name: str | None = None,
        dialect: Dialect | None = None,
        environment_context: EnvironmentContext | None = None,
        dialect_opts: dict[str, Any] | None = None,
        opts: dict[str, Any] | None = None,
    ) -> MigrationContext:
        """Create a context from a connection, a URL, a dialect name or a dialect."""
        opts = dict(opts or {})
        if connection is not None:
            if isinstance(connection, Engine):
                raise CommandError(
                    f"'connection' argument to configure() is expected to be a "
                    f"sqlalchemy.engine.Connection instance, got {connection!r}"
                )
            if hasattr(connection, "sync_connection"):
                raise CommandError(
                    "configure() needs a sync Connection; inside env.py, run the migration "
                    "through `await connection.run_sync(do_run_migrations)`"
                )
            dialect = connection.dialect
        elif url is not None:
            dialect = make_url(url).get_dialect()(**(dialect_opts or {}))
        elif dialect_name is not None:
            dialect = make_url(f"{dialect_name}://").get_dialect()(**(dialect_opts or {}))
        elif dialect is None:
            raise CommandError("Connection, url, or dialect_name is required.")
        return cls(dialect, connection, opts, environment_context)

    # -- connection and output -------------------------------------------------------

    def _stdout_connection(self) -> Connection:
        def dump(construct: Any, *multiparams: Any, **params: Any) -> None:
            self.impl._exec(construct)

        return MockConnection(self.dialect, dump)  # type: ignore[return-value]

    @property
    def bind(self) -> Connection | None:
        """The connection migrations run on (a mock that renders SQL offline)."""
        return self.connection

    @property
    def config(self) -> Config | None:
        """The :class:`~asyncmigrate.Config` of the environment, if any."""
        return self.environment_context.config if self.environment_context else None

    def execute(
        self, sql: Executable | str, execution_options: dict[str, Any] | None = None
    ) -> None:
        """Execute a statement online, or write it to the SQL output offline."""
        self.impl._exec(sql, execution_options)

    # -- transactions -----------------------------------------------------------------

    def _safe_begin(self) -> Transaction:
        assert self.connection is not None
        transaction = self.connection.get_transaction() or self.connection.begin()
        self._begin_sqlite_transaction()
        return transaction

    def _begin_sqlite_transaction(self) -> None:
        """Open the SQLite transaction for real, so DDL inside it can be rolled back.

        The sqlite3 module begins a transaction only before DML; DDL before
        that would commit on its own. An explicit BEGIN makes the whole step
        (or the caller's shared transaction) atomic.
        """
        if self.dialect.name != "sqlite" or not self.impl.transactional_ddl:
            return
        assert self.connection is not None
        raw = self.connection.connection.driver_connection
        if raw is not None and not getattr(raw, "in_transaction", True):
            pipeline = self.impl.pipeline
            if pipeline is not None and pipeline.begin_lazily():
                return  # sent with the step's first batch
            worker = aiosqlite_worker(self.connection)
            if worker is not None:  # one hand-off to the worker thread, not a cursor's four
                await_in_loop(worker._execute(lambda: worker._conn.execute("BEGIN")))
            else:
                self.connection.exec_driver_sql("BEGIN")

    def begin_transaction(self, _per_migration: bool = False) -> AbstractContextManager[Any]:
        """Begin the logical transaction around a run (or, internally, one migration).

        With transactional DDL it is a real transaction around the whole run,
        unless ``transaction_per_migration`` moves it around each migration.
        Without transactional DDL each migration is committed on its own.
        Offline it writes ``BEGIN``/``COMMIT``. Inside a caller's own
        transaction it does nothing: the caller commits.
        """
        outer = not _per_migration
        if self._in_external_transaction:
            return _OuterMarker(self) if outer else nullcontext()
        if self.impl.transactional_ddl:
            now = _per_migration == self._transaction_per_migration
        else:
            now = _per_migration
        if not now:
            return _OuterMarker(self) if outer else nullcontext()
        if not self.impl.transactional_ddl:
            if self.as_sql or self._transaction is not None:
                return nullcontext()
            self._transaction = self._safe_begin()
            return _ProxyTransaction(self, outer)
        if self.as_sql:
            return self._offline_transaction(outer)
        self._transaction = self._safe_begin()
        return _ProxyTransaction(self, outer)

    @contextmanager
    def _offline_transaction(self, outer: bool) -> Iterator[None]:
        self.impl.emit_begin()
        yield
        self.impl.emit_commit()

    @contextmanager
    def autocommit_block(self) -> Iterator[None]:
        """Run the block outside any transaction (e.g. ``CREATE INDEX CONCURRENTLY``).

        The migration's transaction so far is committed first, and a new one
        begins after the block.
        """
        in_transaction = self._transaction is not None
        if self.impl.transactional_ddl and self.as_sql:
            self.impl.emit_commit()
        elif in_transaction:
            assert self._transaction is not None
            self._transaction.commit()
            self._transaction = None
        base = self.connection
        fake: Transaction | None = None
        current_level: Any = None
        if not self.as_sql:
            assert base is not None
            if base.in_transaction():
                base.commit()
            current_level = base.get_isolation_level()
            self.connection = self.impl.connection = base.execution_options(
                isolation_level="AUTOCOMMIT"
            )
            fake = self.connection.begin()
        try:
            yield
        finally:
            if not self.as_sql:
                assert self.connection is not None
                assert base is not None
                if fake is not None and fake.is_active:
                    fake.commit()
                self.connection.execution_options(isolation_level=current_level)
                self.connection = self.impl.connection = base
            if self.impl.transactional_ddl and self.as_sql:
                self.impl.emit_begin()
            elif in_transaction:
                assert self.connection is not None
                self._transaction = self.connection.begin()

    def _enter_tenant_schema(self) -> None:
        """Make the tenant's schema the default for unqualified names (PostgreSQL search_path).

        The setting is committed right away (outside any migration
        transaction) so it holds for the whole session whatever later rolls
        back; each tenant sets its own, so pooled connections never carry a
        stale one into another tenant's run.
        """
        schema = self.tenant_schema
        assert schema is not None
        name = self.dialect.name
        if name == "postgresql":
            use = "SET search_path TO {}"
        elif name in ("mysql", "mariadb"):
            use = "USE {}"
        else:
            raise ConfigError(
                f"A schema per tenant needs PostgreSQL or MySQL/MariaDB, not {name}"
            )
        quoted = self.dialect.identifier_preparer.quote_identifier(schema)
        if self.as_sql:
            self.impl.static_output(use.format(quoted) + self.impl.command_terminator)
            return
        assert self.connection is not None
        statements = []
        if self.opts.get("create_schema") and not self.opts.get("dont_mutate"):
            create = "CREATE SCHEMA IF NOT EXISTS {}" if name == "postgresql" else (
                "CREATE DATABASE IF NOT EXISTS {}"
            )
            statements.append(create.format(quoted))
        statements.append(use.format(quoted))
        if not self.connection.in_transaction():
            self.connection.begin()  # so the commit below covers what is sent together
        if not send_together(self.connection, statements):
            for statement in statements:
                self.connection.exec_driver_sql(statement)
        if not self._in_external_transaction:
            self.connection.commit()

    # -- the version table -------------------------------------------------------------

    def _has_version_table(self) -> bool:
        assert self.connection is not None
        return inspect(self.connection).has_table(self.version_table, self.version_table_schema)

    @property
    def _version(self) -> Table:
        """The version table's SQLAlchemy description (built when first needed)."""
        if self._version_described is None:
            self._version_described = _version_table(
                self.impl, self.version_table, self.version_table_schema, self._version_pk
            )
        return self._version_described

    def _version_name(self) -> str:
        """The version table's name as SQL, schema-qualified and quoted where needed."""
        preparer = self.dialect.identifier_preparer
        name = preparer.quote(self.version_table)
        schema = self.version_table_schema
        return f"{preparer.quote_schema(schema)}.{name}" if schema else name

    def _version_table_ddl(self) -> str | None:
        """``CREATE TABLE`` for the version table, compiled once per dialect and kept.

        Only the table's name differs between schemas, so tenants in a
        thousand schemas share one compilation. None when the impl describes
        the table its own way.
        """
        if type(self.impl).version_table_impl is not DefaultImpl.version_table_impl:
            return None
        dialect = self.dialect
        key = (dialect.name, dialect.server_version_info, self.version_table, self._version_pk)
        plain = _VERSION_DDL.get(key)
        if plain is None:
            table = _version_table(self.impl, self.version_table, None, self._version_pk)
            plain = str(CreateTable(table).compile(dialect=dialect)).strip()
            if len(_VERSION_DDL) > 256:
                _VERSION_DDL.clear()
            _VERSION_DDL[key] = plain
        head = f"CREATE TABLE {dialect.identifier_preparer.quote(self.version_table)} ("
        if not plain.startswith(head):  # pragma: no cover - a dialect that words it otherwise
            return None
        return f"CREATE TABLE {self._version_name()} (" + plain[len(head):]

    def _ensure_version_table(self, purge: bool = False) -> None:
        assert self.connection is not None
        scope: AbstractContextManager[Any] = (
            nullcontext() if self.connection.in_transaction() else self.connection.begin()
        )
        with scope:
            if self._version_table_exists is None:
                self._version_table_exists = self._has_version_table()
            if not self._version_table_exists:
                pipeline = self.impl.pipeline
                ddl = self._version_table_ddl() if pipeline is not None and pipeline.batches else None
                if pipeline is not None and ddl is not None:
                    pipeline.add_sql(ddl)  # the same DDL for every tenant: compiled once
                else:
                    self.impl._exec(CreateTable(self._version))
                self._version_table_exists = True
            if purge:
                self.connection.execute(self._version.delete())

    def get_current_heads(self) -> tuple[str, ...]:
        """Return the revision ids in the version table (``()`` when there is none).

        Offline, the ``starting_rev`` given to the command stands in for the table.
        """
        if self.as_sql:
            start = self._start_from_rev
            if start is None or start == "base":
                return ()
            ids: list[str] = [start] if isinstance(start, str) else list(start)
            if self.script is None:
                return tuple(ids)
            heads = []
            for rev in ids:
                if rev in (None, "base"):
                    continue
                found = self.script.get_revision(rev)
                if found is not None:
                    heads.append(found.revision)
            return tuple(heads)
        if self._start_from_rev:
            raise CommandError(
                "Can't specify current_rev to context when using a database connection"
            )
        if self._prefetched is not None:
            prefetched, self._prefetched = self._prefetched, None
            return prefetched
        return self._read_version_rows()

    def _early_version_read(self) -> tuple[str, ...] | None:
        """The version rows read while the connection opened (see ``EnvironmentContext.connect``)."""
        env = self.environment_context
        early = env._early if env is not None else None
        if early is None or self.connection is None or self.tenant_schema is not None:
            return None
        found, xml = early.take_version_read(self.connection, self.version_table, self.version_table_schema)
        if not found:
            return None
        self._version_table_exists = xml is not None
        return tuple(_PG_XML_VALUE.findall(xml or ""))

    def _read_version_rows(self) -> tuple[str, ...]:
        """Read the version table, noting whether it exists; one query where the dialect allows."""
        assert self.connection is not None
        if self.dialect.name == "postgresql":
            rows = self._read_version_rows_postgresql()
        elif self.dialect.name == "sqlite" and aiosqlite_worker(self.connection) is not None:
            rows = self._read_version_rows_sqlite()
        elif self._in_external_transaction or self.connection.in_transaction():
            if not self._has_version_table():
                self._version_table_exists = False
                return ()
            rows = self._select_version_rows()
        else:
            # One query; a missing table is the only expected failure.
            try:
                rows = self._select_version_rows()
            except DBAPIError:
                self.connection.rollback()
                if self._has_version_table():
                    raise
                self._version_table_exists = False
                return ()
        self._version_table_exists = rows is not None
        return rows or ()

    def _select_version_rows(self) -> tuple[str, ...]:
        assert self.connection is not None
        return tuple(row[0] for row in self.connection.execute(select(self._version.c.version_num)))

    def _read_version_rows_sqlite(self) -> tuple[str, ...] | None:
        """Read the version rows in one hand-off to aiosqlite's thread; None: no table."""
        assert self.connection is not None
        worker = aiosqlite_worker(self.connection)
        assert worker is not None
        name = self._version_name()

        def read() -> tuple[str, ...] | None:
            raw = worker._conn
            try:
                rows = raw.execute(f"SELECT version_num FROM {name}").fetchall()
            except sqlite3.OperationalError as exc:
                # One statement; a missing table is the only expected failure (and, on
                # SQLite, a failed SELECT leaves any open transaction as it was).
                if not str(exc).startswith("no such table"):
                    raise
                return None
            return tuple(row[0] for row in rows)

        result: tuple[str, ...] | None = await_in_loop(worker._execute(read))
        return result

    def _read_version_rows_postgresql(self) -> tuple[str, ...] | None:
        """Read the version rows in one statement that cannot fail on a missing table.

        The catalog finds the table (or not); ``query_to_xml`` reads it only if
        it exists. None means there is no table.

        ``to_regclass`` looks the table up in the session's catalog cache,
        which may still say "no such table" after another session created
        it: a transaction takes in other sessions' catalog changes when it
        starts, a running one does not. A read straight over asyncpg, before
        the run's transaction, is a transaction of its own and uses it (on a
        new session it costs a quarter of the catalog join); a read inside a
        transaction, after finding no table, reads the catalog tables
        themselves (``pg_class`` under the statement's snapshot).
        """
        assert self.connection is not None
        args = (self.version_table, self.version_table_schema)
        done, row = False, None
        if not self._in_external_transaction:  # a caller's transaction holds the read and the lock
            done, row = fetch_before_transaction(self.connection, _PG_VERSION_READ_CACHED, *args)
        if not done:
            query = _PG_VERSION_READ if self._version_table_exists is False else _PG_VERSION_READ_CACHED
            named = _PG_VERSION_READ_NAMED[query]
            row = self.connection.execute(named, {"table": args[0], "schema": args[1]}).first()
        if row is None:
            return None
        return tuple(_PG_XML_VALUE.findall(row[0] or ""))

    def get_current_revision(self) -> str | None:
        """Return the single current revision, or None.

        :raises CommandError: when the table holds several heads.
        """
        heads = self.get_current_heads()
        if len(heads) > 1:
            raise CommandError(
                f"Version table '{self.version_table}' has more than one head present; "
                f"please use get_current_heads()"
            )
        return heads[0] if heads else None

    def _apply_version_changes(self, changes: Sequence[VersionChange]) -> None:
        """Write a step's version-row changes; each UPDATE and DELETE must match one row."""
        pipeline = self.impl.pipeline
        for change in changes:
            if pipeline is not None and pipeline.batches:
                # Queued with the step's DDL as plain SQL (no per-tenant compilation),
                # checked when the batch runs.
                pipeline.add_sql(self._version_sql(change))
            else:
                self._apply_version_change(change)

    def _one_row_expected(self, change: VersionChange) -> str:
        """What a version-row UPDATE or DELETE that matched no row (or several) reports."""
        what = (
            f"deleting '{change.old}'" if change.kind == "delete"
            else f"updating '{change.old}' to '{change.new}'"
        )
        return f"Online migration expected to match one row when {what} in '{self.version_table}'"

    def _apply_version_change(self, change: VersionChange) -> None:
        table = self._version
        col = table.c.version_num
        if change.kind == "insert":
            self.impl._exec(table.insert().values(version_num=literal(change.new)))
            return
        if change.kind == "delete":
            stmt: Executable = table.delete().where(col == literal(change.old))
        else:
            stmt = (
                table.update()
                .values(version_num=literal(change.new))
                .where(col == literal(change.old))
            )
        result = self.impl._exec(stmt)
        if (
            result is not None
            and not self.as_sql
            and self.dialect.supports_sane_rowcount
            and result.rowcount != 1
        ):
            raise VersionTableError(f"{self._one_row_expected(change)}; {result.rowcount} found")

    def _version_statement(self, change: VersionChange) -> str:
        """The plain SQL of a version-row change, values inlined."""
        name = self._version_name()
        if change.kind == "insert":
            return f"INSERT INTO {name} (version_num) VALUES ({sql_literal(change.new or '')})"
        if change.kind == "delete":
            return f"DELETE FROM {name} WHERE version_num = {sql_literal(change.old or '')}"
        return (
            f"UPDATE {name} SET version_num = {sql_literal(change.new or '')} "
            f"WHERE version_num = {sql_literal(change.old or '')}"
        )

    def _version_sql(self, change: VersionChange) -> str:
        """A version-row change for a pipelined step; an UPDATE or DELETE must match one row."""
        sql = self._version_statement(change)
        if change.kind == "insert":
            return sql
        return Checked(sql, 1, self._one_row_expected(change))

    def stamp(self, script_directory: ScriptDirectory, revision: str) -> None:
        """Make the version table say ``revision`` without running migrations."""
        from ..revision.plan import stamp_plan

        heads = self.get_current_heads()
        if not self.as_sql and not heads:
            self._ensure_version_table()
        current = set(heads)
        for step in stamp_plan(script_directory.graph, revision, heads):
            self._apply_version_changes(step.advance(current))

    # -- locking -------------------------------------------------------------------------

    def _lock_wanted(self) -> bool:
        return (
            not self.as_sql
            and bool(self.opts.get("lock", False))
            and not self.opts.get("dont_mutate", False)
        )

    def _acquire_lock(self) -> None:
        assert self.connection is not None
        if (
            self._transaction is None
            and not self._in_external_transaction
            and self.connection.in_transaction()
        ):
            # End the read that found work to do, so the next read sees other
            # migrators' commits (MySQL's repeatable-read snapshot would not).
            self.connection.commit()
        lock = lock_for(self.connection, self.version_table, self.version_table_schema)
        started = time.perf_counter()
        lock.acquire(
            self.connection,
            float(self.opts.get("lock_timeout", DEFAULT_LOCK_TIMEOUT)),
            in_transaction=self._in_external_transaction,
        )
        self.record.waited_for_lock = time.perf_counter() - started
        self._lock = lock

    def _commit_releasing_lock(self) -> None:
        """Commit the run's transaction and give the lock back in one round trip, where possible.

        SQLAlchemy's commit that follows then has nothing left to send.
        """
        lock = self._lock
        if lock is None or self.connection is None or self._in_external_transaction:
            return
        release = lock.release_sql(self.connection)
        if release is not None and commit_then(self.connection, release):
            lock.held = False

    def _release_lock(self) -> None:
        lock, self._lock = self._lock, None
        if lock is None or not lock.held or self.connection is None:
            return
        try:
            if (
                not self._in_external_transaction
                and self._transaction is None
                and self.connection.in_transaction()
            ):
                self.connection.rollback()
            lock.release(self.connection)
            if not self._in_external_transaction and self.connection.in_transaction():
                self.connection.commit()
        except Exception:  # pragma: no cover - the session lock dies with the connection
            log.warning("Could not release the migration lock on %s", lock.describe(), exc_info=True)

    # -- running --------------------------------------------------------------------------

    def _plan(self, heads: tuple[str, ...]) -> list[MigrationStep]:
        assert self._migrations_fn is not None
        return list(self._migrations_fn(heads, self))

    def run_migrations(self, **kw: Any) -> None:
        """Run the steps the command asked for against the current heads.

        Each step runs its migration and writes its version rows in the same
        transaction (per run or per migration); ``on_version_apply``
        callbacks and step events follow each step.
        """
        if self._migrations_fn is None:
            raise CommandError("This context was configured without a command to run")
        record = self.record
        record.ran = True
        self.impl.start_migrations()
        pipeline = None
        if not self.as_sql and self.connection is not None and self.opts.get("pipeline", True):
            pipeline = StatementPipeline.for_connection(
                self.connection, self.opts.get("compiled_cache")
            )
            self.impl.pipeline = pipeline
            if pipeline is not None:
                pipeline.commit_follows(
                    self.impl.transactional_ddl
                    and self._transaction_per_migration
                    and not self._in_external_transaction
                )
                # Steps grouped in one batch are rolled back to the failing one's savepoint
                # when it fails: only in a transaction of ours, never the caller's.
                pipeline.group_steps(not self._in_external_transaction)
        self._portals = None if self.as_sql else _PortalSweeper.for_connection(self.connection)
        try:
            if self.purge:
                if self.as_sql:
                    raise CommandError("Can't use --purge with --sql mode")
                self._ensure_version_table(purge=True)
                heads: tuple[str, ...] = ()
            else:
                heads = self.get_current_heads()
            steps = self._plan(heads)
            if steps and self._lock_wanted():
                self._acquire_lock()
                again = self.get_current_heads()
                if again != heads:  # another migrator moved it meanwhile
                    heads = again
                    steps = self._plan(heads)
            record.starting_heads = heads
            if (
                steps
                and not self.as_sql
                and not heads
                and not self.opts.get("dont_mutate", False)
            ):
                self._ensure_version_table()
                if pipeline is not None and self._may_defer():
                    pipeline.send_ahead()  # created while the first step's code runs
            self._preload(steps)
            current = set(heads)
            for step in steps:
                self._run_step(step, current, kw)
            try:
                self._confirm_steps(wait=True)
            except _EarlierStepFailed as earlier:
                raise earlier.error from earlier.error.__cause__
            record.final_heads = tuple(sorted(current))
        except BaseException:
            self._unconfirmed = []
            if pipeline is not None:
                pipeline.discard()
            raise
        finally:
            if self._portals is not None:
                self._portals.close()
                self._portals = None
            if pipeline is not None:
                self.impl.pipeline = None
                pipeline.close()
            if self._outer_depth == 0:
                self._release_lock()

    def _preload(self, steps: Sequence[MigrationStep]) -> None:
        """Import the revision files a plan needs in a worker thread, off the event loop."""
        from ..script import Script

        pending = [
            s.revision
            for s in steps
            if isinstance(s, RevisionStep)
            and isinstance(s.revision, Script)
            and not s.revision.is_loaded
        ]
        if pending:
            to_thread(lambda: [script.module for script in pending])

    def _run_step(self, step: MigrationStep, current: set[str], kw: dict[str, Any]) -> None:
        info = step.info
        direction: Literal["upgrade", "downgrade"] = "upgrade" if step.is_upgrade else "downgrade"
        revision = (
            step.revision.revision
            if isinstance(step, RevisionStep)
            else (info.destination_revision_ids[0] if info.destination_revision_ids else None)
        )
        this = _StepRecord(info, direction, revision, _describe(step), time.perf_counter())
        # While earlier steps' statements are still running, this step's "started"
        # waits for their "finished": events stay in order.
        if not self._unconfirmed:
            self._emit(this.event("started"))
        else:
            this.announced = False
        pipeline = self.impl.pipeline
        self._unconfirmed.append(this)
        if pipeline is not None:
            pipeline.own(this)
        try:
            with self.begin_transaction(_per_migration=True):
                if self.as_sql and not current:
                    self.impl._exec(CreateTable(self._version))
                log.info("Running %s", this.description)
                if self.as_sql:
                    self.impl.static_output(f"-- Running {this.description}")
                if isinstance(step, RevisionStep):
                    module = step.revision.module  # type: ignore[attr-defined]
                    fn = module.upgrade if step.is_upgrade else module.downgrade
                    from ..operations import Operations

                    if pipeline is not None:
                        pipeline.begin_step((step.revision.revision, direction, module))
                    with bind_operations(Operations(self)):
                        fn(**kw)
                    if self._portals is not None:
                        self._portals.sweep(self.connection)
                self._apply_version_changes(step.advance(current))
                if pipeline is not None:
                    pipeline.end_step(defer=self._may_defer())
            self._confirm_steps(wait=False, this=this, current=current, kw=kw)
        except _EarlierStepFailed as earlier:
            raise earlier.error from earlier.error.__cause__
        except Exception as exc:
            if pipeline is not None:
                # An earlier step's statements may be what failed (this step only saw it).
                with suppress(Exception):  # its failure is among the results
                    pipeline.settle()
                done, failure = pipeline.take_results()
                self._confirm(done)
                pipeline.discard()
                if failure is not None:
                    # Statements of no step (the version table's) fail the earliest step waiting.
                    owner = failure[0] or self._unconfirmed[0]
                    if owner is not this:
                        error = self._failed(owner, failure[1])
                        raise error from error.__cause__
            raise self._failed(this, exc) from exc
        if pipeline is None:
            self._unconfirmed.remove(this)
            self._finished(this, current, kw)

    def _may_defer(self) -> bool:
        """Whether a step's batch may still be running when the next step's code starts.

        Only inside one transaction over several steps (nothing commits between
        them) and without ``on_version_apply`` callbacks, which may query the
        database between steps and expect the step to be done.
        """
        if self.on_version_apply_callbacks:
            return False
        if self._in_external_transaction:
            return True
        return self.impl.transactional_ddl and not self._transaction_per_migration

    def _confirm_steps(
        self,
        wait: bool,
        this: _StepRecord | None = None,
        current: set[str] | None = None,
        kw: dict[str, Any] | None = None,
    ) -> None:
        """Finish the steps the database is done with (all of them with ``wait``).

        ``this`` (the step that just ran) gets ``on_version_apply`` callbacks
        with ``current`` and ``kw`` if it is done already.

        :raises _EarlierStepFailed: carrying the MigrationError of a step whose statements failed.
        """
        pipeline = self.impl.pipeline
        if pipeline is None:
            return
        unowned: Exception | None = None
        if wait:
            try:
                pipeline.flush()
            except Exception as exc:  # a batch's failure is among the results
                unowned = exc
        done, failure = pipeline.take_results()
        self._confirm(done, this, current, kw)
        if failure is None and unowned is not None:
            failure = (None, unowned)
        if failure is not None:
            step, error = failure
            if step is None and not self._unconfirmed:
                raise error
            raise _EarlierStepFailed(self._failed(step or self._unconfirmed[0], error))

    def _confirm(
        self,
        done: list[_StepRecord],
        this: _StepRecord | None = None,
        current: set[str] | None = None,
        kw: dict[str, Any] | None = None,
    ) -> None:
        """Emit "finished" for ``done`` (in order), announcing each next step as its turn comes."""
        for step in done:
            if step in self._unconfirmed:
                self._unconfirmed.remove(step)
            if step is this:
                self._finished(step, current, kw)
            else:
                self._finished(step, None, None)
            if self._unconfirmed and not self._unconfirmed[0].announced:
                self._unconfirmed[0].announced = True
                self._emit(self._unconfirmed[0].event("started"))

    def _failed(self, step: _StepRecord, exc: BaseException) -> MigrationError:
        """Report ``step`` failed with ``exc``; return the error to raise."""
        if not step.announced:
            step.announced = True
            self._emit(step.event("started"))
        elapsed = time.perf_counter() - step.started
        message = f"{step.description} failed: {type(exc).__name__}: {_first_line(exc)}"
        self._emit(step.event("failed", elapsed, message))
        if isinstance(exc, MigrationError) and exc.revision is not None:
            return exc
        kind = type(exc) if isinstance(exc, MigrationError) else MigrationError
        error = kind(message, revision=step.revision, direction=step.direction)
        error.__cause__ = exc
        return error

    def _finished(self, step: _StepRecord, current: set[str] | None, kw: dict[str, Any] | None) -> None:
        elapsed = time.perf_counter() - step.started
        self.record.steps.append(step.info)
        self.record.durations.append(elapsed)
        if current is not None:
            for callback in self.on_version_apply_callbacks:
                callback(ctx=self, step=step.info, heads=set(current), run_args=kw)
        self._emit(step.event("finished", elapsed))

    def _emit(self, event: StepEvent) -> None:
        if self._on_step is not None:
            self._on_step(event)


_VERSION_TABLES: dict[tuple[Any, ...], Table] = {}
_VERSION_DDL: dict[tuple[Any, ...], str] = {}


def _version_table(impl: DefaultImpl, name: str, schema: str | None, pk: bool) -> Table:
    """The version table's description, shared by every context with the same one.

    Built once per (name, schema, primary key) unless the impl describes it its own way.
    """
    if type(impl).version_table_impl is not DefaultImpl.version_table_impl:
        return impl.version_table_impl(
            version_table=name, version_table_schema=schema, version_table_pk=pk
        )
    key = (name, schema, pk)
    table = _VERSION_TABLES.get(key)
    if table is None:
        if len(_VERSION_TABLES) > 256:
            _VERSION_TABLES.clear()
        table = _VERSION_TABLES[key] = impl.version_table_impl(
            version_table=name, version_table_schema=schema, version_table_pk=pk
        )
    return table


class _StepRecord:
    """A step being run: what its events say about it."""

    __slots__ = ("announced", "description", "direction", "info", "revision", "started")

    def __init__(
        self,
        info: Any,
        direction: Literal["upgrade", "downgrade"],
        revision: str | None,
        description: str,
        started: float,
    ) -> None:
        self.info = info
        self.direction = direction
        self.revision = revision
        self.description = description
        self.started = started
        self.announced = True  # its "started" event has been emitted

    def event(
        self,
        kind: Literal["started", "finished", "failed"],
        duration: float | None = None,
        error: str | None = None,
    ) -> StepEvent:
        return StepEvent(
            kind, self.direction, self.revision, self.description, self.info.is_stamp, duration, error
        )


class _EarlierStepFailed(Exception):
    """The previous step's deferred batch failed; carries that step's MigrationError."""

    def __init__(self, error: MigrationError) -> None:
        super().__init__(str(error))
        self.error = error


class _PortalSweeper:
    """Close the portals of server-side cursors a migration step left open (PostgreSQL, asyncpg).

    A revision that reads with ``yield_per`` (or ``stream_results``) gets a
    server-side cursor. psycopg2 closes its named cursor when the result is
    closed; SQLAlchemy's asyncpg cursor only drops its reference, and the
    portal stays open to the end of the transaction -- where PostgreSQL then
    refuses ``ALTER TABLE`` on the tables it read ("being used by active
    queries in this session"). With one transaction per run, a later
    migration fails that runs under Alembic. So a step that opened such a
    cursor ends with ``CLOSE ALL`` (one statement, only then).
    """

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.opened = False
        event.listen(connection, "after_cursor_execute", self._after_execute)

    @classmethod
    def for_connection(cls, connection: Connection | None) -> _PortalSweeper | None:
        """Return a sweeper for a PostgreSQL connection over asyncpg, else None."""
        if connection is None:
            return None
        dialect = connection.dialect
        if dialect.name != "postgresql" or dialect.driver != "asyncpg":
            return None
        return cls(connection)

    def _after_execute(self, conn: Connection, cursor: Any, statement: Any, parameters: Any,
                       context: Any, executemany: bool) -> None:
        if context is not None and getattr(context, "_is_server_side", False):
            self.opened = True

    def sweep(self, connection: Connection | None) -> None:
        """Close every open portal when the step opened a server-side cursor."""
        if self.opened and connection is not None:
            self.opened = False
            connection.exec_driver_sql("CLOSE ALL")

    def close(self) -> None:
        """Stop watching the connection."""
        if event.contains(self.connection, "after_cursor_execute", self._after_execute):
            event.remove(self.connection, "after_cursor_execute", self._after_execute)


class _OuterMarker:
    """Track the env.py-level ``begin_transaction`` when it opens no transaction itself."""

    def __init__(self, context: MigrationContext) -> None:
        self.context = context

    def __enter__(self) -> None:
        self.context._outer_depth += 1

    def __exit__(self, *exc: Any) -> None:
        self.context._outer_depth -= 1
        if self.context._outer_depth == 0:
            self.context._release_lock()


def _describe(step: MigrationStep) -> str:
    if isinstance(step, RevisionStep):
        # The message's first paragraph may span lines; events and errors are one line.
        doc = " ".join(getattr(step.revision, "doc", "").split())
        return f"{step}{', ' + doc if doc else ''}"
    return str(step)


def _first_line(exc: BaseException) -> str:
    """One line describing ``exc``; for a database error, the statement that failed too."""
    text = str(exc).strip()
    statement = None
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        text = str(exc.orig).strip()
        statement = " ".join((exc.statement or "").split())
    line = text.splitlines()[0] if text else type(exc).__name__
    if statement:
        shown = statement if len(statement) <= 120 else statement[:117] + "..."
        line += f" [SQL: {shown}]"
    return line
