"""PostgreSQL DDL: transactional DDL, ``ALTER COLUMN ... TYPE ... USING``, identity columns."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import Column, ForeignKeyConstraint, Identity, MetaData, inspect, text
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.schema import CreateIndex, Index, Table
from sqlalchemy.types import NULLTYPE

from .base import IdentityColumnDefault, alter_column, alter_table
from .impl import DefaultImpl

if TYPE_CHECKING:
    from sqlalchemy.sql.compiler import DDLCompiler

    from ..operations.batch import TableRecreate

__all__ = ["PostgresqlImpl"]

#: The options an identity can change with ``ALTER COLUMN ... SET <option>``.
_IDENTITY_OPTIONS = (
    "start",
    "increment",
    "minvalue",
    "maxvalue",
    "nominvalue",
    "nomaxvalue",
    "cycle",
    "cache",
)


class PostgresqlImpl(DefaultImpl):
    """Emit PostgreSQL DDL; everything runs inside the migration's transaction."""

    __dialect__ = "postgresql"
    transactional_ddl = True

    def create_index(self, index: Index, **kw: Any) -> None:
        """Create an index; ``postgresql_include`` columns need not be on the stand-in table."""
        table = index.table
        include = index.kwargs.get("postgresql_include") or ()
        if isinstance(table, Table):
            for name in include:
                if isinstance(name, str) and name not in table.c:
                    table.append_column(Column(name, NULLTYPE))
        self._exec(CreateIndex(index, **kw))

    def batch_column_reflect(self, inspector: Any, table: Table, column_info: Any) -> None:
        """Keep a reflected SERIAL column on its own sequence when the table is recreated."""
        default = column_info.get("default")
        if isinstance(default, str) and default.startswith("nextval("):
            column_info["autoincrement"] = False

    def prep_table_for_batch(self, recreate: TableRecreate, table: Table) -> None:
        """Free what the recreated table takes over: constraint names and serial sequences.

        Constraint names backed by an index share one namespace per schema, so
        the copy cannot be created while the original still holds them. A
        ``SERIAL`` column's sequence belongs to the original column and would
        be dropped with it; it is detached here and handed to the copy after.
        Foreign keys of other tables that refer to the original are dropped
        and re-created against the copy.
        """
        recreate.state["postgresql_referring"] = self._detach_referring_keys(table)
        for constraint in table.constraints:
            if constraint.name is None:
                continue
            if constraint.name in recreate.named_constraints or (
                constraint is table.primary_key and constraint.name == recreate.pk_name
            ):
                self.drop_constraint(constraint)
        owned: list[tuple[str, str]] = []
        if not self.as_sql and self.connection is not None:
            qualified = self._qualified(table)
            for column in table.columns:
                sequence = self.connection.execute(
                    text("SELECT pg_get_serial_sequence(:t, :c)"),
                    {"t": qualified, "c": column.name},
                ).scalar()
                if sequence and column.identity is None:
                    self._exec(f"ALTER SEQUENCE {sequence} OWNED BY NONE")
                    owned.append((sequence, column.name))
        recreate.state["postgresql_sequences"] = owned

    def _detach_referring_keys(self, table: Table) -> list[dict[str, Any]]:
        """Drop other tables' foreign keys to ``table``; return them for re-creation."""
        if self.as_sql or self.connection is None:
            return []
        inspector = inspect(self.connection)
        referring: list[dict[str, Any]] = []
        for name in inspector.get_table_names(schema=table.schema):
            if name == table.name:
                continue
            for fk in inspector.get_foreign_keys(name, schema=table.schema):
                same_schema = fk.get("referred_schema") in (None, table.schema)
                fk_name = fk.get("name")
                if fk["referred_table"] == table.name and same_schema and fk_name:
                    referring.append({**fk, "source_table": name})
                    self._exec(
                        f"ALTER TABLE {self._qualified_name(name, table.schema)} "
                        f"DROP CONSTRAINT {self.dialect.identifier_preparer.quote(fk_name)}"
                    )
        return referring

    def _reattach_referring_keys(
        self, recreate: TableRecreate, table: Table, renames: dict[str, str]
    ) -> None:
        for fk in recreate.state.get("postgresql_referring", ()):
            options = fk.get("options") or {}
            remote = [renames.get(col, col) for col in fk["referred_columns"]]
            metadata = MetaData()
            Table(table.name, metadata, *[Column(col, NULLTYPE) for col in remote],
                  schema=table.schema)
            source = Table(
                fk["source_table"],
                metadata,
                *[Column(col, NULLTYPE) for col in fk["constrained_columns"]],
                schema=table.schema,
            )
            prefix = f"{table.schema}." if table.schema else ""
            constraint = ForeignKeyConstraint(
                fk["constrained_columns"],
                [f"{prefix}{table.name}.{col}" for col in remote],
                name=fk["name"],
                onupdate=options.get("onupdate"),
                ondelete=options.get("ondelete"),
                deferrable=options.get("deferrable"),
                initially=options.get("initially"),
                match=options.get("match"),
            )
            source.append_constraint(constraint)
            self.add_constraint(constraint)

    def finish_table_for_batch(
        self, recreate: TableRecreate, table: Table, succeeded: bool
    ) -> None:
        """Give detached sequences back to the copy; move identity sequences past the data."""
        if not succeeded:
            return
        preparer = self.dialect.identifier_preparer
        qualified = preparer.format_table(table)
        renames = {
            recreate.table.c[key].name: column.name
            for key, column in recreate.columns.items()
            if key in recreate.table.c
        }
        self._reattach_referring_keys(recreate, table, renames)
        for sequence, column_name in recreate.state.get("postgresql_sequences", ()):
            new_name = renames.get(column_name)
            if new_name is not None:
                self._exec(
                    f"ALTER SEQUENCE {sequence} OWNED BY {qualified}.{preparer.quote(new_name)}"
                )
        for column in table.columns:
            if column.identity is not None:
                self._exec(
                    text(
                        f"SELECT setval(pg_get_serial_sequence(:t, :c), "
                        f"COALESCE(MAX({preparer.quote(column.name)}), 1), "
                        f"MAX({preparer.quote(column.name)}) IS NOT NULL) FROM {qualified}"
                    ).bindparams(t=self._qualified(table), c=column.name)
                )

    def _qualified(self, table: Table) -> str:
        return self._qualified_name(table.name, table.schema)

    def _qualified_name(self, name: str, schema: str | None) -> str:
        preparer = self.dialect.identifier_preparer
        quoted = preparer.quote(name)
        return f"{preparer.quote_schema(schema)}.{quoted}" if schema else quoted


@compiles(IdentityColumnDefault, "postgresql")
def _identity_default(element: IdentityColumnDefault, compiler: DDLCompiler, **kw: Any) -> str:
    prefix = (
        f"{alter_table(compiler, element.table_name, element.schema)} "
        f"{alter_column(compiler, element.column_name)}"
    )
    new = element.default
    old = element.existing_server_default
    if new is None:
        return f"{prefix} DROP IDENTITY"
    if not isinstance(old, Identity):
        identity: str = compiler.visit_identity_column(new)  # type: ignore[no-untyped-call]
        return f"{prefix} ADD {identity}"
    changes: list[str] = []
    if bool(new.always) != bool(old.always):
        changes.append("SET GENERATED " + ("ALWAYS" if new.always else "BY DEFAULT"))
    for option in sorted(_IDENTITY_OPTIONS):
        value = getattr(new, option)
        if value != getattr(old, option):
            rendered = compiler.get_identity_options(Identity(**{option: value}))
            if rendered:
                changes.append(f"SET {rendered}")
            elif option == "cycle":
                changes.append("SET NO CYCLE")
    if not changes:
        return f"{prefix} SET GENERATED " + ("ALWAYS" if new.always else "BY DEFAULT")
    return f"{prefix} " + " ".join(changes)
