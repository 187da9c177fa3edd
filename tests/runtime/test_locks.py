"""Cross-process migration locks: replicas starting together never race."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import anyio
import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from asyncmigrate import command
from asyncmigrate.exceptions import LockTimeoutError, MigrationError

from .. import backends
from ..project import Rev, make_project

# Every migration logs itself; a migration applied twice would log twice (or fail on CREATE TABLE).
RACY = [
    Rev("a1", None, """
        op.execute("CREATE TABLE applied_log (rev VARCHAR(10))")
        op.execute("INSERT INTO applied_log VALUES ('a1')")
    """),
    Rev("b2", "a1", """
        import time
        if op.get_bind().dialect.name == "postgresql":
            op.execute("SELECT pg_sleep(0.3)")
        else:
            time.sleep(0.3)
        op.execute("CREATE TABLE b2_table (id INTEGER)")
        op.execute("INSERT INTO applied_log VALUES ('b2')")
    """),
    Rev("c3", "b2", """
        op.execute("CREATE TABLE c3_table (id INTEGER)")
        op.execute("INSERT INTO applied_log VALUES ('c3')")
    """),
]


async def applied(url: URL) -> list[str]:
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            log = [r[0] for r in await conn.execute(text("SELECT rev FROM applied_log ORDER BY rev"))]
            versions = [r[0] for r in await conn.execute(text("SELECT version_num FROM alembic_version"))]
    finally:
        await engine.dispose()
    assert versions == ["c3"]
    return log


def run_processes(root: Path, url: URL, count: int = 8) -> list[subprocess.CompletedProcess[str]]:
    """Start ``count`` CLI processes at once, all running ``upgrade head``."""
    env = {**os.environ, "ASYNCMIGRATE_DATABASE_URL": url.render_as_string(hide_password=False)}
    cmd = [sys.executable, "-m", "asyncmigrate", "-c", str(root / "alembic.ini"), "upgrade", "head"]
    procs = [
        subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(count)
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        results.append(subprocess.CompletedProcess(cmd, proc.returncode, out, err))
    return results


@pytest.mark.slow
async def test_eight_processes_on_postgresql(tmp_path: Path, pg_db: URL) -> None:
    make_project(tmp_path, RACY)
    results = await anyio.to_thread.run_sync(run_processes, tmp_path, pg_db)
    for result in results:
        assert result.returncode == 0, result.stderr
    assert await applied(pg_db) == ["a1", "b2", "c3"]
    # Exactly one process did the work; the others found the database at head.
    assert sum("Applied 3 steps" in r.stdout for r in results) == 1
    assert sum("Nothing to do" in r.stdout for r in results) == 7


@pytest.mark.slow
async def test_eight_processes_on_sqlite(tmp_path: Path) -> None:
    url = backends.sqlite_url(tmp_path / "shared.db")
    make_project(tmp_path, RACY)
    results = await anyio.to_thread.run_sync(run_processes, tmp_path, url)
    for result in results:
        assert result.returncode == 0, result.stderr
    assert await applied(url) == ["a1", "b2", "c3"]
    assert sum("Applied 3 steps" in r.stdout for r in results) == 1


async def test_lock_timeout_is_a_clear_error(tmp_path: Path, sqlite_or_pg_db: URL) -> None:
    slow = [Rev("a1", None, """
        import time
        if op.get_bind().dialect.name == "postgresql":
            op.execute("SELECT pg_sleep(1.5)")
        else:
            from asyncmigrate._greenlet import sleep
            sleep(1.5)
        op.execute("CREATE TABLE t (id INTEGER)")
    """)]
    config = make_project(tmp_path, slow, url=sqlite_or_pg_db)
    outcome: dict[str, object] = {}

    async def first() -> None:
        outcome["first"] = await command.upgrade(config, "head")

    async def second() -> None:
        await anyio.sleep(0.5)
        started = time.perf_counter()
        try:
            await command.upgrade(config, "head", lock_timeout=0.3)
        except LockTimeoutError as exc:
            outcome["second"] = exc
        outcome["waited"] = time.perf_counter() - started

    async with anyio.create_task_group() as tg:
        tg.start_soon(first)
        tg.start_soon(second)
    assert isinstance(outcome["second"], LockTimeoutError)
    assert "another process is migrating" in str(outcome["second"])
    assert 0.3 <= outcome["waited"] < 1.2  # type: ignore[operator]
    assert outcome["first"].to_heads == ("a1",)  # type: ignore[attr-defined]


async def test_waiting_migrator_finds_database_at_head(tmp_path: Path, sqlite_or_pg_db: URL) -> None:
    config = make_project(tmp_path, RACY, url=sqlite_or_pg_db)
    results = []

    async def migrate() -> None:
        results.append(await command.upgrade(config, "head"))

    async with anyio.create_task_group() as tg:
        for _ in range(4):
            tg.start_soon(migrate)
    assert sorted(len(r.steps) for r in results) == [0, 0, 0, 3]
    assert await applied(sqlite_or_pg_db) == ["a1", "b2", "c3"]


async def test_without_the_lock_concurrent_runs_collide(tmp_path: Path, pg_db: URL) -> None:
    """The control experiment: with locking off, a second migrator re-runs the same steps."""
    config = make_project(tmp_path, RACY, url=pg_db)
    errors: list[BaseException] = []

    async def migrate() -> None:
        try:
            await command.upgrade(config, "head", lock=False)
        except MigrationError as exc:
            errors.append(exc)
        except Exception as exc:  # the version table itself may collide first
            errors.append(exc)

    async with anyio.create_task_group() as tg:
        tg.start_soon(migrate)
        tg.start_soon(migrate)
    assert errors, "two unlocked migrators both succeeded; the race was not reproduced"


async def test_schemas_of_one_database_lock_independently(tmp_path: Path, pg_db: URL) -> None:
    """Tenants in different schemas do not wait for each other."""
    env_py = (Path(__file__).parents[2] / "templates" / "async" / "env.py").read_text()
    env_py = env_py.replace(
        "context.configure(connection=connection, target_metadata=target_metadata)",
        "schema = context.get_tag_argument()\n"
        "    connection.exec_driver_sql(f'CREATE SCHEMA IF NOT EXISTS {schema}')\n"
        "    connection.exec_driver_sql(f'SET search_path TO {schema}')\n"
        "    connection.commit()\n"
        "    context.configure(connection=connection, version_table_schema=schema)",
    )
    slow = [Rev("a1", None, "op.execute('SELECT pg_sleep(0.6)')\nop.execute('CREATE TABLE t (id INTEGER)')")]
    config = make_project(tmp_path, slow, url=pg_db, env_py=env_py)
    started = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for schema in ("tenant_a", "tenant_b", "tenant_c"):
            tg.start_soon(lambda s=schema: command.upgrade(config, "head", tag=s, lock_timeout=0.2))
    assert time.perf_counter() - started < 1.5


async def test_in_a_callers_transaction_the_lock_lasts_until_it_ends(tmp_path: Path, pg_db: URL) -> None:
    # Migrating over the caller's connection inside its transaction: the lock is a
    # transaction-level one, so another migrator waits until the caller commits.
    config = make_project(tmp_path, [Rev("a1", None, 'op.execute("CREATE TABLE t (id INTEGER)")')])
    engine = create_async_engine(pg_db, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            async with conn.begin():
                await command.upgrade(config, "head", connection=conn)
                with pytest.raises(LockTimeoutError):
                    await command.upgrade(config, "head", url=pg_db, lock_timeout=0.3)
            # Committed: the other migrator now finds the database at head.
            result = await command.upgrade(config, "head", url=pg_db, lock_timeout=0.3)
            assert not result.changed
    finally:
        await engine.dispose()


async def test_waiting_migrators_given_a_url_find_the_database_at_head(tmp_path: Path, pg_db: URL) -> None:
    # With url= each command opens its connection early and reads the version table
    # while connecting; under the lock the read is made again, so only one applies.
    config = make_project(tmp_path, RACY)
    url = pg_db.render_as_string(hide_password=False)
    results = []

    async def migrate() -> None:
        results.append(await command.upgrade(config, "head", url=url))

    async with anyio.create_task_group() as tg:
        for _ in range(4):
            tg.start_soon(migrate)
    assert sorted(len(r.steps) for r in results) == [0, 0, 0, 3]
    assert await applied(pg_db) == ["a1", "b2", "c3"]
