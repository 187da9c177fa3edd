"""Compare the columns of a table: added, removed, and (aspect by aspect) changed.

The table comparator calls :func:`compare_columns` for every table that
exists on both sides; each column present on both sides goes through the
``"column"`` comparators (type, nullability, server default, comment), which
fill in one :class:`~asyncmigrate.operations.ops.AlterColumnOp`. Nullability
is compared here too.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from sqlalchemy import Computed, Identity

from ...masking import get_logger
from ...operations import ops
from .registry import DispatchResult, comparators

if TYPE_CHECKING:
    from sqlalchemy import Column, Table

    from ..context import AutogenContext

__all__ = ["compare_columns", "compare_nullable"]

log = get_logger("asyncmigrate.autogenerate")


@contextmanager
def compare_columns(
    autogen_context: AutogenContext,
    modify_table_ops: ops.ModifyTableOps,
    schema: str | None,
    table_name: str,
    conn_table: Table,
    metadata_table: Table,
) -> Iterator[None]:
    """Append column additions and changes; on exit (after the table comparators), removals.

    Removed columns come last so that the indexes and constraints on them
    are dropped first.
    """
    qualified = f"{schema}.{table_name}" if schema else table_name
    metadata_columns = {col.name: col for col in metadata_table.c if not col.system}
    conn_columns = {
        col.name: col
        for col in conn_table.c
        if autogen_context.run_name_filters(
            col.name, "column", {"table_name": table_name, "schema_name": schema}
        )
    }
    for name, column in metadata_columns.items():
        if name in conn_columns:
            continue
        if autogen_context.run_object_filters(column, name, "column", False, None):
            modify_table_ops.ops.append(
                ops.AddColumnOp.from_column_and_tablename(schema, table_name, column)
            )
            log.info("Detected added column '%s.%s'", qualified, name)
    for name, column in metadata_columns.items():
        conn_column = conn_columns.get(name)
        if conn_column is None:
            continue
        if not autogen_context.run_object_filters(column, name, "column", False, conn_column):
            continue
        alter = ops.AlterColumnOp(table_name, name, schema=schema)
        autogen_context.comparators.run(
            "column",
            autogen_context.dialect.name,
            autogen_context,
            alter,
            schema,
            table_name,
            name,
            conn_column,
            column,
        )
        if alter.has_changes():
            modify_table_ops.ops.append(alter)
    yield
    for name in sorted(set(conn_columns) - set(metadata_columns), key=list(conn_columns).index):
        conn_column = conn_columns[name]
        if autogen_context.run_object_filters(conn_column, name, "column", True, None):
            modify_table_ops.ops.append(
                ops.DropColumnOp.from_column_and_tablename(schema, table_name, conn_column)
            )
            log.info("Detected removed column '%s.%s'", qualified, name)


@comparators.dispatch_for("column", element="nullable")
def compare_nullable(
    autogen_context: AutogenContext,
    alter_column_op: ops.AlterColumnOp,
    schema: str | None,
    table_name: str,
    column_name: str,
    conn_col: Column[Any],
    metadata_col: Column[Any],
) -> DispatchResult:
    """Record the existing nullability and detect a change (not on identity/computed columns)."""
    alter_column_op.existing_nullable = conn_col.nullable
    if conn_col.nullable is metadata_col.nullable or bool(conn_col.nullable) == bool(
        metadata_col.nullable
    ):
        return DispatchResult.CONTINUE
    identity = isinstance(metadata_col.server_default, Identity) or isinstance(
        conn_col.server_default, Identity
    )
    computed = isinstance(metadata_col.server_default, Computed) or isinstance(
        conn_col.server_default, Computed
    )
    if identity or (computed and not _nullable_given(metadata_col)):
        log.info("Ignoring nullable change on generated column '%s.%s'", table_name, column_name)
        return DispatchResult.CONTINUE
    alter_column_op.modify_nullable = bool(metadata_col.nullable)
    log.info("Detected %s on column '%s.%s'",
             "NULL" if metadata_col.nullable else "NOT NULL", table_name, column_name)
    return DispatchResult.STOP


def _nullable_given(column: Column[Any]) -> bool:
    """Tell whether the model states ``nullable`` explicitly (SQLAlchemy keeps a marker)."""
    from sqlalchemy.sql.schema import NULL_UNSPECIFIED

    return getattr(column, "_user_defined_nullable", NULL_UNSPECIFIED) is not NULL_UNSPECIFIED
