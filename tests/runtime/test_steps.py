"""A run's steps as the user sees them: events, errors and where the database stands.

A step is announced applied only once committed; a failure names the
statement that failed and its revision; a failed run says which revisions
the database is still at; and on MySQL/MariaDB, where DDL commits itself,
which of the failing step's statements stayed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL

from asyncmigrate import StepEvent, command
from asyncmigrate.exceptions import MigrationError

from ..project import PER_MIGRATION_ENV, Rev, make_project
from .test_run import tables_and_versions


def create(name: str) -> str:
    return f'op.create_table("{name}", sa.Column("id", sa.Integer, primary_key=True))'


def kinds(events: list[StepEvent]) -> list[tuple[str, str | None]]:
    return [(e.kind, e.revision) for e in events]


THREE = [Rev("a1", None, create("t1")), Rev("b2", "a1", create("t2")), Rev("c3", "b2", create("t3"))]


async def test_one_transaction_steps_are_committed_together_at_the_end(
    tmp_path: Path, any_db: URL
) -> None:
    config = make_project(tmp_path, THREE, url=any_db)
    events: list[StepEvent] = []
    result = await command.upgrade(config, "head", on_step=events.append)
    if any_db.get_backend_name() == "mysql":  # DDL commits itself: each step commits on its own
        expected = [(k, r) for r in ("a1", "b2", "c3") for k in ("started", "finished", "committed")]
    else:
        expected = [(k, r) for r in ("a1", "b2", "c3") for k in ("started", "finished")]
        expected += [("committed", r) for r in ("a1", "b2", "c3")]
    assert kinds(events) == expected
    assert [s.up_revisions for s in result.steps] == [("a1",), ("b2",), ("c3",)]
    assert all(e.duration is not None and e.duration >= 0 for e in events if e.kind != "started")


async def test_a_failure_names_its_statement_and_says_where_the_database_is(
    tmp_path: Path, sqlite_or_pg_db: URL
) -> None:
    # b2's second statement fails; its first and a1's ran, and all roll back.
    revisions = [
        Rev("a1", None, create("t1")),
        Rev("b2", "a1", create("t2") + "\n" + create("t1") + "\n" + create("t4")),
        Rev("c3", "b2", create("t3")),
    ]
    config = make_project(tmp_path, revisions, url=sqlite_or_pg_db)
    events: list[StepEvent] = []
    with pytest.raises(MigrationError) as caught:
        await command.upgrade(config, "head", on_step=events.append)
    error = caught.value
    assert error.revision == "b2"
    assert error.database_at == ()
    message = str(error)
    assert message.startswith("upgrade a1 -> b2, b2 failed: ")
    assert "[SQL: CREATE TABLE t1 (" in message  # the statement that failed, not its neighbour
    assert "CREATE TABLE t2" not in message
    assert message.endswith("; rolled back, the database is still at <base>")
    assert kinds(events) == [
        ("started", "a1"), ("finished", "a1"), ("started", "b2"), ("failed", "b2"), ("rolled_back", "a1"),
    ]
    assert await tables_and_versions(sqlite_or_pg_db) == (set(), set())
    await command.upgrade(config, "a1")  # the database is usable
    assert await tables_and_versions(sqlite_or_pg_db) == ({"t1"}, {"a1"})


async def test_with_a_transaction_per_migration_earlier_steps_stay(tmp_path: Path, any_db: URL) -> None:
    revisions = [*THREE[:2], Rev("c3", "b2", create("t3") + "\nop.execute('SELECT * FROM missing')")]
    config = make_project(tmp_path, revisions, url=any_db, env_py=PER_MIGRATION_ENV)
    events: list[StepEvent] = []
    with pytest.raises(MigrationError) as caught:
        await command.upgrade(config, "head", on_step=events.append)
    assert caught.value.revision == "c3"
    assert caught.value.database_at == ("b2",)
    assert "[SQL: SELECT * FROM missing]" in str(caught.value)
    assert str(caught.value).split("; ")[-1] == "rolled back, the database is still at b2"
    committed = [(k, r) for r in ("a1", "b2") for k in ("started", "finished", "committed")]
    assert kinds(events) == [*committed, ("started", "c3"), ("failed", "c3")]
    tables, versions = await tables_and_versions(any_db)
    assert versions == {"b2"}
    # MySQL commits c3's CREATE TABLE by itself; the transactional databases undo it.
    assert tables == ({"t1", "t2", "t3"} if any_db.get_backend_name() == "mysql" else {"t1", "t2"})


async def test_mysql_names_the_statements_a_failing_step_left_committed(tmp_path: Path, mysql_db: URL) -> None:
    revisions = [
        Rev("a1", None, create("t1")),
        Rev("b2", "a1", create("t2") + "\nop.add_column('t2', sa.Column('x', sa.Integer))\n"
            "op.execute('SELECT * FROM missing')"),
    ]
    config = make_project(tmp_path, revisions, url=mysql_db)
    with pytest.raises(MigrationError) as caught:
        await command.upgrade(config, "head")
    message = str(caught.value)
    assert "2 statement(s) of this step were already committed" in message
    assert "CREATE TABLE t2" in message and "ALTER TABLE t2 ADD COLUMN x INTEGER" in message
    assert caught.value.database_at == ("a1",)
    assert await tables_and_versions(mysql_db) == ({"t1", "t2"}, {"a1"})


async def test_a_failing_version_row_check_is_the_steps_own(tmp_path: Path, sqlite_or_pg_db: URL) -> None:
    # b2 moves the version row itself: its own version update then finds no row.
    revisions = [*THREE[:1], Rev("b2", "a1", "op.execute(\"UPDATE alembic_version SET version_num = 'zz'\")")]
    for env_py, name in ((None, "run"), (PER_MIGRATION_ENV, "each")):
        config = make_project(tmp_path / name, revisions, url=sqlite_or_pg_db, env_py=env_py)
        with pytest.raises(MigrationError) as caught:
            await command.upgrade(config, "head")
        assert caught.value.revision == "b2"
        assert "expected to match one row when updating 'a1' to 'b2'" in str(caught.value)
        await command.downgrade(config, "base")


async def test_a_step_reading_the_database_sees_every_earlier_step(
    tmp_path: Path, sqlite_or_pg_db: URL
) -> None:
    revisions = [
        Rev("a1", None, create("t1")),
        Rev("b2", "a1", "op.execute('INSERT INTO t1 (id) VALUES (1), (2), (3)')"),
        Rev("c3", "b2", """
            count = op.get_bind().execute(sa.text('SELECT count(*) FROM t1')).scalar()
            op.create_table(f"t3_{count}", sa.Column("id", sa.Integer, primary_key=True))
            """),
    ]
    config = make_project(tmp_path, revisions, url=sqlite_or_pg_db)
    await command.upgrade(config, "head")
    assert await tables_and_versions(sqlite_or_pg_db) == ({"t1", "t3_3"}, {"c3"})


async def test_a_migration_catching_its_own_error_continues_as_with_alembic(
    tmp_path: Path, pg_db: URL
) -> None:
    # Statements run when issued: an error is raised where the migration can catch it.
    revisions = [Rev("a1", None, """
        from sqlalchemy.exc import ProgrammingError
        op.execute("CREATE TABLE t1 (id int)")
        try:
            with op.get_bind().begin_nested():
                op.execute("CREATE TABLE t1 (id int)")
        except ProgrammingError:
            op.execute("CREATE TABLE t1_caught (id int)")
        """)]
    config = make_project(tmp_path, revisions, url=pg_db)
    await command.upgrade(config, "head")
    assert await tables_and_versions(pg_db) == ({"t1", "t1_caught"}, {"a1"})


async def test_version_callbacks_see_each_step_done(tmp_path: Path, sqlite_or_pg_db: URL) -> None:
    env_py = (Path(__file__).parents[2] / "templates" / "async" / "env.py").read_text()
    env_py = env_py.replace(
        "context.configure(connection=connection, target_metadata=target_metadata)",
        "context.configure(connection=connection, target_metadata=target_metadata,\n"
        "        on_version_apply=context.config.attributes['on_apply'])",
    )
    config = make_project(tmp_path, THREE, url=sqlite_or_pg_db, env_py=env_py)
    seen: list[tuple[str, tuple[str, ...]]] = []

    def on_apply(ctx: Any, step: Any, heads: set[str], run_args: Any) -> None:
        # The callback may query: the step it is told about is in the version table.
        rows = ctx.connection.execute(text("SELECT version_num FROM alembic_version")).scalars()
        seen.append((step.up_revision_id, tuple(rows)))

    config.attributes["on_apply"] = on_apply
    await command.upgrade(config, "head")
    assert seen == [("a1", ("a1",)), ("b2", ("b2",)), ("c3", ("c3",))]


async def test_autocommit_block_commits_the_steps_before_it(tmp_path: Path, pg_db: URL) -> None:
    revisions = [
        Rev("a1", None, create("t1") + '\nop.add_column("t1", sa.Column("v", sa.Integer))'),
        Rev("b2", "a1", """
            with op.get_context().autocommit_block():
                op.create_index("ix_t1_v", "t1", ["v"], postgresql_concurrently=True)
        """),
        Rev("c3", "b2", create("t3")),
    ]
    config = make_project(tmp_path, revisions, url=pg_db)
    events: list[StepEvent] = []
    await command.upgrade(config, "head", on_step=events.append)
    assert kinds(events) == [
        ("started", "a1"), ("finished", "a1"),
        ("started", "b2"), ("committed", "a1"), ("finished", "b2"),
        ("started", "c3"), ("finished", "c3"), ("committed", "b2"), ("committed", "c3"),
    ]
    assert await tables_and_versions(pg_db) == ({"t1", "t3"}, {"c3"})


@pytest.mark.parametrize("how", ["op.execute", "get_bind"])
async def test_a_migration_committing_by_itself(tmp_path: Path, pg_db: URL, how: str) -> None:
    # As some real histories do before ALTER TYPE ... ADD VALUE.
    commit = 'op.execute(sa.text("COMMIT"))' if how == "op.execute" else 'op.get_bind().exec_driver_sql("COMMIT")'
    revisions = [*THREE[:2], Rev("c3", "b2", f"{commit}\n" + create("t3")), Rev("d4", "c3", create("t4"))]
    config = make_project(tmp_path, revisions, url=pg_db)
    await command.upgrade(config, "head")
    assert await tables_and_versions(pg_db) == ({"t1", "t2", "t3", "t4"}, {"d4"})
