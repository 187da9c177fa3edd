"""Real database servers for the test suite: where they are, whether they answer, scratch databases.

Server URLs come from the environment (defaults point at a local server):

* ``ASYNCMIGRATE_TEST_POSTGRESQL_URL`` (default ``postgresql://postgres@127.0.0.1:5432/postgres``)
* ``ASYNCMIGRATE_TEST_MYSQL_URL`` (default ``mysql://root@127.0.0.1:3306/test``)

A server that does not answer makes its tests skip with the reason, unless
``ASYNCMIGRATE_REQUIRE_BACKENDS=1`` (set by ``.ci/run``), which turns the skip
into a failure.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import os
import queue
import secrets
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from sqlalchemy.engine import URL, make_url

from asyncmigrate.urls import to_async_url

POSTGRESQL_ENV = "ASYNCMIGRATE_TEST_POSTGRESQL_URL"
MYSQL_ENV = "ASYNCMIGRATE_TEST_MYSQL_URL"
REQUIRE_ENV = "ASYNCMIGRATE_REQUIRE_BACKENDS"

DEFAULTS = {
    "postgresql": "postgresql://postgres@127.0.0.1:5432/postgres",
    "mysql": "mysql://root@127.0.0.1:3306/test",
}
ENVS = {"postgresql": POSTGRESQL_ENV, "mysql": MYSQL_ENV}


def server_url(backend: str) -> URL:
    """Return the async admin URL of ``backend``'s server."""
    return to_async_url(os.environ.get(ENVS[backend]) or DEFAULTS[backend])


async def _probe(backend: str) -> str | None:
    url = server_url(backend)
    try:
        if backend == "postgresql":
            import asyncpg

            conn = await asyncio.wait_for(
                asyncpg.connect(
                    host=url.host, port=url.port or 5432, user=url.username,
                    password=url.password, database=url.database,
                ),
                5,
            )
            await conn.close()
        else:
            import asyncmy

            conn = await asyncio.wait_for(
                asyncmy.connect(
                    host=url.host, port=url.port or 3306, user=url.username,
                    password=url.password or "", database=url.database,
                ),
                5,
            )
            conn.close()
    except Exception as exc:  # noqa: BLE001 - any failure means "not available"
        return f"{type(exc).__name__}: {exc}"
    return None


@functools.cache
def unavailable_reason(backend: str) -> str | None:
    """Return why ``backend``'s server cannot be used, or None when it answers.

    The probe runs in its own thread and loop, so it works from sync and async tests alike.
    """
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        problem = pool.submit(asyncio.run, _probe(backend)).result()
    if problem is None:
        return None
    env = ENVS[backend]
    return f"{backend} server not reachable ({problem}); set {env} to a reachable server"


def require(backend: str) -> None:
    """Skip (or, under ``ASYNCMIGRATE_REQUIRE_BACKENDS=1``, fail) when ``backend`` is down."""
    if backend == "sqlite":
        return
    reason = unavailable_reason(backend)
    if reason is None:
        return
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{reason} (and {REQUIRE_ENV}=1 requires it)", pytrace=False)
    pytest.skip(reason)


def scratch_name(prefix: str = "am") -> str:
    """Return a fresh database name, unique across concurrent test runs."""
    return f"{prefix}_{os.getpid()}_{secrets.token_hex(4)}"


@asynccontextmanager
async def scratch_database(backend: str, name: str | None = None) -> AsyncIterator[URL]:
    """Create an empty database on ``backend``'s server, yield its async URL, drop it after."""
    name = name or scratch_name()
    base = server_url(backend)
    if backend == "postgresql":
        import asyncpg

        kwargs = dict(host=base.host, port=base.port or 5432, user=base.username,
                      password=base.password, database=base.database)
        conn = await asyncpg.connect(**kwargs)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        try:
            yield base.set(database=name)
        finally:
            # On PostgreSQL 15 each DROP DATABASE forces a checkpoint (seconds on a busy
            # disk): drop in the background, off the test's critical path.
            JANITOR.drop(name)
    elif backend == "mysql":
        import asyncmy

        kwargs = dict(host=base.host, port=base.port or 3306, user=base.username,
                      password=base.password or "")
        conn = await asyncmy.connect(**kwargs)
        try:
            async with conn.cursor() as cur:
                await cur.execute(f"CREATE DATABASE `{name}`")
        finally:
            conn.close()
        try:
            yield base.set(database=name)
        finally:
            conn = await asyncmy.connect(**kwargs)
            try:
                async with conn.cursor() as cur:
                    await cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
            finally:
                conn.close()
    else:  # pragma: no cover
        raise ValueError(backend)


class _Janitor:
    """Drop scratch PostgreSQL databases in a background thread; drained at session end."""

    def __init__(self) -> None:
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def drop(self, name: str) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="scratch-db-janitor", daemon=True)
                self._thread.start()
        self._queue.put(name)

    def _connect(self) -> Any:
        import psycopg2

        url = server_url("postgresql")
        conn = psycopg2.connect(
            host=url.host, port=url.port or 5432, user=url.username, password=url.password,
            dbname=url.database,
        )
        conn.autocommit = True
        return conn

    def _run(self) -> None:
        conn = self._connect()
        try:
            self._drop_stale(conn)
            while (name := self._queue.get()) is not None:
                try:
                    with conn.cursor() as cur:
                        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                except Exception:  # noqa: BLE001 - a leftover database is harmless
                    conn.close()
                    conn = self._connect()
                finally:
                    self._queue.task_done()
        finally:
            conn.close()

    @staticmethod
    def _drop_stale(conn: Any) -> None:
        """Drop scratch databases left by test processes that no longer run."""
        with conn.cursor() as cur:
            cur.execute("SELECT datname FROM pg_database WHERE datname ~ '^am_[0-9]+_[0-9a-f]+$'")
            for (name,) in cur.fetchall():
                pid = int(name.split("_")[1])
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                except PermissionError:
                    pass

    def finish(self) -> None:
        """Wait until every queued database is dropped."""
        if self._thread is None:
            return
        self._queue.put(None)
        self._thread.join(timeout=600)


JANITOR = _Janitor()


async def drop_mysql_databases(url: URL, pattern: str) -> None:
    """Drop every database on ``url``'s MySQL/MariaDB server whose name is LIKE ``pattern``."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine
    from sqlalchemy.pool import NullPool

    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            names = (await conn.execute(text(
                "SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE :p"
            ), {"p": pattern})).scalars().all()
            for name in names:
                await conn.execute(text(f"DROP DATABASE `{name}`"))
    finally:
        await engine.dispose()


def sqlite_url(path: os.PathLike[str] | str) -> URL:
    """Return the aiosqlite URL of a database file."""
    return make_url(f"sqlite+aiosqlite:///{os.fspath(path)}")
