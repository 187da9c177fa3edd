"""Offline (``--sql``) rendering: literal SQL per dialect, Alembic's text, and scripts that run.

Three checks: each directive renders exactly the SQL Alembic renders for the
same dialect; selected renderings are pinned as literal strings; and an
offline script executed on a fresh database builds the same schema and rows
as running the same operations online.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL
from sqlalchemy.exc import CompileError

from ..operations import test_differential as scenarios
from ..operations.support import (
    alembic_offline_sql,
    backend_of,
    offline_sql,
    rows,
    run_ops,
    run_sync,
    snapshot,
)

ALL = ("postgresql", "sqlite", "mysql", "mariadb")
CATALOGUE: list[tuple[str, tuple[str, ...], Callable[[Any], None]]] = []


def case(name: str, dialects: tuple[str, ...] = ALL) -> Callable[[Callable[[Any], None]], None]:
    def register(fn: Callable[[Any], None]) -> None:
        CATALOGUE.append((name, dialects, fn))

    return register


@case("create_table")
def _create_table(op: Any) -> None:
    op.create_table(
        "account",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(50), nullable=False, server_default="x", comment="c"),
        sa.Column("amount", sa.Numeric(10, 2)),
        sa.Column("created", sa.DateTime, server_default=sa.func.now()),
        sa.Column("pid", sa.Integer, sa.ForeignKey("parent.id", ondelete="CASCADE")),
        sa.UniqueConstraint("name", name="uq_name"),
        sa.CheckConstraint("amount > 0", name="ck_amount"),
        sa.Index("ix_amount", "amount"),
        comment="accounts",
    )
    op.create_table("t", sa.Column("id", sa.Integer), schema="s", if_not_exists=True)


@case("drop_and_rename_table")
def _drop_table(op: Any) -> None:
    op.drop_table("t")
    op.drop_table("t", schema="s", if_exists=True)
    op.rename_table("a", "b")


@case("rename_table_in_schema", ("postgresql", "mysql"))
def _rename_in_schema(op: Any) -> None:
    op.rename_table("a", "b", schema="s")


@case("add_and_drop_column")
def _add_column(op: Any) -> None:
    op.add_column("t", sa.Column("c", sa.String(10), nullable=False, server_default="d"))
    op.add_column("t", sa.Column("n", sa.Integer), schema="s")
    op.drop_column("t", "c")
    op.drop_column("t", "d", schema="s")


@case("add_column_constraints", ("postgresql", "mysql", "mariadb"))
def _add_column_constraints(op: Any) -> None:
    op.add_column("t", sa.Column("p", sa.Integer, sa.ForeignKey("p.id"), comment="cc"))
    op.add_column("t", sa.Column("q", sa.Integer, sa.ForeignKey("p.id")), inline_references=True)
    op.add_column("t", sa.Column("r", sa.Integer, unique=True))
    op.add_column("t", sa.Column("b", sa.Boolean(create_constraint=True, name="ck_b")))
    op.alter_column(
        "t", "b", type_=sa.Integer, existing_type=sa.Boolean(create_constraint=True, name="ck_b")
    )


@case("if_exists_columns", ("postgresql", "mariadb"))
def _if_exists_columns(op: Any) -> None:
    op.add_column("t", sa.Column("c", sa.Integer), if_not_exists=True)
    op.drop_column("t", "c", if_exists=True)


@case("alter_column", ("postgresql",))
def _alter_pg(op: Any) -> None:
    op.alter_column("t", "c", nullable=False)
    op.alter_column("t", "c", type_=sa.BigInteger, postgresql_using="c::bigint")
    op.alter_column("t", "c", server_default="5")
    op.alter_column("t", "c", server_default=sa.text("now()"))
    op.alter_column("t", "c", server_default=None)
    op.alter_column("t", "c", comment="hi")
    op.alter_column("t", "c", comment=None)
    op.alter_column("t", "c", new_column_name="d", schema="s")
    op.alter_column(
        "t", "c", nullable=True, type_=sa.String(5), server_default="z", comment="k",
        new_column_name="e",
    )
    op.alter_column("t", "id", server_default=sa.Identity(start=5))
    op.alter_column(
        "t", "id", server_default=sa.Identity(start=10, increment=2),
        existing_server_default=sa.Identity(start=5),
    )
    op.alter_column("t", "id", server_default=None, existing_server_default=sa.Identity())


@case("alter_column", ("mysql", "mariadb"))
def _alter_mysql(op: Any) -> None:
    op.alter_column("t", "c", nullable=False, existing_type=sa.Integer)
    op.alter_column(
        "t", "c", type_=sa.BigInteger, existing_type=sa.Integer, existing_nullable=False,
        existing_server_default="3", existing_comment="x",
    )
    op.alter_column("t", "c", server_default="5")
    op.alter_column("t", "c", server_default=None)
    op.alter_column("t", "c", comment="hi", existing_type=sa.Integer)
    op.alter_column("t", "c", new_column_name="d", existing_type=sa.Integer, existing_nullable=True)
    op.alter_column("t", "c", autoincrement=True, existing_type=sa.Integer, existing_nullable=False)


@case("alter_column", ("sqlite",))
def _alter_sqlite(op: Any) -> None:
    op.alter_column("t", "c", new_column_name="d")


@case("indexes")
def _indexes(op: Any) -> None:
    op.create_index("ix_a", "t", ["a", "b"], unique=True)
    op.create_index("ix_b", "t", ["b"], schema="s")
    op.drop_index("ix_a", "t")
    op.drop_index("ix_b", "t", schema="s")


@case("indexes_if_exists", ("postgresql", "sqlite", "mariadb"))
def _indexes_if(op: Any) -> None:
    op.create_index("ix_a", "t", ["a"], if_not_exists=True)
    op.drop_index("ix_a", "t", if_exists=True)


@case("indexes_dialect_options", ("postgresql",))
def _indexes_pg(op: Any) -> None:
    op.create_index(
        "ix_p", "t", ["a"], postgresql_where=sa.text("a > 1"), postgresql_using="btree",
        postgresql_include=["b"],
    )
    op.create_index("ix_c", "t", ["a"], postgresql_concurrently=True)
    op.create_index("ix_e", "t", [sa.text("lower(a)")])
    op.drop_index("ix_c", postgresql_concurrently=True)


@case("indexes_dialect_options", ("sqlite",))
def _indexes_sqlite(op: Any) -> None:
    op.create_index("ix_p", "t", ["a"], sqlite_where=sa.text("a > 1"))
    op.create_index("ix_e", "t", [sa.func.lower(sa.column("a"))])


@case("indexes_dialect_options", ("mysql", "mariadb"))
def _indexes_mysql(op: Any) -> None:
    op.create_index("ix_l", "t", ["a"], mysql_length={"a": 10})


@case("constraints", ("postgresql", "mysql", "mariadb"))
def _constraints(op: Any) -> None:
    op.create_primary_key("pk_t", "t", ["id"])
    op.create_unique_constraint("uq_t", "t", ["a", "b"], schema="s")
    op.create_foreign_key(
        "fk_t", "t", "p", ["pid"], ["id"], ondelete="CASCADE", onupdate="SET NULL",
        source_schema="s", referent_schema="r",
    )
    op.create_foreign_key("fk_self", "t", "t", ["parent"], ["id"])
    op.create_check_constraint("ck_t", "t", sa.column("a") > 5)
    op.create_check_constraint("ck_t2", "t", "b < 3")
    for kind, name in (("foreignkey", "fk_t"), ("unique", "uq_t"), ("check", "ck_t"),
                       ("primary", "pk_t")):
        op.drop_constraint(name, "t", type_=kind)


@case("constraints_extra", ("postgresql",))
def _constraints_pg(op: Any) -> None:
    op.create_foreign_key(
        "fk_d", "t", "p", ["pid"], ["id"], deferrable=True, initially="DEFERRED", match="FULL"
    )
    op.create_unique_constraint("uq_d", "t", ["a"], deferrable=True)
    op.drop_constraint("x", "t")
    op.drop_constraint("y", "t", type_="check", if_exists=True)
    op.create_exclude_constraint("ex", "t", ("a", "="), ("b", "&&"), where="a > 0", using="gist")


@case("comments", ("postgresql", "mysql", "mariadb"))
def _comments(op: Any) -> None:
    op.create_table_comment("t", "it's")
    op.drop_table_comment("t")


@case("execute_and_bulk_insert")
def _data(op: Any) -> None:
    op.execute("UPDATE t SET a = 1")
    op.execute(sa.table("t", sa.column("a")).update().values(a=op.inline_literal("x")))
    table = sa.table(
        "t", sa.column("id", sa.Integer), sa.column("name", sa.String), sa.column("d", sa.Date)
    )
    op.bulk_insert(
        table,
        [
            {"id": 1, "name": "o'hara", "d": datetime.date(2020, 1, 2)},
            {"id": 2, "name": None, "d": None},
        ],
    )


@case("enum_type", ("postgresql",))
def _enum(op: Any) -> None:
    op.create_table("t", sa.Column("e", sa.Enum("a", "b", name="ee")))


@case("naming_convention")
def _conventions(op: Any) -> None:
    op.create_table(
        "t",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("a", sa.Integer),
        sa.CheckConstraint("a > 0", name="pos"),
        sa.UniqueConstraint("a"),
    )
    op.create_index(None, "t", ["a"])


CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "pk": "pk_%(table_name)s",
}


@pytest.mark.parametrize(
    ("fn", "dialect"),
    [
        pytest.param(fn, dialect, id=f"{name}-{dialect}")
        for name, dialects, fn in CATALOGUE
        for dialect in dialects
    ],
)
def test_renders_the_sql_alembic_renders(fn: Callable[[Any], None], dialect: str) -> None:
    pytest.importorskip("alembic")
    metadata = sa.MetaData(naming_convention=CONVENTION)
    ours = offline_sql(dialect, fn, target_metadata=metadata)
    assert ours
    assert ours == alembic_offline_sql(dialect, fn, target_metadata=metadata)


# -- pinned renderings ------------------------------------------------------------------------


def test_pinned_postgresql() -> None:
    sql = offline_sql(
        "postgresql",
        lambda op: (
            op.alter_column("t", "c", type_=sa.Integer, postgresql_using="c::integer", schema="s"),
            op.alter_column("t", "c", comment="it's"),
            op.add_column("t", sa.Column("x", sa.Integer, sa.ForeignKey("p.id"))),
        ),
    )
    assert sql == (
        "ALTER TABLE s.t ALTER COLUMN c TYPE INTEGER USING c::integer;\n\n"
        "COMMENT ON COLUMN t.c IS 'it''s';\n\n"
        "ALTER TABLE t ADD COLUMN x INTEGER;\n\n"
        "ALTER TABLE t ADD FOREIGN KEY(x) REFERENCES p (id);\n\n"
    )


def test_pinned_sqlite_inlines_what_alter_cannot_add_later() -> None:
    sql = offline_sql(
        "sqlite",
        lambda op: (
            op.add_column("t", sa.Column("p", sa.Integer, sa.ForeignKey("p.id", ondelete="CASCADE"))),
            op.add_column("t", sa.Column("f", sa.Boolean(create_constraint=True, name="ck_f"))),
            op.alter_column("t", "c", new_column_name="d"),
            op.create_table_comment("t", "ignored"),
        ),
    )
    assert sql == (
        "ALTER TABLE t ADD COLUMN p INTEGER REFERENCES p (id) ON DELETE CASCADE;\n\n"
        "ALTER TABLE t ADD COLUMN f BOOLEAN CONSTRAINT ck_f CHECK (f IN (0, 1));\n\n"
        "ALTER TABLE t RENAME COLUMN c TO d;\n\n"
    )


def test_pinned_literals_in_data_statements() -> None:
    table = sa.table("t", sa.column("id", sa.Integer), sa.column("d", sa.Date))
    sql = offline_sql(
        "postgresql",
        lambda op: op.bulk_insert(
            table, [{"id": 1, "d": datetime.date(2021, 3, 4)}, {"id": op.inline_literal(2)}]
        ),
    )
    assert sql == (
        "INSERT INTO t (id, d) VALUES (1, '2021-03-04');\n\n"
        "INSERT INTO t (id) VALUES (2);\n\n"
    )


def test_computed_columns_cannot_be_altered_in_place() -> None:
    with pytest.raises(CompileError, match="computed"):
        offline_sql("postgresql", lambda op: op.alter_column("t", "c", server_default=sa.Computed("a + 1")))
    with pytest.raises(CompileError, match="identity"):
        offline_sql("mysql", lambda op: op.alter_column("t", "c", server_default=sa.Identity()))


def test_offline_batch_with_copy_from_renders_the_recreate() -> None:
    source = sa.Table(
        "t",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("a", sa.String(10)),
        sa.Column("b", sa.Integer),
        sa.Index("ix_t_b", "b"),
    )

    def work(op: Any) -> None:
        with op.batch_alter_table("t", copy_from=source) as batch:
            batch.alter_column("a", nullable=False)
            batch.drop_column("b")
            batch.add_column(sa.Column("c", sa.Integer, server_default="0"))

    sql = offline_sql("sqlite", work)
    assert sql == (
        "CREATE TABLE _alembic_tmp_t (\n"
        "    id INTEGER NOT NULL, \n"
        "    a VARCHAR(10) NOT NULL, \n"
        "    c INTEGER DEFAULT '0', \n"
        "    PRIMARY KEY (id)\n"
        ");\n\n"
        "INSERT INTO _alembic_tmp_t (id, a) SELECT t.id, t.a \nFROM t;\n\n"
        "DROP TABLE t;\n\n"
        "PRAGMA legacy_alter_table = ON;\n\n"
        "ALTER TABLE _alembic_tmp_t RENAME TO t;\n\n"
        "PRAGMA legacy_alter_table = OFF;\n\n"
    )


# -- offline scripts run to the online result ---------------------------------------------------


def _statements(script: str) -> list[str]:
    return [chunk.strip() for chunk in script.split(";\n\n") if chunk.strip()]


async def _run_script(url: URL, script: str) -> None:
    def work(conn: sa.Connection) -> None:
        for statement in _statements(script):
            conn.exec_driver_sql(statement)

    await run_sync(url, work)


STEPS: dict[str, list[Callable[[Any], None]]] = {
    "sqlite": [scenarios._base_tables, scenarios._columns_sqlite, scenarios._indexes,
               scenarios._data],
    "postgresql": [scenarios._base_tables, scenarios._partial_indexes_pg,
                   scenarios._alter_servers, scenarios._indexes,
                   scenarios._constraints_servers, scenarios._data],
    "mysql": [scenarios._base_tables, scenarios._alter_servers,
              scenarios._indexes, scenarios._constraints_servers, scenarios._data],
}


async def test_offline_script_builds_what_the_online_run_builds(db_pair: tuple[URL, URL]) -> None:
    online, offline = db_pair
    backend = backend_of(online)
    dialect = backend
    if backend == "mysql":
        version = await rows(offline, "SELECT VERSION()")
        dialect = "mariadb" if "mariadb" in str(version[0][0]).lower() else "mysql"
    script = "".join(offline_sql(dialect, step) for step in STEPS[backend])
    await _run_script(offline, script)
    for step in STEPS[backend]:
        await run_ops(online, step)
    expected = await snapshot(online)
    assert await snapshot(offline) == expected
    for table in expected:
        names = ", ".join(c["name"] for c in expected[table]["columns"] if c["name"] != "created")
        query = f"SELECT {names} FROM {table} ORDER BY 1"
        assert await rows(offline, query) == await rows(online, query)
