"""What the interruption battery looks at after a run was stopped: the server, the lock, the revision.

Every check here reads the database from a connection of its own, as an
operator (or the next replica) would.
"""

from __future__ import annotations

import asyncio
import fcntl
import functools
import hashlib
import sqlite3
import time
from pathlib import Path

from sqlalchemy import inspect, text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from ..project import Rev

#: Steps t1..tN, each doing some work on the server (PostgreSQL, MariaDB: a sleep;
#: SQLite: a query that counts for a while), idempotent so a re-run after MySQL's
#: half-done step still completes.
SLEEPS = {
    "postgresql": "SELECT pg_sleep({s})",
    "mysql": "SELECT SLEEP({s})",
    "sqlite": (
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {n}) "
        "SELECT count(*) FROM c"
    ),
}


@functools.cache
def sqlite_rows_per_second() -> float:
    """How fast this machine's SQLite counts (so its "sleep" lasts as long as the servers' do)."""
    rows, fastest = 500_000, float("inf")
    with sqlite3.connect(":memory:") as conn:
        for _ in range(3):  # the fastest run: a step then lasts at least as long as asked
            started = time.perf_counter()
            conn.execute(SLEEPS["sqlite"].format(n=rows)).fetchall()
            fastest = min(fastest, time.perf_counter() - started)
    return rows / fastest


def slow_steps(backend: str, count: int = 4, seconds: float = 0.25) -> list[Rev]:
    """``count`` revisions r1..rN, each creating table tN then working ``seconds`` on the server."""
    # SQLite's count runs on this process's CPU, shared with whatever else runs: twice the
    # calibrated rows keep it working at least ``seconds`` under load.
    rows = int(2 * seconds * sqlite_rows_per_second()) if backend == "sqlite" else 0
    sleep = SLEEPS[backend].format(s=seconds, n=rows)
    revisions = []
    for i in range(1, count + 1):
        body = (
            f'op.execute("CREATE TABLE IF NOT EXISTS t{i} (id INTEGER)")\n'
            f'op.execute("{sleep}")'
        )
        revisions.append(Rev(f"r{i}", f"r{i - 1}" if i > 1 else None, body, f'op.drop_table("t{i}")'))
    return revisions


async def recorded(url: URL) -> tuple[set[str], set[str]]:
    """The user tables and the version rows of ``url``'s database."""
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            names = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
            versions: set[str] = set()
            if "alembic_version" in names:
                versions = set((await conn.execute(text("SELECT version_num FROM alembic_version"))).scalars())
            return names - {"alembic_version"}, versions
    finally:
        await engine.dispose()


async def assert_consistent(url: URL, backend: str) -> int:
    """The database is at a recorded revision whose tables are all there; return its number.

    On the transactional databases nothing beyond the recorded revision
    exists; MySQL/MariaDB commits each DDL statement, so the step that was
    stopped may have left its table (a re-run of its idempotent DDL copes).
    """
    tables, versions = await recorded(url)
    assert len(versions) <= 1, versions
    at = int(next(iter(versions))[1:]) if versions else 0
    expected = {f"t{i}" for i in range(1, at + 1)}
    if backend == "mysql":
        assert expected <= tables <= expected | {f"t{at + 1}"}, (tables, versions)
    else:
        assert tables == expected, (tables, versions)
    return at


async def server_busy(url: URL) -> list[str]:
    """Statements other sessions are running (or holding a transaction open) in ``url``'s database."""
    if url.get_backend_name() == "sqlite":
        return []
    admin = create_async_engine(url, poolclass=NullPool)
    try:
        async with admin.connect() as conn:
            if url.get_backend_name() == "postgresql":
                rows = await conn.execute(text(
                    "SELECT state || ': ' || query FROM pg_stat_activity WHERE datname = current_database() "
                    "AND pid <> pg_backend_pid() AND state <> 'idle'"
                ))
            else:
                rows = await conn.execute(text(
                    "SELECT CONCAT(command, ': ', COALESCE(info, '')) FROM information_schema.processlist "
                    "WHERE db = DATABASE() AND id <> CONNECTION_ID() AND command <> 'Sleep'"
                ))
            return [r[0] for r in rows]
    finally:
        await admin.dispose()


async def lock_is_free(url: URL, engine: AsyncEngine | None = None) -> bool:
    """Whether another session could take the default migration lock right now (and gives it back).

    :param engine: probe through this engine (a pooled one makes repeated probes quick).
    """
    backend = url.get_backend_name()
    if backend == "sqlite":
        path = Path(f"{Path(url.database or '').resolve()}.asyncmigrate-lock")
        if not path.exists():
            return True
        with open(path, "a+b") as handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
            return True
    own = engine is None
    engine = create_async_engine(url, poolclass=NullPool) if engine is None else engine
    try:
        async with engine.connect() as conn:
            if backend == "postgresql":
                key = ("hashtextextended(current_database() || '/' || current_schema() || '/' "
                       "|| 'alembic_version', 0)")
                got = (await conn.execute(text(f"SELECT pg_try_advisory_lock({key})"))).scalar()
                if got:
                    await conn.execute(text(f"SELECT pg_advisory_unlock({key})"))
                return bool(got)
            database = (await conn.execute(text("SELECT DATABASE()"))).scalar() or ""
            name = "asyncmigrate:" + hashlib.sha1(f"{database}//alembic_version".encode()).hexdigest()[:40]
            return bool((await conn.execute(text("SELECT IS_FREE_LOCK(:n)"), {"n": name})).scalar())
    finally:
        if own:
            await engine.dispose()


async def settled(url: URL, within: float = 8.0) -> None:
    """Wait until no statement of a stopped run runs and its lock is free; fail after ``within`` s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        busy = await server_busy(url)
        free = await lock_is_free(url)
        if not busy and free:
            return
        if loop.time() > deadline:
            raise AssertionError(f"still busy after {within}s: statements {busy}, lock free: {free}")
        await asyncio.sleep(0.1)
