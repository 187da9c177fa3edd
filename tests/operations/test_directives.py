"""Every core ``op`` directive against real databases, checked by reflection (and data)."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL

from .support import backend_of, plain_default, rows, run_ops, run_sync, snapshot


def _parent_child(op: Any) -> None:
    op.create_table(
        "parent",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("code", sa.String(10), nullable=False, unique=True),
        comment="parents",
    )
    op.create_table(
        "child",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("pid", sa.Integer, sa.ForeignKey("parent.id", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.String(50), server_default="anon", comment="who"),
        sa.Column("qty", sa.Integer, nullable=False, server_default="0"),
        sa.CheckConstraint("qty >= 0", name="ck_child_qty"),
        sa.Index("ix_child_name", "name"),
    )


async def test_create_table_and_drop_table(any_db: URL) -> None:
    await run_ops(any_db, _parent_child)
    schema = await snapshot(any_db)
    child, parent = schema["child"], schema["parent"]
    assert [c["name"] for c in child["columns"]] == ["id", "pid", "name", "qty"]
    assert child["pk"][1] == ("id",)
    assert [(fk[1], fk[2], fk[3], fk[4]) for fk in child["fks"]] == [
        (("pid",), "parent", ("id",), (("ondelete", "CASCADE"),))
    ]
    assert ("ix_child_name", ("name",), (), False) in child["indexes"]
    assert [name for name, _ in child["checks"]] == ["ck_child_qty"]
    assert [cols for _, cols in parent["uniques"]] == [("code",)]
    assert plain_default(next(c for c in child["columns"] if c["name"] == "qty")["default"]) == "0"
    if backend_of(any_db) != "sqlite":
        assert parent["comment"] == "parents"
        assert next(c for c in child["columns"] if c["name"] == "name")["comment"] == "who"

    def again(op: Any) -> None:
        op.create_table("parent", sa.Column("id", sa.Integer, primary_key=True), if_not_exists=True)
        op.drop_table("child")
        op.drop_table("child", if_exists=True)

    await run_ops(any_db, again)
    assert sorted(await snapshot(any_db)) == ["parent"]


async def test_create_table_returns_the_table_for_bulk_insert(any_db: URL) -> None:
    def work(op: Any) -> None:
        table = op.create_table(
            "t", sa.Column("id", sa.Integer, primary_key=True), sa.Column("v", sa.String(5))
        )
        assert isinstance(table, sa.Table)
        op.bulk_insert(table, [{"id": 1, "v": "a"}, {"id": 2, "v": "b"}])
        op.bulk_insert(table, [{"id": 3, "v": "c"}], multiinsert=False)
        op.bulk_insert(table, [])
        light = sa.table("t", sa.column("id", sa.Integer), sa.column("v", sa.String))
        op.bulk_insert(light, [{"id": 4, "v": "d"}])

    await run_ops(any_db, work)
    assert await rows(any_db, "SELECT id, v FROM t ORDER BY id") == [
        (1, "a"),
        (2, "b"),
        (3, "c"),
        (4, "d"),
    ]


async def test_bulk_insert_rejects_what_is_not_a_list_of_dicts(sqlite_db: URL) -> None:
    def work(op: Any) -> None:
        table = op.create_table("t", sa.Column("id", sa.Integer, primary_key=True))
        with pytest.raises(TypeError, match="List expected"):
            op.bulk_insert(table, ({"id": 1},))
        with pytest.raises(TypeError, match="dictionaries"):
            op.bulk_insert(table, [(1,)])

    await run_ops(sqlite_db, work)


async def test_add_column_and_drop_column_keep_data(any_db: URL) -> None:
    await run_ops(any_db, _parent_child)

    def work(op: Any) -> None:
        op.execute("INSERT INTO parent (id, code) VALUES (1, 'p')")
        op.execute("INSERT INTO child (id, pid, name) VALUES (1, 1, 'c')")
        op.add_column("child", sa.Column("score", sa.Integer, nullable=False, server_default="7"))
        op.add_column(
            "child", sa.Column("other", sa.Integer, sa.ForeignKey("parent.id"), comment="ref")
        )
        op.add_column("parent", sa.Column("label", sa.String(20)), if_not_exists=None)
        op.drop_column("parent", "label")

    await run_ops(any_db, work)
    schema = await snapshot(any_db)
    columns = {c["name"]: c for c in schema["child"]["columns"]}
    assert columns["score"]["nullable"] is False
    assert plain_default(columns["score"]["default"]) == "7"
    assert {fk[1] for fk in schema["child"]["fks"]} == {("pid",), ("other",)}
    assert [c["name"] for c in schema["parent"]["columns"]] == ["id", "code"]
    if backend_of(any_db) != "sqlite":
        assert columns["other"]["comment"] == "ref"
    assert await rows(any_db, "SELECT id, name, score, other FROM child") == [(1, "c", 7, None)]


async def test_add_column_with_primary_key_and_inline_references(pg_db: URL) -> None:
    def work(op: Any) -> None:
        op.create_table("p", sa.Column("id", sa.Integer, primary_key=True))
        op.create_table("c", sa.Column("x", sa.Integer))
        op.add_column(
            "c",
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
            inline_primary_key=True,
        )
        op.add_column(
            "c", sa.Column("pid", sa.Integer, sa.ForeignKey("p.id")), inline_references=True
        )

    await run_ops(pg_db, work)
    schema = await snapshot(pg_db)
    assert schema["c"]["pk"][1] == ("id",)
    assert [fk[1] for fk in schema["c"]["fks"]] == [("pid",)]


async def test_add_column_with_boolean_check_on_sqlite(sqlite_db: URL) -> None:
    def work(op: Any) -> None:
        op.create_table("t", sa.Column("id", sa.Integer, primary_key=True))
        op.add_column(
            "t",
            sa.Column(
                "flag",
                sa.Boolean(create_constraint=True, name="ck_flag"),
                nullable=False,
                server_default="0",
            ),
        )
        op.add_column("t", sa.Column("n", sa.Integer, sa.CheckConstraint("n > 0")))

    await run_ops(sqlite_db, work)
    sql = (await rows(sqlite_db, "SELECT sql FROM sqlite_master WHERE name = 't'"))[0][0]
    assert "CONSTRAINT ck_flag CHECK (flag IN (0, 1))" in sql
    assert "CHECK (n > 0)" in sql


async def test_alter_column_in_place(any_db: URL) -> None:
    backend = backend_of(any_db)

    def setup(op: Any) -> None:
        op.create_table(
            "t",
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("v", sa.Integer, nullable=True),
            sa.Column("s", sa.String(10), server_default="a"),
        )
        op.execute("INSERT INTO t (id, v, s) VALUES (1, 5, 'x')")

    await run_ops(any_db, setup)
    if backend == "sqlite":

        def sqlite_work(op: Any) -> None:
            op.alter_column("t", "v", new_column_name="w")
            op.alter_column("t", "s", comment="ignored: SQLite has no comments")
            with pytest.raises(NotImplementedError, match="batch_alter_table"):
                op.alter_column("t", "w", nullable=False)

        await run_ops(any_db, sqlite_work)
        assert [c["name"] for c in (await snapshot(any_db))["t"]["columns"]] == ["id", "w", "s"]
        return

    def work(op: Any) -> None:
        op.alter_column("t", "v", nullable=False, existing_type=sa.Integer)
        op.alter_column(
            "t", "v", type_=sa.BigInteger, existing_type=sa.Integer, existing_nullable=False
        )
        op.alter_column("t", "s", server_default="b", existing_type=sa.String(10))
        op.alter_column("t", "s", comment="the s", existing_type=sa.String(10),
                        existing_server_default="b")
        op.alter_column("t", "v", new_column_name="w", existing_type=sa.BigInteger,
                        existing_nullable=False)
        op.alter_column("t", "s", type_=sa.String(30), existing_type=sa.String(10),
                        existing_server_default="b", existing_comment="the s")

    await run_ops(any_db, work)
    columns = {c["name"]: c for c in (await snapshot(any_db))["t"]["columns"]}
    assert list(columns) == ["id", "w", "s"]
    assert columns["w"]["nullable"] is False
    assert columns["w"]["type"] == ("BIGINT" if backend == "postgresql" else "BIGINT(20)")
    assert columns["s"]["type"] == "VARCHAR(30)"
    assert columns["s"]["comment"] == "the s"
    assert plain_default(columns["s"]["default"]) == "b"

    def drop_default(op: Any) -> None:
        op.alter_column("t", "s", server_default=None, existing_type=sa.String(30),
                        existing_comment="the s")
        op.alter_column("t", "s", comment=None, existing_type=sa.String(30))

    await run_ops(any_db, drop_default)
    columns = {c["name"]: c for c in (await snapshot(any_db))["t"]["columns"]}
    assert columns["s"]["default"] in (None, "null")
    assert columns["s"]["comment"] is None
    assert await rows(any_db, "SELECT id, w, s FROM t") == [(1, 5, "x")]


async def test_alter_column_postgresql_using(pg_db: URL) -> None:
    def work(op: Any) -> None:
        op.create_table("t", sa.Column("v", sa.String(10)))
        op.execute("INSERT INTO t (v) VALUES ('42')")
        op.alter_column("t", "v", type_=sa.Integer, postgresql_using="v::integer")

    await run_ops(pg_db, work)
    assert (await snapshot(pg_db))["t"]["columns"][0]["type"] == "INTEGER"
    assert await rows(pg_db, "SELECT v FROM t") == [(42,)]


async def test_alter_column_using_needs_a_type(pg_db: URL) -> None:
    from asyncmigrate.exceptions import CommandError

    def work(op: Any) -> None:
        op.create_table("t", sa.Column("v", sa.String(10)))
        with pytest.raises(CommandError, match="postgresql_using"):
            op.alter_column("t", "v", postgresql_using="v::integer")

    await run_ops(pg_db, work)


async def test_indexes(any_db: URL) -> None:
    backend = backend_of(any_db)

    def work(op: Any) -> None:
        op.create_table(
            "t",
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("a", sa.String(20)),
            sa.Column("b", sa.Integer),
        )
        op.create_index("ix_t_a_b", "t", ["a", "b"])
        op.create_index("ix_t_b", "t", ["b"], unique=True)
        op.create_index("ix_gone", "t", ["a"])
        op.drop_index("ix_gone", table_name="t")
        if backend != "mysql" or any_db.get_backend_name() == "mysql":
            op.create_index("ix_t_b", "t", ["b"], if_not_exists=True)
        if backend == "postgresql":
            op.create_index("ix_partial", "t", ["a"], postgresql_where=sa.text("b > 0"))
            op.create_index("ix_expr", "t", [sa.text("lower(a)")])
        if backend == "sqlite":
            op.create_index("ix_partial", "t", ["a"], sqlite_where=sa.text("b > 0"))
            op.create_index("ix_expr", "t", [sa.func.lower(sa.column("a"))])
        op.drop_index("ix_never", table_name="t", if_exists=True)

    await run_ops(any_db, work)
    indexes = {ix[0]: ix for ix in (await snapshot(any_db))["t"]["indexes"]}
    assert indexes["ix_t_a_b"][1:] == (("a", "b"), (), False)
    assert indexes["ix_t_b"][3] is True
    assert "ix_gone" not in indexes
    if backend == "postgresql":
        assert "ix_partial" in indexes
        assert any("lower" in str(e) for e in indexes["ix_expr"][2])
    if backend == "sqlite":
        assert "ix_partial" in indexes
        stored = await rows(any_db, "SELECT sql FROM sqlite_master WHERE name = 'ix_expr'")
        assert "lower(a)" in stored[0][0]


async def test_constraints(any_db: URL) -> None:
    backend = backend_of(any_db)

    def setup(op: Any) -> None:
        op.create_table("p", sa.Column("id", sa.Integer, nullable=False))
        op.create_table("c", sa.Column("id", sa.Integer), sa.Column("pid", sa.Integer),
                        sa.Column("n", sa.Integer))

    await run_ops(any_db, setup)
    if backend == "sqlite":

        def refused(op: Any) -> None:
            for attempt in (
                lambda: op.create_primary_key("pk_p", "p", ["id"]),
                lambda: op.create_unique_constraint("uq_c_n", "c", ["n"]),
                lambda: op.create_foreign_key("fk_c_p", "c", "p", ["pid"], ["id"]),
                lambda: op.create_check_constraint("ck_c_n", "c", "n > 0"),
                lambda: op.drop_constraint("uq_c_n", "c", type_="unique"),
            ):
                with pytest.raises(NotImplementedError, match="batch"):
                    attempt()

        await run_ops(any_db, refused)
        return

    def work(op: Any) -> None:
        op.create_primary_key("pk_p", "p", ["id"])
        op.create_unique_constraint("uq_c_n", "c", ["n"])
        op.create_foreign_key("fk_c_p", "c", "p", ["pid"], ["id"], ondelete="SET NULL")
        op.create_check_constraint("ck_c_n", "c", sa.column("n") > 0)
        op.create_unique_constraint("uq_gone", "c", ["id", "n"])
        op.drop_constraint("uq_gone", "c", type_="unique")

    await run_ops(any_db, work)
    schema = await snapshot(any_db)
    assert schema["p"]["pk"][1] == ("id",)
    assert ("uq_c_n", ("n",)) in schema["c"]["uniques"]
    assert [fk[0] for fk in schema["c"]["fks"]] == ["fk_c_p"]
    assert [name for name, _ in schema["c"]["checks"]] == ["ck_c_n"]

    def drop_all(op: Any) -> None:
        op.drop_constraint("fk_c_p", "c", type_="foreignkey")
        op.drop_constraint("ck_c_n", "c", type_="check")
        op.drop_constraint("uq_c_n", "c", type_="unique")
        op.drop_constraint("pk_p", "p", type_="primary")

    await run_ops(any_db, drop_all)
    schema = await snapshot(any_db)
    assert schema["c"]["fks"] == []
    assert schema["c"]["checks"] == []
    assert [u for u in schema["c"]["uniques"] if u[0] == "uq_c_n"] == []
    assert schema["p"]["pk"][1] == ()


async def test_drop_constraint_if_exists(pg_db: URL) -> None:
    def work(op: Any) -> None:
        op.create_table("t", sa.Column("n", sa.Integer))
        op.drop_constraint("nope", "t", type_="check", if_exists=True)

    await run_ops(pg_db, work)


async def test_rename_table_and_table_comments(any_db: URL) -> None:
    backend = backend_of(any_db)

    def work(op: Any) -> None:
        op.create_table("old", sa.Column("id", sa.Integer, primary_key=True))
        op.execute("INSERT INTO old (id) VALUES (3)")
        op.rename_table("old", "new")
        op.create_table_comment("new", "first")
        op.create_table_comment("new", "second", existing_comment="first")

    await run_ops(any_db, work)
    schema = await snapshot(any_db)
    assert sorted(schema) == ["new"]
    assert await rows(any_db, "SELECT id FROM new") == [(3,)]
    if backend != "sqlite":
        assert schema["new"]["comment"] == "second"
    await run_ops(any_db, lambda op: op.drop_table_comment("new", existing_comment="second"))
    assert (await snapshot(any_db))["new"]["comment"] in (None, "")


async def test_execute_statements_and_inline_literals(any_db: URL) -> None:
    def work(op: Any) -> None:
        op.create_table("t", sa.Column("id", sa.Integer, primary_key=True), sa.Column("v", sa.String(10)))
        table = sa.table("t", sa.column("id", sa.Integer), sa.column("v", sa.String))
        op.execute(table.insert().values(id=1, v="a"))
        op.execute(table.insert().values(id=2, v=op.inline_literal("b")))
        op.execute(
            table.update().where(table.c.id == op.inline_literal(1)).values(v=op.inline_literal("z"))
        )
        op.execute("UPDATE t SET v = 'y' WHERE id = 2", execution_options={"no_parameters": True})
        result = op.get_bind().execute(sa.text("SELECT count(*) FROM t")).scalar()
        assert result == 2
        assert op.get_context().dialect.name == op.get_bind().dialect.name

    await run_ops(any_db, work)
    assert await rows(any_db, "SELECT id, v FROM t ORDER BY id") == [(1, "z"), (2, "y")]


async def test_naming_conventions_from_target_metadata(any_db: URL) -> None:
    backend = backend_of(any_db)
    md = sa.MetaData(
        naming_convention={
            "ix": "ix_%(column_0_label)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )

    def work(op: Any) -> None:
        op.create_table(
            "p",
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("code", sa.String(5), unique=True),
        )
        op.create_table(
            "c",
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("pid", sa.Integer),
            sa.Column("n", sa.Integer),
            sa.CheckConstraint("n > 0", name="positive"),
            sa.CheckConstraint("n < 100", name=op.f("exact_name")),
        )
        op.create_index(None, "c", ["n"])
        if backend != "sqlite":
            op.create_unique_constraint(None, "c", ["n"])
            op.create_foreign_key(None, "c", "p", ["pid"], ["id"])
            op.create_check_constraint("small", "c", "pid < 1000")

    await run_ops(any_db, work, target_metadata=md)
    schema = await snapshot(any_db)
    assert ("ix_c_n", ("n",), (), False) in schema["c"]["indexes"]
    check_names = {name for name, _ in schema["c"]["checks"]}
    assert {"ck_c_positive", "exact_name"} <= check_names
    if backend == "postgresql":
        assert schema["p"]["pk"][0] == "pk_p"
        assert [u[0] for u in schema["p"]["uniques"]] == ["uq_p_code"]
    if backend != "sqlite":
        assert ("uq_c_n", ("n",)) in schema["c"]["uniques"]
        assert [fk[0] for fk in schema["c"]["fks"]] == ["fk_c_pid_p"]
        assert "ck_c_small" in check_names


async def test_create_table_creates_postgresql_enum_types(pg_db: URL) -> None:
    def work(op: Any) -> None:
        mood = sa.Enum("sad", "happy", name="mood")
        op.create_table("a", sa.Column("m", mood))
        op.create_table("b", sa.Column("m", sa.Enum("sad", "happy", name="mood")))

    await run_ops(pg_db, work)
    assert await rows(pg_db, "SELECT typname FROM pg_type WHERE typname = 'mood'") == [("mood",)]


async def test_operations_in_a_postgresql_schema(pg_db: URL) -> None:
    def work(op: Any) -> None:
        op.execute("CREATE SCHEMA app")
        op.create_table("p", sa.Column("id", sa.Integer, primary_key=True), schema="app")
        op.create_table("t", sa.Column("id", sa.Integer, primary_key=True), sa.Column("pid", sa.Integer),
                        schema="app")
        op.add_column("t", sa.Column("x", sa.Integer), schema="app")
        op.alter_column("t", "x", new_column_name="y", schema="app")
        op.create_index("ix_y", "t", ["y"], schema="app")
        op.create_foreign_key("fk_t_p", "t", "p", ["pid"], ["id"], source_schema="app",
                              referent_schema="app")
        op.rename_table("t", "t2", schema="app")
        op.alter_column("t2", "y", comment="why", schema="app")
        op.drop_index("ix_y", table_name="t2", schema="app")
        op.drop_constraint("fk_t_p", "t2", type_="foreignkey", schema="app")
        op.drop_column("t2", "y", schema="app")

    await run_ops(pg_db, work)

    def inspect(conn: sa.Connection) -> Any:
        insp = sa.inspect(conn)
        return (
            sorted(insp.get_table_names(schema="app")),
            [c["name"] for c in insp.get_columns("t2", schema="app")],
        )

    assert await run_sync(pg_db, inspect) == (["p", "t2"], ["id", "pid"])


async def test_autocommit_block_for_concurrent_index(pg_db: URL) -> None:
    def work(conn: sa.Connection) -> None:
        from asyncmigrate.operations import Operations
        from asyncmigrate.runtime.migration import MigrationContext

        ctx = MigrationContext.configure(connection=conn)
        op = Operations(ctx)
        with ctx.begin_transaction():
            op.create_table("t", sa.Column("a", sa.Integer))
            with ctx.autocommit_block():
                op.create_index("ix_t_a", "t", ["a"], postgresql_concurrently=True)
            op.add_column("t", sa.Column("b", sa.Integer))

    await run_sync(pg_db, work)
    schema = (await snapshot(pg_db))["t"]
    assert [ix[0] for ix in schema["indexes"]] == ["ix_t_a"]
    assert [c["name"] for c in schema["columns"]] == ["a", "b"]
