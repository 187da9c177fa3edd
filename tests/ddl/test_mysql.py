"""MySQL/MariaDB DDL: CHANGE/MODIFY COLUMN, RENAME COLUMN, constraint drops, asyncmy URLs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL

from asyncmigrate.ddl import MariaDBImpl, MySQLImpl, impl_for_dialect
from asyncmigrate.exceptions import CommandError

from ..operations.support import offline_sql, plain_default, rows, run_ops, snapshot


def _setup(op: Any) -> None:
    op.create_table(
        "t",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("n", sa.Integer, server_default="5", comment="the n"),
        sa.Column("s", sa.String(20), nullable=False),
        sa.Column("at", sa.DateTime),
        sa.CheckConstraint("n < 1000", name="ck_t_n"),
        sa.UniqueConstraint("s", name="uq_t_s"),
    )
    op.execute("INSERT INTO t (id, n, s) VALUES (1, 7, 'x')")


async def _columns(url: URL) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in (await snapshot(url))["t"]["columns"]}


async def test_alter_column_restates_the_column_from_existing_arguments(mysql_db: URL) -> None:
    await run_ops(mysql_db, _setup)

    def work(op: Any) -> None:
        op.alter_column("t", "n", nullable=False, existing_type=sa.Integer,
                        existing_server_default="5", existing_comment="the n")
        op.alter_column("t", "s", type_=sa.String(40), existing_type=sa.String(20),
                        existing_nullable=False)
        op.alter_column("t", "s", new_column_name="label", existing_type=sa.String(40),
                        existing_nullable=False)

    await run_ops(mysql_db, work)
    columns = await _columns(mysql_db)
    assert columns["n"]["nullable"] is False
    assert plain_default(columns["n"]["default"]) == "5"
    assert columns["n"]["comment"] == "the n"
    assert columns["label"]["type"] == "VARCHAR(40)"
    assert columns["label"]["nullable"] is False
    assert await rows(mysql_db, "SELECT id, n, label FROM t") == [(1, 7, "x")]


async def test_alter_column_without_existing_type_reads_the_column(mysql_db: URL) -> None:
    await run_ops(mysql_db, _setup)

    def work(op: Any) -> None:
        op.alter_column("t", "n", nullable=False)  # Alembic would need existing_type here
        op.alter_column("t", "n", new_column_name="m")  # a plain RENAME COLUMN
        op.alter_column("t", "m", comment="now m")

    await run_ops(mysql_db, work)
    columns = await _columns(mysql_db)
    assert columns["m"]["nullable"] is False
    assert plain_default(columns["m"]["default"]) == "5"
    assert columns["m"]["comment"] == "now m"
    assert columns["m"]["type"].startswith("INTEGER")


async def test_server_defaults_plain_and_expression(mysql_db: URL) -> None:
    await run_ops(mysql_db, _setup)

    def work(op: Any) -> None:
        op.alter_column("t", "n", server_default="9")
        op.alter_column("t", "at", server_default=sa.text("CURRENT_TIMESTAMP"),
                        existing_type=sa.DateTime, existing_nullable=True)
        op.alter_column("t", "s", server_default=None)

    await run_ops(mysql_db, work)
    columns = await _columns(mysql_db)
    assert plain_default(columns["n"]["default"]) == "9"
    assert "current_timestamp" in (columns["at"]["default"] or "")
    assert columns["s"]["default"] is None


async def test_autoincrement_is_restated(mysql_db: URL) -> None:
    def work(op: Any) -> None:
        op.create_table("a", sa.Column("id", sa.Integer, primary_key=True, autoincrement=False))
        op.alter_column("a", "id", autoincrement=True, existing_type=sa.Integer,
                        existing_nullable=False)
        op.execute("INSERT INTO a () VALUES ()")

    await run_ops(mysql_db, work)
    assert await rows(mysql_db, "SELECT id FROM a") == [(1,)]


async def test_dropping_constraints_by_kind_and_generically(mysql_db: URL) -> None:
    await run_ops(mysql_db, _setup)

    def work(op: Any) -> None:
        op.drop_constraint("ck_t_n", "t", type_="check")
        op.create_check_constraint("ck_again", "t", "n > 0")
        op.drop_constraint("ck_again", "t")  # no kind: generic DROP CONSTRAINT
        op.drop_constraint("uq_t_s", "t", type_="unique")
        op.create_table("k", sa.Column("id", sa.Integer, primary_key=True, autoincrement=False))
        op.drop_constraint("PRIMARY", "k", type_="primary")

    await run_ops(mysql_db, work)
    schema = (await snapshot(mysql_db))["t"]
    assert schema["checks"] == []
    assert schema["uniques"] == []
    assert (await snapshot(mysql_db))["k"]["pk"][1] == ()


async def test_rename_table_within_a_named_schema(mysql_db: URL) -> None:
    database = mysql_db.database

    def work(op: Any) -> None:
        op.create_table("a", sa.Column("id", sa.Integer), schema=database)
        op.rename_table("a", "b", schema=database)

    await run_ops(mysql_db, work)
    assert sorted(await snapshot(mysql_db)) == ["b"]


async def test_mariadb_url_gets_the_mariadb_implementation(mysql_db: URL) -> None:
    mariadb_url = mysql_db.set(drivername="mariadb+asyncmy")

    def work(op: Any) -> Any:
        op.create_table("m", sa.Column("id", sa.Integer), sa.Column("v", sa.Integer))
        op.alter_column("m", "v", new_column_name="w")
        return type(op.impl), op.impl.transactional_ddl

    found = await run_ops(mariadb_url, work)
    assert found == (MariaDBImpl, False)
    assert [c["name"] for c in (await snapshot(mysql_db))["m"]["columns"]] == ["id", "w"]


def test_implementation_registry_and_transactional_ddl() -> None:
    from sqlalchemy.dialects import mysql, postgresql, sqlite

    assert impl_for_dialect(mysql.dialect()) is MySQLImpl
    assert impl_for_dialect(postgresql.dialect()).transactional_ddl is True
    assert impl_for_dialect(sqlite.dialect()).transactional_ddl is True
    assert MySQLImpl.transactional_ddl is False


def test_offline_mysql_needs_the_existing_type() -> None:
    with pytest.raises(CommandError, match="existing_type"):
        offline_sql("mysql", lambda op: op.alter_column("t", "c", nullable=False))
    sql = offline_sql(
        "mysql",
        lambda op: op.alter_column(
            "t", "c", nullable=False, existing_type=sa.String(10), existing_server_default="x",
            existing_comment="k",
        ),
    )
    assert sql == "ALTER TABLE t MODIFY c VARCHAR(10) NOT NULL DEFAULT 'x' COMMENT 'k';\n\n"
    assert offline_sql("mysql", lambda op: op.alter_column("t", "c", new_column_name="d")) == (
        "ALTER TABLE t RENAME COLUMN c TO d;\n\n"
    )
    assert offline_sql(
        "mysql", lambda op: op.alter_column("t", "c", new_column_name="d", existing_type=sa.Integer)
    ) == "ALTER TABLE t CHANGE c d INTEGER NULL;\n\n"
    assert offline_sql("mysql", lambda op: op.alter_column("t", "c", server_default="1")) == (
        "ALTER TABLE t ALTER COLUMN c SET DEFAULT '1';\n\n"
    )
    assert offline_sql("mysql", lambda op: op.drop_constraint("x", "t")) == (
        "ALTER TABLE t DROP CONSTRAINT x;\n\n"
    )


async def test_no_log_line_for_the_version_tables_primary_key_name(
    mysql_db: URL, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The server notes that ``alembic_version_pkc`` was ignored (MySQL names every primary key
    PRIMARY); asyncmy would log that on every first migration. Other server warnings still show."""
    import logging

    from asyncmigrate import command

    from ..project import Rev, make_project

    config = make_project(tmp_path, [Rev("a1", None, """
        op.execute("CREATE TABLE t (id INTEGER, CONSTRAINT pk_t PRIMARY KEY (id))")
        op.execute("SELECT CAST('x' AS SIGNED)")
    """)], url=mysql_db)
    with caplog.at_level(logging.WARNING, logger="asyncmy"):
        await command.upgrade(config, "head")
    asyncmy_lines = [r.getMessage() for r in caplog.records if r.name.startswith("asyncmy")]
    assert not [line for line in asyncmy_lines if "PRIMARY" in line], asyncmy_lines
    assert any("Truncated incorrect" in line for line in asyncmy_lines), asyncmy_lines


