"""A run's own connection: SQLAlchemy's first-connect questions in one query, opened while env.py starts."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from asyncmigrate import command
from asyncmigrate.exceptions import ConnectionFailedError
from asyncmigrate.runtime import connecting
from asyncmigrate.runtime.connecting import answer_first_connect

from ..project import Rev, make_project
from ..sent_sql import ours, record_sql
from .test_run import tables_and_versions


def _facts(engine: AsyncEngine) -> tuple[Any, ...]:
    d: Any = engine.sync_engine.dialect
    return (
        d.server_version_info, d.default_schema_name, d.default_isolation_level,
        d._backslash_escapes, d.supports_identity_columns, d.supports_smallserial,
    )


async def _names_its_level(url: URL) -> bool:
    """Whether SQLAlchemy's asyncpg adapter begins transactions at a level of its own.

    SQLAlchemy before 2.0.38 says READ COMMITTED in every BEGIN; it then
    asks the server its isolation level inside such a transaction, and that
    question is not answered from the first query.
    """
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            raw = await conn.get_raw_connection()
            return raw.dbapi_connection._isolation_setting is not None  # type: ignore[union-attr]
    finally:
        await engine.dispose()


async def _first_connect(url: URL, answered: bool) -> tuple[tuple[Any, ...], list[str]]:
    """The dialect's facts after a first connection, and the statements asyncpg prepared meanwhile."""
    prepared: list[str] = []
    engine = create_async_engine(url, poolclass=NullPool)
    if answered:
        answer_first_connect(engine)
    original = asyncpg.Connection._get_statement

    async def recording(self: asyncpg.Connection, query: str, *args: Any, **kw: Any) -> Any:
        if ours(query):
            prepared.append(query)
        return await original(self, query, *args, **kw)

    asyncpg.Connection._get_statement = recording  # type: ignore[method-assign]
    try:
        async with engine.connect():
            pass
    finally:
        asyncpg.Connection._get_statement = original  # type: ignore[method-assign]
        await engine.dispose()
    return _facts(engine), prepared


@pytest.mark.parametrize("settings", ["defaults", "altered"])
async def test_first_connect_answers_match_the_servers_own(pg_db: URL, settings: str) -> None:
    if settings == "altered":  # every answer differs from the usual one
        admin = create_async_engine(pg_db, poolclass=NullPool, isolation_level="AUTOCOMMIT")
        try:
            async with admin.connect() as conn:
                await conn.execute(text("CREATE SCHEMA other"))
                for setting in (
                    "search_path TO other, public",
                    "default_transaction_isolation TO 'repeatable read'",
                    "standard_conforming_strings TO off",
                ):
                    await conn.execute(text(f'ALTER DATABASE "{pg_db.database}" SET {setting}'))
        finally:
            await admin.dispose()
    usual, asked = await _first_connect(pg_db, answered=False)
    answered, asked_once = await _first_connect(pg_db, answered=True)
    assert answered == usual
    own_level = await _names_its_level(pg_db)
    if settings == "altered":
        assert usual[1:4] == ("other", "READ COMMITTED" if own_level else "REPEATABLE READ", True)
    assert len(asked) >= 4
    if own_level:  # the isolation question still goes to the server, the others do not
        assert asked_once == [connecting._PG_FACTS, "show transaction isolation level"]
    else:
        assert asked_once == [connecting._PG_FACTS]


async def test_a_question_without_an_answer_goes_to_the_server(
    pg_db: URL, monkeypatch: pytest.MonkeyPatch
) -> None:
    usual, _ = await _first_connect(pg_db, answered=False)
    # As if SQLAlchemy asked something new: the question the module does not know is asked as usual.
    questions = tuple(q.replace("current_schema", "current_schema_of_a_newer_sqlalchemy")
                      for q in connecting._PG_QUESTIONS)
    monkeypatch.setattr(connecting, "_PG_QUESTIONS", questions)
    facts, asked = await _first_connect(pg_db, answered=True)
    assert facts == usual
    expected = [connecting._PG_FACTS, "select current_schema()"]
    if await _names_its_level(pg_db):
        expected.append("show transaction isolation level")
    assert asked == expected
    # And if the one query cannot run at all, every question is asked as usual.
    monkeypatch.setattr(connecting, "_PG_FACTS", "SELECT no_such_function()")
    facts, asked = await _first_connect(pg_db, answered=True)
    assert facts == usual
    assert "select pg_catalog.version()" in asked


REVISIONS = [Rev("a1", None, 'op.create_table("t1", sa.Column("id", sa.Integer, primary_key=True))')]


