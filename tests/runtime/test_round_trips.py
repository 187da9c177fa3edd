"""On PostgreSQL, a statement is one round trip, and ``BEGIN`` and ``COMMIT`` cost none of their own.

The transaction's ``BEGIN`` travels with its first statement; a migration
in a transaction of its own sends its version-row change and ``COMMIT``
together. The driver's transaction state is then set from what the server
reports, so a failure inside such a round trip still rolls back cleanly
and leaves the connection usable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from asyncmigrate import command
from asyncmigrate.exceptions import LockTimeoutError, MigrationError, VersionTableError

from ..project import PER_MIGRATION_ENV, Rev, make_project
from ..sent_sql import record_sql
from .test_run import tables_and_versions


def create(name: str) -> str:
    return f'op.create_table("{name}", sa.Column("id", sa.Integer, primary_key=True))'


REVISIONS = [Rev("a1", None, create("t1")), Rev("b2", "a1", create("t2")), Rev("c3", "b2", create("t3"))]


async def test_a_migration_of_its_own_is_its_statements_and_a_commit(
    tmp_path: Path, pg_db: URL, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent = record_sql(monkeypatch)
    config = make_project(tmp_path, REVISIONS, url=pg_db, env_py=PER_MIGRATION_ENV)
    await command.upgrade(config, "head")
    assert await tables_and_versions(pg_db) == ({"t1", "t2", "t3"}, {"c3"})
    for name, version in (("t2", "b2"), ("t3", "c3")):  # the first step also creates the version table
        step = next(i for i, q in enumerate(sent) if f"CREATE TABLE t{name[1]} " in q)
        assert sent[step].split(";\n")[0].startswith("BEGIN"), sent[step]
        commit = sent[step + 1].split(";\n")
        assert f"SET version_num = E'{version}'" in commit[0] and commit[-1] == "COMMIT", commit
    # A COMMIT of its own only ends the read before the lock, never a migration.
    lock = next(i for i, q in enumerate(sent) if "pg_try_advisory_lock" in q)
    assert all(i < lock for i, q in enumerate(sent) if q.strip().rstrip(";") == "COMMIT")


async def test_statements_are_sent_one_at_a_time_when_issued(
    tmp_path: Path, pg_db: URL, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent = record_sql(monkeypatch)
    revisions = [Rev("a1", None, create("t1") + "\n" + create("t2") + "\nop.execute('SELECT 1')")]
    config = make_project(tmp_path, revisions, url=pg_db)
    await command.upgrade(config, "head")
    carrying = [q for q in sent if "CREATE TABLE t" in q or q == "SELECT 1"]
    assert len(carrying) == 3
    assert all(sum(marker in q for marker in ("CREATE TABLE t1", "CREATE TABLE t2", "SELECT 1")) == 1
               for q in carrying)


async def test_a_failing_batch_rolls_back_and_leaves_the_connection_usable(tmp_path: Path, pg_db: URL) -> None:
    revisions = [*REVISIONS[:2], Rev("c3", "b2", create("t3") + "\nop.execute('SELECT * FROM missing')")]
    config = make_project(tmp_path, revisions, url=pg_db, env_py=PER_MIGRATION_ENV)
    engine = create_async_engine(pg_db, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            with pytest.raises(MigrationError) as caught:
                await command.upgrade(config, "head", connection=conn)
            assert caught.value.revision == "c3"
            # Not left inside the failed transaction block: the session answers.
            assert (await conn.execute(text("SELECT 1"))).scalar() == 1
            await conn.rollback()
    finally:
        await engine.dispose()
    assert await tables_and_versions(pg_db) == ({"t1", "t2"}, {"b2"})
    # The migration lock was given back: another run gets it at once (and fails the same way).
    with pytest.raises(MigrationError) as again:
        await command.upgrade(config, "head", lock_timeout=1)
    assert not isinstance(again.value, LockTimeoutError)
    assert again.value.revision == "c3"


async def _lock_is_free(url: URL) -> bool:
    """Whether another session can take (and then gives back) the default migration lock."""
    engine = create_async_engine(url, poolclass=NullPool)
    key = (
        "hashtextextended(current_database() || '/' || current_schema() || '/' || 'alembic_version', 0)"
    )
    try:
        async with engine.connect() as conn:
            got = (await conn.execute(text(f"SELECT pg_try_advisory_lock({key})"))).scalar()
            if got:
                await conn.execute(text(f"SELECT pg_advisory_unlock({key})"))
            return bool(got)
    finally:
        await engine.dispose()


async def test_the_runs_commit_gives_the_lock_back_in_the_same_round_trip(
    tmp_path: Path, pg_db: URL, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent = record_sql(monkeypatch)
    config = make_project(tmp_path, REVISIONS, url=pg_db)
    await command.upgrade(config, "head")
    run = list(sent)
    assert await tables_and_versions(pg_db) == ({"t1", "t2", "t3"}, {"c3"})
    statements = run[-1].split(";\n")
    assert statements[0] == "COMMIT" and "pg_advisory_unlock" in statements[1]
    assert not any("pg_advisory_unlock" in q for q in run[:-1])
    assert await _lock_is_free(pg_db)


async def test_a_commit_that_fails_still_gives_the_lock_back(tmp_path: Path, pg_db: URL) -> None:
    # A deferred foreign key is only checked at COMMIT: the commit (with the unlock
    # behind it) fails, nothing of the run stays, and the lock is free.
    violating = """
        op.execute("CREATE TABLE parent (id int PRIMARY KEY)")
        op.execute("CREATE TABLE child (pid int REFERENCES parent DEFERRABLE INITIALLY DEFERRED)")
        op.execute("INSERT INTO child VALUES (1)")
    """
    config = make_project(tmp_path, [REVISIONS[0], Rev("b2", "a1", violating)], url=pg_db)
    with pytest.raises(Exception, match="foreign key"):
        await command.upgrade(config, "head")
    assert await tables_and_versions(pg_db) == (set(), set())
    assert await _lock_is_free(pg_db)


async def test_a_version_table_that_cannot_be_created_is_a_clear_error(tmp_path: Path, pg_db: URL) -> None:
    # Nothing of the run stays, no step is announced, and the database answers.
    engine = create_async_engine(pg_db, poolclass=NullPool)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE alembic_version_pkc (id int)"))  # the PK's name
    finally:
        await engine.dispose()
    config = make_project(tmp_path, REVISIONS, url=pg_db)
    events: list[Any] = []
    with pytest.raises(VersionTableError) as caught:
        await command.upgrade(config, "head", on_step=events.append)
    message = str(caught.value)
    assert message.startswith("Could not create the version table alembic_version: ")
    assert "alembic_version_pkc" in message and "[SQL: CREATE TABLE alembic_version (" in message
    assert events == []
    assert await tables_and_versions(pg_db) == ({"alembic_version_pkc"}, set())
    assert await _lock_is_free(pg_db)
