"""SQLite DDL: what ``ALTER TABLE`` can do there, and when batch mode must recreate the table.

SQLite's ``ALTER TABLE`` renames tables and columns, adds columns and drops
them; it cannot change a column or add or drop a constraint. Those changes
go through :meth:`~asyncmigrate.operations.Operations.batch_alter_table`,
which copies the table (see :mod:`asyncmigrate.operations.batch`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Column,
    ForeignKeyConstraint,
    Index,
    UniqueConstraint,
    cast,
    inspect,
    text,
)
from sqlalchemy.engine import Connection
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.schema import Computed, Constraint, DefaultClause, Table
from sqlalchemy.sql.elements import ClauseElement

from ..exceptions import CommandError
from ..masking import get_logger
from .base import AddColumn, ColumnName, add_column, alter_table, format_column_name
from .impl import DefaultImpl
from .sqlite_schema import TableSpec, parse_create_index, parse_create_table

if TYPE_CHECKING:
    from sqlalchemy.sql.compiler import DDLCompiler
    from sqlalchemy.sql.type_api import TypeEngine

    from ..operations.batch import BatchOperationsImpl, TableRecreate
    from .base import ServerDefaultArgument

__all__ = ["SQLiteImpl"]

log = get_logger("asyncmigrate.ddl")

_BATCH_HINT = (
    "use op.batch_alter_table(), which recreates the table with the change (copy and move)"
)

#: Batch calls SQLite executes with a plain ALTER (or not at all) under ``recreate="auto"``.
_NO_RECREATE = frozenset(
    {
        "add_column",
        "create_index",
        "drop_index",
        "create_table_comment",
        "drop_table_comment",
        "create_column_comment",
    }
)


class SQLiteImpl(DefaultImpl):
    """Emit SQLite DDL; refuse in-place changes SQLite cannot make, pointing to batch mode."""

    __dialect__ = "sqlite"
    transactional_ddl = True
    #: ``ADD COLUMN`` is the only way SQLite adds a foreign key without recreating the table.
    add_column_references_inline = True

    def requires_recreate_in_batch(self, batch: BatchOperationsImpl) -> bool:
        """Recreate unless the batch only adds plain columns and creates or drops indexes."""
        for call in batch.batch:
            if call.name not in _NO_RECREATE:
                return True
            if call.name == "add_column":
                column: Column[Any] = call.args[1]
                if _needs_recreate_to_add(column):
                    return True
        return False

    def cast_for_batch_migrate(
        self, existing: Column[Any], transfer: dict[str, Any], new_type: TypeEngine[Any]
    ) -> None:
        """Cast copied values when the type's affinity changes (JSON is stored as text)."""
        if existing.type._type_affinity is not new_type._type_affinity and not isinstance(
            new_type, JSON
        ):
            transfer["expr"] = cast(transfer["expr"], new_type)

    # -- what SQLite's ALTER cannot do -----------------------------------------------------

    def add_constraint(self, const: Constraint, **kw: Any) -> None:
        """Refuse: SQLite cannot add a constraint to an existing table.

        A constraint that a column's type generates (the CHECK of a Boolean or
        Enum) was rendered inside ``ADD COLUMN`` already and is skipped.
        """
        if const._create_rule is None:
            raise NotImplementedError(
                f"SQLite cannot add a constraint to an existing table; {_BATCH_HINT}"
            )

    def drop_constraint(self, const: Constraint, **kw: Any) -> None:
        """Refuse: SQLite cannot drop a constraint from an existing table."""
        if const._create_rule is None:
            raise NotImplementedError(
                f"SQLite cannot drop a constraint from an existing table; {_BATCH_HINT}"
            )

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
        """Rename a column; any other change needs batch mode on SQLite.

        Comments do not exist in SQLite, so a comment change is ignored.
        """
        changes = [
            label
            for label, changed in (
                ("nullable", nullable is not None),
                ("server_default", server_default is not False),
                ("type_", type_ is not None),
            )
            if changed
        ]
        if changes:
            raise NotImplementedError(
                f"SQLite cannot alter {', '.join(changes)} of column "
                f"'{table_name}.{column_name}' in place; {_BATCH_HINT}"
            )
        if name is not None:
            self._exec(ColumnName(table_name, column_name, name, schema=schema))

    def complete_reflected_table(self, table: Table) -> None:
        """Restore what reflection misses from the stored CREATE statements.

        Column-level CHECK and UNIQUE constraints, ``AUTOINCREMENT``,
        generated columns, and indexes with expressions, ``COLLATE`` or
        ``DESC`` are read from ``sqlite_master`` so a recreate keeps them.
        """
        if self.connection is None or self.as_sql:
            return
        master = (
            f"{self.dialect.identifier_preparer.quote_schema(table.schema)}.sqlite_master"
            if table.schema
            else "sqlite_master"
        )
        table_sql = self.connection.execute(
            text(f"SELECT sql FROM {master} WHERE type = 'table' AND name = :name"),
            {"name": table.name},
        ).scalar()
        if table_sql:
            _complete_from_table_sql(table, parse_create_table(table_sql))
        self._complete_foreign_key_actions(table)
        index_rows = self.connection.execute(
            text(
                f"SELECT sql FROM {master} WHERE type = 'index' AND tbl_name = :name "
                f"AND sql IS NOT NULL"
            ),
            {"name": table.name},
        ).all()
        for index in list(table.indexes):
            table.indexes.discard(index)
        for (index_sql,) in index_rows:
            spec = parse_create_index(index_sql)
            kwargs: dict[str, Any] = {}
            if spec.where:
                kwargs["sqlite_where"] = text(spec.where)
            Index(
                spec.name,
                *[text(expression) for expression in spec.expressions],
                unique=spec.unique,
                _table=table,
                **kwargs,
            )

    def prep_table_for_batch(self, recreate: TableRecreate, table: Table) -> None:
        """Refuse a recreate that foreign key enforcement would turn into lost rows.

        With ``PRAGMA foreign_keys`` on, dropping the original table deletes
        its rows first, firing the ``ON DELETE`` actions (or errors) of every
        row that refers to it. The pragma cannot be switched off inside the
        migration's transaction, so when such rows exist the recreate stops.

        :raises CommandError: when enforcement is on and rows refer to the table.
        """
        if self.as_sql or self.connection is None:
            return
        if not self.connection.exec_driver_sql("PRAGMA foreign_keys").scalar():
            return
        referring = _rows_referring_to(self.connection, table)
        if referring:
            raise CommandError(
                f"Cannot recreate table '{table.name}' while PRAGMA foreign_keys is on: "
                f"rows of {', '.join(sorted(referring))} refer to it, and dropping the "
                f"original would apply their ON DELETE actions. Switch foreign_keys off "
                f"before the migration's transaction begins (e.g. in env.py)"
            )

    def _complete_foreign_key_actions(self, table: Table) -> None:
        """Fill in ON DELETE/ON UPDATE of column-level REFERENCES, which reflection drops."""
        assert self.connection is not None
        name = self.dialect.identifier_preparer.quote(table.name)
        pragma = (
            f"PRAGMA {self.dialect.identifier_preparer.quote_schema(table.schema)}."
            f"foreign_key_list({name})"
            if table.schema
            else f"PRAGMA foreign_key_list({name})"
        )
        actions: dict[tuple[tuple[str, ...], str], tuple[str, str]] = {}
        grouped: dict[int, list[Any]] = {}
        for row in self.connection.exec_driver_sql(pragma):
            grouped.setdefault(row[0], []).append(row)
        for fk_rows in grouped.values():
            fk_rows.sort(key=lambda r: r[1])
            key = (tuple(r[3] for r in fk_rows), fk_rows[0][2])
            actions[key] = (fk_rows[0][5], fk_rows[0][6])
        for const in table.constraints:
            if not isinstance(const, ForeignKeyConstraint) or not const.elements:
                continue
            target = const.elements[0]._get_colspec().split(".")[-2]
            found = actions.get((tuple(el.parent.name for el in const.elements), target))
            if found is None:
                continue
            on_update, on_delete = found
            if const.onupdate is None and on_update and on_update != "NO ACTION":
                const.onupdate = on_update
            if const.ondelete is None and on_delete and on_delete != "NO ACTION":
                const.ondelete = on_delete

    def rename_table_for_batch(self, temp_name: str, table_name: str, schema: str | None) -> None:
        """Rename the copy into place without SQLite re-checking views and triggers.

        While the original table is gone, views over it do not resolve; with
        ``legacy_alter_table`` the rename leaves them alone and they work
        again once the copy has the name.
        """
        self._exec("PRAGMA legacy_alter_table = ON")
        try:
            self.rename_table(temp_name, table_name, schema=schema)
        finally:
            self._exec("PRAGMA legacy_alter_table = OFF")

    def create_table_comment(self, table: Table) -> None:
        """Do nothing: SQLite has no comments."""
        log.debug("SQLite has no table comments; skipping comment on %s", table.name)

    def drop_table_comment(self, table: Table) -> None:
        """Do nothing: SQLite has no comments."""

    def create_column_comment(self, column: Column[Any]) -> None:
        """Do nothing: SQLite has no comments."""


