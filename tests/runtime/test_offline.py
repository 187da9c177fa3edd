"""Offline SQL: the ``--sql`` script, run by psql, builds what the online run builds."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import create_engine
from sqlalchemy.engine import URL
from sqlalchemy.pool import NullPool

from asyncmigrate import command
from asyncmigrate.exceptions import CommandError

from .. import backends
from ..histories.schema_snapshot import snapshot
from ..project import Rev, make_project

HISTORY = [
    Rev("o1", None, """
        op.create_table(
            "account",
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("name", sa.String(50), nullable=False),
            sa.Column("created", sa.DateTime, server_default=sa.func.now()),
        )
        op.create_index("ix_account_name", "account", ["name"], unique=True)
    """, """
        op.drop_index("ix_account_name", table_name="account")
        op.drop_table("account")
    """),
    Rev("o2", "o1", """
        op.create_table(
            "post",
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("account_id", sa.Integer, sa.ForeignKey("account.id", ondelete="CASCADE")),
            sa.Column("body", sa.Text),
        )
        op.add_column("account", sa.Column("email", sa.String(200)))
    """, """
        op.drop_column("account", "email")
        op.drop_table("post")
    """),
    Rev("o3", "o2", """
        account = sa.table("account", sa.column("id", sa.Integer), sa.column("name", sa.String))
        op.bulk_insert(account, [{"id": 1, "name": "ann"}, {"id": 2, "name": "o'brien"}])
        op.execute("UPDATE account SET email = name || '@example.com'")
        op.alter_column("account", "email", existing_type=sa.String(200), nullable=False)
        op.create_check_constraint("ck_post_body", "post", "length(body) > 0")
    """, """
        op.drop_constraint("ck_post_body", "post", type_="check")
        op.alter_column("account", "email", existing_type=sa.String(200), nullable=True)
        op.execute("DELETE FROM account")
    """),
]


def psql(url: URL, script: str, tmp_path: Path) -> None:
    path = tmp_path / "script.sql"
    path.write_text(script, encoding="utf-8")
    subprocess.run(
        ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", url.host or "127.0.0.1",
         "-p", str(url.port or 5432), "-U", url.username or "postgres", "-d", url.database or "",
         "-f", str(path)],
        check=True, capture_output=True, text=True,
    )


def picture(url: URL) -> dict[str, object]:
    engine = create_engine(url.set(drivername="postgresql+psycopg2"), poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return snapshot(conn)
    finally:
        engine.dispose()


@pytest.mark.skipif(shutil.which("psql") is None, reason="psql (PostgreSQL client) not installed")
async def test_offline_script_matches_online_run(tmp_path: Path, pg_db: URL) -> None:
    backends.require("postgresql")
    async with backends.scratch_database("postgresql") as offline_db:
        config = make_project(tmp_path, HISTORY, url=pg_db)
        up = await command.upgrade(config, "head", sql=True)
        assert up.sql is not None
        assert "BEGIN;" in up.sql
        assert "INSERT INTO alembic_version (version_num) VALUES ('o1');" in up.sql
        assert "'o''brien'" in up.sql  # literal values are quoted, not bound
        psql(offline_db, up.sql, tmp_path)
        await command.upgrade(config, "head")
        assert picture(offline_db) == picture(pg_db)

        down = await command.downgrade(config, "o3:o1", sql=True)
        assert down.sql is not None
        psql(offline_db, down.sql, tmp_path)
        await command.downgrade(config, "o1")
        assert picture(offline_db) == picture(pg_db)

        stamp = await command.stamp(config, "o1:o3", sql=True)
        assert stamp.sql is not None
        assert "UPDATE alembic_version SET version_num='o3'" in stamp.sql
        psql(offline_db, stamp.sql, tmp_path)
        await command.stamp(config, "o3")
        assert picture(offline_db) == picture(pg_db)


@pytest.mark.parametrize(("dialect_url", "target"), [
    # SQLite cannot ALTER a column's nullability in place (o3): that needs batch mode.
    ("sqlite:///never-created.db", "o2"),
    ("mysql://root@127.0.0.1:1/never", "o3"),
    ("postgresql://u:pw@127.0.0.1:1/never", "o3"),
])
async def test_offline_needs_no_connection(tmp_path: Path, dialect_url: str, target: str) -> None:
    config = make_project(tmp_path, HISTORY, url=dialect_url)
    result = await command.upgrade(config, target, sql=True)
    assert result.sql is not None
    assert "CREATE TABLE account" in result.sql
    assert result.to_heads == (target,)
    assert not (tmp_path / "never-created.db").exists()


async def test_offline_argument_errors(tmp_path: Path) -> None:
    config = make_project(tmp_path, HISTORY, url="sqlite:///x.db")
    with pytest.raises(CommandError, match="requires <fromrev>:<torev>"):
        await command.downgrade(config, "base", sql=True)
    with pytest.raises(CommandError, match="Range revision not allowed"):
        await command.upgrade(config, "o1:o2")
    with pytest.raises(CommandError, match="--purge"):
        await command.stamp(config, "o1", sql=True, purge=True)
