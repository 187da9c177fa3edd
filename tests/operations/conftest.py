"""Fixtures for operation tests: pairs of fresh databases for differential runs.

On PostgreSQL a pair is two fresh schemas in one database per test module
(selected through ``search_path``): creating and dropping databases makes
PostgreSQL checkpoint, which dominates the run time otherwise.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import URL

from .. import backends
from .support import SEARCH_PATH, execute


def _in_own_loop(awaitable: Any) -> Any:
    """Run a coroutine to completion in a fresh loop on another thread (callable from a loop)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, awaitable).result()


async def _pg_admin(statement: str) -> None:
    import asyncpg

    base = backends.server_url("postgresql")
    conn = await asyncpg.connect(
        host=base.host, port=base.port or 5432, user=base.username,
        password=base.password, database=base.database,
    )
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def pg_module_database() -> Iterator[URL]:
    """One scratch PostgreSQL database shared by a test module."""
    backends.require("postgresql")
    name = backends.scratch_name("amops")
    _in_own_loop(_pg_admin(f'CREATE DATABASE "{name}"'))
    try:
        yield backends.server_url("postgresql").set(database=name)
    finally:
        _in_own_loop(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _pg_schema_pair(base: URL) -> AsyncIterator[tuple[URL, URL]]:
    names = [f"s_{secrets.token_hex(4)}" for _ in range(2)]
    await execute(base, *[f'CREATE SCHEMA "{name}"' for name in names])
    try:
        yield base.update_query_dict({SEARCH_PATH: names[0]}), base.update_query_dict(
            {SEARCH_PATH: names[1]}
        )
    finally:
        await execute(base, *[f'DROP SCHEMA "{name}" CASCADE' for name in names])


@pytest.fixture(params=["sqlite", "postgresql", "mysql"])
async def db_pair(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[URL, URL]]:
    """Two fresh, empty databases on one backend: one for asyncmigrate, one for Alembic."""
    backend = request.param
    if backend == "sqlite":
        yield backends.sqlite_url(tmp_path / "ours.db"), backends.sqlite_url(tmp_path / "theirs.db")
        return
    if backend == "postgresql":
        base = request.getfixturevalue("pg_module_database")
        async for pair in _pg_schema_pair(base):
            yield pair
        return
    backends.require(backend)
    async with AsyncExitStack() as stack:
        ours = await stack.enter_async_context(backends.scratch_database(backend))
        theirs = await stack.enter_async_context(backends.scratch_database(backend))
        yield ours, theirs
