"""Execute each built-in operation through the dialect implementation.

One function per operation class, registered with
:meth:`Operations.implementation_for`: it builds the SQLAlchemy objects the
operation describes (through :class:`~asyncmigrate.operations.schemaobj.SchemaObjects`)
and calls the implementation's DDL vocabulary (``add_column``,
``add_constraint``, ...). ``operations.impl`` is the dialect's
:class:`~asyncmigrate.ddl.impl.DefaultImpl` -- or, inside
``batch_alter_table``, the batch recorder, which speaks the same vocabulary.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import Column, ForeignKeyConstraint, PrimaryKeyConstraint, Table
from sqlalchemy.schema import Constraint
from sqlalchemy.sql import sqltypes

from . import ops
from .base import Operations

if TYPE_CHECKING:
    from sqlalchemy.sql.type_api import TypeEngine

__all__ = [
    "add_column",
    "alter_column",
    "bulk_insert",
    "create_constraint",
    "create_index",
    "create_table",
    "create_table_comment",
    "drop_column",
    "drop_constraint",
    "drop_index",
    "drop_table",
    "drop_table_comment",
    "execute_sql",
    "rename_table",
]


def _type_bound_constraints(operations: Operations, table: Table) -> list[Constraint]:
    """Return the constraints a column type generates that this dialect would create."""
    found: list[Constraint] = []
    for constraint in table.constraints:
        if isinstance(constraint, PrimaryKeyConstraint):
            continue
        rule = constraint._create_rule
        if rule is None or rule(operations.impl):
            found.append(constraint)
    return found


def _as_type(value: Any) -> TypeEngine[Any] | None:
    return sqltypes.to_instance(value) if value is not None else None


@Operations.implementation_for(ops.AlterColumnOp)
def alter_column(operations: Operations, operation: ops.AlterColumnOp) -> None:
    """Alter a column; a type change also swaps the CHECKs the old and new types generate."""
    schema_obj = operations.schema_obj
    existing_type = _as_type(operation.existing_type)
    new_type = _as_type(operation.modify_type)
    table_name, column_name, schema = (
        operation.table_name,
        operation.column_name,
        operation.schema,
    )
    if existing_type is not None and new_type is not None:
        old = schema_obj.table(table_name, Column(column_name, existing_type), schema=schema)
        for constraint in _type_bound_constraints(operations, old):
            operations.impl.drop_constraint(constraint)
    operations.impl.alter_column(
        table_name,
        column_name,
        nullable=operation.modify_nullable,
        server_default=operation.modify_server_default,
        name=operation.modify_name,
        type_=new_type,
        schema=schema,
        existing_type=existing_type,
        existing_server_default=operation.existing_server_default,
        existing_nullable=operation.existing_nullable,
        comment=operation.modify_comment,
        existing_comment=operation.existing_comment,
        **operation.kw,
    )
    if new_type is not None:
        final_name = operation.modify_name or column_name
        new = schema_obj.table(table_name, Column(final_name, new_type), schema=schema)
        for constraint in _type_bound_constraints(operations, new):
            operations.impl.add_constraint(constraint)


@Operations.implementation_for(ops.AddColumnOp)
def add_column(operations: Operations, operation: ops.AddColumnOp) -> None:
    """Add a column, then its foreign keys, unique constraints, CHECKs, indexes and comment."""
    impl = operations.impl
    column = operation.column
    if column.table is not None:
        column = column._copy()
    table = operations.schema_obj.table(operation.table_name, column, schema=operation.schema)
    inline = bool(operation.inline_references or impl.add_column_references_inline)
    inline_fk = (
        inline
        and len(column.foreign_keys) == 1
        and len(next(iter(column.foreign_keys)).constraint.columns) == 1  # type: ignore[union-attr]
    )
    impl.add_column(
        operation.table_name,
        column,
        schema=operation.schema,
        if_not_exists=operation.if_not_exists,
        inline_references=inline_fk,
        inline_primary_key=operation.inline_primary_key,
        **operation.kw,
    )
    for constraint in table.constraints:
        if isinstance(constraint, PrimaryKeyConstraint):
            continue
        if inline_fk and isinstance(constraint, ForeignKeyConstraint):
            continue
        impl.add_constraint(constraint)
    for index in table.indexes:
        impl.create_index(index)
    dialect = impl.dialect
    if column.comment is not None and dialect.supports_comments and not dialect.inline_comments:
        impl.create_column_comment(column)


@Operations.implementation_for(ops.DropColumnOp)
def drop_column(operations: Operations, operation: ops.DropColumnOp) -> None:
    """Drop a column."""
    operations.impl.drop_column(
        operation.table_name,
        operation.to_column(operations._context),
        schema=operation.schema,
        if_exists=operation.if_exists,
        **operation.kw,
    )


@Operations.implementation_for(ops.CreateTableOp)
def create_table(operations: Operations, operation: ops.CreateTableOp) -> Table:
    """Create a table and return the ``Table`` object built for it."""
    table = operation.to_table(operations._context)
    kw = {} if operation.if_not_exists is None else {"if_not_exists": operation.if_not_exists}
    operations.impl.create_table(table, **kw)
    return table


@Operations.implementation_for(ops.DropTableOp)
def drop_table(operations: Operations, operation: ops.DropTableOp) -> None:
    """Drop a table."""
    kw = {} if operation.if_exists is None else {"if_exists": operation.if_exists}
    operations.impl.drop_table(operation.to_table(operations._context), **kw)


@Operations.implementation_for(ops.RenameTableOp)
def rename_table(operations: Operations, operation: ops.RenameTableOp) -> None:
    """Rename a table."""
    operations.impl.rename_table(
        operation.table_name, operation.new_table_name, schema=operation.schema
    )


@Operations.implementation_for(ops.CreateTableCommentOp)
def create_table_comment(operations: Operations, operation: ops.CreateTableCommentOp) -> None:
    """Set a table comment."""
    operations.impl.create_table_comment(operation.to_table(operations._context))


@Operations.implementation_for(ops.DropTableCommentOp)
def drop_table_comment(operations: Operations, operation: ops.DropTableCommentOp) -> None:
    """Remove a table comment."""
    operations.impl.drop_table_comment(operation.to_table(operations._context))


@Operations.implementation_for(ops.CreateIndexOp)
def create_index(operations: Operations, operation: ops.CreateIndexOp) -> None:
    """Create an index."""
    index = operation.to_index(operations._context)
    kw = {} if operation.if_not_exists is None else {"if_not_exists": operation.if_not_exists}
    operations.impl.create_index(index, **kw)


@Operations.implementation_for(ops.DropIndexOp)
def drop_index(operations: Operations, operation: ops.DropIndexOp) -> None:
    """Drop an index."""
    kw = {} if operation.if_exists is None else {"if_exists": operation.if_exists}
    operations.impl.drop_index(operation.to_index(operations._context), **kw)


@Operations.implementation_for(ops.AddConstraintOp)
def create_constraint(operations: Operations, operation: ops.AddConstraintOp) -> None:
    """Add a constraint (primary key, unique, foreign key, check, exclude)."""
    operations.impl.add_constraint(operation.to_constraint(operations._context))


@Operations.implementation_for(ops.DropConstraintOp)
def drop_constraint(operations: Operations, operation: ops.DropConstraintOp) -> None:
    """Drop a constraint by name and kind."""
    kw = {} if operation.if_exists is None else {"if_exists": operation.if_exists}
    constraint = operations.schema_obj.generic_constraint(
        operation.constraint_name,
        operation.table_name,
        operation.constraint_type,
        schema=operation.schema,
    )
    operations.impl.drop_constraint(constraint, **kw)


@Operations.implementation_for(ops.BulkInsertOp)
def bulk_insert(operations: Operations, operation: ops.BulkInsertOp) -> None:
    """Insert rows."""
    operations.impl.bulk_insert(
        operation.table, operation.rows, multiinsert=operation.multiinsert
    )


@Operations.implementation_for(ops.ExecuteSQLOp)
def execute_sql(operations: Operations, operation: ops.ExecuteSQLOp) -> None:
    """Execute SQL on the migration's connection (always outside batch recording)."""
    operations._context.impl.execute(
        operation.sqltext, execution_options=operation.execution_options
    )
