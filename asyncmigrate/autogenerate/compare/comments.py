"""Compare table and column comments (where the dialect stores comments).

An empty comment and no comment are the same thing: most databases do not
tell them apart. A new table carries its comments in ``create_table``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ...masking import get_logger
from ...operations import ops
from .registry import DispatchResult, comparators

if TYPE_CHECKING:
    from sqlalchemy import Column, Table

    from ..context import AutogenContext

__all__ = ["compare_column_comment", "compare_table_comment"]

log = get_logger("asyncmigrate.autogenerate")


def _normalized(comment: str | None) -> str | None:
    return comment or None


@comparators.dispatch_for("column", element="comments")
def compare_column_comment(
    autogen_context: AutogenContext,
    alter_column_op: ops.AlterColumnOp,
    schema: str | None,
    table_name: str,
    column_name: str,
    conn_col: Column[Any],
    metadata_col: Column[Any],
) -> DispatchResult:
    """Record the existing column comment and detect a change."""
    if not autogen_context.dialect.supports_comments:
        return DispatchResult.CONTINUE
    ours = _normalized(metadata_col.comment)
    theirs = _normalized(conn_col.comment)
    if ours is None and theirs is None:
        return DispatchResult.CONTINUE
    alter_column_op.existing_comment = theirs
    if ours == theirs:
        return DispatchResult.CONTINUE
    alter_column_op.modify_comment = ours
    log.info("Detected column comment '%s.%s'", table_name, column_name)
    return DispatchResult.STOP


@comparators.dispatch_for("table", element="comments")
def compare_table_comment(
    autogen_context: AutogenContext,
    modify_table_ops: ops.ModifyTableOps,
    schema: str | None,
    table_name: str,
    conn_table: Table | None,
    metadata_table: Table | None,
) -> DispatchResult:
    """Detect a table comment set, changed or removed (tables on both sides only)."""
    if not autogen_context.dialect.supports_comments:
        return DispatchResult.CONTINUE
    if conn_table is None or metadata_table is None:
        return DispatchResult.CONTINUE
    ours = _normalized(metadata_table.comment)
    theirs = _normalized(conn_table.comment)
    if ours == theirs:
        return DispatchResult.CONTINUE
    if ours is None:
        modify_table_ops.ops.append(
            ops.DropTableCommentOp(table_name, existing_comment=theirs, schema=schema)
        )
    else:
        modify_table_ops.ops.append(
            ops.CreateTableCommentOp(table_name, ours, existing_comment=theirs, schema=schema)
        )
    log.info("Detected table comment change on '%s'", table_name)
    return DispatchResult.STOP
