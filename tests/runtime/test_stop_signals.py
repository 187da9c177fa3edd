"""SIGTERM is stopped like Ctrl-C, as Kubernetes sends it: one line, 128 + signal, nothing left behind.

Each test runs the real thing as a subprocess against PostgreSQL (the
command line, the fan-out, a uvicorn server with ``asyncmigrate.lifespan``),
stops it while a long step runs on the server, and then looks right away --
not after a grace period -- for a statement still running and an advisory
lock still held.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from .. import backends
from ..project import Rev, make_project
from .interruptions import lock_is_free, recorded, server_busy

pytestmark = [pytest.mark.postgresql, pytest.mark.slow]

LONG = Rev("r1", None, 'op.execute("CREATE TABLE t1 (id INTEGER)")\nop.execute("SELECT pg_sleep(30)")')
CODES = {"SIGTERM": 143, "SIGINT": 130}


def _spawn(args: list[str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, *args], cwd=cwd, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


async def _until_sleeping(
    urls: list[URL], process: subprocess.Popen[str], count: int | None = None
) -> None:
    """Wait until ``count`` (default: all) of ``urls`` run the long step on the server."""
    want = len(urls) if count is None else count
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        busy = [url for url in urls if any("pg_sleep" in q for q in await server_busy(url))]
        if len(busy) >= want:
            return
        await asyncio.sleep(0.05)
    out, err = process.communicate(timeout=5) if process.poll() is not None else ("", "")
    raise AssertionError(f"the long step never ran on the server: {out}{err}")


async def _stop(process: subprocess.Popen[str], name: str, within: float = 10) -> tuple[str, str]:
    process.send_signal(getattr(signal, name))
    try:
        return await asyncio.to_thread(process.communicate, timeout=within)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        raise AssertionError(f"still running {within}s after {name}: {out}{err}") from None


async def _left_nothing(url: URL) -> None:
    """Right after the process ended: no statement of it runs, its lock is free, nothing applied."""
    assert await server_busy(url) == []
    assert await lock_is_free(url)
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            locks = (await conn.execute(text(
                "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database "
                "WHERE l.locktype = 'advisory' AND d.datname = current_database()"
            ))).scalar()
    finally:
        await engine.dispose()
    assert locks == 0
    assert await recorded(url) == (set(), set())


@pytest.mark.parametrize("name", ["SIGTERM", "SIGINT"])
async def test_the_command_line_stops_on_sigterm_as_on_ctrl_c(
    tmp_path: Path, pg_db: URL, name: str
) -> None:
    config = make_project(tmp_path, [LONG], url=pg_db)
    assert config.config_file_name is not None
    process = _spawn(["-m", "asyncmigrate", "-c", config.config_file_name, "upgrade", "head"], tmp_path)
    await _until_sleeping([pg_db], process)
    started = time.monotonic()
    out, err = await _stop(process, name)
    assert time.monotonic() - started < 5, "the stop waited for the step"
    assert process.returncode == CODES[name], (process.returncode, out, err)
    assert err.splitlines() == [err.strip()], err  # one line
    assert f"Interrupted by {name}" in err
    assert "Traceback" not in err + out
    await _left_nothing(pg_db)


@pytest.fixture
async def pg_dbs() -> AsyncIterator[list[URL]]:
    """Three fresh PostgreSQL databases, one per tenant."""
    backends.require("postgresql")
    async with AsyncExitStack() as stack:
        yield [await stack.enter_async_context(backends.scratch_database("postgresql")) for _ in range(3)]


def _tenants(tmp_path: Path, urls: list[URL], seconds: float) -> tuple[Path, Path]:
    lines = []
    for i, url in enumerate(urls):
        rendered = url.set(drivername="postgresql").render_as_string(hide_password=False)
        lines.append(f'[[tenants]]\nname = "t{i}"\nurl = "{rendered}"\n')
    tenants = tmp_path / "tenants.toml"
    tenants.write_text("\n".join(lines), encoding="utf-8")
    body = f'op.execute("CREATE TABLE t1 (id INTEGER)")\nop.execute("SELECT pg_sleep({seconds})")'
    step = Rev("r1", None, body)
    config = make_project(tmp_path, [step])
    assert config.config_file_name is not None
    return tenants, Path(config.config_file_name)


async def test_the_fanout_finishes_in_flight_tenants_on_one_sigterm(
    tmp_path: Path, pg_dbs: list[URL]
) -> None:
    urls = pg_dbs
    tenants, ini = _tenants(tmp_path, urls, seconds=2)
    report = tmp_path / "report.json"
    process = _spawn(["-m", "asyncmigrate", "-c", str(ini), "upgrade", "head", "--tenants", str(tenants),
                      "--concurrency", "1", "--report", str(report)], tmp_path)
    await _until_sleeping(urls, process, count=1)
    out, err = await _stop(process, "SIGTERM")
    assert process.returncode == 143, (out, err)
    signal_lines = [line for line in err.splitlines() if "SIGTERM" in line]
    assert len(signal_lines) == 1, err
    assert "no new tenants start" in signal_lines[0]
    assert "Traceback" not in err + out
    statuses = [r["status"] for r in json.loads(report.read_text())["tenants"]]
    assert sorted(statuses) == ["ok", "skipped", "skipped"], statuses
    for url in urls:
        assert await server_busy(url) == []
        assert await lock_is_free(url)


async def test_a_second_sigterm_cancels_the_fanouts_in_flight_tenants(
    tmp_path: Path, pg_dbs: list[URL]
) -> None:
    urls = pg_dbs[:2]
    tenants, ini = _tenants(tmp_path, urls, seconds=30)
    process = _spawn(["-m", "asyncmigrate", "-c", str(ini), "upgrade", "head", "--tenants", str(tenants),
                      "--concurrency", "2"], tmp_path)
    await _until_sleeping(urls, process)
    process.send_signal(signal.SIGTERM)
    await asyncio.sleep(0.5)
    assert process.poll() is None, "one SIGTERM lets in-flight tenants finish"
    out, err = await _stop(process, "SIGTERM")
    assert process.returncode == 143, (out, err)
    assert len([line for line in err.splitlines() if "SIGTERM" in line]) == 2, err  # one per signal
    assert "Traceback" not in err + out
    for url in urls:
        await _left_nothing(url)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


APP = """\
import logging
from starlette.applications import Starlette
import asyncmigrate

logging.basicConfig(level=logging.INFO)
app = Starlette(lifespan=asyncmigrate.lifespan("alembic.ini"))
"""


@pytest.mark.parametrize("name", ["SIGTERM", "SIGINT"])
async def test_uvicorn_stopped_during_the_start_up_migration(
    tmp_path: Path, pg_db: URL, name: str
) -> None:
    make_project(tmp_path, [LONG], url=pg_db)
    (tmp_path / "app.py").write_text(APP, encoding="utf-8")
    process = _spawn(["-m", "uvicorn", "app:app", "--port", str(_free_port())], tmp_path)
    await _until_sleeping([pg_db], process)
    started = time.monotonic()
    out, err = await _stop(process, name)
    assert time.monotonic() - started < 5, "the stop waited for the step"
    # Ended by the signal itself once clean (a shell, or Kubernetes, reports 143 / 130).
    assert process.returncode == -getattr(signal, name), (process.returncode, out, err)
    ours = [line for line in err.splitlines() if "asyncmigrate" in line and "ERROR" in line]
    assert len(ours) == 1, err
    assert f"interrupted by {name}" in ours[0]
    assert "Traceback" not in err + out
    assert "Application startup complete" not in err
    await _left_nothing(pg_db)
