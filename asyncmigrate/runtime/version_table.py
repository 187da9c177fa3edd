"""The version table: which revisions a database is at (Alembic's ``alembic_version`` rows).

One row per head revision, in a one-column table Alembic can read and
write too. :class:`VersionTable` owns the table's name and description,
the single query that reads the rows (and tells whether the table exists)
and the statements that move them; the migration context decides when, in
which transaction; a driver adapter decides how they travel.

Version ids round-trip exactly, whatever characters Alembic accepts in
them: PostgreSQL reads them hex-encoded (the read goes through
``query_to_xml`` so that a missing table is not an error, and XML would
otherwise escape ``&``, ``<`` and ``>``), and literals in the statements
written are quoted so that no server setting (``standard_conforming_strings``)
changes their meaning.
"""

from __future__ import annotations

import re
import sqlite3
from typing import TYPE_CHECKING, Any

from sqlalchemy import inspect, literal, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.schema import CreateTable, Table
from sqlalchemy.sql.expression import Executable

from ..exceptions import VersionTableError
from .drivers import Driver, Statement, translated_schema
from .sharing import Memo

if TYPE_CHECKING:
    from ..ddl.impl import DefaultImpl
    from ..revision.plan import VersionChange

__all__ = ["PG_VERSION_READ", "VersionTable", "decode_pg_versions", "quote_literal"]

_HEX_READ = (
    "SELECT CAST(query_to_xml(format('SELECT encode(convert_to(version_num, ''UTF8''), ''hex'') AS v "
    "FROM %s', r), false, true, '') AS text) FROM ({found}) found WHERE r IS NOT NULL"
)
#: Read through the session's catalog cache (cheapest on a new session): a transaction of
#: its own sees other sessions' committed tables. ``$1`` table, ``$2`` schema (or NULL).
PG_VERSION_READ = _HEX_READ.format(
    found="SELECT to_regclass(format('%I.%I', coalesce(CAST($2 AS text), current_schema()), "
    "CAST($1 AS text))) AS r"
)
# Inside a transaction, after a read found no table, the catalog itself (an MVCC read) is
# asked instead: to_regclass may still answer from a cache filled before another session
# committed the table.
_PG_VERSION_READ_CATALOG = _HEX_READ.format(
    found="SELECT c.oid::regclass AS r FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n "
    "ON n.oid = c.relnamespace WHERE c.relname = $1 AND c.relkind IN ('r', 'p') "
    "AND n.nspname = coalesce(CAST($2 AS text), current_schema())"
)
_PG_HEX_VALUE = re.compile(r"<v>([0-9a-f]*)</v>")

_TABLES: Memo[Table] = Memo()
_CREATE_SQL: Memo[str] = Memo()


def decode_pg_versions(xml: str | None) -> tuple[str, ...]:
    """The version ids in the answer of :data:`PG_VERSION_READ`."""
    return tuple(bytes.fromhex(v).decode("utf-8") for v in _PG_HEX_VALUE.findall(xml or ""))


def quote_literal(value: str, dialect_name: str) -> str:
    """``value`` as a SQL string literal whose meaning no server setting changes.

    PostgreSQL: an escape string (``E'...'``), with quotes and backslashes
    escaped, read the same whatever ``standard_conforming_strings`` says.
    Elsewhere: quotes doubled (SQLite has no backslash escapes).
    """
    if dialect_name == "postgresql":
        return "E'" + value.replace("\\", "\\\\").replace("'", "''") + "'"
    if dialect_name in ("mysql", "mariadb"):
        return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"
    return "'" + value.replace("'", "''") + "'"


