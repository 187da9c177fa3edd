"""The history table: what it records after upgrades, downgrades, stamps, failures -- and beside Alembic."""

from __future__ import annotations

import datetime as dt
import os
import socket
from pathlib import Path
from typing import Any

import anyio
import pytest
from sqlalchemy import inspect, text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

import asyncmigrate
from asyncmigrate import command
from asyncmigrate.exceptions import MigrationError
from asyncmigrate.script.checksum import file_checksum

from ..project import PER_MIGRATION_ENV, Rev, make_project
from .test_differential import alembic_project

HISTORY = "history_table = asyncmigrate_history"

REVS = [
    Rev("a1", None, "op.execute('CREATE TABLE t1 (id INTEGER PRIMARY KEY)')", "op.execute('DROP TABLE t1')"),
    Rev("b2", "a1", "op.execute('CREATE TABLE t2 (id INTEGER PRIMARY KEY)')", "op.execute('DROP TABLE t2')"),
    Rev("c3", "b2", "op.execute('CREATE TABLE t3 (id INTEGER PRIMARY KEY)')", "op.execute('DROP TABLE t3')"),
]
FAILS = Rev("d4", "c3", "op.execute('CREATE TABLE t4 (id INTEGER PRIMARY KEY)')\nop.execute('SELECT * FROM missing')")

async def history_rows(url: URL | str, table: str = "asyncmigrate_history") -> list[dict[str, Any]]:
    """Every row of the history table, oldest first (empty when the table does not exist)."""
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            names = await conn.run_sync(lambda c: inspect(c).get_table_names())
            if table not in names:
                return []
            result = await conn.execute(text(f"SELECT * FROM {table} ORDER BY id"))
            rows = [dict(r) for r in result.mappings()]
    finally:
        await engine.dispose()
    for row in rows:  # SQLite answers a raw SELECT with the stored text
        if isinstance(row["applied_at"], str):
            row["applied_at"] = dt.datetime.fromisoformat(row["applied_at"])
    return rows


def summary(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(r["revision"], r["direction"], r["kind"], r["outcome"]) for r in rows]


def versions_dir(tmp_path: Path) -> Path:
    return tmp_path / "migrations" / "versions"


async def test_upgrade_downgrade_stamp_rows(tmp_path: Path, any_db: URL) -> None:
    config = make_project(tmp_path, REVS, url=any_db, ini_extra=HISTORY)
    before = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) - dt.timedelta(seconds=5)
    await command.upgrade(config, "head")
    await command.downgrade(config, "-1")
    await command.stamp(config, "head")
    rows = await history_rows(any_db)
    assert summary(rows) == [
        ("a1", "upgrade", "migration", "applied"),
        ("b2", "upgrade", "migration", "applied"),
        ("c3", "upgrade", "migration", "applied"),
        ("c3", "downgrade", "migration", "applied"),
        ("c3", "upgrade", "stamp", "applied"),
    ]
    files = {p.name.split("_")[0]: p for p in versions_dir(tmp_path).glob("*.py")}
    assert [r["checksum"] for r in rows] == [file_checksum(files[r["revision"]]) for r in rows]
    after = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) + dt.timedelta(seconds=5)
    for row in rows:
        assert before <= row["applied_at"] <= after
        assert row["duration"] is not None and 0 <= row["duration"] < 60
        assert row["pid"] == os.getpid()
        assert row["host"] == socket.gethostname()
        assert row["tool_version"] == asyncmigrate.__version__
        assert row["applied_by"] == (any_db.username or __import__("getpass").getuser())
        # The version table's schema, as the server resolved it (see tests/tenants/test_shared_history.py).
        assert row["version_schema"] == {"postgresql": "public", "mysql": any_db.database}.get(
            any_db.get_backend_name(), "main")


async def test_not_configured_writes_nothing(tmp_path: Path, sqlite_db: URL) -> None:
    config = make_project(tmp_path, REVS, url=sqlite_db)
    await command.upgrade(config, "head")
    assert await history_rows(sqlite_db) == []
    engine = create_async_engine(sqlite_db, poolclass=NullPool)
    async with engine.connect() as conn:
        names = await conn.run_sync(lambda c: inspect(c).get_table_names())
    await engine.dispose()
    assert "asyncmigrate_history" not in names


async def test_env_py_option_names_the_table(tmp_path: Path, sqlite_or_pg_db: URL) -> None:
    env = PER_MIGRATION_ENV.replace("transaction_per_migration=True", "history_table='audit_trail'")
    config = make_project(tmp_path, REVS, url=sqlite_or_pg_db, env_py=env)
    await command.upgrade(config, "b2")
    assert summary(await history_rows(sqlite_or_pg_db, "audit_trail")) == [
        ("a1", "upgrade", "migration", "applied"),
        ("b2", "upgrade", "migration", "applied"),
    ]


