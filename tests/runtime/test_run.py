"""Running migrations in the caller's loop: plans, version rows, transactions, isolation."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from sqlalchemy import inspect, text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from asyncmigrate import Config, command
from asyncmigrate.events import StepEvent
from asyncmigrate.exceptions import MigrationError, RevisionError, UnknownRevisionError

from .. import backends
from ..project import Rev, make_project

LINEAR = [
    Rev("a1", None, "op.execute('CREATE TABLE t1 (id INTEGER PRIMARY KEY)')", "op.execute('DROP TABLE t1')"),
    Rev("b2", "a1", "op.execute('CREATE TABLE t2 (id INTEGER PRIMARY KEY)')", "op.execute('DROP TABLE t2')"),
    Rev("c3", "b2", "op.execute('CREATE TABLE t3 (id INTEGER PRIMARY KEY)')", "op.execute('DROP TABLE t3')"),
]


async def tables_and_versions(url: URL | str) -> tuple[set[str], set[str]]:
    """Reflect the user tables and read the version rows of a database."""
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            names = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
            versions: set[str] = set()
            if "alembic_version" in names:
                rows = await conn.execute(text("SELECT version_num FROM alembic_version"))
                versions = {r[0] for r in rows}
            return names - {"alembic_version"}, versions
    finally:
        await engine.dispose()


async def test_upgrade_downgrade_relative_and_stamp(tmp_path: Path, sqlite_or_pg_db: URL) -> None:
    config = make_project(tmp_path, LINEAR, url=sqlite_or_pg_db)
    result = await command.upgrade(config, "+2")
    assert result.from_heads == ()
    assert result.to_heads == ("b2",)
    assert [s.up_revisions for s in result.steps] == [("a1",), ("b2",)]
    assert await tables_and_versions(sqlite_or_pg_db) == ({"t1", "t2"}, {"b2"})

    result = await command.upgrade(config, "head")
    assert result.to_heads == ("c3",)
    again = await command.upgrade(config, "head")
    assert not again.changed
    assert again.to_heads == ("c3",)

    await command.downgrade(config, "-2")
    assert await tables_and_versions(sqlite_or_pg_db) == ({"t1"}, {"a1"})
    await command.downgrade(config, "base")
    assert await tables_and_versions(sqlite_or_pg_db) == (set(), set())

    await command.stamp(config, "c3")
    assert await tables_and_versions(sqlite_or_pg_db) == (set(), {"c3"})
    await command.stamp(config, "a1")
    assert (await command.current(config)).heads == ("a1",)
    await command.stamp(config, "base")
    assert (await command.current(config)).heads == ()


async def test_branches_and_depends_on_rows(tmp_path: Path, sqlite_db: URL) -> None:
    revs = [
        Rev("base1", None),
        Rev("left", "base1", branch_labels="lft"),
        Rev("right", "base1", branch_labels="rgt"),
        Rev("other", None, branch_labels="oth"),
        Rev("dep", "right", depends_on="oth"),
    ]
    config = make_project(tmp_path, revs, url=sqlite_db)
    await command.upgrade(config, "lft@head")
    assert set((await command.current(config)).heads) == {"left"}
    await command.upgrade(config, "oth@head")
    assert set((await command.current(config)).heads) == {"left", "other"}
    await command.upgrade(config, "heads")
    state = await command.current(config)
    # dep depends on other, so its row replaces other's: the table holds the effective heads.
    assert set(state.heads) == {"left", "dep"}
    assert state.at_head
    # As with Alembic, going to the branch's base also unwinds what shares base1 with it.
    await command.downgrade(config, "rgt@base")
    assert set((await command.current(config)).heads) == {"other"}
    await command.stamp(config, ["right", "other"], purge=True)
    assert set((await command.current(config)).heads) == {"right", "other"}


async def test_failing_migration_rolls_back_per_run(tmp_path: Path, sqlite_or_pg_db: URL) -> None:
    revs = [*LINEAR[:2], Rev("c3", "b2", "op.execute('CREATE TABLE t3 (id INTEGER)')\nraise ValueError('boom')")]
    config = make_project(tmp_path, revs, url=sqlite_or_pg_db)
    await command.upgrade(config, "a1")
    events: list[StepEvent] = []
    with pytest.raises(MigrationError, match=r"upgrade b2 -> c3.*failed: ValueError: boom") as info:
        await command.upgrade(config, "head", on_step=events.append)
    assert info.value.revision == "c3"
    # One transaction per run: b2 and the half-done c3 are rolled back together.
    assert await tables_and_versions(sqlite_or_pg_db) == ({"t1"}, {"a1"})
    assert [e.kind for e in events] == ["started", "finished", "started", "failed", "rolled_back"]
    assert info.value.database_at == ("a1",)


async def test_failing_migration_error_is_one_line(tmp_path: Path, sqlite_db: URL) -> None:
    """A revision message spread over lines, and an error over lines: still one line, every line kept."""
    revs = [Rev("a1", None, "raise ValueError('first line\\nsecond line')",
                message="Add things\nacross two lines", filename="a1_add_things.py")]
    config = make_project(tmp_path, revs, url=sqlite_db)
    with pytest.raises(MigrationError) as info:
        await command.upgrade(config, "head")
    assert str(info.value) == (
        "upgrade <base> -> a1, Add things across two lines failed: ValueError: first line\\nsecond line"
        "; rolled back, the database is still at <base>"
    )


async def test_failing_migration_keeps_completed_ones_per_migration(
    tmp_path: Path, sqlite_or_pg_db: URL
) -> None:
    env_py = (Path(__file__).parents[2] / "templates" / "async" / "env.py").read_text()
    env_py = env_py.replace(
        "context.configure(connection=connection, target_metadata=target_metadata)",
        "context.configure(connection=connection, target_metadata=target_metadata, "
        "transaction_per_migration=True)",
    )
    revs = [*LINEAR[:2], Rev("c3", "b2", "op.execute('CREATE TABLE t3 (id INTEGER)')\nraise ValueError('boom')")]
    config = make_project(tmp_path, revs, url=sqlite_or_pg_db, env_py=env_py)
    with pytest.raises(MigrationError):
        await command.upgrade(config, "head")
    assert await tables_and_versions(sqlite_or_pg_db) == ({"t1", "t2"}, {"b2"})


async def test_streamed_read_does_not_block_later_ddl_in_the_run(tmp_path: Path, pg_db: URL) -> None:
    """A step reading with yield_per leaves no portal open for the next step's ALTER TABLE.

    SQLAlchemy's asyncpg server-side cursor keeps its portal until the transaction
    ends; with one transaction per run, the next migration's ALTER TABLE on that
    table failed ("being used by active queries"), where Alembic over psycopg2 runs
    (optuna's v3.0.0.a then v3.0.0.b).
    """
    revs = [
        Rev("a1", None, "op.execute('CREATE TABLE t (id INTEGER PRIMARY KEY, v FLOAT)')\n"
                        "op.execute('INSERT INTO t VALUES (1, 1.5), (2, 2.5)')"),
        Rev("b2", "a1", """
            from sqlalchemy import orm
            session = orm.Session(bind=op.get_bind())
            rows = session.execute(sa.text('SELECT id FROM t'), execution_options={'yield_per': 1})
            assert [r.id for r in rows] == [1, 2]
            session.close()
        """),
        Rev("c3", "b2", "op.alter_column('t', 'v', type_=sa.Float(precision=53))"),
    ]
    config = make_project(tmp_path, revs, url=pg_db)
    await command.upgrade(config, "head")
    assert await tables_and_versions(pg_db) == ({"t"}, {"c3"})


async def test_autocommit_block_for_concurrent_index(tmp_path: Path, pg_db: URL) -> None:
    revs = [
        Rev("a1", None, "op.execute('CREATE TABLE t (id INTEGER, v INTEGER)')"),
        Rev("b2", "a1", """
            with op.get_context().autocommit_block():
                op.execute('CREATE INDEX CONCURRENTLY ix_t_v ON t (v)')
            op.execute('CREATE TABLE after_block (id INTEGER)')
        """),
    ]
    config = make_project(tmp_path, revs, url=pg_db)
    await command.upgrade(config, "head")
    tables, versions = await tables_and_versions(pg_db)
    assert tables == {"t", "after_block"}
    assert versions == {"b2"}


async def test_errors_leave_database_untouched(tmp_path: Path, sqlite_db: URL) -> None:
    config = make_project(tmp_path, LINEAR, url=sqlite_db)
    with pytest.raises(UnknownRevisionError):
        await command.upgrade(config, "nope")
    with pytest.raises(RevisionError):
        await command.downgrade(config, "+1")
    assert await tables_and_versions(sqlite_db) == (set(), set())


async def test_connection_sharing_uses_callers_transaction(tmp_path: Path, sqlite_or_pg_db: URL) -> None:
    config = make_project(tmp_path, LINEAR, url="sqlite:///unused-file-never-created.db")
    engine = create_async_engine(sqlite_or_pg_db, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            trans = await conn.begin()
            result = await command.upgrade(config, "head", connection=conn)
            assert result.to_heads == ("c3",)
            await trans.rollback()
        assert await tables_and_versions(sqlite_or_pg_db) == (set(), set())
        async with engine.connect() as conn:
            async with conn.begin():
                await command.upgrade(config, "b2", connection=conn)
        assert await tables_and_versions(sqlite_or_pg_db) == ({"t1", "t2"}, {"b2"})
        result = await command.upgrade(config, "head", engine=engine)
        assert result.from_heads == ("b2",)
    finally:
        await engine.dispose()
    assert not (tmp_path / "unused-file-never-created.db").exists()


async def test_attributes_connection_recipe(tmp_path: Path, sqlite_db: URL) -> None:
    """Alembic's documented connection-sharing recipe: config.attributes['connection']."""
    config = make_project(tmp_path, LINEAR)
    engine = create_async_engine(sqlite_db, poolclass=NullPool)
    try:
        async with engine.begin() as conn:
            config.attributes["connection"] = conn
            await command.upgrade(config, "head")
    finally:
        await engine.dispose()
    assert await tables_and_versions(sqlite_db) == ({"t1", "t2", "t3"}, {"c3"})


SLOW_REVS = [
    Rev("a1", None, """
        from asyncmigrate import context
        name = context.get_tag_argument()
        bind = op.get_bind()
        op.execute(f'CREATE TABLE owner_{name} (id INTEGER, slept_from TIMESTAMP, slept_to TIMESTAMP)')
        if bind.dialect.name == 'postgresql':  # when this run slept, by the server's clock
            op.execute(f'INSERT INTO owner_{name} (id, slept_from) VALUES (1, clock_timestamp())')
            op.execute('SELECT pg_sleep(0.3)')
            op.execute(f'UPDATE owner_{name} SET slept_to = clock_timestamp()')
    """),
    Rev("b2", "a1", """
        from asyncmigrate import context
        op.execute(f"CREATE TABLE second_{context.get_tag_argument()} (id INTEGER)")
    """),
]


async def test_many_databases_concurrently_in_one_loop(tmp_path: Path) -> None:
    """Each task's op/context is its own: every database gets exactly its own tables."""
    backends.require("postgresql")
    config = make_project(tmp_path, SLOW_REVS)
    targets: dict[str, URL] = {f"s{i}": backends.sqlite_url(tmp_path / f"db{i}.db") for i in range(12)}
    async with backends.scratch_database("postgresql") as p0, backends.scratch_database("postgresql") as p1, \
            backends.scratch_database("postgresql") as p2, backends.scratch_database("postgresql") as p3:
        targets.update({"p0": p0, "p1": p1, "p2": p2, "p3": p3})
        results = {}

        async def migrate(name: str, url: URL) -> None:
            results[name] = await command.upgrade(config, "head", tag=name, url=url)

        async with anyio.create_task_group() as tg:
            for name, url in targets.items():
                tg.start_soon(migrate, name, url)
        slept = []
        for name, url in targets.items():
            assert results[name].to_heads == ("b2",)
            assert await tables_and_versions(url) == ({f"owner_{name}", f"second_{name}"}, {"b2"})
            if url.get_backend_name() == "postgresql":
                engine = create_async_engine(url, poolclass=NullPool)
                async with engine.connect() as conn:
                    slept.append((await conn.execute(text(f"SELECT slept_from, slept_to FROM owner_{name}"))).one())
                await engine.dispose()
    # The four PostgreSQL runs slept 0.3 s each at the same time, not one after another: the
    # server's clock shows their sleeps overlapping (a load-proof test of overlap, not of speed).
    overlapping = [(a, b) for a in slept for b in slept if a is not b and a[0] < b[1] and b[0] < a[1]]
    assert overlapping, f"no two migrations' sleeps overlapped: {slept}"


@pytest.mark.parametrize(
    ("schema", "table", "pk"), [("meta", "my_versions", False), ("Meta Data", "MyVersions", True)]
)
async def test_version_table_options(tmp_path: Path, pg_db: URL, schema: str, table: str, pk: bool) -> None:
    env_py = (Path(__file__).parents[2] / "templates" / "async" / "env.py").read_text()
    env_py = env_py.replace(
        "context.configure(connection=connection, target_metadata=target_metadata)",
        f"connection.exec_driver_sql('CREATE SCHEMA IF NOT EXISTS \"{schema}\"')\n    connection.commit()\n"
        "    context.configure(connection=connection, target_metadata=target_metadata, "
        f"version_table={table!r}, version_table_schema={schema!r}, version_table_pk={pk})",
    )
    config = make_project(tmp_path, LINEAR, url=pg_db, env_py=env_py)
    await command.upgrade(config, "+2")
    await command.upgrade(config, "head")
    engine = create_async_engine(pg_db, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(text(f'SELECT version_num FROM "{schema}"."{table}"'))).all()
            found = await conn.run_sync(lambda c: inspect(c).get_pk_constraint(table, schema=schema))
    finally:
        await engine.dispose()
    assert rows == [("c3",)]
    assert found["constrained_columns"] == (["version_num"] if pk else [])
    assert (await command.current(config)).heads == ("c3",)


def test_config_is_not_mutated_by_commands(tmp_path: Path) -> None:
    config = make_project(tmp_path, LINEAR, url=backends.sqlite_url(tmp_path / "x.db"))
    before = dict(config.attributes)
    anyio.run(command.upgrade, config, "head")
    assert config.attributes == before
    assert isinstance(config, Config)


async def test_on_version_apply_callbacks_and_step_events(tmp_path: Path, sqlite_or_pg_db: URL) -> None:
    env_py = (Path(__file__).parents[2] / "templates" / "async" / "env.py").read_text()
    env_py = env_py.replace(
        "context.configure(connection=connection, target_metadata=target_metadata)",
        "seen = context.config.attributes['seen']\n"
        "    context.configure(connection=connection, target_metadata=target_metadata,\n"
        "        on_version_apply=lambda ctx, step, heads, run_args: seen.append(\n"
        "            (step.up_revision_id, step.is_upgrade, step.is_stamp, sorted(heads))))",
    )
    config = make_project(tmp_path, LINEAR, url=sqlite_or_pg_db, env_py=env_py)
    seen: list[tuple[object, ...]] = []
    config.attributes["seen"] = seen
    events: list[StepEvent] = []
    await command.upgrade(config, "head", on_step=events.append)
    await command.downgrade(config, "-1")
    await command.stamp(config, "a1")
    assert seen == [
        ("a1", True, False, ["a1"]),
        ("b2", True, False, ["b2"]),
        ("c3", True, False, ["c3"]),
        ("c3", False, False, ["b2"]),
        ("b2", False, True, ["a1"]),
    ]
    finished = [e for e in events if e.kind == "finished"]
    assert [(e.direction, e.revision) for e in finished] == [("upgrade", "a1"), ("upgrade", "b2"), ("upgrade", "c3")]
    assert all(e.duration is not None and e.duration >= 0 for e in finished)
    assert finished[0].description == "upgrade <base> -> a1, a1"