async def _sessions(url: URL) -> int:
    """How many other sessions are connected to ``url``'s database (waiting for closing ones to end)."""
    engine = create_async_engine(url.set(database="postgres"), poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            for _ in range(50):
                count = (await conn.execute(
                    text("SELECT count(*) FROM pg_stat_activity WHERE datname = :d"),
                    {"d": url.database},
                )).scalar_one()
                if count == 0:
                    break
                await asyncio.sleep(0.05)
            return int(count)
    finally:
        await engine.dispose()


def _url(url: URL) -> str:
    return url.render_as_string(hide_password=False)


async def test_the_connection_opens_before_env_py_runs(
    tmp_path: Path, pg_db: URL, monkeypatch: pytest.MonkeyPatch
) -> None:
    order: list[str] = []
    original = asyncpg.connect

    async def connect(*args: Any, **kw: Any) -> Any:
        order.append("connect")
        return await original(*args, **kw)

    monkeypatch.setattr(asyncpg, "connect", connect)
    template = (Path(__file__).parents[2] / "templates" / "async" / "env.py").read_text()
    env_py = "config = context.config\nconfig.attributes['order'].append('env.py')\n" + template
    config = make_project(tmp_path, REVISIONS, env_py="from asyncmigrate import context\n" + env_py)
    config.attributes["order"] = order
    result = await command.upgrade(config, "head", url=_url(pg_db))
    assert result.to_heads == ("a1",)
    assert order == ["connect", "env.py"]  # one connection, asked for before env.py's first line
    assert await _sessions(pg_db) == 0


async def test_env_py_asking_for_engine_options_gets_them(tmp_path: Path, pg_db: URL) -> None:
    env_py = """
        from asyncmigrate import context

        def run(connection):
            context.configure(connection=connection)
            with context.begin_transaction():
                context.run_migrations()

        async def main():
            settings = {"server_settings": {"application_name": "from-env-py"}}
            async with context.connect(connect_args=settings) as connection:
                await connection.run_sync(run)

        context.run_async(main)
    """
    record = '''
        name = op.get_bind().execute(sa.text("SELECT current_setting('application_name')")).scalar()
        op.execute(sa.text(f"CREATE TABLE seen_{name.replace('-', '_')} (id int)"))
    '''
    config = make_project(tmp_path, [Rev("a1", None, record)], env_py=env_py)
    await command.upgrade(config, "head", url=_url(pg_db))
    assert await tables_and_versions(pg_db) == ({"seen_from_env_py"}, {"a1"})
    assert await _sessions(pg_db) == 0  # the connection opened early was closed unused


async def test_env_py_failing_before_it_connects_leaves_no_session(tmp_path: Path, pg_db: URL) -> None:
    env_py = """
        from asyncmigrate import context
        raise RuntimeError("env.py is broken")
        context.connect()
    """
    config = make_project(tmp_path, REVISIONS, env_py=env_py)
    with pytest.raises(RuntimeError, match=r"env\.py is broken"):
        await command.upgrade(config, "head", url=_url(pg_db))
    assert await _sessions(pg_db) == 0


async def test_an_unreachable_server_is_one_clear_error(tmp_path: Path) -> None:
    config = make_project(tmp_path, REVISIONS)
    with pytest.raises(ConnectionFailedError, match="Cannot connect to postgresql"):
        await command.upgrade(config, "head", url="postgresql://nobody:secret@127.0.0.1:1/db")


async def test_at_head_the_whole_command_is_one_query(
    tmp_path: Path, pg_db: URL, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = make_project(tmp_path, REVISIONS)
    await command.upgrade(config, "head", url=_url(pg_db))
    own_level = await _names_its_level(pg_db)
    sent = record_sql(monkeypatch, prepared=True)
    result = await command.upgrade(config, "head", url=_url(pg_db))
    assert result.steps == () and result.to_heads == ("a1",)
    if own_level:  # SQLAlchemy < 2.0.38 asks its isolation level itself
        isolation = ("BEGIN ISOLATION LEVEL READ COMMITTED;", "show transaction isolation level", "ROLLBACK;")
        sent = [q for q in sent if q not in isolation]
    assert len(sent) == 1, sent  # SQLAlchemy's first questions and the version read, together
    assert "version_num" in sent[0] and "current_schema()" in sent[0]


async def test_the_read_made_on_connecting_is_of_the_configured_table(tmp_path: Path, pg_db: URL) -> None:
    # env.py names another version table than the command does: the read made while
    # connecting (of alembic_version) must not stand in for it.
    config = make_project(tmp_path, REVISIONS)
    await command.upgrade(config, "head", url=_url(pg_db))  # alembic_version: a1
    template = (Path(__file__).parents[2] / "templates" / "async" / "env.py").read_text()
    env_py = template.replace(
        "context.configure(connection=connection, target_metadata=target_metadata)",
        "context.configure(connection=connection, target_metadata=target_metadata, "
        "version_table='other_versions')",
    )
    revisions = [Rev("a1", None, 'op.create_table("t2", sa.Column("id", sa.Integer))')]
    other = make_project(tmp_path / "other", revisions, env_py=env_py)
    result = await command.upgrade(other, "head", url=_url(pg_db))
    assert result.steps and result.to_heads == ("a1",)  # not mistaken for "already at a1"
    assert (await tables_and_versions(pg_db))[0] == {"t1", "t2", "other_versions"}
