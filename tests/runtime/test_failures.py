"""Runs that go wrong end with one line, a non-zero exit, no traceback and a consistent database.

Each case runs the command line as a user would: the server drops the
connection mid-step, a revision calls ``sys.exit``, another process holds
an SQLite write lock, a server accepts TCP and never answers.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from asyncmigrate import Config, command
from asyncmigrate.exceptions import ConnectionFailedError

from ..project import Rev, make_project
from .interruptions import lock_is_free, recorded, server_busy


def _cli(cwd: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "asyncmigrate", *args], cwd=cwd, capture_output=True, text=True,
        timeout=timeout, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def _one_line(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 1, done
    assert "Traceback" not in done.stderr + done.stdout
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("ERROR: ")
    return lines[0]


@pytest.mark.postgresql
async def test_the_server_closing_the_connection_mid_step(tmp_path: Path, pg_db: URL) -> None:
    steps = [
        Rev("r1", None, 'op.execute("CREATE TABLE t1 (id INTEGER)")'),
        Rev("r2", "r1", 'op.execute("CREATE TABLE t2 (id INTEGER)")\nop.execute("SELECT pg_sleep(30)")'),
    ]
    config = make_project(tmp_path, steps, url=pg_db)
    assert config.config_file_name is not None
    process = subprocess.Popen(
        [sys.executable, "-m", "asyncmigrate", "-c", config.config_file_name, "upgrade", "head"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    admin = create_async_engine(pg_db, poolclass=NullPool)
    try:
        deadline = time.monotonic() + 30
        while not any("pg_sleep" in q for q in await server_busy(pg_db)):
            assert time.monotonic() < deadline, "the step never ran"
            assert process.poll() is None, "the run ended before its step ran"
            await asyncio.sleep(0.05)
        async with admin.connect() as conn:
            await conn.execute(text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND query LIKE '%pg_sleep%' AND pid <> pg_backend_pid()"
            ))
        out, err = await asyncio.to_thread(process.communicate, timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
        await admin.dispose()
    line = _one_line(subprocess.CompletedProcess(process.args, process.returncode, out, err))
    assert "SELECT pg_sleep(30)" in line
    assert "still at <base>" in line
    assert await recorded(pg_db) == (set(), set())
    assert await server_busy(pg_db) == []
    assert await lock_is_free(pg_db)


def test_a_revision_calling_sys_exit(tmp_path: Path) -> None:
    steps = [
        Rev("r1", None, 'op.execute("CREATE TABLE t1 (id INTEGER)")'),
        Rev("r2", "r1", 'op.execute("CREATE TABLE t2 (id INTEGER)")\nimport sys\nsys.exit(3)'),
    ]
    make_project(tmp_path, steps, url=f"sqlite:///{tmp_path / 'app.db'}")
    line = _one_line(_cli(tmp_path, "upgrade", "head"))
    assert "r2" in line
    assert "sys.exit(3)" in line
    assert "still at <base>" in line
    with sqlite3.connect(tmp_path / "app.db") as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert not tables & {"t1", "t2"}


def test_a_sqlite_file_another_process_holds_locked(tmp_path: Path) -> None:
    database = tmp_path / "app.db"
    make_project(tmp_path, [Rev("r1", None, 'op.execute("CREATE TABLE t1 (id INTEGER)")')],
                 url=f"sqlite:///{database}")
    holder = sqlite3.connect(database, isolation_level=None)
    try:
        holder.execute("CREATE TABLE other (id INTEGER)")
        holder.execute("BEGIN EXCLUSIVE")
        holder.execute("INSERT INTO other VALUES (1)")
        line = _one_line(_cli(tmp_path, "upgrade", "head"))
    finally:
        holder.close()
    assert str(database) in line
    assert "locked" in line
    assert "another process" in line
    assert "run again" in line
    # Once the other process let go, the same command goes through.
    assert _cli(tmp_path, "upgrade", "head").returncode == 0


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A loopback port that accepts TCP connections and never sends a byte."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.2)
    accepted: list[socket.socket] = []
    done = threading.Event()

    def serve() -> None:
        while not done.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        done.set()
        thread.join(5)
        for conn in accepted:
            conn.close()
        listener.close()


@pytest.mark.parametrize("backend", ["postgresql", "mysql"])
def test_a_server_that_never_answers_fails_within_the_connect_timeout(
    tmp_path: Path, silent_server: int, backend: str
) -> None:
    make_project(tmp_path, [Rev("r1", None)])
    url = f"{backend}://someone@127.0.0.1:{silent_server}/app"
    started = time.monotonic()
    line = _one_line(_cli(tmp_path, "--connect-timeout", "1.5", "--url", url, "upgrade", "head", timeout=30))
    assert time.monotonic() - started < 10
    assert "no answer within 1.5s (connect_timeout)" in line


async def test_the_connect_timeout_option_and_its_default(tmp_path: Path, silent_server: int) -> None:
    url = f"postgresql://someone@127.0.0.1:{silent_server}/app"
    config = make_project(tmp_path, [Rev("r1", None)], url=url, ini_extra="connect_timeout = 0.5")
    started = time.monotonic()
    with pytest.raises(ConnectionFailedError, match=r"no answer within 0\.5s"):
        await command.current(config)
    assert time.monotonic() - started < 5
    default = Config(str(tmp_path / "alembic.ini"))
    default.remove_main_option("connect_timeout")
    from asyncmigrate.runtime.environment import connect_timeout

    assert connect_timeout(default) == 30.0


def test_the_fanout_reports_a_silent_tenant_and_migrates_the_others(
    tmp_path: Path, silent_server: int
) -> None:
    make_project(tmp_path, [Rev("r1", None, 'op.execute("CREATE TABLE t1 (id INTEGER)")')])
    tenants = tmp_path / "tenants.toml"
    tenants.write_text(
        f'[[tenants]]\nname = "silent"\nurl = "postgresql://someone@127.0.0.1:{silent_server}/app"\n'
        f'[[tenants]]\nname = "fine"\nurl = "sqlite:///{tmp_path / "fine.db"}"\n'
    )
    report = tmp_path / "report.json"
    started = time.monotonic()
    done = _cli(tmp_path, "--connect-timeout", "1", "upgrade", "head", "--tenants", str(tenants),
                "--report", str(report), "--no-progress", timeout=30)
    assert time.monotonic() - started < 10
    assert done.returncode == 1
    assert "Traceback" not in done.stderr + done.stdout
    results = {t["name"]: t for t in json.loads(report.read_text())["tenants"]}
    assert results["fine"]["status"] == "ok"
    assert results["silent"]["status"] == "failed"
    assert "no answer within 1s (connect_timeout)" in results["silent"]["error"]
