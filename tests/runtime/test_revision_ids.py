"""Revision ids with XML-special, quoting and non-ASCII characters round-trip through the version table.

PostgreSQL reads the version rows through ``query_to_xml``: an id holding
``&``, ``<`` or ``>`` must come back as written, or every later command
fails with "Can't locate revision". Literals must also mean the same with
``standard_conforming_strings`` off.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from asyncmigrate import command

from ..project import Rev, make_project

#: Alembic reserves only ``@-+:``; each id stays within VARCHAR(32).
ODD_IDS = ["a&b<c>d", "q'uo\"te\\n", "ünï✓ćødé", "x&amp;y&lt;"]


def _history() -> list[Rev]:
    revisions = []
    for i, rev in enumerate(ODD_IDS):
        revisions.append(Rev(rev, ODD_IDS[i - 1] if i else None, filename=f"r{i}.py"))
    return revisions


async def _rows(url: URL) -> set[str]:
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            return set((await conn.execute(text("SELECT version_num FROM alembic_version"))).scalars())
    finally:
        await engine.dispose()


async def _set_database(url: URL, setting: str) -> None:
    admin = create_async_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.execute(text(f'ALTER DATABASE "{url.database}" SET {setting}'))
    finally:
        await admin.dispose()


async def _round_trip(tmp_path: Path, url: URL) -> None:
    config = make_project(tmp_path, _history(), url=url)
    for rev in ODD_IDS:  # one step at a time: every id is written, read back and moved from
        result = await command.upgrade(config, "+1")
        assert result.to_heads == (rev,)
        assert await _rows(url) == {rev}
        assert (await command.current(config)).heads == (rev,)
    result = await command.downgrade(config, "-2")
    assert result.to_heads == (ODD_IDS[-3],)
    assert await _rows(url) == {ODD_IDS[-3]}
    await command.stamp(config, ODD_IDS[0], purge=True)
    assert await _rows(url) == {ODD_IDS[0]}
    assert (await command.upgrade(config, "head")).to_heads == (ODD_IDS[-1],)
    assert await _rows(url) == {ODD_IDS[-1]}


async def test_odd_revision_ids_round_trip(tmp_path: Path, any_db: URL) -> None:
    await _round_trip(tmp_path, any_db)


@pytest.mark.postgresql
async def test_odd_revision_ids_round_trip_without_standard_conforming_strings(
    tmp_path: Path, pg_db: URL
) -> None:
    await _set_database(pg_db, "standard_conforming_strings TO off")
    engine = create_async_engine(pg_db, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            assert (await conn.execute(text("SHOW standard_conforming_strings"))).scalar() == "off"
    finally:
        await engine.dispose()
    await _round_trip(tmp_path, pg_db)