@pytest.mark.parametrize("per_migration", [False, True], ids=["per-run", "per-migration"])
async def test_failure_is_recorded(tmp_path: Path, any_db: URL, per_migration: bool) -> None:
    env = PER_MIGRATION_ENV if per_migration else None
    config = make_project(tmp_path, [*REVS, FAILS], url=any_db, ini_extra=HISTORY, env_py=env)
    await command.upgrade(config, "a1")
    with pytest.raises(MigrationError):
        await command.upgrade(config, "head")
    rows = summary(await history_rows(any_db))
    each_step_commits = per_migration or any_db.get_backend_name() == "mysql"
    if each_step_commits:  # b2 and c3 committed before d4 failed
        assert rows == [
            ("a1", "upgrade", "migration", "applied"),
            ("b2", "upgrade", "migration", "applied"),
            ("c3", "upgrade", "migration", "applied"),
            ("d4", "upgrade", "migration", "failed"),
        ]
        assert (await command.current(config)).heads == ("c3",)
    else:  # one transaction for the run: b2 and c3 were taken back with it
        assert rows == [
            ("a1", "upgrade", "migration", "applied"),
            ("b2", "upgrade", "migration", "rolled_back"),
            ("c3", "upgrade", "migration", "rolled_back"),
            ("d4", "upgrade", "migration", "failed"),
        ]
        assert (await command.current(config)).heads == ("a1",)


async def test_first_run_failing_still_records(tmp_path: Path, sqlite_or_pg_db: URL) -> None:
    """The table created in the failed transaction is gone; the failure row still lands."""
    bad = Rev("x1", None, "op.execute('SELECT * FROM missing')")
    config = make_project(tmp_path, [bad], url=sqlite_or_pg_db, ini_extra=HISTORY)
    with pytest.raises(MigrationError):
        await command.upgrade(config, "head")
    assert summary(await history_rows(sqlite_or_pg_db)) == [("x1", "upgrade", "migration", "failed")]


# -- beside Alembic ---------------------------------------------------------------------------------


def sync_url(url: URL) -> str:
    drivers = {"sqlite": "sqlite", "postgresql": "postgresql+psycopg2", "mysql": "mysql+pymysql"}
    return url.set(drivername=drivers[url.get_backend_name()]).render_as_string(hide_password=False)


async def alembic(ini: Path, verb: str, target: str) -> None:
    def call() -> None:
        from alembic import command as alembic_command
        from alembic.config import Config as AlembicConfig

        getattr(alembic_command, verb)(AlembicConfig(str(ini)), target)

    await anyio.to_thread.run_sync(call)


async def test_interleaving_with_alembic(tmp_path: Path, any_db: URL) -> None:
    config = make_project(tmp_path / "ours", REVS, url=any_db, ini_extra=HISTORY)
    ini = alembic_project(tmp_path / "theirs", versions_dir(tmp_path / "ours"), sync_url(any_db))

    await alembic(ini, "upgrade", "a1")  # an Alembic-managed database ...
    await command.upgrade(config, "b2")  # ... taken over: the record starts at a1
    assert summary(await history_rows(any_db)) == [
        ("a1", "upgrade", "baseline", "applied"),
        ("b2", "upgrade", "migration", "applied"),
    ]
    await alembic(ini, "upgrade", "head")  # Alembic ignores the history table
    await alembic(ini, "downgrade", "b2")
    assert (await command.current(config)).heads == ("b2",)
    await command.upgrade(config, "head")  # and asyncmigrate takes over again
    await alembic(ini, "downgrade", "base")
    assert (await command.current(config)).heads == ()
    assert summary(await history_rows(any_db)) == [
        ("a1", "upgrade", "baseline", "applied"),
        ("b2", "upgrade", "migration", "applied"),
        ("c3", "upgrade", "migration", "applied"),
    ]
    engine = create_async_engine(any_db, poolclass=NullPool)
    async with engine.connect() as conn:
        names = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
    await engine.dispose()
    assert names == {"alembic_version", "asyncmigrate_history"}


async def test_row_checksum_is_the_code_that_ran(tmp_path: Path, sqlite_or_pg_db: URL) -> None:
    """A revision that rewrites files while the run goes on: each row names the file as it was imported.

    b2's upgrade() edits c3's file (already imported for the run) and its own:
    the rows still carry the checksums of the code that ran, and ``validate``
    then reports both files changed since.
    """
    rewrite = (
        "import pathlib\n"
        "for f in pathlib.Path(__file__).parent.glob('*.py'):\n"
        "    if f.name.startswith(('b2_', 'c3_')):\n"
        "        f.write_text(f.read_text() + '\\n# edited while running\\n')\n"
        "op.execute('CREATE TABLE t2 (id INTEGER PRIMARY KEY)')"
    )
    revs = [REVS[0], Rev("b2", "a1", rewrite), REVS[2]]
    config = make_project(tmp_path, revs, url=sqlite_or_pg_db, ini_extra=HISTORY)
    files = {p.name.split("_")[0]: p for p in versions_dir(tmp_path).glob("*.py")}
    before = {rev: file_checksum(path) for rev, path in files.items()}

    await command.upgrade(config, "head")

    rows = await history_rows(sqlite_or_pg_db)
    assert [(r["revision"], r["checksum"]) for r in rows] == [(rev, before[rev]) for rev in ("a1", "b2", "c3")]
    report = await command.validate(config)
    assert sorted((d.kind, d.revision) for d in report.drift) == [("changed", "b2"), ("changed", "c3")]