def _rows_referring_to(connection: Connection, table: Table) -> set[str]:
    """Return the tables holding rows whose foreign keys point at ``table``."""
    inspector = inspect(connection)
    quote = connection.dialect.identifier_preparer.quote
    found: set[str] = set()
    for name in inspector.get_table_names(schema=table.schema):
        for fk in inspector.get_foreign_keys(name, schema=table.schema):
            if fk["referred_table"] != table.name:
                continue
            condition = " AND ".join(f"{quote(col)} IS NOT NULL" for col in fk["constrained_columns"])
            query = f"SELECT 1 FROM {quote(name)} WHERE {condition} LIMIT 1"
            if connection.exec_driver_sql(query).first() is not None:
                found.add(name)
    return found


def _complete_from_table_sql(table: Table, spec: TableSpec) -> None:
    for const in list(table.constraints):
        if isinstance(const, CheckConstraint):
            table.constraints.discard(const)
    for name, sqltext in spec.checks:
        table.append_constraint(CheckConstraint(text(sqltext), name=name))
    uniques = {
        tuple(col.name for col in const.columns)
        for const in table.constraints
        if isinstance(const, UniqueConstraint)
    }
    for column_spec in spec.columns:
        column = table.c.get(column_spec.name)
        if column is None:
            continue
        for name, sqltext in column_spec.checks:
            table.append_constraint(CheckConstraint(text(sqltext), name=name))
        if column_spec.unique and (column_spec.name,) not in uniques:
            table.append_constraint(UniqueConstraint(column, name=column_spec.unique_name))
        if column_spec.autoincrement:
            table.dialect_kwargs["sqlite_autoincrement"] = True
        if column_spec.generated is not None:
            column.server_default = None
            column.computed = None
            Computed(text(column_spec.generated), persisted=column_spec.stored)._set_parent(column)


