"""Batch mode: SQLite table recreate keeps definition and data; plain ALTERs elsewhere."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL

from asyncmigrate.exceptions import CommandError

from .support import backend_of, execute, offline_sql, rows, run_ops, snapshot

RICH_TABLE = """
CREATE TABLE item (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    code VARCHAR(10) NOT NULL UNIQUE,
    qty INTEGER NOT NULL DEFAULT 0 CHECK (qty >= 0),
    price NUMERIC(10, 2) CONSTRAINT ck_price CHECK (price > 0),
    parent_id INTEGER REFERENCES item (id) ON DELETE SET NULL,
    owner_id INTEGER,
    label VARCHAR(20) COLLATE NOCASE,
    doubled INTEGER GENERATED ALWAYS AS (qty * 2) STORED,
    flag BOOLEAN NOT NULL DEFAULT 1,
    CONSTRAINT fk_owner FOREIGN KEY (owner_id) REFERENCES owner (id),
    CHECK (length(code) > 1),
    CONSTRAINT uq_label_owner UNIQUE (label, owner_id)
)
"""

RICH_SETUP = [
    "CREATE TABLE owner (id INTEGER PRIMARY KEY, name VARCHAR(20))",
    RICH_TABLE,
    "CREATE INDEX ix_item_label ON item (label COLLATE NOCASE DESC)",
    "CREATE INDEX ix_item_lower ON item (lower(code))",
    "CREATE INDEX ix_item_partial ON item (qty) WHERE qty > 10",
    "CREATE UNIQUE INDEX ix_item_price_owner ON item (price, owner_id)",
    "CREATE VIEW item_view AS SELECT id, code FROM item",
    "INSERT INTO owner (id, name) VALUES (1, 'o1'), (2, 'o2')",
    "INSERT INTO item (id, code, qty, price, parent_id, owner_id, label) VALUES "
    "(1, 'aa', 1, 1.5, NULL, 1, 'x'), (2, 'bb', 20, 2.5, 1, 2, 'y'), (3, 'cc', 0, 3.5, 2, NULL, 'z')",
]

ITEM_ROWS = "SELECT id, code, qty, price, parent_id, owner_id, label, doubled, flag FROM item ORDER BY id"


async def _stored_sql(url: URL, name: str) -> str:
    found = await rows(url, f"SELECT sql FROM sqlite_master WHERE name = '{name}'")
    return str(found[0][0]) if found else ""


async def test_recreate_keeps_everything_sqlite_reflection_misses(sqlite_db: URL) -> None:
    await execute(sqlite_db, *RICH_SETUP)
    before_rows = await rows(sqlite_db, ITEM_ROWS)
    before = await snapshot(sqlite_db)

    def noop_recreate(op: Any) -> None:
        with op.batch_alter_table("item", recreate="always"):
            pass

    await run_ops(sqlite_db, noop_recreate)
    assert await rows(sqlite_db, ITEM_ROWS) == before_rows
    after = await snapshot(sqlite_db)
    # the column-level UNIQUE comes back table-level, which SQLAlchemy can reflect
    assert after["item"]["uniques"] == sorted([*before["item"]["uniques"], ("", ("code",))])
    after["item"]["uniques"] = before["item"]["uniques"]
    # ... and so is the ON DELETE of the column-level REFERENCES, which SQLAlchemy misses
    assert (("ondelete", "SET NULL"),) in [fk[4] for fk in after["item"]["fks"]]
    after["item"]["fks"] = before["item"]["fks"]
    assert after == before
    sql = await _stored_sql(sqlite_db, "item")
    for fragment in (
        "AUTOINCREMENT",
        "UNIQUE (code)",
        "CHECK (qty >= 0)",
        "CONSTRAINT ck_price CHECK (price > 0)",
        "CHECK (length(code) > 1)",
        "REFERENCES item (id) ON DELETE SET NULL",
        "CONSTRAINT fk_owner FOREIGN KEY(owner_id) REFERENCES owner (id)",
        "GENERATED ALWAYS AS (qty * 2) STORED",
    ):
        assert fragment in sql, fragment
    assert "lower(code)" in await _stored_sql(sqlite_db, "ix_item_lower")
    assert "COLLATE NOCASE DESC" in await _stored_sql(sqlite_db, "ix_item_label")
    assert "WHERE qty > 10" in await _stored_sql(sqlite_db, "ix_item_partial")
    assert await rows(sqlite_db, "SELECT id, code FROM item_view ORDER BY id") == [
        (1, "aa"),
        (2, "bb"),
        (3, "cc"),
    ]
    with pytest.raises(sa.exc.IntegrityError):
        await execute(sqlite_db, "INSERT INTO item (code, qty, price) VALUES ('aa', 1, 1)")


async def test_recreate_renames_and_drops_through_constraints_and_indexes(sqlite_db: URL) -> None:
    await execute(sqlite_db, *RICH_SETUP)

    def upgrade(op: Any) -> None:
        with op.batch_alter_table("item") as batch:
            batch.alter_column("id", new_column_name="item_id")
            batch.alter_column("code", new_column_name="sku", type_=sa.String(12))
            batch.alter_column("qty", new_column_name="quantity")
            batch.drop_column("label")
            batch.add_column(sa.Column("note", sa.String(30), server_default="none"))

    await run_ops(sqlite_db, upgrade)
    sql = await _stored_sql(sqlite_db, "item")
    assert "REFERENCES item (item_id) ON DELETE SET NULL" in sql
    assert "CHECK (quantity >= 0)" in sql
    assert 'CHECK (length(sku) > 1)' in sql
    assert "uq_label_owner" not in sql  # its column was dropped
    assert "GENERATED ALWAYS AS (quantity * 2) STORED" in sql
    assert "lower(sku)" in await _stored_sql(sqlite_db, "ix_item_lower")
    assert await _stored_sql(sqlite_db, "ix_item_label") == ""
    assert "WHERE quantity > 10" in await _stored_sql(sqlite_db, "ix_item_partial")
    assert await rows(
        sqlite_db, "SELECT item_id, sku, quantity, parent_id, note, doubled FROM item ORDER BY 1"
    ) == [(1, "aa", 1, None, "none", 2), (2, "bb", 20, 1, "none", 40), (3, "cc", 0, 2, "none", 0)]


async def test_batch_upgrade_then_downgrade_restores_schema_and_rows(sqlite_or_pg_db: URL) -> None:
    def setup(op: Any) -> None:
        op.create_table(
            "p",
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("name", sa.String(20), nullable=False),
            sa.Column("size", sa.Integer, server_default="1"),
            sa.CheckConstraint("size > 0", name="ck_p_size"),
            sa.UniqueConstraint("name", name="uq_p_name"),
        )
        op.create_index("ix_p_size", "p", ["size"])
        op.bulk_insert(
            sa.table("p", sa.column("id"), sa.column("name"), sa.column("size")),
            [{"id": i, "name": f"n{i}", "size": i} for i in range(1, 6)],
        )

    def upgrade(op: Any) -> None:
        with op.batch_alter_table("p") as batch:
            batch.add_column(sa.Column("extra", sa.String(10), nullable=True))
            batch.alter_column("size", new_column_name="amount", existing_type=sa.Integer,
                               existing_server_default="1")
            batch.alter_column("name", type_=sa.String(40), existing_type=sa.String(20),
                               existing_nullable=False)
            batch.drop_constraint("uq_p_name", type_="unique")
            batch.create_unique_constraint("uq_p_name_amount", ["name", "amount"])
            batch.drop_index("ix_p_size")
            batch.create_index("ix_p_amount", ["amount"])

    def downgrade(op: Any) -> None:
        with op.batch_alter_table("p") as batch:
            batch.drop_index("ix_p_amount")
            batch.create_index("ix_p_size", ["amount"])
            batch.drop_constraint("uq_p_name_amount", type_="unique")
            batch.create_unique_constraint("uq_p_name", ["name"])
            batch.alter_column("name", type_=sa.String(20), existing_type=sa.String(40),
                               existing_nullable=False)
            batch.alter_column("amount", new_column_name="size", existing_type=sa.Integer,
                               existing_server_default="1")
            batch.drop_column("extra")

    await run_ops(sqlite_or_pg_db, setup)
    original = await snapshot(sqlite_or_pg_db)
    original_rows = await rows(sqlite_or_pg_db, "SELECT id, name, size FROM p ORDER BY id")
    await run_ops(sqlite_or_pg_db, upgrade)
    changed = await snapshot(sqlite_or_pg_db)
    assert [c["name"] for c in changed["p"]["columns"]] == ["id", "name", "amount", "extra"]
    assert await rows(sqlite_or_pg_db, "SELECT id, name, amount FROM p ORDER BY id") == original_rows
    await run_ops(sqlite_or_pg_db, downgrade)
    restored = await snapshot(sqlite_or_pg_db)
    if backend_of(sqlite_or_pg_db) == "sqlite":
        assert restored == original
    else:  # PostgreSQL puts a re-added index last; the definitions are the same
        assert restored["p"]["columns"] == original["p"]["columns"]
        assert sorted(restored["p"]["indexes"]) == sorted(original["p"]["indexes"])
    assert await rows(sqlite_or_pg_db, "SELECT id, name, size FROM p ORDER BY id") == original_rows


async def test_recreate_refuses_to_cascade_with_foreign_keys_enforced(tmp_path: Any) -> None:
    from sqlalchemy import event
    from sqlalchemy.ext.asyncio import create_async_engine
    from sqlalchemy.pool import NullPool

    from asyncmigrate.operations import Operations
    from asyncmigrate.runtime.migration import MigrationContext

    url = f"sqlite+aiosqlite:///{tmp_path / 'fk.db'}"
    engine = create_async_engine(url, poolclass=NullPool)

    @event.listens_for(engine.sync_engine, "connect")
    def _fk_on(dbapi_conn: Any, record: Any) -> None:
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    def work(conn: sa.Connection) -> None:
        conn.exec_driver_sql("CREATE TABLE parent (id INTEGER PRIMARY KEY, v INTEGER)")
        conn.exec_driver_sql(
            "CREATE TABLE child (id INTEGER PRIMARY KEY, "
            "pid INTEGER REFERENCES parent (id) ON DELETE CASCADE)"
        )
        conn.exec_driver_sql("INSERT INTO parent VALUES (1, 1)")
        conn.commit()
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        op = Operations(MigrationContext.configure(connection=conn))
        with op.batch_alter_table("parent") as batch:  # nothing refers to it yet: fine
            batch.alter_column("v", nullable=False, existing_type=sa.Integer)
        conn.exec_driver_sql("INSERT INTO child VALUES (10, 1)")
        conn.commit()
        with pytest.raises(CommandError, match="child"), op.batch_alter_table("parent") as b:
            b.alter_column("v", nullable=True, existing_type=sa.Integer)
        conn.rollback()
        assert conn.exec_driver_sql("SELECT id, pid FROM child").all() == [(10, 1)]
        assert "NOT NULL" in conn.exec_driver_sql(
            "SELECT sql FROM sqlite_master WHERE name = 'parent'"
        ).scalar()

    try:
        async with engine.connect() as conn:
            await conn.run_sync(work)
    finally:
        await engine.dispose()


async def test_insert_before_and_after_place_columns(sqlite_db: URL) -> None:
    def work(op: Any) -> None:
        op.create_table("t", sa.Column("a", sa.Integer), sa.Column("b", sa.Integer),
                        sa.Column("c", sa.Integer))
        op.execute("INSERT INTO t VALUES (1, 2, 3)")
        with op.batch_alter_table("t", recreate="always") as batch:
            batch.add_column(sa.Column("x", sa.Integer), insert_before="b")
            batch.add_column(sa.Column("y", sa.Integer), insert_after="c")
            batch.add_column(sa.Column("z", sa.Integer), insert_after="x")
            batch.alter_column("a", insert_after="y")

    await run_ops(sqlite_db, work)
    columns = [c["name"] for c in (await snapshot(sqlite_db))["t"]["columns"]]
    assert columns == ["x", "z", "b", "c", "y", "a"]
    assert await rows(sqlite_db, "SELECT a, b, c FROM t") == [(1, 2, 3)]


async def test_insert_before_needs_a_recreate(pg_db: URL) -> None:
    def work(op: Any) -> None:
        op.create_table("t", sa.Column("a", sa.Integer))
        with pytest.raises(CommandError, match="recreate='always'"), op.batch_alter_table("t") as b:
            b.add_column(sa.Column("x", sa.Integer), insert_before="a")

    await run_ops(pg_db, work)


async def test_auto_batch_on_sqlite_adds_plain_columns_without_recreate(sqlite_db: URL) -> None:
    await execute(sqlite_db, "CREATE TABLE t (id INTEGER PRIMARY KEY)", "CREATE VIEW v AS SELECT * FROM t")

    def work(op: Any) -> None:
        with op.batch_alter_table("t") as batch:
            batch.add_column(sa.Column("x", sa.Integer, server_default="3"))
            batch.create_index("ix_t_x", ["x"])
            batch.create_table_comment("ignored")

    await run_ops(sqlite_db, work)
    # a plain ALTER keeps the original CREATE TABLE text (no recreate happened)
    assert (await _stored_sql(sqlite_db, "t")).startswith("CREATE TABLE t (id INTEGER PRIMARY KEY, x")


async def test_batch_on_server_databases_emits_alters(server_db: URL) -> None:
    any_db = server_db

    def work(op: Any) -> None:
        op.create_table("t", sa.Column("id", sa.Integer, primary_key=True), sa.Column("a", sa.Integer))
        op.execute("INSERT INTO t (id, a) VALUES (1, 2)")
        with op.batch_alter_table("t") as batch:
            batch.alter_column("a", nullable=False, existing_type=sa.Integer)
            batch.add_column(sa.Column("b", sa.String(5)))
            batch.create_unique_constraint("uq_t_a", ["a"])
            batch.create_check_constraint("ck_t_a", "a > 0")
            batch.create_index("ix_t_b", ["b"])
            batch.create_table_comment("tee")

    await run_ops(any_db, work)
    schema = (await snapshot(any_db))["t"]
    assert [c["name"] for c in schema["columns"]] == ["id", "a", "b"]
    assert ("uq_t_a", ("a",)) in schema["uniques"]
    assert schema["comment"] == "tee"


async def test_recreate_always_on_postgresql_keeps_serial_and_identity(pg_db: URL) -> None:
    def setup(op: Any) -> None:
        op.create_table("s", sa.Column("id", sa.Integer, primary_key=True), sa.Column("v", sa.Integer))
        op.create_table(
            "i", sa.Column("id", sa.Integer, sa.Identity(), primary_key=True), sa.Column("v", sa.Integer)
        )
        op.execute("INSERT INTO s (v) VALUES (1), (2)")
        op.execute("INSERT INTO i (v) VALUES (1), (2)")

    def recreate(op: Any) -> None:
        for name in ("s", "i"):
            with op.batch_alter_table(name, recreate="always") as batch:
                batch.alter_column("v", new_column_name="w")

    await run_ops(pg_db, setup)
    await run_ops(pg_db, recreate)
    await execute(pg_db, "INSERT INTO s (w) VALUES (3)", "INSERT INTO i (w) VALUES (3)")
    assert await rows(pg_db, "SELECT id, w FROM s ORDER BY id") == [(1, 1), (2, 2), (3, 3)]
    assert await rows(pg_db, "SELECT id, w FROM i ORDER BY id") == [(1, 1), (2, 2), (3, 3)]
    assert await rows(pg_db, "SELECT pg_get_serial_sequence('s', 'id')") == [("public.s_id_seq",)]


async def test_table_args_reflect_args_and_casts(sqlite_db: URL) -> None:
    await execute(
        sqlite_db,
        "CREATE TABLE t (id INTEGER PRIMARY KEY, n VARCHAR(10), b INTEGER)",
        "INSERT INTO t VALUES (1, '42', 1), (2, '7', 0)",
    )

    def work(op: Any) -> None:
        with op.batch_alter_table(
            "t",
            table_args=(sa.CheckConstraint("n > 0", name="ck_n"),),
            reflect_args=(sa.Column("b", sa.Boolean(create_constraint=True, name="ck_b")),),
        ) as batch:
            batch.alter_column("n", type_=sa.Integer, existing_type=sa.String(10))

    await run_ops(sqlite_db, work)
    sql = await _stored_sql(sqlite_db, "t")
    assert "CONSTRAINT ck_n CHECK (n > 0)" in sql
    assert "n INTEGER" in sql
    assert await rows(sqlite_db, "SELECT n, typeof(n), b FROM t ORDER BY id") == [
        (42, "integer", 1),
        (7, "integer", 0),
    ]


async def test_copy_from_skips_reflection(sqlite_db: URL) -> None:
    await execute(sqlite_db, "CREATE TABLE t (id INTEGER PRIMARY KEY, flag BOOLEAN)",
                  "INSERT INTO t VALUES (1, 1)")
    md = sa.MetaData(naming_convention={"ck": "ck_%(table_name)s_%(constraint_name)s"})
    copy_from = sa.Table(
        "t",
        md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("flag", sa.Boolean(create_constraint=True, name="flag")),
    )

    def work(op: Any) -> None:
        with op.batch_alter_table("t", copy_from=copy_from, recreate="always") as batch:
            batch.add_column(sa.Column("x", sa.Integer))

    await run_ops(sqlite_db, work, target_metadata=md)
    assert "CONSTRAINT ck_t_flag CHECK (flag IN (0, 1))" in await _stored_sql(sqlite_db, "t")


async def test_errors_leave_the_table_alone(sqlite_db: URL) -> None:
    await execute(sqlite_db, "CREATE TABLE t (id INTEGER PRIMARY KEY, a INTEGER)")

    def unknown_constraint(op: Any) -> None:
        with pytest.raises(ValueError, match="No such constraint"), op.batch_alter_table("t") as b:
            b.drop_constraint("nope", type_="unique")

    def unknown_index(op: Any) -> None:
        with pytest.raises(ValueError, match="No such index"), op.batch_alter_table(
            "t", recreate="always"
        ) as b:
            b.drop_index("nope")

    def drop_then_fail(batch: Any) -> None:
        batch.drop_column("a")
        raise RuntimeError("stop")

    def failing_block(op: Any) -> None:
        with pytest.raises(RuntimeError), op.batch_alter_table("t") as b:
            drop_then_fail(b)

    for fn in (unknown_constraint, unknown_index, failing_block):
        await run_ops(sqlite_db, fn)
    assert [c["name"] for c in (await snapshot(sqlite_db))["t"]["columns"]] == ["id", "a"]
    with pytest.raises(ValueError, match="recreate"):
        offline_sql("sqlite", lambda op: op.batch_alter_table("t", recreate="sometimes").__enter__())


def test_offline_recreate_needs_copy_from() -> None:
    def work(op: Any) -> None:
        with op.batch_alter_table("t") as batch:
            batch.drop_column("a")

    with pytest.raises(CommandError, match="copy_from"):
        offline_sql("sqlite", work)


def test_render_as_batch_stays_readable() -> None:
    def work(op: Any) -> None:
        assert op.get_context().opts["render_as_batch"] is True

    offline_sql("sqlite", work, opts={"render_as_batch": True})


async def test_recreate_always_keeps_references_from_other_tables(server_db: URL) -> None:
    def setup(op: Any) -> None:
        op.create_table("parent", sa.Column("id", sa.Integer, primary_key=True),
                        sa.Column("v", sa.Integer))
        op.create_table(
            "child",
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("pid", sa.Integer),
            sa.ForeignKeyConstraint(["pid"], ["parent.id"], name="fk_child_parent",
                                    ondelete="CASCADE"),
        )
        op.execute("INSERT INTO parent (id, v) VALUES (1, 10)")
        op.execute("INSERT INTO child (id, pid) VALUES (5, 1)")

    def recreate(op: Any) -> None:
        with op.batch_alter_table("parent", recreate="always") as batch:
            batch.alter_column("v", new_column_name="w", existing_type=sa.Integer)

    await run_ops(server_db, setup)
    await run_ops(server_db, recreate)
    schema = await snapshot(server_db)
    assert [c["name"] for c in schema["parent"]["columns"]] == ["id", "w"]
    assert [(fk[0], fk[2], fk[4]) for fk in schema["child"]["fks"]] == [
        ("fk_child_parent", "parent", (("ondelete", "CASCADE"),))
    ]
    assert await rows(server_db, "SELECT id, w FROM parent") == [(1, 10)]
    await execute(server_db, "DELETE FROM parent")
    assert await rows(server_db, "SELECT id FROM child") == []  # the cascade follows the copy


async def test_drop_and_re_add_a_column_of_the_same_name(sqlite_db: URL) -> None:
    await execute(
        sqlite_db,
        "CREATE TABLE t (id INTEGER PRIMARY KEY, a INTEGER CHECK (a > 0), b INTEGER, "
        "c INTEGER CHECK (c < 9))",
        "CREATE INDEX ix_t_a ON t (a)",
        "CREATE INDEX ix_t_c ON t (c)",
        "INSERT INTO t VALUES (1, 5, 6, 7)",
    )

    def work(op: Any) -> None:
        with op.batch_alter_table("t") as batch:
            batch.drop_column("a")
            batch.add_column(sa.Column("a", sa.Integer, server_default="3"), insert_after="id")
            batch.drop_column("c")

    await run_ops(sqlite_db, work)
    sql = await _stored_sql(sqlite_db, "t")
    # As in Alembic: what refers to the name "a" stays with the re-added column ...
    assert "CHECK (a > 0)" in sql
    assert "ON t (a)" in await _stored_sql(sqlite_db, "ix_t_a")
    # ... and what refers to a dropped column goes with it.
    assert "c < 9" not in sql
    assert await _stored_sql(sqlite_db, "ix_t_c") == ""
    assert await rows(sqlite_db, "SELECT * FROM t") == [(1, 3, 6)]


async def test_type_change_drops_the_old_types_check(sqlite_db: URL) -> None:
    await execute(
        sqlite_db,
        "CREATE TABLE t (id INTEGER PRIMARY KEY, flag BOOLEAN CHECK (flag IN (0, 1)), "
        "n INTEGER CHECK (n > 0))",
        "INSERT INTO t VALUES (1, 1, 3)",
    )

    def work(op: Any) -> None:
        with op.batch_alter_table("t") as batch:
            batch.alter_column("flag", type_=sa.Integer, existing_type=sa.Boolean)

    await run_ops(sqlite_db, work)
    sql = await _stored_sql(sqlite_db, "t")
    assert "flag IN (0, 1)" not in sql
    assert "CHECK (n > 0)" in sql
    await execute(sqlite_db, "INSERT INTO t VALUES (2, 7, 1)")


async def test_naming_convention_names_only_what_it_can(sqlite_db: URL) -> None:
    await execute(
        sqlite_db,
        "CREATE TABLE t (id INTEGER PRIMARY KEY, a INT CHECK (a > 0), b INT, UNIQUE (b))",
        "INSERT INTO t VALUES (1, 2, 3)",
    )

    def work(op: Any) -> None:
        with op.batch_alter_table(
            "t",
            naming_convention={
                "ck": "ck_%(table_name)s_%(constraint_name)s",  # unnamed CHECKs stay unnamed
                "uq": "uq_%(table_name)s_%(column_0_name)s",
            },
        ) as batch:
            batch.drop_constraint("uq_t_b", type_="unique")

    await run_ops(sqlite_db, work)
    sql = await _stored_sql(sqlite_db, "t")
    assert "CHECK (a > 0)" in sql
    assert "UNIQUE" not in sql
    assert await rows(sqlite_db, "SELECT * FROM t") == [(1, 2, 3)]


#: Batch blocks whose column order Alembic and asyncmigrate must agree on (each on its own table).
COLUMN_ORDER_CASES = {
    "add_drop": """
        b.add_column(sa.Column("x", sa.Integer))
        b.drop_column("b")""",
    "drop_add": """
        b.drop_column("b")
        b.add_column(sa.Column("x", sa.Integer))""",
    "drop_readd": """
        b.drop_column("a")
        b.add_column(sa.Column("a", sa.String(5)))""",
    "alter_and_place": """
        b.alter_column("a", new_column_name="aa", existing_type=sa.Integer)
        b.alter_column("b", type_=sa.String(10), existing_type=sa.Integer)
        b.add_column(sa.Column("x", sa.Integer), insert_after="id")
        b.add_column(sa.Column("y", sa.Integer), insert_before="b")
        b.drop_column("c")""",
    "reorder": """
        b.add_column(sa.Column("x", sa.Integer))
        b.drop_column("b")""",
}

_REORDERING = {"reorder": ', partial_reordering=[("x", "c", "a")]'}


def test_batch_column_order_matches_alembic(tmp_path: Any) -> None:
    """PRAGMA table_info after the same batch blocks, run by Alembic and by asyncmigrate."""
    import anyio
    from alembic import command as alembic_command
    from alembic.config import Config as AlembicConfig

    from asyncmigrate import command

    from ..project import Rev, make_project

    revisions = []
    for i, (case, body) in enumerate(COLUMN_ORDER_CASES.items()):
        table = f"t_{case}"
        revisions.append(Rev(
            f"r{i}", f"r{i - 1}" if i else None,
            f"op.execute('CREATE TABLE {table} (id INTEGER PRIMARY KEY, a INTEGER, b INTEGER, c INTEGER)')\n"
            f"with op.batch_alter_table({table!r}{_REORDERING.get(case, '')}) as b:{body}",
        ))
    orders = {}
    for tool in ("alembic", "asyncmigrate"):
        database = tmp_path / f"{tool}.db"
        config = make_project(tmp_path / tool, revisions, url=f"sqlite:///{database}")
        if tool == "alembic":
            alembic_config = AlembicConfig(config.config_file_name)
            alembic_config.set_main_option("script_location", str(tmp_path / tool / "migrations"))
            _alembic_generic_env(tmp_path / tool / "migrations")
            alembic_command.upgrade(alembic_config, "head")
        else:
            anyio.run(command.upgrade, config, "head")
        engine = sa.create_engine(f"sqlite:///{database}")
        with engine.connect() as conn:
            orders[tool] = {
                case: [tuple(row[1:6]) for row in conn.exec_driver_sql(f"PRAGMA table_info(t_{case})")]
                for case in COLUMN_ORDER_CASES
            }
        engine.dispose()
    assert orders["asyncmigrate"] == orders["alembic"]
    assert [c[0] for c in orders["alembic"]["alter_and_place"]] == ["id", "x", "aa", "y", "b"]


def _alembic_generic_env(migrations: Any) -> None:
    """Replace the project's env.py with one Alembic runs (a sync engine over the ini's URL)."""
    (migrations / "env.py").write_text(
        "from alembic import context\n"
        "from sqlalchemy import engine_from_config, pool\n"
        "config = context.config\n"
        "section = config.get_section(config.config_ini_section)\n"
        "engine = engine_from_config(section, poolclass=pool.NullPool)\n"
        "with engine.connect() as connection:\n"
        "    context.configure(connection=connection)\n"
        "    with context.begin_transaction():\n"
        "        context.run_migrations()\n",
        encoding="utf-8",
    )
