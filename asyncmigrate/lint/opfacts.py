"""Read operation objects into :mod:`~asyncmigrate.lint.changes` records.

Used where the rendered SQL cannot be read with PostgreSQL's parser
(MySQL/MariaDB and SQLite scripts) and for operations that wrote no SQL of
their own (a ``batch_alter_table`` block that recreated its table). Types are
compiled for the run's dialect and read back with :func:`pgsql.parse_type`,
so both readers spell them alike.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Column
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import sqltypes
from sqlalchemy.sql.elements import ClauseElement

from ..operations import ops
from .changes import (
    AddColumn,
    AddConstraint,
    AlterType,
    Change,
    CreateIndex,
    CreateTable,
    Default,
    DropColumn,
    DropIndex,
    DropTable,
    OtherStatement,
    Relation,
    RenameColumn,
    RenameTable,
    SetNotNull,
    SqlType,
    Volatility,
)
from .pgsql import parse_type, read_sql, volatility_of

__all__ = ["read_operation", "sql_type"]


def read_operation(operation: ops.MigrateOperation, dialect: Dialect) -> list[Change]:
    """The changes ``operation`` makes, read from the object itself."""
    if isinstance(operation, ops.ExecuteSQLOp):
        return read_sql(_sql_text(operation.sqltext, dialect))
    if isinstance(operation, ops.CreateTableOp):
        columns = tuple(
            (column.name, sql_type(column.type, dialect))
            for column in operation.columns
            if isinstance(column, Column)
        )
        return [CreateTable(relation=_relation(operation.table_name, operation.schema), columns=columns)]
    if isinstance(operation, ops.DropTableOp):
        return [DropTable(relation=_relation(operation.table_name, operation.schema))]
    if isinstance(operation, ops.RenameTableOp):
        return [RenameTable(relation=_relation(operation.table_name, operation.schema),
                            new_name=operation.new_table_name)]
    if isinstance(operation, ops.AddColumnOp):
        return [_add_column(operation, dialect)]
    if isinstance(operation, ops.DropColumnOp):
        return [DropColumn(relation=_relation(operation.table_name, operation.schema),
                           column=operation.column_name)]
    if isinstance(operation, ops.AlterColumnOp):
        return _alter_column(operation, dialect)
    if isinstance(operation, ops.CreateIndexOp):
        return [CreateIndex(
            relation=_relation(operation.table_name, operation.schema),
            index=operation.index_name,
            concurrently=bool(operation.kw.get("postgresql_concurrently")),
            unique=bool(operation.unique),
        )]
    if isinstance(operation, ops.DropIndexOp):
        table = operation.table_name
        return [DropIndex(
            index=operation.index_name or "?",
            relation=_relation(table, operation.schema) if table else None,
            concurrently=bool(operation.kw.get("postgresql_concurrently")),
        )]
    if isinstance(operation, ops.AddConstraintOp):
        return [_add_constraint(operation)]
    return [OtherStatement()]


def sql_type(type_: Any, dialect: Dialect) -> SqlType | None:
    """A SQLAlchemy type (class or instance) as a :class:`SqlType`, compiled for ``dialect``."""
    if type_ is None:
        return None
    try:
        instance = sqltypes.to_instance(type_)
        spelled = instance.compile(dialect=dialect)
    except Exception:  # a type the dialect cannot render: the rules then say "unknown"
        return None
    return parse_type(spelled.replace("`", ""))


def _relation(name: str, schema: str | None) -> Relation:
    return Relation(name, schema)


def _sql_text(sqltext: Any, dialect: Dialect) -> str:
    if isinstance(sqltext, str):
        return sqltext
    if isinstance(sqltext, ClauseElement):
        try:
            return str(sqltext.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
        except Exception:
            return str(sqltext)
    return str(sqltext)


def _add_column(operation: ops.AddColumnOp, dialect: Dialect) -> AddColumn:
    column = operation.column
    default: Default | None = None
    server_default = column.server_default
    arg = getattr(server_default, "arg", None)
    if arg is not None:
        text = arg if isinstance(arg, str) else _sql_text(arg, dialect)
        if isinstance(arg, str):
            default = Default(repr(arg), Volatility.CONSTANT)
        else:
            volatility, function = volatility_of(text)
            default = Default(text, volatility, function)
    if column.identity is not None:
        default = Default("GENERATED AS IDENTITY", Volatility.VOLATILE, "nextval")
    return AddColumn(
        relation=_relation(operation.table_name, operation.schema),
        column=column.name,
        type=sql_type(column.type, dialect),
        default=default,
        not_null=not column.nullable,
        generated=column.computed is not None and bool(getattr(column.computed, "persisted", True)),
    )


def _alter_column(operation: ops.AlterColumnOp, dialect: Dialect) -> list[Change]:
    relation = _relation(operation.table_name, operation.schema)
    changes: list[Change] = []
    if operation.modify_type is not None:
        changes.append(AlterType(
            relation=relation,
            column=operation.column_name,
            new=sql_type(operation.modify_type, dialect),
            old=sql_type(operation.existing_type, dialect),
            using="postgresql_using" in operation.kw,
        ))
    if operation.modify_nullable is False:
        changes.append(SetNotNull(relation=relation, column=operation.column_name))
    if operation.modify_name is not None:
        changes.append(RenameColumn(relation=relation, column=operation.column_name,
                                    new_name=operation.modify_name))
    return changes or [OtherStatement(relation=relation)]


def _add_constraint(operation: ops.AddConstraintOp) -> AddConstraint:
    kw: dict[str, Any] = getattr(operation, "kw", {}) or {}
    not_valid = bool(kw.get("postgresql_not_valid"))
    if isinstance(operation, ops.CreateForeignKeyOp):
        return AddConstraint(
            relation=_relation(operation.source_table, kw.get("source_schema")),
            name=operation.constraint_name,
            kind="foreign_key",
            not_valid=not_valid,
            referenced=_relation(operation.referent_table, kw.get("referent_schema")),
        )
    kinds = {
        ops.CreateCheckConstraintOp: "check",
        ops.CreateUniqueConstraintOp: "unique",
        ops.CreatePrimaryKeyOp: "primary_key",
        ops.CreateExcludeConstraintOp: "exclude",
    }
    kind = next((k for cls, k in kinds.items() if isinstance(operation, cls)), "other")
    return AddConstraint(
        relation=_relation(operation.table_name, operation.schema),
        name=operation.constraint_name,
        kind=kind,  # type: ignore[arg-type]
        not_valid=not_valid,
    )