async def test_no_log_line_for_the_history_table_or_tenant_database_already_there(
    mysql_db: URL, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """After ``downgrade base`` the next run creates its history table (and a schema tenant its
    database) with IF NOT EXISTS; the server's "already exists" note is no news. The same note
    about a revision's own statement still shows."""
    import logging

    from asyncmigrate import command
    from asyncmigrate.tenants import Tenant, migrate_tenants

    from ..backends import drop_mysql_databases
    from ..project import Rev, make_project

    config = make_project(tmp_path, [Rev("a1", None, """
        op.execute("CREATE TABLE IF NOT EXISTS mine (id INTEGER)")
        op.execute("CREATE TABLE IF NOT EXISTS mine (id INTEGER)")
    """, 'op.execute("DROP TABLE mine")')], url=mysql_db, ini_extra="history_table = asyncmigrate_history")
    tenant = Tenant("s", mysql_db.render_as_string(hide_password=False), f"{mysql_db.database}_s1")
    try:
        with caplog.at_level(logging.WARNING, logger="asyncmy"):
            for _ in range(2):
                await command.upgrade(config, "head")
                await command.downgrade(config, "base")
                await migrate_tenants(config, [tenant], "head")
                await migrate_tenants(config, [tenant], "base", operation="downgrade")
    finally:
        await drop_mysql_databases(mysql_db, f"{mysql_db.database}_s%")
    asyncmy_lines = [r.getMessage() for r in caplog.records if r.name.startswith("asyncmy")]
    assert [line for line in asyncmy_lines if "already exists" in line or "database exists" in line] == [
        "Table 'mine' already exists"
    ] * 4, asyncmy_lines
