"""Rows into tables as they stand, by mapping or callable; again after a downgrade, without twins."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from asyncmigrate.exceptions import ConfigError
from asyncmigrate.integrations.testing import MigrationTestOptions, insert_rows
from asyncmigrate.integrations.testing.seeding import Seeder


async def test_rows_mappings_and_callables(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'seed.db'}"
    engine = create_async_engine(url)
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE a (id INTEGER PRIMARY KEY, name TEXT)"))
        await conn.execute(text("CREATE TABLE b (id INTEGER PRIMARY KEY)"))
        assert await insert_rows(conn, [{"id": 1, "name": "x"}, {"__tablename__": "b", "id": 5}], "a") == 2
        with pytest.raises(ConfigError, match="No table for row"):
            await insert_rows(conn, {"id": 2})

    async def at_every(revision: str, connection: object) -> None:
        await connection.execute(text("INSERT INTO b (id) VALUES (:i)"), {"i": int(revision)})  # type: ignore[attr-defined]

    seeder = Seeder(MigrationTestOptions(before_revision_data={"7": {"__tablename__": "a", "id": 7}},
                                         at_revision_data=at_every))
    await seeder.before("7", engine.url)
    await seeder.before("7", engine.url, again=True)  # still there: not inserted twice
    await seeder.at("8", engine.url)
    assert seeder.has_data("7")
    assert seeder.has_data("1")
    async with engine.connect() as conn:
        assert (await conn.execute(text("SELECT id FROM a ORDER BY id"))).scalars().all() == [1, 7]
        assert (await conn.execute(text("SELECT id FROM b ORDER BY id"))).scalars().all() == [5, 8]
    await engine.dispose()
