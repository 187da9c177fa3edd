"""The Rewriter: per-class rewrites of the operations about to be written."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from asyncmigrate.autogenerate import Rewriter
from asyncmigrate.operations import ops


def script() -> ops.MigrationScript:
    upgrade = ops.UpgradeOps([
        ops.ModifyTableOps("t", [
            ops.AddColumnOp("t", sa.Column("a", sa.Integer, nullable=False)),
            ops.AddColumnOp("t", sa.Column("b", sa.Integer, nullable=False)),
        ]),
        ops.DropTableOp("old"),
    ])
    return ops.MigrationScript("r1", upgrade, upgrade.reverse())


def test_rewrites_replace_expand_and_drop_operations() -> None:
    writer = Rewriter()

    @writer.rewrites(ops.AddColumnOp)
    def nullable(context: Any, revision: Any, op: ops.AddColumnOp) -> Any:
        if op.column.name == "b":
            return None  # drop it
        column = op.column._copy()
        column.nullable = True
        return [op.replace(column=column), ops.CreateIndexOp("ix_a", "t", ["a"])]

    directives = [script()]
    writer(None, None, directives)  # type: ignore[arg-type]
    group = directives[0].upgrade_ops.ops[0]  # type: ignore[union-attr]
    assert isinstance(group, ops.ModifyTableOps)
    assert [type(op).__name__ for op in group.ops] == ["AddColumnOp", "CreateIndexOp"]
    assert group.ops[0].column.nullable is True  # type: ignore[attr-defined]


def test_a_rewriter_does_not_rewrite_its_own_output() -> None:
    writer = Rewriter()
    calls = []

    @writer.rewrites(ops.DropTableOp)
    def keep(context: Any, revision: Any, op: ops.DropTableOp) -> Any:
        calls.append(op.table_name)
        return op

    directives = [script()]
    writer(None, None, directives)  # type: ignore[arg-type]
    writer(None, None, directives)  # type: ignore[arg-type]
    assert calls == ["old"]


def test_chain_runs_rewriters_and_plain_hooks_in_order() -> None:
    first, second = Rewriter(), Rewriter()
    seen: list[str] = []

    @first.rewrites(ops.DropTableOp)
    def one(context: Any, revision: Any, op: ops.DropTableOp) -> Any:
        seen.append("first")
        return op.replace(table_name="older")

    @second.rewrites(ops.DropTableOp)
    def two(context: Any, revision: Any, op: ops.DropTableOp) -> Any:
        seen.append(f"second:{op.table_name}")
        return op

    def plain(context: Any, revision: Any, directives: list[Any]) -> None:
        seen.append("plain")

    directives = [script()]
    first.chain(second).chain(plain)(None, None, directives)  # type: ignore[arg-type]
    assert seen == ["first", "second:older", "plain"]


def test_whole_scripts_and_containers_can_be_rewritten() -> None:
    writer = Rewriter()

    @writer.rewrites(ops.MigrationScript)
    def rename(context: Any, revision: Any, op: ops.MigrationScript) -> Any:
        op.message = "rewritten"
        return op

    @writer.rewrites(ops.UpgradeOps)
    def two(context: Any, revision: Any, op: ops.UpgradeOps) -> Any:
        return [op, op]

    directives = [script()]
    with pytest.raises(ValueError, match="single object"):
        writer(None, None, directives)  # type: ignore[arg-type]
    assert directives[0].message == "rewritten"


def test_cookbook_rewriter_that_changes_operations_in_place() -> None:
    """Alembic's cookbook sets ``op.if_not_exists = True`` and returns the same op."""
    from asyncmigrate.autogenerate import render_python_code

    writer = Rewriter()

    @writer.rewrites(ops.CreateTableOp)
    @writer.rewrites(ops.CreateIndexOp)
    def if_not_exists(context: Any, revision: Any, op: Any) -> Any:
        op.if_not_exists = True
        return op

    upgrade = ops.UpgradeOps([
        ops.CreateTableOp("t", [sa.Column("id", sa.Integer, primary_key=True)]),
        ops.CreateIndexOp("ix_t_id", "t", ["id"]),
    ])
    directives = [ops.MigrationScript("r1", upgrade, ops.DowngradeOps())]
    writer(None, None, directives)  # type: ignore[arg-type]
    code = render_python_code(directives[0].upgrade_ops)  # type: ignore[arg-type]
    assert code.count("if_not_exists=True") == 2, code
