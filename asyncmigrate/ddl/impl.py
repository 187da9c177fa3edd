"""Per-dialect DDL: the base implementation every dialect refines.

An implementation turns schema changes into SQL and either executes it on
the migration's connection (online) or writes it to the output buffer with
literal values (offline ``--sql``). It owns *how* a change is expressed for
one dialect; what to change is described by :mod:`asyncmigrate.operations.ops`,
and :mod:`asyncmigrate.operations.toimpl` translates one into the other.

SQLAlchemy's own DDL constructs (``CreateTable``, ``AddConstraint``,
``CreateIndex``, comments) are used wherever they exist; the in-place
``ALTER`` statements SQLAlchemy lacks are the elements of
:mod:`asyncmigrate.ddl.base`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol, TextIO

from sqlalchemy import Column, MetaData, PrimaryKeyConstraint, String, Table, cast, text
from sqlalchemy.engine import Connection, CursorResult, Dialect
from sqlalchemy.schema import (
    AddConstraint,
    Constraint,
    CreateIndex,
    CreateTable,
    DropConstraint,
    DropIndex,
    DropTable,
    DropTableComment,
    Index,
    SetColumnComment,
    SetTableComment,
)
from sqlalchemy.sql.elements import ClauseElement
from sqlalchemy.sql.expression import Executable, TableClause
from sqlalchemy.sql.type_api import TypeEngine
from sqlalchemy.types import NullType

from ..masking import get_logger
from . import base
from .base import InlineLiteral, ServerDefaultArgument

if TYPE_CHECKING:
    from ..operations.batch import BatchOperationsImpl, TableRecreate

__all__ = ["DefaultImpl", "StatementSender", "impl_for_dialect"]

log = get_logger("asyncmigrate.ddl")

_REGISTRY: dict[str, type[DefaultImpl]] = {}


class StatementSender(Protocol):
    """Sends answer-less statements a shorter way than SQLAlchemy (set by the runtime, online)."""

    def send(
        self, construct: Executable, execution_options: Any, multiparams: Any, params: Any
    ) -> bool:
        """Send ``construct`` now if it needs no answer; return whether it was sent."""
        ...


class DefaultImpl:
    """Execute or render DDL for one dialect over one connection or output buffer.

    Subclasses register by setting ``__dialect__`` to a SQLAlchemy dialect
    name. The methods below are the vocabulary operations are executed in;
    batch mode records calls to the same methods, so a dialect refines a
    change by overriding one of them.
    """

    __dialect__: ClassVar[str] = "default"
    transactional_ddl: bool = False
    command_terminator: ClassVar[str] = ";"
    #: Whether ``add_column`` always renders a single-column foreign key inline
    #: (``REFERENCES``) instead of adding it as a separate constraint.
    add_column_references_inline: ClassVar[bool] = False

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        _REGISTRY[cls.__dialect__] = cls

    def __init__(
        self,
        dialect: Dialect,
        connection: Connection | None,
        as_sql: bool,
        transactional_ddl: bool | None,
        output_buffer: TextIO | None,
        context_opts: Mapping[str, Any],
    ) -> None:
        self.dialect = dialect
        self.connection = connection
        self.as_sql = as_sql
        self.literal_binds = bool(context_opts.get("literal_binds", False))
        self.output_buffer = output_buffer
        self.context_opts = context_opts
        #: Bookkeeping SQLAlchemy's create/drop events share (e.g. which
        #: PostgreSQL ENUM types this run has created already).
        self.memo: dict[str, Any] = {}
        if transactional_ddl is not None:
            self.transactional_ddl = transactional_ddl
        #: Set by the runtime while it runs online: sends answer-less statements
        #: in one round trip each (see :mod:`asyncmigrate.runtime.statements`).
        self.sender: StatementSender | None = None
        if self.as_sql and not self.literal_binds:
            self.literal_binds = True

    @classmethod
    def get_by_dialect(cls, dialect: Dialect) -> type[DefaultImpl]:
        """Return the implementation class registered for ``dialect``."""
        return impl_for_dialect(dialect)

    @property
    def bind(self) -> Connection | None:
        """The connection DDL runs on (a SQL-rendering mock offline)."""
        return self.connection

    def static_output(self, text: str) -> None:
        """Write ``text`` and a blank line to the offline output buffer."""
        if self.output_buffer is None:  # pragma: no cover - offline always has a buffer
            raise RuntimeError("No output buffer for offline SQL")
        self.output_buffer.write(text + "\n\n")
        self.output_buffer.flush()

    def _exec(
        self,
        construct: Executable | str,
        execution_options: Mapping[str, Any] | None = None,
        multiparams: Any = None,
        params: Mapping[str, Any] | None = None,
    ) -> CursorResult[Any] | None:
        if isinstance(construct, str):
            construct = text(construct)
        if self.as_sql:
            if multiparams is not None or params:
                raise TypeError("Execution arguments are not supported in offline (--sql) mode")
            if not isinstance(construct, ClauseElement):  # pragma: no cover - defensive
                raise TypeError(f"Cannot render {construct!r} as SQL")
            compile_kwargs = {"literal_binds": True} if self.literal_binds else {}
            compiled = construct.compile(dialect=self.dialect, compile_kwargs=compile_kwargs)
            self.static_output(
                str(compiled).replace("\t", "    ").strip() + self.command_terminator
            )
            return None
        if self.connection is None:  # pragma: no cover - online always has a connection
            raise RuntimeError("No connection to execute on")
        sender = self.sender
        if sender is not None and sender.send(construct, execution_options, multiparams, params):
            return None
        conn = self.connection
        if execution_options:
            conn = conn.execution_options(**execution_options)
        if multiparams is not None:
            return conn.execute(construct, multiparams)
        return conn.execute(construct, params or {})

    def execute(
        self, sql: Executable | str, execution_options: Mapping[str, Any] | None = None
    ) -> None:
        """Execute ``sql`` online, or render it offline."""
        self._exec(sql, execution_options)

    def emit_begin(self) -> None:
        """Write the offline BEGIN statement."""
        self.static_output("BEGIN" + self.command_terminator)

    def emit_commit(self) -> None:
        """Write the offline COMMIT statement."""
        self.static_output("COMMIT" + self.command_terminator)

    def start_migrations(self) -> None:
        """Hook called once before a run's first step."""

    def version_table_impl(
        self, *, version_table: str, version_table_schema: str | None, version_table_pk: bool
    ) -> Table:
        """Describe the version table: ``version_num VARCHAR(32) NOT NULL`` (+ primary key)."""
        table = Table(
            version_table,
            MetaData(),
            Column("version_num", String(32), nullable=False),
            schema=version_table_schema,
        )
        if version_table_pk:
            table.append_constraint(
                PrimaryKeyConstraint("version_num", name=f"{version_table}_pkc")
            )
        return table

    # -- batch mode hooks ------------------------------------------------------------------

    def requires_recreate_in_batch(self, batch: BatchOperationsImpl) -> bool:
        """Tell whether ``batch``'s changes need the table recreated (``recreate="auto"``)."""
        return False

    def prep_table_for_batch(self, recreate: TableRecreate, table: Table) -> None:
        """Prepare ``table`` before its replacement is created during a batch recreate."""

    def complete_reflected_table(self, table: Table) -> None:
        """Add to a table reflected for a batch recreate what reflection missed."""

    def rename_table_for_batch(self, temp_name: str, table_name: str, schema: str | None) -> None:
        """Rename a recreated table's copy into place."""
        self.rename_table(temp_name, table_name, schema=schema)

    def finish_table_for_batch(
        self, recreate: TableRecreate, table: Table, succeeded: bool
    ) -> None:
        """Finish a batch recreate, whether or not it succeeded (sequences, pragmas)."""

    def cast_for_batch_migrate(
        self, existing: Column[Any], transfer: dict[str, Any], new_type: TypeEngine[Any]
    ) -> None:
        """Cast a column's values while copying them into a recreated table, when needed."""
        if existing.type._type_affinity is not new_type._type_affinity:
            transfer["expr"] = cast(transfer["expr"], new_type)

    # -- tables ----------------------------------------------------------------------------

    @property
    def _comments_separate(self) -> bool:
        return bool(self.dialect.supports_comments and not self.dialect.inline_comments)

    def create_table(self, table: Table, **kw: Any) -> None:
        """Create ``table`` with its indexes and comments (and types its columns need)."""
        table.dispatch.before_create(table, self.connection, checkfirst=False, _ddl_runner=self)
        self._exec(CreateTable(table, **kw))
        table.dispatch.after_create(table, self.connection, checkfirst=False, _ddl_runner=self)
        for index in table.indexes:
            self._exec(CreateIndex(index))
        if self._comments_separate:
            if table.comment is not None:
                self.create_table_comment(table)
            for column in table.columns:
                if column.comment is not None:
                    self.create_column_comment(column)

    def drop_table(self, table: Table, **kw: Any) -> None:
        """Drop ``table``."""
        table.dispatch.before_drop(table, self.connection, checkfirst=False, _ddl_runner=self)
        self._exec(DropTable(table, **kw))
        table.dispatch.after_drop(table, self.connection, checkfirst=False, _ddl_runner=self)

    def rename_table(self, old_table_name: str, new_table_name: str, schema: str | None = None) -> None:
        """Rename a table within its schema."""
        self._exec(base.RenameTable(old_table_name, new_table_name, schema=schema))

    def create_table_comment(self, table: Table) -> None:
        """Set ``table.comment`` on the table."""
        self._exec(SetTableComment(table))

    def drop_table_comment(self, table: Table) -> None:
        """Remove the table's comment."""
        self._exec(DropTableComment(table))

    # -- columns ---------------------------------------------------------------------------

    def add_column(
        self,
        table_name: str,
        column: Column[Any],
        *,
        schema: str | None = None,
        if_not_exists: bool | None = None,
        inline_references: bool | None = None,
        inline_primary_key: bool | None = None,
        **kw: Any,
    ) -> None:
        """Add ``column`` to a table (constraints other than its own CHECKs come separately)."""
        self._exec(
            base.AddColumn(
                table_name,
                column,
                schema=schema,
                if_not_exists=if_not_exists,
                inline_references=inline_references,
                inline_primary_key=inline_primary_key,
            )
        )

    def drop_column(
        self,
        table_name: str,
        column: Column[Any],
        *,
        schema: str | None = None,
        if_exists: bool | None = None,
        **kw: Any,
    ) -> None:
        """Drop a column."""
        self._exec(base.DropColumn(table_name, column, schema=schema, if_exists=if_exists))

    def create_column_comment(self, column: Column[Any]) -> None:
        """Set ``column.comment`` on a column that belongs to a table."""
        self._exec(SetColumnComment(column))

    def alter_column(
        self,
        table_name: str,
        column_name: str,
        *,
        nullable: bool | None = None,
        server_default: ServerDefaultArgument = False,
        name: str | None = None,
        type_: TypeEngine[Any] | None = None,
        schema: str | None = None,
        autoincrement: bool | None = None,
        comment: str | Literal[False] | None = False,
        existing_comment: str | None = None,
        existing_type: TypeEngine[Any] | None = None,
        existing_server_default: ServerDefaultArgument = None,
        existing_nullable: bool | None = None,
        existing_autoincrement: bool | None = None,
        **kw: Any,
    ) -> None:
        """Change a column in place, one ``ALTER`` per aspect; the rename comes last."""
        if autoincrement is not None or existing_autoincrement is not None:
            log.warning("autoincrement / existing_autoincrement only apply to MySQL; ignored")
        known: dict[str, Any] = {
            "schema": schema,
            "existing_type": existing_type,
            "existing_server_default": existing_server_default,
            "existing_nullable": existing_nullable,
            "existing_comment": existing_comment,
        }
        using = kw.pop("postgresql_using", None)
        if using is not None and type_ is None:
            from ..exceptions import CommandError

            raise CommandError("postgresql_using must be used with the type_ parameter")
        for statement in self._alter_column_statements(
            table_name,
            column_name,
            nullable=nullable,
            server_default=server_default,
            type_=type_,
            using=using,
            comment=comment,
            known=known,
        ):
            self._exec(statement)
        if name is not None:
            self._exec(base.ColumnName(table_name, column_name, name, **known))

    def _alter_column_statements(
        self,
        table_name: str,
        column_name: str,
        *,
        nullable: bool | None,
        server_default: ServerDefaultArgument,
        type_: TypeEngine[Any] | None,
        using: Any,
        comment: str | Literal[False] | None,
        known: dict[str, Any],
    ) -> list[Executable]:
        statements: list[Executable] = []
        if type_ is not None:
            statements.append(
                base.ColumnType(table_name, column_name, type_, using=using, **known)
            )
        if nullable is not None:
            statements.append(base.ColumnNullable(table_name, column_name, nullable, **known))
        if server_default is not False:
            statements.append(
                self._server_default_statement(table_name, column_name, server_default, known)
            )
        if comment is not False:
            statements.append(base.ColumnComment(table_name, column_name, comment, **known))
        return statements

    def _server_default_statement(
        self, table_name: str, column_name: str, server_default: Any, known: dict[str, Any]
    ) -> Executable:
        existing = known["existing_server_default"]
        if base.is_computed_default(server_default, existing):
            return base.ComputedColumnDefault(table_name, column_name, server_default, **known)
        if base.is_identity_default(server_default, existing):
            return base.IdentityColumnDefault(
                table_name, column_name, server_default, impl=self, **known
            )
        return base.ColumnDefault(table_name, column_name, server_default, **known)

    # -- constraints and indexes ---------------------------------------------------------------

    def add_constraint(self, const: Constraint, **kw: Any) -> None:
        """Add a constraint with ``ALTER TABLE ... ADD`` (skipped when its type says so)."""
        rule = const._create_rule
        if rule is None or rule(self):
            self._exec(AddConstraint(const))  # kept out of CREATE TABLE (SQLAlchemy's default)

    def drop_constraint(self, const: Constraint, **kw: Any) -> None:
        """Drop a constraint by name (``if_exists=True`` adds ``IF EXISTS``)."""
        self._exec(DropConstraint(const, **kw))

    def create_index(self, index: Index, **kw: Any) -> None:
        """Create an index."""
        self._exec(CreateIndex(index, **kw))

    def drop_index(self, index: Index, **kw: Any) -> None:
        """Drop an index."""
        self._exec(DropIndex(index, **kw))

    # -- data --------------------------------------------------------------------------------

    @staticmethod
    def _literal(table: Table | TableClause, key: str, value: Any) -> InlineLiteral:
        return InlineLiteral(key, value, type_=_literal_type(table, key))

    def bulk_insert(
        self,
        table: Table | TableClause,
        rows: Sequence[Mapping[str, Any]],
        multiinsert: bool = True,
    ) -> None:
        """Insert ``rows`` (one INSERT with literal values per row offline)."""
        if not isinstance(rows, list):
            raise TypeError("List expected")
        if rows and not isinstance(rows[0], dict):
            raise TypeError("List of dictionaries expected")
        if self.as_sql:
            for row in rows:
                values = {
                    key: value if isinstance(value, InlineLiteral) else self._literal(table, key, value)
                    for key, value in row.items()
                }
                self._exec(table.insert().inline().values(**values))
            return
        if not rows:
            return
        if multiinsert:
            self._exec(table.insert().inline(), multiparams=rows)
        else:
            for row in rows:
                self._exec(table.insert().inline().values(**row))


def _literal_type(table: Table | TableClause, key: str) -> TypeEngine[Any] | None:
    """Return the column's type, or None (infer from the value) when it has none."""
    type_ = table.c[key].type
    return None if isinstance(type_, NullType) else type_


def impl_for_dialect(dialect: Dialect) -> type[DefaultImpl]:
    """Return the implementation registered for ``dialect`` (the default one if none)."""
    return _REGISTRY.get(dialect.name, DefaultImpl)
