"""The interruption battery: a run stopped at a random point leaves nothing behind.

Cancelled in the caller's loop (``url=``, ``engine=``, ``connection=``, the
lifespan) or killed as a process (SIGKILL, SIGTERM, SIGINT), on PostgreSQL,
SQLite and MariaDB, with one transaction per run or per migration: each
case must end with no statement of the stopped run still running on the
server, no migration lock held, the database at a recorded revision whose
tables are all there, and a re-run that completes.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
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

import asyncmigrate
from asyncmigrate import Config, command

from ..project import PER_MIGRATION_ENV, make_project
from .interruptions import assert_consistent, lock_is_free, recorded, settled, slow_steps

BACKENDS = ["sqlite", "postgresql", "mysql"]


def _project(tmp_path: Path, url: URL, backend: str, per_migration: bool) -> Config:
    return make_project(
        tmp_path, slow_steps(backend), url=url, env_py=PER_MIGRATION_ENV if per_migration else None
    )


def _delay(*seed: object) -> float:
    """A cancellation point somewhere in the run, the same on every run of the test.

    The four slow steps work 1.0 s on the server between them; the point falls
    before 0.9 s, so the run is always still going.
    """
    return random.Random(repr(seed)).uniform(0.05, 0.9)


async def _finish(config: Config, url: URL, backend: str) -> None:
    """After a stop: nothing runs, the lock is free, the revision is consistent, a re-run completes."""
    await settled(url)
    await assert_consistent(url, backend)
    with anyio.fail_after(30):
        result = await command.upgrade(config, "head", lock_timeout=5)
    assert result.to_heads == ("r4",)
    assert await assert_consistent(url, backend) == 4


@pytest.mark.parametrize("per_migration", [False, True], ids=["one-transaction", "per-migration"])
@pytest.mark.parametrize("given", ["url", "engine"])
async def test_a_cancelled_command_stops_on_the_server_too(
    tmp_path: Path, any_db: URL, given: str, per_migration: bool
) -> None:
    backend = any_db.get_backend_name()
    config = _project(tmp_path, any_db, backend, per_migration)
    engine = create_async_engine(any_db) if given == "engine" else None
    delay = _delay(backend, given, per_migration)
    try:
        started = time.perf_counter()
        with anyio.move_on_after(delay) as scope:
            if engine is not None:
                await command.upgrade(config, "head", engine=engine)
            else:
                await command.upgrade(config, "head")
        assert scope.cancelled_caught, "the run ended before it could be stopped"
        assert time.perf_counter() - started < delay + 5, "the cancellation waited for the run"
        if engine is not None:  # the app's pool still serves, its connections clean
            async with engine.connect() as conn:
                assert (await conn.execute(text("SELECT 1"))).scalar() == 1
        await _finish(config, any_db, backend)
    finally:
        if engine is not None:
            await engine.dispose()


async def test_cancelled_inside_the_callers_transaction(tmp_path: Path, sqlite_or_pg_db: URL) -> None:
    # The caller gets its transaction back as it was: its own work stays, none of the run's.
    backend = sqlite_or_pg_db.get_backend_name()
    config = make_project(tmp_path, slow_steps(backend))
    engine = create_async_engine(sqlite_or_pg_db, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            await conn.begin()
            await conn.execute(text("CREATE TABLE mine (id INTEGER)"))
            with anyio.move_on_after(_delay(backend, "connection")):
                await command.upgrade(config, "head", connection=conn)
            assert (await conn.execute(text("SELECT count(*) FROM mine"))).scalar() == 0
            await conn.commit()
    finally:
        await engine.dispose()
    assert await recorded(sqlite_or_pg_db) == ({"mine"}, set())
    await settled(sqlite_or_pg_db)


async def test_a_cancelled_lifespan_start_up_leaves_nothing_behind(tmp_path: Path, pg_db: URL) -> None:
    config = _project(tmp_path, pg_db, "postgresql", per_migration=False)
    engine = create_async_engine(pg_db)
    try:
        with anyio.move_on_after(_delay("lifespan")):
            async with asyncmigrate.lifespan(config, engine=engine):
                pytest.fail("the application must not start before the migration ends")
        await _finish(config, pg_db, "postgresql")
    finally:
        await engine.dispose()


SIGNALS = {"SIGKILL": signal.SIGKILL, "SIGTERM": signal.SIGTERM, "SIGINT": signal.SIGINT}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(SIGNALS))
async def test_a_killed_command_line_run_leaves_nothing_behind(tmp_path: Path, any_db: URL, name: str) -> None:
    backend = any_db.get_backend_name()
    chooser = random.Random(f"{backend}-{name}")
    config = _project(tmp_path, any_db, backend, per_migration=chooser.random() < 0.5)
    assert config.config_file_name is not None
    process = subprocess.Popen(
        [sys.executable, "-m", "asyncmigrate", "-c", config.config_file_name, "upgrade", "head"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        await _until_a_step_runs(any_db, process)
        await asyncio.sleep(chooser.uniform(0.0, 0.8))
        process.send_signal(SIGNALS[name])
        await asyncio.to_thread(process.wait, 30)
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()
    await _finish(config, any_db, backend)


async def _until_a_step_runs(url: URL, process: subprocess.Popen[bytes]) -> None:
    """Wait until the command line run holds the migration lock (the interpreter starts first)."""
    deadline = time.monotonic() + 30
    # One pooled engine: a probe is one query, not a new connection (slow on a loaded machine,
    # where probes a connection apart could miss the whole run).
    engine = create_async_engine(url) if url.get_backend_name() != "sqlite" else None
    try:
        while time.monotonic() < deadline and process.poll() is None:
            if not await lock_is_free(url, engine):
                return
            await asyncio.sleep(0.02)
    finally:
        if engine is not None:
            await engine.dispose()
    raise AssertionError("the run never took the migration lock")
