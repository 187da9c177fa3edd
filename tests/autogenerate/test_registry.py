"""The comparator registry: plugins, dialect qualifiers, priorities and STOP."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from asyncmigrate.autogenerate import DispatchPriority, DispatchResult, comparators
from asyncmigrate.autogenerate.compare.registry import Comparators
from asyncmigrate.operations import ops

from .. import backends
from .support import our_diffs, sync_connection


def test_priority_qualifier_and_stop() -> None:
    registry = Comparators()
    calls: list[str] = []

    @registry.dispatch_for("column", element="x", priority=DispatchPriority.LAST)
    def last(*args: Any) -> None:
        calls.append("last")

    @registry.dispatch_for("column", element="x", priority=DispatchPriority.FIRST)
    def first(*args: Any) -> DispatchResult:
        calls.append("first")
        return DispatchResult.STOP

    @registry.dispatch_for("column", "postgresql")
    def pg_only(*args: Any) -> None:
        calls.append("pg")

    @registry.dispatch_for("column")
    def always(*args: Any) -> DispatchResult:
        calls.append("always")
        return DispatchResult.STOP

    registry.run("column", "sqlite")
    assert calls == ["first", "always"]
    calls.clear()
    registry.run("column", "postgresql")
    assert calls == ["first", "pg", "always"]
    with pytest.raises(ValueError, match="Unknown comparison target"):
        registry.dispatch_for("nonsense")


class AuditOp(ops.MigrateOperation):
    """A plugin's operation: mark a table audited (or not)."""

    def __init__(self, table_name: str, on: bool = True) -> None:
        self.table_name = table_name
        self.on = on

    def reverse(self) -> AuditOp:
        return AuditOp(self.table_name, not self.on)

    def to_diff_tuple(self) -> tuple[Any, ...]:
        return ("audit", self.table_name, self.on)


def test_plugin_comparator_takes_part_in_autogenerate(tmp_path: Any) -> None:
    @comparators.dispatch_for("table")
    def require_comment(autogen_context: Any, modify: ops.ModifyTableOps, schema: Any,
                        table_name: str, conn_table: Any, metadata_table: Any) -> None:
        if metadata_table is not None and metadata_table.info.get("audited") and conn_table is not None:
            modify.ops.append(AuditOp(table_name))

    try:
        url = backends.sqlite_url(tmp_path / "db.sqlite")
        metadata = sa.MetaData()
        sa.Table("t", metadata, sa.Column("id", sa.Integer, primary_key=True), info={"audited": True})
        with sync_connection(url) as conn:
            metadata.create_all(conn)
            assert our_diffs(conn, metadata, {}) == [("audit", "t", True)]
    finally:
        comparators.remove(require_comment)