class VersionTable:
    """Read and move one database's version rows.

    It owns the table's name, schema and description, the query that reads
    the rows, and the statements (or SQLAlchemy constructs) that change
    them, each ``UPDATE``/``DELETE`` required to match exactly one row. It
    leaves transactions to the migration context and sending to the driver.
    """

    def __init__(self, impl: DefaultImpl, name: str, schema: str | None, primary_key: bool) -> None:
        self.impl = impl
        self.name = name
        self.schema = schema
        self.primary_key = primary_key
        self.exists: bool | None = None
        """Whether the table exists, as far as the last read or creation knows (None: unknown)."""

    @property
    def dialect_name(self) -> str:
        return str(self.impl.dialect.name)

    @property
    def table(self) -> Table:
        """The table's SQLAlchemy description, shared by every run that describes it the same way."""
        impl = self.impl

        def build() -> Table:
            return impl.version_table_impl(
                version_table=self.name, version_table_schema=self.schema, version_table_pk=self.primary_key
            )

        return _TABLES.get((type(impl), self.name, self.schema, self.primary_key), build)

    def qualified_name(self) -> str:
        """The table's name as SQL: schema-qualified and quoted where needed."""
        preparer = self.impl.dialect.identifier_preparer
        name = preparer.quote(self.name)
        return f"{preparer.quote_schema(self.schema)}.{name}" if self.schema else name

    # -- creating ------------------------------------------------------------------------------

    def create_construct(self) -> CreateTable:
        """``CREATE TABLE`` for the table, as a SQLAlchemy construct."""
        return CreateTable(self.table)

    def create_sql(self) -> str:
        """``CREATE TABLE`` for the table as SQL, compiled once per description and dialect.

        Only the table's name differs between schemas, so tenants in a
        thousand schemas share one compilation (keyed by everything else
        the statement depends on).
        """
        impl, dialect = self.impl, self.impl.dialect
        key = (type(impl), dialect.name, dialect.server_version_info, self.name, self.primary_key)

        def build() -> str:
            unqualified = impl.version_table_impl(
                version_table=self.name, version_table_schema=None, version_table_pk=self.primary_key
            )
            return str(CreateTable(unqualified).compile(dialect=dialect)).strip()

        plain = _CREATE_SQL.get(key, build)
        head = f"CREATE TABLE {dialect.identifier_preparer.quote(self.name)} ("
        if not plain.startswith(head):  # pragma: no cover - a dialect that words it otherwise
            return str(self.create_construct().compile(dialect=dialect)).strip()
        return f"CREATE TABLE {self.qualified_name()} (" + plain[len(head):]

    # -- reading -------------------------------------------------------------------------------

    def read(self, connection: Connection, driver: Driver | None, own_transaction: bool) -> tuple[str, ...]:
        """Read the version rows (``()`` when the table does not exist); note whether it exists.

        One query where the dialect allows it. ``own_transaction``: the read
        may run as a transaction of its own (not inside a caller's).
        """
        name = self.dialect_name
        if name == "postgresql":
            rows = self._read_postgresql(connection, driver, own_transaction)
        elif name == "sqlite" and driver is not None and driver.raw_statements and hasattr(driver, "fetch"):
            rows = self._read_sqlite(driver)
        elif not own_transaction or connection.in_transaction():
            if not self._has_table(connection):
                self.exists = False
                return ()
            rows = self._select(connection)
        else:
            try:  # one query; a missing table is the only expected failure
                rows = self._select(connection)
            except DBAPIError:
                connection.rollback()
                if self._has_table(connection):
                    raise
                self.exists = False
                return ()
        self.exists = rows is not None
        return rows or ()

    def _has_table(self, connection: Connection) -> bool:
        return bool(inspect(connection).has_table(self.name, translated_schema(connection, self.schema)))

    def _select(self, connection: Connection) -> tuple[str, ...]:
        return tuple(row[0] for row in connection.execute(select(self.table.c.version_num)))

    def _read_sqlite(self, driver: Any) -> tuple[str, ...] | None:
        try:
            rows = driver.fetch(f"SELECT version_num FROM {self.qualified_name()}")
        except DBAPIError as exc:
            # One statement; a missing table is the only expected failure (a failed
            # SELECT leaves SQLite's transaction, if any, as it was).
            if not isinstance(exc.orig, sqlite3.OperationalError) or "no such table" not in str(exc.orig):
                raise
            return None
        return tuple(row[0] for row in rows)

    def _read_postgresql(
        self, connection: Connection, driver: Driver | None, own_transaction: bool
    ) -> tuple[str, ...] | None:
        """Read in one statement that cannot fail on a missing table; None: there is no table."""
        args = (self.name, translated_schema(connection, self.schema))
        done, row = False, None
        if own_transaction and driver is not None:
            done, row = driver.read_outside_transaction(PG_VERSION_READ, *args)
        if not done:
            query = _PG_VERSION_READ_CATALOG if self.exists is False else PG_VERSION_READ
            named = text(query.replace("$1", ":table").replace("$2", ":schema"))
            row = connection.execute(named, {"table": args[0], "schema": args[1]}).first()
        if row is None:
            return None
        return decode_pg_versions(row[0])

    # -- writing -------------------------------------------------------------------------------

    def expected_one(self, change: VersionChange) -> str:
        """What a version-row ``UPDATE``/``DELETE`` that matched no row (or several) reports."""
        what = (
            f"deleting '{change.old}'" if change.kind == "delete"
            else f"updating '{change.old}' to '{change.new}'"
        )
        return f"Online migration expected to match one row when {what} in '{self.name}'"

    def statement(self, change: VersionChange) -> Statement:
        """The change as ready SQL (values inlined); an ``UPDATE``/``DELETE`` must match one row."""
        name, dialect = self.qualified_name(), self.dialect_name
        new = quote_literal(change.new or "", dialect)
        old = quote_literal(change.old or "", dialect)
        if change.kind == "insert":
            return Statement(f"INSERT INTO {name} (version_num) VALUES ({new})")
        if change.kind == "delete":
            sql = f"DELETE FROM {name} WHERE version_num = {old}"
        else:
            sql = f"UPDATE {name} SET version_num = {new} WHERE version_num = {old}"
        return Statement.checked(sql, 1, self.expected_one(change))

    def construct(self, change: VersionChange) -> Executable:
        """The change as a SQLAlchemy statement (bound values; rendered inline offline)."""
        table = self.table
        column = table.c.version_num
        if change.kind == "insert":
            return table.insert().values(version_num=literal(change.new))
        if change.kind == "delete":
            return table.delete().where(column == literal(change.old))
        return table.update().values(version_num=literal(change.new)).where(column == literal(change.old))

    def check_rowcount(self, change: VersionChange, rowcount: int) -> None:
        """Raise :class:`VersionTableError` unless an ``UPDATE``/``DELETE`` matched one row."""
        if change.kind != "insert" and rowcount != 1:
            raise VersionTableError(f"{self.expected_one(change)}; {rowcount} found")