def _needs_recreate_to_add(column: Column[Any]) -> bool:
    default = column.server_default
    if isinstance(default, DefaultClause) and isinstance(default.arg, ClauseElement):
        return True  # SQLite's ADD COLUMN takes only constant defaults
    if isinstance(default, Computed) and default.persisted:
        return True  # ... and no STORED generated columns
    return bool(column.primary_key or column.unique)


@compiles(ColumnName, "sqlite")
def _column_name(element: ColumnName, compiler: DDLCompiler, **kw: Any) -> str:
    return (
        f"{alter_table(compiler, element.table_name, element.schema)} RENAME COLUMN "
        f"{format_column_name(compiler, element.column_name)} TO "
        f"{format_column_name(compiler, element.newname)}"
    )


@compiles(AddColumn, "sqlite")
def _add_column(element: AddColumn, compiler: DDLCompiler, **kw: Any) -> str:
    column = element.column
    clause = add_column(
        compiler,
        column,
        if_not_exists=element.if_not_exists,
        inline_references=True,
        inline_primary_key=element.inline_primary_key,
    )
    # The CHECK a Boolean/Enum type generates lives on the table, not the
    # column; SQLite can only take it inside ADD COLUMN.
    table = column.table if isinstance(column.table, Table) else None
    if table is not None:
        for constraint in table.constraints:
            if (
                getattr(constraint, "_type_bound", False)
                and constraint._create_rule is not None
                and constraint._create_rule(compiler)
                and {c.name for c in getattr(constraint, "columns", ())} <= {column.name}
            ):
                clause += " " + compiler.process(constraint)
    return f"{alter_table(compiler, element.table_name, element.schema)} {clause}"
