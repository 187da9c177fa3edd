"""The history table: one row per step a database went through (Flyway's schema history).

Opt-in with the ``history_table`` option (``history_table =
asyncmigrate_history`` in the config, or ``context.configure(history_table=...)``
in env.py). The table sits beside the version table, in the same schema;
Alembic never reads it, so either tool can keep migrating the database.

Each row says which revision a step ran (or stamped), which way, the
checksum of its file (:mod:`asyncmigrate.script.checksum`), when, how long
it took, who ran it (database user, client host, process id), with which
asyncmigrate version, and the outcome:

* ``applied`` -- written in the step's own transaction, beside its version
  rows: the row exists exactly when the step committed. On MySQL/MariaDB,
  where each DDL statement commits itself, the row and the version rows
  still commit together, atomically, after the step's last statement; a
  step that fails midway leaves its earlier DDL committed and no
  ``applied`` row.
* ``failed`` / ``rolled_back`` -- the step that failed, and the finished
  steps its transaction took back with it, written in a transaction of
  their own after the rollback (best effort: not when the run is being
  cancelled, and an error writing them is only logged).

When the table is created on a database that is already at some revisions
(a database Alembic managed), a ``baseline`` row records those heads:
everything before it is "before the record".

**One table for many schemas.** With ``history_table_schema`` set, the table
lives in that schema instead, shared by every version table of the database
(a schema-per-tenant fleet keeps one record, as Flyway keeps one history
table for the schemas it manages). Each row names the schema of the version
table it belongs to (``version_schema``, filled in by the server when the
version table has no explicit schema), and a run reads only its own rows.
A fresh tenant schema then costs no table of its own. The shared table is
created once: concurrent first runs that race to create it wait for the
first creator's transaction and carry on (PostgreSQL; MySQL and SQLite
serialise the creation themselves).

:class:`HistoryTable` owns the table's description, the statements that
write it and the query that reads it; :class:`HistoryRecorder` owns which
rows one run writes, and when. The migration context decides the
transactions; a driver adapter decides how statements travel.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import (
    Column,
    DateTime,
    Double,
    Integer,
    MetaData,
    String,
    Table,
    inspect,
    literal,
    literal_column,
    select,
    text,
)
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.schema import CreateTable
from sqlalchemy.sql.expression import Executable
from sqlalchemy.types import TypeDecorator, TypeEngine

from ..revision.plan import MigrationStep, RevisionStep
from ..script.checksum import file_checksum
from ..script.directory import Script
from .drivers import Driver, Statement, translated_schema
from .drivers.mysql_notes import expect_existing
from .sharing import Memo
from .version_table import quote_literal

if TYPE_CHECKING:
    from ..script import ScriptDirectory
    from .migration import MigrationContext
    from .steps import StepRecord

__all__ = [
    "DEFAULT_HISTORY_TABLE", "HistoryRecorder", "HistoryRow", "HistoryTable", "history_option",
    "history_table", "read_history", "record_repairs", "revision_checksum", "table_for",
]

log = logging.getLogger(__name__)

#: The table's name when a command needs it and none is configured (``log``, ``validate``).
DEFAULT_HISTORY_TABLE = "asyncmigrate_history"

Kind = Literal["migration", "stamp", "baseline", "repair"]
Outcome = Literal["applied", "failed", "rolled_back"]

_TABLES: Memo[Table] = Memo()
_CREATE_SQL: Memo[str] = Memo()
_COLUMNS = (
    "revision", "direction", "kind", "checksum", "applied_at", "duration",
    "applied_by", "host", "pid", "tool_version", "outcome",
)
_COLUMN_LIST = ", ".join((*_COLUMNS, "version_schema"))

#: SQL for the schema an unqualified version table is in, as the server resolves it now.
_CURRENT_SCHEMA_SQL = {"postgresql": "current_schema()", "mysql": "DATABASE()", "mariadb": "DATABASE()",
                       "sqlite": "'main'"}

#: Shared tables known to exist, per engine: (schema, name) pairs (see HistoryTable.ensure_shared).
_SHARED_SEEN: weakref.WeakKeyDictionary[Any, set[tuple[str | None, str]]] = weakref.WeakKeyDictionary()


class _Timestamp(TypeDecorator[dt.datetime]):
    """A timestamp with microseconds everywhere (MySQL's plain DATETIME drops them)."""

    impl = DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name in ("mysql", "mariadb"):
            from sqlalchemy.dialects.mysql import DATETIME  # loaded already on this dialect

            return dialect.type_descriptor(DATETIME(fsp=6))
        return dialect.type_descriptor(DateTime())


@dataclass(frozen=True)
class HistoryRow:
    """One row of the history table: a step one database went through."""

    revision: str | None
    """The revision the step ran (a stamp's destination; None: base)."""
    direction: Literal["upgrade", "downgrade"]
    """Which way the step moved."""
    kind: Kind
    """``migration`` (ran the file), ``stamp``, ``baseline`` (the record starts) or ``repair``."""
    checksum: str | None
    """SHA-256 of the normalised revision file (None when there is no file to read)."""
    applied_at: dt.datetime
    """When the row was written (UTC, naive)."""
    duration: float | None
    """Seconds the step took."""
    applied_by: str | None
    """The database user (for SQLite, the operating-system user)."""
    host: str | None
    """The client machine's host name."""
    pid: int | None
    """The client process id."""
    tool_version: str | None
    """The asyncmigrate version that wrote the row."""
    outcome: Outcome
    """``applied``, ``failed`` or ``rolled_back``."""
    id: int | None = None
    """The row's position in the table (None before it is written)."""

    def to_dict(self) -> dict[str, Any]:
        """The row as JSON-ready data."""
        data = {name: getattr(self, name) for name in ("id", *_COLUMNS)}
        data["applied_at"] = self.applied_at.isoformat() + "Z"
        return data


@cache
def _tool_version() -> str:
    from .. import _version

    return _version()


def history_option(opts: dict[str, Any], context: MigrationContext, key: str = "history_table") -> str | None:
    """A configured history option (``history_table``, ``history_table_schema``).

    env.py's ``configure(history_table=...)`` wins over the config's value;
    an empty value, ``false``, ``off``, ``no`` or ``0`` means none.
    """
    name = opts.get(key)
    if name is None and context.config is not None:
        name = context.config.get_alembic_option(key)
    name = str(name).strip() if name is not None else ""
    return name if name and name.lower() not in ("false", "off", "no", "0") else None


def history_table(context: MigrationContext, name: str) -> HistoryTable:
    """The history table ``name`` for a context's database: beside its version table, or shared.

    With ``history_table_schema`` configured, the table is that schema's
    shared one and its rows are told apart by their version table's schema.
    """
    shared_schema = history_option(context.opts, context, "history_table_schema")
    if shared_schema is None:
        return HistoryTable(context.dialect.name, name, context.version.schema)
    return HistoryTable(context.dialect.name, name, shared_schema, shared=True,
                        version_schema=context.version.schema)


class HistoryTable:
    """Describe, write and read one database's history table.

    It owns the table's name, schema and SQLAlchemy description, the
    statements that insert rows (inlined for the driver's short path, or
    bound for SQLAlchemy) and the query that reads them back. It leaves
    transactions to its caller.
    """

    def __init__(
        self, dialect_name: str, name: str, schema: str | None, *,
        shared: bool = False, version_schema: str | None = None,
    ) -> None:
        self.dialect_name = dialect_name
        self.name = name
        self.schema = schema
        self.shared = shared
        """Whether the table is in a schema of its own, serving several version tables."""
        self.version_schema = version_schema
        """The schema of the version table the rows written and read belong to (None: unqualified)."""

    @property
    def table(self) -> Table:
        """The table's description (shared by every run that describes it the same way)."""

        def build() -> Table:
            return Table(
                self.name,
                MetaData(),
                Column("id", Integer, primary_key=True, autoincrement=True),
                Column("revision", String(255)),
                Column("direction", String(16), nullable=False),
                Column("kind", String(16), nullable=False),
                Column("checksum", String(64)),
                Column("applied_at", _Timestamp(), nullable=False),
                Column("duration", Double()),
                Column("applied_by", String(255)),
                Column("host", String(255)),
                Column("pid", Integer),
                Column("tool_version", String(64)),
                Column("outcome", String(16), nullable=False),
                Column("version_schema", String(128)),
                schema=self.schema,
            )

        return _TABLES.get((self.name, self.schema), build)

    def qualified_name(self, preparer: Any) -> str:
        """The table's name as SQL for ``preparer``'s dialect."""
        name = preparer.quote(self.name)
        return f"{preparer.quote_schema(self.schema)}.{name}" if self.schema else name

    def create_sql(self, dialect: Dialect) -> str:
        """``CREATE TABLE IF NOT EXISTS`` for ``dialect``, compiled once per name, schema and dialect.

        The table's description is asyncmigrate's own, fixed in this module:
        the statement depends on nothing else.
        """
        key = (type(dialect), dialect.server_version_info, self.name, self.schema)
        return _CREATE_SQL.get(key, lambda: str(self.create_construct().compile(dialect=dialect)).strip())

    def create_construct(self) -> CreateTable:
        """``CREATE TABLE IF NOT EXISTS`` as a SQLAlchemy construct."""
        return CreateTable(self.table, if_not_exists=True)

    def create(self, connection: Connection, driver: Driver | None = None) -> None:
        """Create the table unless it exists (in the connection's transaction, if any).

        :param driver: send the statement through the driver's short path where it has one.
        """
        if connection.dialect.name in ("mysql", "mariadb"):
            expect_existing("table", self.name)  # the server's note that it exists is no news
        if driver is not None and driver.raw_statements:
            driver.run(Statement(self.create_sql(connection.dialect)))
        else:
            connection.execute(self.create_construct())

    def exists(self, connection: Connection) -> bool:
        """Whether the table exists (one catalog query)."""
        dialect = connection.dialect.name
        schema = translated_schema(connection, self.schema)
        if dialect == "postgresql":
            found = connection.execute(
                text("SELECT c.oid FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n "
                     "ON n.oid = c.relnamespace WHERE c.relname = :name AND c.relkind IN ('r', 'p') "
                     "AND n.nspname = coalesce(CAST(:schema AS text), current_schema())"),
                {"name": self.name, "schema": schema},
            ).first()
            return found is not None
        if dialect == "sqlite":
            master = f"{connection.dialect.identifier_preparer.quote(schema)}.sqlite_master" if (
                schema) else "sqlite_master"
            found = connection.execute(
                text(f"SELECT 1 FROM {master} WHERE type = 'table' AND name = :name"), {"name": self.name}
            ).first()
            return found is not None
        return bool(inspect(connection).has_table(self.name, schema))

    def ensure_shared(self, connection: Connection, driver: Driver | None = None) -> None:
        """Create the shared table unless it exists; a table known to exist costs nothing (per engine).

        A concurrent first run creating it at the same time makes PostgreSQL
        wait for that run's transaction, then refuse the duplicate: the
        attempt is taken back to a savepoint and the table used as it is.
        The table is remembered only once it is known to be there for every
        session: found by a catalog query (committed), or created by MySQL's
        self-committing DDL -- a table this run created in its open
        transaction may still be rolled back, and is invisible to the others.
        """
        seen = _SHARED_SEEN.setdefault(connection.engine, set())
        key = (translated_schema(connection, self.schema), self.name)
        if key in seen:
            return
        dialect = connection.dialect.name
        if dialect != "postgresql":
            # MySQL/MariaDB's metadata locks and SQLite's database lock serialise CREATE TABLE
            # IF NOT EXISTS; a catalog query first would only race with it (MariaDB error 1684).
            self.create(connection, driver)
            if dialect in ("mysql", "mariadb"):
                seen.add(key)
            return
        if self.exists(connection):
            seen.add(key)
        elif connection.in_transaction():
            savepoint = connection.begin_nested()
            try:
                connection.execute(self.create_construct())
            except DBAPIError as exc:
                savepoint.rollback()
                code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
                # unique_violation (a catalog row), duplicate_table, duplicate_object (its row type)
                if code not in ("23505", "42P07", "42710"):
                    raise
                log.debug("%s was created by a concurrent run meanwhile", self.name)
            else:
                savepoint.commit()
        else:
            self.create(connection, driver)

    def has_rows(self, connection: Connection) -> bool:
        """Whether the table holds any row of this table's version table (one query)."""
        table = self.table
        query = select(literal(1)).select_from(table).limit(1)
        if self.shared:
            query = query.where(table.c.version_schema == self._version_schema_expression(connection))
        return connection.execute(query).first() is not None

    def _version_schema_expression(self, connection: Connection | None) -> Any:
        schema = translated_schema(connection, self.version_schema)
        if schema is not None:
            return literal(schema)
        current = _CURRENT_SCHEMA_SQL.get(self.dialect_name)
        return literal_column(current, String) if current else literal(None, String)

    def statement(
        self, rows: Sequence[HistoryRow], preparer: Any, connection: Connection | None = None
    ) -> Statement:
        """One ``INSERT`` of ``rows`` as ready SQL (values inlined, quoted whatever the server settings).

        The rows go in the order given, so their ``id`` follows it.
        """
        schema = translated_schema(connection, self.version_schema)
        current = _CURRENT_SCHEMA_SQL.get(self.dialect_name, "NULL")
        owner = current if schema is None else self._literal(schema)
        values = ", ".join(
            "(" + ", ".join([*(self._literal(getattr(row, name)) for name in _COLUMNS), owner]) + ")"
            for row in rows
        )
        return Statement(f"INSERT INTO {self.qualified_name(preparer)} ({_COLUMN_LIST}) VALUES {values}")

    def construct(self, row: HistoryRow, connection: Connection | None = None) -> Executable:
        """``INSERT`` of ``row`` as a SQLAlchemy statement (bound values)."""
        return self.table.insert().values(self.values(row, connection))

    def values(self, row: HistoryRow, connection: Connection | None = None) -> dict[str, Any]:
        """``row``'s column values, by column name (the ``id`` left to the database)."""
        values: dict[str, Any] = {name: getattr(row, name) for name in _COLUMNS}
        values["version_schema"] = self._version_schema_expression(connection)
        return values

    def _literal(self, value: Any) -> str:
        if value is None:
            return "NULL"
        if isinstance(value, bool):  # pragma: no cover - no boolean column
            return "1" if value else "0"
        if isinstance(value, (int, float)):
            return repr(value)
        if isinstance(value, dt.datetime):
            value = value.isoformat(sep=" ")
        return quote_literal(str(value), self.dialect_name)

    def read(self, connection: Connection) -> list[HistoryRow] | None:
        """Every row, oldest first (None when the table does not exist)."""
        if not self.exists(connection):
            return None
        table = self.table
        query = select(table).order_by(table.c.id)
        if self.shared:
            query = query.where(table.c.version_schema == self._version_schema_expression(connection))
        rows = connection.execute(query).mappings()
        return [
            HistoryRow(
                id=r["id"], revision=r["revision"], direction=r["direction"], kind=r["kind"],
                checksum=r["checksum"], applied_at=r["applied_at"], duration=r["duration"],
                applied_by=r["applied_by"], host=r["host"], pid=r["pid"],
                tool_version=r["tool_version"], outcome=r["outcome"],
            )
            for r in rows
        ]


def new_row(
    revision: str | None,
    direction: Literal["upgrade", "downgrade"],
    kind: Kind,
    checksum: str | None,
    *,
    duration: float | None,
    outcome: Outcome,
    applied_by: str | None,
    host: str | None = None,
) -> HistoryRow:
    """A row written now by this process (on ``host``, else the host name asked now)."""
    return HistoryRow(
        revision=revision, direction=direction, kind=kind, checksum=checksum,
        applied_at=dt.datetime.now(dt.timezone.utc).replace(tzinfo=None),
        duration=round(duration, 6) if duration is not None else None,
        applied_by=applied_by, host=host or socket.gethostname(), pid=os.getpid(),
        tool_version=_tool_version(), outcome=outcome,
    )


def database_user(connection: Connection) -> str | None:
    """The user a connection logs in as (for a database without users, the OS user)."""
    user = connection.engine.url.username
    if user:
        return user
    import getpass

    try:
        return getpass.getuser()
    except Exception:  # pragma: no cover - no login name in this environment
        return None


def revision_checksum(script: ScriptDirectory | None, revision: Any, *, ran: bool = False) -> str | None:
    """The checksum of a revision's file (a script object, or an id looked up in ``script``).

    :param ran: the checksum of the file as the run read it (kept per script
        object, see :meth:`Script.run_checksum`), for a history row; else the
        file as it is now (``validate``).
    """
    if isinstance(revision, str):
        if script is None or revision not in script.graph:  # exact ids only, no prefixes
            return None
        revision = script.get_revision(revision)
    path = getattr(revision, "path", None)
    if not path:
        return None
    try:
        if ran and isinstance(revision, Script):
            return revision.run_checksum()
        return file_checksum(path)
    except OSError as exc:
        log.debug("Could not read %s for its checksum: %s", path, exc)
        return None


class HistoryRecorder:
    """Write one run's history rows, each in the transaction its step commits in.

    It owns the rows of the open transaction (sent, or kept to travel with
    its ``COMMIT``) and the failed and rolled-back rows waiting for their own
    transaction. The migration context tells it when a step finished or
    failed and when a transaction committed or rolled back.
    """

    def __init__(self, context: MigrationContext, name: str) -> None:
        assert context.connection is not None
        self.connection: Connection = context.connection
        self.driver: Driver | None = context.driver
        self.script = context.script
        self.table = history_table(context, name)
        self._preparer = context.dialect.identifier_preparer
        self._user = database_user(self.connection)
        self._host = socket.gethostname()  # asked once per run: each row is the run's
        self._ensured = False
        self._uncommitted: list[HistoryRow] = []
        self._at_commit: list[HistoryRow] = []
        self._unrecorded: list[HistoryRow] = []

    @classmethod
    def for_context(cls, context: MigrationContext) -> HistoryRecorder | None:
        """The recorder for an online context whose configuration asks for one, else None."""
        if context.as_sql or context.connection is None:
            return None
        name = history_option(context.opts, context)
        return cls(context, name) if name else None

    def ensure(self, heads: Sequence[str]) -> None:
        """Create the table if it is missing; a database already at ``heads`` gets a baseline row.

        Runs in the connection's transaction (the first step's, where DDL is transactional).
        """
        if self._ensured:
            return
        self._ensured = True
        if self.table.shared:  # the table may hold other schemas' rows: this one's decide the baseline
            self.table.ensure_shared(self.connection, self.driver)
            if not heads or self.table.has_rows(self.connection):
                return
        elif not heads:  # nothing to baseline: no need to know whether it exists
            self.table.create(self.connection, self.driver)
            return
        elif self.table.exists(self.connection):
            return
        else:
            self.table.create(self.connection, self.driver)
        for head in heads:
            row = new_row(head, "upgrade", "baseline", revision_checksum(self.script, head),
                          duration=None, outcome="applied", applied_by=self._user, host=self._host)
            self._send(row)

    # -- a step's row ---------------------------------------------------------------------------

    def row_for(self, step: MigrationStep, record: StepRecord, outcome: Outcome) -> HistoryRow:
        """The row recording ``step`` (run as ``record``) with ``outcome``."""
        if isinstance(step, RevisionStep):
            checksum = revision_checksum(self.script, step.revision, ran=True)
            kind: Kind = "migration"
        else:
            checksum = revision_checksum(self.script, record.revision, ran=True) if record.revision else None
            kind = "stamp"
        return new_row(record.revision, record.direction, kind, checksum,
                       duration=time.perf_counter() - record.started, outcome=outcome,
                       applied_by=self._user, host=self._host)

    def finished(self, step: MigrationStep, record: StepRecord, at_commit: bool) -> None:
        """The step ran: write its row now, or keep it for the commit's round trip."""
        row = self.row_for(step, record, "applied")
        if at_commit:
            self._at_commit.append(row)
        else:
            self._send(row)
        self._uncommitted.append(row)

    def failed(self, step: MigrationStep, record: StepRecord) -> None:
        """The step failed: its row waits for the rollback."""
        self._unrecorded.append(self.row_for(step, record, "failed"))

    def _send(self, row: HistoryRow) -> None:
        driver = self.driver
        if driver is not None and driver.raw_statements:
            driver.run(self.table.statement([row], self._preparer, self.connection))
        else:
            self.connection.execute(self.table.construct(row, self.connection))

    # -- the transaction's end ------------------------------------------------------------------

    def at_commit_statements(self) -> list[Statement]:
        """The rows kept for the commit, as one statement to fold into it (the driver's short path)."""
        if not self._at_commit:
            return []
        return [self.table.statement(self._at_commit, self._preparer, self.connection)]

    def send_at_commit(self) -> None:
        """Send the rows kept for the commit now, through SQLAlchemy (the plain path)."""
        rows, self._at_commit = self._at_commit, []
        if rows:
            values = [self.table.values(row, self.connection) for row in rows]
            self.connection.execute(self.table.table.insert().values(values))

    def committed(self) -> None:
        """The transaction committed: its rows are in the table."""
        self._uncommitted = []
        self._at_commit = []

    def rolled_back(self) -> None:
        """The transaction rolled back: its rows are gone; its steps are recorded as rolled back."""
        self._at_commit = []
        taken, self._uncommitted = self._uncommitted, []
        self._unrecorded[:0] = [
            HistoryRow(**{**row.__dict__, "outcome": "rolled_back"}) for row in taken
        ]
        self._ensured = False  # a table created in that transaction is gone too

    def record_failures(self, own_transaction: bool) -> None:
        """Write the failed and rolled-back rows (best effort; errors are logged, not raised).

        :param own_transaction: begin and commit a transaction for them
            (else they join the connection's current one, a caller's).
        """
        rows, self._unrecorded = self._unrecorded, []
        connection = self.connection
        if not rows or connection.invalidated or connection.closed:
            return
        try:
            begun = connection.begin() if own_transaction and not connection.in_transaction() else None
            if self.table.shared:
                self.table.ensure_shared(connection)
            elif not self.table.exists(connection):
                self.table.create(connection)
            for row in rows:
                connection.execute(self.table.construct(row, connection))
            if begun is not None:
                begun.commit()
        except Exception as exc:
            log.warning("Could not record the failed step in %s: %s", self.table.name, exc)
            if own_transaction and connection.in_transaction():
                connection.rollback()


# -- reading and repairing, for `log` and `validate` --------------------------------------------


def table_for(context: MigrationContext) -> HistoryTable:
    """The history table of a context's database: the configured name, else the default."""
    return history_table(context, history_option(context.opts, context) or DEFAULT_HISTORY_TABLE)


def read_history(context: MigrationContext) -> tuple[HistoryTable, list[HistoryRow] | None]:
    """The history table of an online context and its rows (None: the table does not exist)."""
    assert context.connection is not None
    table = table_for(context)
    return table, table.read(context.connection)


def record_repairs(context: MigrationContext, checksums: dict[str, str]) -> None:
    """Record ``checksums`` (revision id → current checksum) as ``repair`` rows, and commit them.

    A transaction env.py opened commits them as it ends; a caller's
    transaction is left to the caller.
    """
    connection = context.connection
    assert connection is not None
    table = table_for(context)
    if table.shared:
        table.ensure_shared(connection)
    elif not table.exists(connection):
        table.create(connection)
    user = database_user(connection)
    for revision, checksum in checksums.items():
        row = new_row(revision, "upgrade", "repair", checksum, duration=None, outcome="applied",
                      applied_by=user)
        connection.execute(table.construct(row, connection))
    if (
        not context._in_external_transaction
        and context._transaction is None
        and connection.in_transaction()
    ):
        connection.commit()
