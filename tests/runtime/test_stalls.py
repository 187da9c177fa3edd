"""A connection that stops answering mid-run (read_timeout): a one-way stall never hangs a run.

The proxy delivers the client's statements to the server and, once stalled,
loses every answer on the way back (the server closing the connection
included), as a stuck NAT or proxy does. The run must end with one line,
leave no session on the server and no lock held, and the database at a
recorded revision a re-run completes from; a statement the server is still
running is never mistaken for a stall.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy.engine import URL

from asyncmigrate import command
from asyncmigrate.exceptions import ConnectionFailedError

from ..netfaults import Proxy, proxy_to
from ..project import PER_MIGRATION_ENV, Rev, make_project
from .interruptions import SLEEPS, assert_consistent, server_busy, settled, slow_steps


def _backend(url: URL) -> str:
    return "postgresql" if url.get_backend_name() == "postgresql" else "mysql"


async def _stall_during_the_sleep(url: URL, proxy: Proxy, task: asyncio.Task[object]) -> float:
    """Stall the proxy once the server runs a step's sleep; return when."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not task.done():
        if any("SLEEP" in q.upper() for q in await server_busy(url)):
            proxy.stall()
            return time.monotonic()
        await asyncio.sleep(0.02)
    raise AssertionError(f"the step never ran on the server: {task}")


@pytest.mark.parametrize("per_migration", [False, True], ids=["per-run", "per-migration"])
async def test_a_lost_answer_fails_the_run_and_frees_the_server(
    tmp_path: Path, server_db: URL, per_migration: bool
) -> None:
    backend = _backend(server_db)
    revisions = slow_steps(backend, count=3, seconds=0.4)
    env_py = PER_MIGRATION_ENV if per_migration else None
    async with proxy_to(server_db) as proxy:
        config = make_project(tmp_path, revisions, url=proxy.url(server_db), env_py=env_py)
        config.set_main_option("read_timeout", "1.5")
        config.set_main_option("connect_timeout", "3")
        task = asyncio.ensure_future(command.upgrade(config, "head"))
        stalled_at = await _stall_during_the_sleep(server_db, proxy, task)
        with pytest.raises(ConnectionFailedError) as caught:
            await asyncio.wait_for(task, 30)
        took = time.monotonic() - stalled_at
    message = str(caught.value)
    assert "\n" not in message
    assert "The connection stalled" in message, message
    assert "read_timeout" in message, message
    assert "session was terminated" in message, message
    # Noticed after about read_timeout of silence (plus the check), not after the OS's minutes.
    assert took < 12, took
    await settled(server_db)
    await assert_consistent(server_db, backend)
    # A re-run over a sound network completes.
    config.set_main_option("sqlalchemy.url", server_db.render_as_string(hide_password=False))
    await command.upgrade(config, "head")
    assert await assert_consistent(server_db, backend) == 3


async def test_a_long_statement_is_not_a_stall(tmp_path: Path, server_db: URL) -> None:
    """The server is busy with the step far longer than read_timeout: the run waits and succeeds."""
    backend = _backend(server_db)
    body = "op.execute(" + repr(SLEEPS[backend].format(s=3)) + ")"
    revisions = [Rev("r1", None, 'op.execute("CREATE TABLE t1 (id INTEGER)")\n' + body)]
    async with proxy_to(server_db) as proxy:
        config = make_project(tmp_path, revisions, url=proxy.url(server_db))
        config.set_main_option("read_timeout", "0.5")
        result = await command.upgrade(config, "head")
    assert result.to_heads == ("r1",)


async def test_python_work_and_pauses_in_a_step_are_not_a_stall(tmp_path: Path, pg_db: URL) -> None:
    """Python that blocks the loop and asyncmigrate's own pauses do not count as silence."""
    body = (
        'op.execute("CREATE TABLE t1 (id INTEGER)")\n'
        "import time; time.sleep(2)\n"
        "from asyncmigrate._greenlet import sleep; sleep(2)\n"
        'op.execute("INSERT INTO t1 VALUES (1)")'
    )
    async with proxy_to(pg_db) as proxy:
        config = make_project(tmp_path, [Rev("r1", None, body)], url=proxy.url(pg_db))
        config.set_main_option("read_timeout", "1")
        result = await command.upgrade(config, "head")
    assert result.to_heads == ("r1",)


async def test_the_cli_says_one_line_and_exits_1(tmp_path: Path, pg_db: URL) -> None:
    revisions = slow_steps("postgresql", count=2, seconds=0.4)
    async with proxy_to(pg_db) as proxy:
        make_project(tmp_path, revisions, url=proxy.url(pg_db))
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "asyncmigrate", "--read-timeout", "1.5", "upgrade", "head",
            cwd=tmp_path, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        waiter = asyncio.ensure_future(process.wait())
        await _stall_during_the_sleep(pg_db, proxy, waiter)
        out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 1, (out, err)
    lines = err.decode().strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("ERROR: The connection stalled"), lines
    await settled(pg_db)
    await assert_consistent(pg_db, "postgresql")
