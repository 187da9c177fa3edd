"""A step's version-row UPDATE or DELETE must match exactly one row, as in Alembic.

When it matches none, something else moved the version table during the step
(another migrator running without the lock, or the migration itself): the step
fails and its transaction rolls back, instead of being recorded twice. The
version-row statements travel in the step's batch, so the check is made on the
batch's answer (asyncpg) or on each statement (aiosqlite).
"""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from asyncmigrate import command
from asyncmigrate.exceptions import MigrationError, VersionTableError

from ..project import Rev, make_project
from .test_run import tables_and_versions


def create(name: str) -> str:
    return f'op.create_table("{name}", sa.Column("id", sa.Integer, primary_key=True))'


MOVED = [
    Rev("a1", None, create("t1")),
    Rev("b2", "a1", create("t2") + "\nop.execute(\"UPDATE alembic_version SET version_num = 'elsewhere'\")"),
]


async def test_a_step_whose_version_row_moved_fails_and_rolls_back(
    tmp_path: Path, sqlite_or_pg_db: URL
) -> None:
    config = make_project(tmp_path, MOVED, url=sqlite_or_pg_db)
    with pytest.raises(VersionTableError) as caught:
        await command.upgrade(config, "head")
    assert caught.value.revision == "b2"
    assert "expected to match one row when updating 'a1' to 'b2' in 'alembic_version'; 0 found" in str(
        caught.value
    )
    assert await tables_and_versions(sqlite_or_pg_db) == (set(), set())


async def test_with_a_transaction_per_migration_the_earlier_steps_stay(
    tmp_path: Path, sqlite_or_pg_db: URL
) -> None:
    env_py = (Path(__file__).parents[2] / "templates" / "async" / "env.py").read_text().replace(
        "context.configure(connection=connection, target_metadata=target_metadata)",
        "context.configure(connection=connection, target_metadata=target_metadata, "
        "transaction_per_migration=True)",
    )
    config = make_project(tmp_path, MOVED, url=sqlite_or_pg_db, env_py=env_py)
    with pytest.raises(MigrationError, match="expected to match one row"):
        await command.upgrade(config, "head")
    assert await tables_and_versions(sqlite_or_pg_db) == ({"t1"}, {"a1"})


async def test_a_merge_checks_every_row_it_changes(tmp_path: Path, sqlite_or_pg_db: URL) -> None:
    # The merge deletes b1's row and moves b2's to m; b1's row is gone already.
    revisions = [
        Rev("a0", None, create("t0")),
        Rev("b1", "a0", create("t1")),
        Rev("b2", "a0", create("t2")),
        Rev("m", ("b1", "b2"), "op.execute(\"DELETE FROM alembic_version WHERE version_num = 'b1'\")"),
    ]
    config = make_project(tmp_path, revisions, url=sqlite_or_pg_db)
    await command.upgrade(config, "b1")
    await command.upgrade(config, "b2")
    assert await tables_and_versions(sqlite_or_pg_db) == ({"t0", "t1", "t2"}, {"b1", "b2"})
    with pytest.raises(MigrationError, match="deleting 'b1'") as caught:
        await command.upgrade(config, "head")
    assert caught.value.revision == "m"
    assert await tables_and_versions(sqlite_or_pg_db) == ({"t0", "t1", "t2"}, {"b1", "b2"})
    # Without the sabotage the same merge goes through, both rows checked.
    (tmp_path / "again").mkdir()
    again = make_project(tmp_path / "again", [*revisions[:3], Rev("m", ("b1", "b2"))], url=sqlite_or_pg_db)
    await command.upgrade(again, "head")
    assert await tables_and_versions(sqlite_or_pg_db) == ({"t0", "t1", "t2"}, {"m"})


async def test_two_migrators_without_the_lock_apply_a_data_step_once(tmp_path: Path, pg_db: URL) -> None:
    # Both read a1, both run b2 (which adds a row); the second one's version UPDATE waits
    # for the first to commit, then matches nothing: it must fail and take its row back.
    revisions = [
        Rev("a1", None, 'op.create_table("counter", sa.Column("n", sa.Integer))'),
        Rev("b2", "a1", 'op.execute("INSERT INTO counter VALUES (1)")\nop.execute("SELECT pg_sleep(0.3)")'),
    ]
    config = make_project(tmp_path, revisions, url=pg_db)
    await command.upgrade(config, "a1")
    outcomes: list[BaseException | None] = []

    async def migrate() -> None:
        try:
            await command.upgrade(config, "head", lock=False)
        except MigrationError as exc:
            outcomes.append(exc)
        else:
            outcomes.append(None)

    async with anyio.create_task_group() as tg:
        tg.start_soon(migrate)
        tg.start_soon(migrate)
    failures = [o for o in outcomes if o is not None]
    assert len(outcomes) == 2 and len(failures) == 1, outcomes
    assert "expected to match one row when updating 'a1' to 'b2'" in str(failures[0])
    engine = create_async_engine(pg_db, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT count(*) FROM counter"))).scalar() == 1
            assert (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar() == "b2"
    finally:
        await engine.dispose()
