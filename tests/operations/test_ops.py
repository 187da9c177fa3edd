"""Operation objects as data: attributes, mutability, reverse(), diff tuples, containers."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from asyncmigrate.operations import ops


def test_operations_change_in_place_and_replace_gives_a_changed_copy() -> None:
    op = ops.CreateIndexOp("ix_a", "t", ["a"], unique=True)
    changed = op.replace(unique=False, index_name="ix_b")
    assert (changed.unique, changed.index_name) == (False, "ix_b")
    assert (op.unique, op.index_name) == (True, "ix_a")
    with pytest.raises(AttributeError, match="no attribute"):
        op.replace(nonsense=1)
    # Alembic's cookbook rewriters set attributes in place.
    op.if_not_exists = True
    table = ops.CreateTableOp("t", [sa.Column("id", sa.Integer, primary_key=True)])
    table.if_not_exists = True
    assert (op.if_not_exists, table.if_not_exists) == (True, True)


def test_info_and_rewriter_bookkeeping_stay_writable() -> None:
    op = ops.DropTableOp("t")
    op.info["seen"] = True
    op._mutations = frozenset({"rewriter"})
    assert op.info == {"seen": True}
    assert op._mutations == frozenset({"rewriter"})


def test_containers_and_alter_column_are_mutable() -> None:
    alter = ops.AlterColumnOp("t", "c", existing_type=sa.Integer())
    alter.modify_nullable = False
    upgrade = ops.UpgradeOps(ops=[alter])
    upgrade.ops.append(ops.DropIndexOp("ix"))
    script = ops.MigrationScript("abc", upgrade, ops.DowngradeOps(), message="m")
    script.rev_id = "def"
    assert script.upgrade_ops is upgrade
    assert script.upgrade_ops_list == [upgrade]
    assert len(upgrade.ops) == 2
    assert alter.has_changes()


def test_migration_script_with_several_op_lists() -> None:
    first, second = ops.UpgradeOps(upgrade_token="a"), ops.UpgradeOps(upgrade_token="b")
    script = ops.MigrationScript("r", [first, second], [ops.DowngradeOps(), ops.DowngradeOps()])
    assert script.upgrade_ops_list == [first, second]
    with pytest.raises(ValueError, match="upgrade_ops_list"):
        _ = script.upgrade_ops
    with pytest.raises(ValueError, match="downgrade_ops_list"):
        _ = script.downgrade_ops
    with pytest.raises(TypeError):
        script.upgrade_ops = [ops.DowngradeOps()]  # type: ignore[list-item]
    assert ops.MigrationScript("r", ops.UpgradeOps(), ops.DowngradeOps()).imports == set()


def test_add_column_reverses_to_drop_column_and_back() -> None:
    col = sa.Column("x", sa.String(20), nullable=False)
    add = ops.AddColumnOp("t", col, schema="s", if_not_exists=True)
    drop = add.reverse()
    assert isinstance(drop, ops.DropColumnOp)
    assert (drop.table_name, drop.column_name, drop.schema, drop.if_exists) == ("t", "x", "s", True)
    assert drop.to_diff_tuple() == ("remove_column", "s", "t", col)
    again = drop.reverse()
    assert again.column is col
    assert again.if_not_exists is True
    assert add.to_diff_tuple() == ("add_column", "s", "t", col)
    with pytest.raises(ValueError, match="not reversible"):
        ops.DropColumnOp("t", "x").reverse()


def test_alter_column_reverse_swaps_modified_and_existing() -> None:
    op = ops.AlterColumnOp(
        "t",
        "c",
        existing_type=sa.Integer(),
        existing_nullable=True,
        existing_server_default="1",
        modify_type=sa.BigInteger(),
        modify_nullable=False,
        modify_server_default="2",
        modify_comment="new",
        existing_comment="old",
        postgresql_using="c::bigint",
    )
    back = op.reverse()
    assert isinstance(back.modify_type, sa.Integer)
    assert isinstance(back.existing_type, sa.BigInteger)
    assert (back.modify_nullable, back.existing_nullable) == (True, False)
    assert (back.modify_server_default, back.existing_server_default) == ("1", "2")
    assert (back.modify_comment, back.existing_comment) == ("old", "new")
    assert back.kw == {"postgresql_using": "c::bigint"}
    kinds = [diff[0] for diff in op.to_diff_tuple()]
    assert kinds == ["modify_type", "modify_nullable", "modify_default", "modify_comment"]
    assert not ops.AlterColumnOp("t", "c").has_changes()


def test_create_table_round_trips_through_drop_table() -> None:
    md = sa.MetaData()
    table = sa.Table(
        "t",
        md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(10), unique=True),
        comment="c",
        info={"k": 1},
    )
    create = ops.CreateTableOp.from_table(table)
    assert (create.comment, create.info) == ("c", {"k": 1})
    drop = create.reverse()
    assert isinstance(drop, ops.DropTableOp)
    rebuilt = drop.reverse().to_table()
    assert [c.name for c in rebuilt.columns] == ["id", "name"]
    uniques = [c for c in rebuilt.constraints if isinstance(c, sa.UniqueConstraint)]
    assert len(uniques) == 1  # not doubled by the unique=True flag
    assert drop.to_diff_tuple()[0] == "remove_table"
    assert create.to_diff_tuple()[0] == "add_table"


def test_constraint_ops_reverse_through_their_constraints() -> None:
    fk = ops.CreateForeignKeyOp(
        "fk_a", "child", "parent", ["pid"], ["id"], ondelete="CASCADE", source_schema="s"
    )
    assert fk.to_diff_tuple()[0] == "add_fk"
    drop = fk.reverse()
    assert (drop.constraint_name, drop.table_name, drop.constraint_type) == (
        "fk_a",
        "child",
        "foreignkey",
    )
    assert drop.to_diff_tuple()[0] == "remove_fk"
    recreated = drop.reverse()
    assert isinstance(recreated, ops.CreateForeignKeyOp)
    assert recreated.kw["ondelete"] == "CASCADE"
    assert (recreated.local_cols, recreated.remote_cols) == (["pid"], ["id"])

    uq = ops.CreateUniqueConstraintOp("uq", "t", ["a", "b"], deferrable=True)
    assert isinstance(uq.reverse().reverse(), ops.CreateUniqueConstraintOp)
    ck = ops.CreateCheckConstraintOp("ck", "t", "a > 1")
    assert ck.reverse().constraint_type == "check"
    pk = ops.CreatePrimaryKeyOp("pk", "t", ["id"])
    assert pk.reverse().constraint_type == "primary"
    with pytest.raises(ValueError, match="not known"):
        ops.DropConstraintOp("x", "t").reverse()


def test_index_and_comment_and_rename_reverses() -> None:
    create = ops.CreateIndexOp("ix", "t", ["a", "b"], unique=True, schema="s")
    drop = create.reverse()
    assert (drop.index_name, drop.table_name, drop.schema) == ("ix", "t", "s")
    assert drop.reverse().unique is True
    assert create.to_diff_tuple()[0] == "add_index"
    assert drop.to_diff_tuple()[0] == "remove_index"

    set_comment = ops.CreateTableCommentOp("t", "new", existing_comment="old")
    back = set_comment.reverse()
    assert isinstance(back, ops.CreateTableCommentOp)
    assert (back.comment, back.existing_comment) == ("old", "new")
    assert isinstance(ops.CreateTableCommentOp("t", "new").reverse(), ops.DropTableCommentOp)
    assert ops.DropTableCommentOp("t", existing_comment="old").reverse().comment == "old"

    rename = ops.RenameTableOp("a", "b", schema="s")
    assert (rename.reverse().table_name, rename.reverse().new_table_name) == ("b", "a")


def test_container_reverse_and_diffs() -> None:
    col = sa.Column("x", sa.Integer)
    upgrade = ops.UpgradeOps(
        ops=[
            ops.ModifyTableOps("t", [ops.AddColumnOp("t", col), ops.CreateIndexOp("ix", "t", ["x"])]),
        ]
    )
    downgrade = upgrade.reverse()
    assert isinstance(downgrade, ops.DowngradeOps)
    table_ops = downgrade.ops[0]
    assert isinstance(table_ops, ops.ModifyTableOps)
    assert [type(op).__name__ for op in table_ops.ops] == ["DropIndexOp", "DropColumnOp"]
    upgrade.ops.append(ops.ExecuteSQLOp("select 1"))
    assert [d[0] for d in upgrade.as_diffs()] == ["add_column", "add_index", "execute"]
    with pytest.raises(NotImplementedError):
        upgrade.reverse()  # raw SQL cannot be undone
    assert downgrade.reverse().ops[0].ops[0].column is col  # type: ignore[attr-defined]
    assert ops.UpgradeOps().is_empty()


def test_descriptions_are_human_readable() -> None:
    assert ops.AddColumnOp("t", sa.Column("x", sa.Integer), schema="s").description == (
        "Add column s.t.x"
    )
    assert str(ops.DropIndexOp("ix", "t")) == "Drop index ix on t"
    assert "nullable" in ops.AlterColumnOp("t", "c", modify_nullable=True).description
    assert ops.CreateTableOp("t", []).description == "Create table t"
    assert ops.ExecuteSQLOp("select 1").description == "Execute SQL: select 1"
    assert "fk" in ops.CreateForeignKeyOp("fk", "a", "b", ["x"], ["y"]).description
    assert repr(ops.RenameTableOp("a", "b")).startswith("RenameTableOp(")


def test_from_constraint_dispatches_on_constraint_kind() -> None:
    md = sa.MetaData()
    table = sa.Table(
        "t",
        md,
        sa.Column("id", sa.Integer),
        sa.Column("x", sa.Integer),
        sa.PrimaryKeyConstraint("id", name="pk_t"),
        sa.UniqueConstraint("x", name="uq_t"),
        sa.CheckConstraint("x > 0", name="ck_t"),
    )
    found = {type(ops.AddConstraintOp.from_constraint(c)).__name__ for c in table.constraints}
    assert found == {"CreatePrimaryKeyOp", "CreateUniqueConstraintOp", "CreateCheckConstraintOp"}
