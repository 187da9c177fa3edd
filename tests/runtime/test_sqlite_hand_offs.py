"""On SQLite, asyncmigrate does not hand work to aiosqlite's thread that ``sqlite3`` would not do.

aiosqlite runs each ``sqlite3`` call in its own thread: every hand-off
is a thread switch the event loop waits for. A ``commit()`` or
``rollback()`` with no transaction open is a no-op in ``sqlite3``, so it
is not handed off -- yet a commit or rollback with one open always is,
whoever asks for it (asyncmigrate, SQLAlchemy, the pool, the caller).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import create_async_engine

from asyncmigrate import command
from asyncmigrate.exceptions import MigrationError

from ..project import PER_MIGRATION_ENV, Rev, make_project
from .test_run import tables_and_versions


def create(name: str) -> str:
    return f'op.create_table("{name}", sa.Column("id", sa.Integer, primary_key=True))'


def rev(name: str, down: str | None, table: str) -> Rev:
    return Rev(name, down, create(table), f'op.drop_table("{table}")')


REVISIONS = [rev("a1", None, "t1"), rev("b2", "a1", "t2"), rev("c3", "b2", "t3")]


def watch_hand_offs(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, bool]]:
    """Record each ``sqlite3`` call handed to aiosqlite's thread: its name, and whether one was open.

    Only on connections asyncmigrate has run a migration on, from its first
    statement there: SQLAlchemy's own set-up of a new engine's first
    connection (its queries and their rollback) is not asyncmigrate's.
    """
    calls: list[tuple[str, bool]] = []
    migrating: set[int] = set()
    execute = aiosqlite.Connection._execute

    async def executing(self: aiosqlite.Connection, fn: Any, *args: Any, **kw: Any) -> Any:
        raw = self._connection
        name = getattr(fn, "__name__", "?")
        if name == "work":  # asyncmigrate's driver hands its statements off as one function
            migrating.add(id(self))
        if id(self) in migrating:
            calls.append((name, isinstance(raw, sqlite3.Connection) and raw.in_transaction))
        return await execute(self, fn, *args, **kw)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", executing)
    return calls


def idle_ends(calls: list[tuple[str, bool]]) -> list[tuple[str, bool]]:
    return [(name, open_) for name, open_ in calls if name in ("commit", "rollback") and not open_]


@pytest.mark.parametrize("env_py", [None, PER_MIGRATION_ENV], ids=["one-transaction", "per-migration"])
async def test_no_commit_or_rollback_is_handed_off_with_nothing_open(
    tmp_path: Path, sqlite_db: URL, monkeypatch: pytest.MonkeyPatch, env_py: str | None
) -> None:
    calls = watch_hand_offs(monkeypatch)
    config = make_project(tmp_path, REVISIONS, url=sqlite_db, env_py=env_py, ini_extra="history_table = h")
    await command.upgrade(config, "head")
    await command.downgrade(config, "a1")
    assert await tables_and_versions(sqlite_db) == ({"t1", "h"}, {"a1"})
    assert calls, "aiosqlite was not used"
    assert idle_ends(calls) == []


async def test_a_failing_step_is_still_rolled_back(
    tmp_path: Path, sqlite_db: URL, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = watch_hand_offs(monkeypatch)
    revisions = [*REVISIONS[:2], Rev("c3", "b2", create("t3") + "\nop.execute('SELECT * FROM nowhere')")]
    config = make_project(tmp_path, revisions, url=sqlite_db)
    with pytest.raises(MigrationError):
        await command.upgrade(config, "head")
    assert await tables_and_versions(sqlite_db) == (set(), set())  # one transaction: all of it undone
    assert ("rollback", True) in calls
    assert idle_ends(calls) == []


async def test_the_callers_own_transactions_still_commit_and_roll_back(
    tmp_path: Path, sqlite_db: URL, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = watch_hand_offs(monkeypatch)
    config = make_project(tmp_path, REVISIONS, url=sqlite_db)
    engine = create_async_engine(sqlite_db)
    try:
        async with engine.connect() as connection:
            config.attributes["connection"] = connection
            await command.upgrade(config, "head")
            # The same pooled connection afterwards: SQLAlchemy's commit and rollback work as before.
            await connection.execute(text("INSERT INTO t1 (id) VALUES (1)"))
            await connection.commit()
            await connection.execute(text("INSERT INTO t1 (id) VALUES (2)"))
            await connection.rollback()
        async with engine.connect() as connection:
            rows = (await connection.execute(text("SELECT id FROM t1"))).scalars().all()
    finally:
        await engine.dispose()
    assert rows == [1]
    assert ("commit", True) in calls  # the caller's, after the upgrade
    assert ("rollback", True) in calls
    assert idle_ends(calls) == []


async def test_a_callers_connection_does_not_gather_a_listener_per_run(tmp_path: Path, sqlite_db: URL) -> None:
    """Each run's driver watches the caller's connection; many runs leave one watcher, not many."""
    config = make_project(tmp_path, REVISIONS[:1], url=sqlite_db)
    engine = create_async_engine(sqlite_db)
    try:
        async with engine.connect() as connection:
            config.attributes["connection"] = connection
            for _ in range(10):
                await command.upgrade(config, "head")
                await command.downgrade(config, "base")
            watchers = len(connection.sync_connection.dispatch.before_cursor_execute)  # type: ignore[union-attr]
            # The watcher still does its work: a revision's DDL and its own query share one transaction.
            await command.upgrade(config, "head")
    finally:
        await engine.dispose()
    assert watchers <= 1
    assert await tables_and_versions(sqlite_db) == ({"t1"}, {"a1"})


async def test_ddl_sent_through_sqlalchemy_first_is_still_in_the_steps_transaction(
    tmp_path: Path, sqlite_db: URL
) -> None:
    """sqlite3 would commit DDL before its first DML on its own: the step's BEGIN goes first, even then."""
    revisions = [REVISIONS[0], Rev("b2", "a1", "\n".join([
        'op.get_bind().execute(sa.text("CREATE TABLE early (id INTEGER)"))',  # SQLAlchemy's path, first
        "op.execute('SELECT * FROM nowhere')",
    ]))]
    config = make_project(tmp_path, revisions, url=sqlite_db)
    engine = create_async_engine(sqlite_db)
    try:
        async with engine.connect() as connection:
            config.attributes["connection"] = connection
            await command.upgrade(config, "a1")  # the version table exists: b2's statement opens its run
            for _ in range(3):  # the newest run's driver is the one watching the connection
                with pytest.raises(MigrationError):
                    await command.upgrade(config, "head")
    finally:
        await engine.dispose()
    assert await tables_and_versions(sqlite_db) == ({"t1"}, {"a1"})
