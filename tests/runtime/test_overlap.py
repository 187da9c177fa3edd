"""Steps in one transaction overlap: a step's SQL runs while the next step's code builds its own.

The overlap must be invisible: errors belong to the step whose SQL failed, a
step that reads the database sees everything before it, events come in
started/finished pairs, and ``on_version_apply`` callbacks see each step done.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL

from asyncmigrate import StepEvent, command
from asyncmigrate.exceptions import MigrationError

from ..project import Rev, make_project
from ..sent_sql import record_sql
from .test_run import tables_and_versions


def create(name: str) -> str:
    return f'op.create_table("{name}", sa.Column("id", sa.Integer, primary_key=True))'


async def test_failing_sql_is_reported_for_its_own_step(tmp_path: Path, sqlite_or_pg_db: URL) -> None:
    # b2's SQL fails on the server; c3's code has already run when the answer comes.
    revisions = [
        Rev("a1", None, create("t1")),
        Rev("b2", "a1", create("t1")),  # the table exists: the database refuses
        Rev("c3", "b2", create("t3")),
    ]
    config = make_project(tmp_path, revisions, url=sqlite_or_pg_db)
    events: list[StepEvent] = []
    with pytest.raises(MigrationError) as caught:
        await command.upgrade(config, "head", on_step=events.append)
    assert caught.value.revision == "b2"
    assert "a1 -> b2" in str(caught.value)
    assert [(e.kind, e.revision) for e in events] == [
        ("started", "a1"), ("finished", "a1"), ("started", "b2"), ("failed", "b2"),
    ]
    # One transaction for the run: nothing of it stays.
    assert await tables_and_versions(sqlite_or_pg_db) == (set(), set())
    # And the database is usable: fix nothing, go to a1 only.
    await command.upgrade(config, "a1")
    assert await tables_and_versions(sqlite_or_pg_db) == ({"t1"}, {"a1"})


async def test_failure_in_the_last_step_is_reported(tmp_path: Path, sqlite_or_pg_db: URL) -> None:
    revisions = [Rev("a1", None, create("t1")), Rev("b2", "a1", "op.execute('DROP TABLE missing')")]
    config = make_project(tmp_path, revisions, url=sqlite_or_pg_db)
    with pytest.raises(MigrationError) as caught:
        await command.upgrade(config, "head")
    assert caught.value.revision == "b2"
    assert await tables_and_versions(sqlite_or_pg_db) == (set(), set())


async def test_code_failing_after_an_earlier_sql_failure_reports_the_earlier(
    tmp_path: Path, sqlite_or_pg_db: URL
) -> None:
    # b2's SQL fails; c3's code then fails too (on its own query): the cause is b2.
    revisions = [
        Rev("a1", None, create("t1")),
        Rev("b2", "a1", create("t1")),
        Rev("c3", "b2", "op.get_bind().execute(sa.text('SELECT * FROM t1')).fetchall()"),
    ]
    config = make_project(tmp_path, revisions, url=sqlite_or_pg_db)
    with pytest.raises(MigrationError) as caught:
        await command.upgrade(config, "head")
    assert caught.value.revision == "b2"
    assert await tables_and_versions(sqlite_or_pg_db) == (set(), set())


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


async def test_version_callbacks_see_each_step_done(tmp_path: Path, sqlite_or_pg_db: URL) -> None:
    env_py = (Path(__file__).parents[2] / "templates" / "async" / "env.py").read_text()
    env_py = env_py.replace(
        "context.configure(connection=connection, target_metadata=target_metadata)",
        "context.configure(connection=connection, target_metadata=target_metadata,\n"
        "        on_version_apply=context.config.attributes['on_apply'])",
    )
    revisions = [Rev("a1", None, create("t1")), Rev("b2", "a1", create("t2")), Rev("c3", "b2", create("t3"))]
    config = make_project(tmp_path, revisions, url=sqlite_or_pg_db, env_py=env_py)
    seen: list[tuple[str, int]] = []

    def on_apply(ctx: Any, step: Any, heads: set[str], run_args: Any) -> None:
        # The callback may query: the step it is told about is already in the database.
        name = {"a1": "t1", "b2": "t2", "c3": "t3"}[step.up_revision_id]
        count = ctx.connection.execute(text(f"SELECT count(*) FROM {name}")).scalar()
        seen.append((step.up_revision_id, count))

    config.attributes["on_apply"] = on_apply
    await command.upgrade(config, "head")
    assert seen == [("a1", 0), ("b2", 0), ("c3", 0)]
    assert await tables_and_versions(sqlite_or_pg_db) == ({"t1", "t2", "t3"}, {"c3"})


async def test_events_come_in_pairs_over_many_steps(tmp_path: Path, sqlite_or_pg_db: URL) -> None:
    revisions = [
        Rev(f"r{i:02d}", f"r{i - 1:02d}" if i else None, create(f"t{i}"), f'op.drop_table("t{i}")')
        for i in range(12)
    ]
    config = make_project(tmp_path, revisions, url=sqlite_or_pg_db)
    events: list[StepEvent] = []
    result = await command.upgrade(config, "head", on_step=events.append)
    expected = [(kind, f"r{i:02d}") for i in range(12) for kind in ("started", "finished")]
    assert [(e.kind, e.revision) for e in events] == expected
    assert [s.up_revisions for s in result.steps] == [(f"r{i:02d}",) for i in range(12)]
    assert all(e.duration is not None and e.duration >= 0 for e in events if e.kind == "finished")
    await command.downgrade(config, "base")
    assert await tables_and_versions(sqlite_or_pg_db) == (set(), set())


async def test_autocommit_block_after_a_step_still_running(tmp_path: Path, pg_db: URL) -> None:
    # b2 leaves its transaction for CREATE INDEX CONCURRENTLY while a1's batch may still
    # be on the server: the block's commit waits for it, and the index sees a1's table.
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
    assert [(e.kind, e.revision) for e in events] == [
        (kind, rev) for rev in ("a1", "b2", "c3") for kind in ("started", "finished")
    ]
    assert await tables_and_versions(pg_db) == ({"t1", "t3"}, {"c3"})


async def test_cancelled_while_a_step_runs_on_the_server(tmp_path: Path, pg_db: URL) -> None:
    # The caller gives up while a1's batch is still on the server: the call returns at
    # once, the server stops too (its session ends, so the lock is free), nothing is
    # kept, and the database is usable right away.
    revisions = [
        Rev("a1", None, create("t1") + "\nop.execute('SELECT pg_sleep(30)')"),
        Rev("b2", "a1", create("t2")),
    ]
    config = make_project(tmp_path, revisions, url=pg_db)
    started = time.perf_counter()
    with anyio.move_on_after(0.5):
        await command.upgrade(config, "head")
    assert time.perf_counter() - started < 5, "the cancellation waited for the statement"
    assert await tables_and_versions(pg_db) == (set(), set())
    revisions[0] = Rev("a1", None, create("t1"))
    config = make_project(tmp_path / "again", revisions, url=pg_db)
    with anyio.fail_after(10):  # would wait ~30 s on the lock if the session lingered
        await command.upgrade(config, "head")
    assert await tables_and_versions(pg_db) == ({"t1", "t2"}, {"b2"})


# -- several steps in one batch (PostgreSQL) ----------------------------------------------------
#
# While a step's batch runs, the steps whose code finishes meanwhile wait and then
# leave together, each after the first behind a savepoint. A slow first step makes
# the grouping certain.

SLOW_FIRST = Rev("a1", None, create("t1") + "\nop.execute('SELECT pg_sleep(0.3)')")


async def test_steps_waiting_for_a_running_batch_leave_together(
    tmp_path: Path, pg_db: URL, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent = record_sql(monkeypatch)
    revisions = [SLOW_FIRST] + [Rev(f"s{i}", f"s{i - 1}" if i > 2 else "a1", create(f"t{i}")) for i in range(2, 6)]
    config = make_project(tmp_path, revisions, url=pg_db)
    events: list[StepEvent] = []
    await command.upgrade(config, "head", on_step=events.append)
    assert await tables_and_versions(pg_db) == ({"t1", "t2", "t3", "t4", "t5"}, {"s5"})
    # The later steps' code ran while a1's slow batch did: they leave together, behind
    # savepoints, not one batch each (which of them joins a1's own batch depends on timing).
    carrying = [q for q in sent if any(f"CREATE TABLE t{i}" in q for i in (2, 3, 4, 5))]
    assert len(carrying) <= 2
    assert any(
        sum(f"CREATE TABLE t{i}" in q for i in (2, 3, 4, 5)) >= 2 and "SAVEPOINT asyncmigrate_step_" in q
        for q in carrying
    )
    assert [(e.kind, e.revision) for e in events] == [
        (kind, rev) for rev in ("a1", "s2", "s3", "s4", "s5") for kind in ("started", "finished")
    ]


@pytest.mark.parametrize(
    ("failing", "marker", "message"),
    [
        # c3's SQL fails on the server.
        ("op.execute('INSERT INTO t2 (id) VALUES (1), (1)')", "INSERT INTO t2", "duplicate key"),
        # c3's migration moves the version row itself: its own version update then
        # finds no row.
        (
            "op.execute(\"UPDATE alembic_version SET version_num = 'zz'\")",
            "version_num = 'zz'",
            "expected to match one row",
        ),
    ],
    ids=["sql", "version-row"],
)
async def test_a_failure_in_a_group_is_its_own_steps(
    tmp_path: Path, pg_db: URL, monkeypatch: pytest.MonkeyPatch, failing: str, marker: str, message: str
) -> None:
    # The failure is c3's, not that of the first step in its batch.
    sent = record_sql(monkeypatch)
    revisions = [
        SLOW_FIRST,
        Rev("b2", "a1", create("t2")),
        Rev("c3", "b2", failing),
        Rev("d4", "c3", create("t4")),
    ]
    config = make_project(tmp_path, revisions, url=pg_db)
    events: list[StepEvent] = []
    with pytest.raises(MigrationError) as caught:
        await command.upgrade(config, "head", on_step=events.append)
    assert any("SAVEPOINT" in q and marker in q for q in sent)  # c3 ran in a group
    assert caught.value.revision == "c3"
    assert message in str(caught.value)
    assert [(e.kind, e.revision) for e in events] == [
        ("started", "a1"), ("finished", "a1"), ("started", "b2"), ("finished", "b2"),
        ("started", "c3"), ("failed", "c3"),
    ]
    assert await tables_and_versions(pg_db) == (set(), set())  # the run's transaction is gone
    await command.upgrade(config, "b2")  # and the database is usable
    assert await tables_and_versions(pg_db) == ({"t1", "t2"}, {"b2"})


async def test_a_long_run_uses_a_bounded_number_of_savepoints(
    tmp_path: Path, pg_db: URL, monkeypatch: pytest.MonkeyPatch
) -> None:
    from asyncmigrate.runtime import pipeline

    monkeypatch.setattr(pipeline, "STEP_SAVEPOINTS", 3)
    sent = record_sql(monkeypatch)
    slow = "\nop.execute('SELECT pg_sleep(0.05)')"
    revisions = [
        Rev(f"r{i:02d}", f"r{i - 1:02d}" if i else None, create(f"t{i}") + slow) for i in range(20)
    ]
    config = make_project(tmp_path, revisions, url=pg_db)
    await command.upgrade(config, "head")
    assert await tables_and_versions(pg_db) == ({f"t{i}" for i in range(20)}, {"r19"})
    assert 0 < sum(q.count("SAVEPOINT asyncmigrate_step_") for q in sent) <= 3


async def test_no_group_in_a_callers_transaction(
    tmp_path: Path, pg_db: URL, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy.ext.asyncio import create_async_engine
    from sqlalchemy.pool import NullPool

    sent = record_sql(monkeypatch)
    revisions = [SLOW_FIRST, Rev("b2", "a1", create("t2")), Rev("c3", "b2", create("t3"))]
    config = make_project(tmp_path, revisions)
    engine = create_async_engine(pg_db, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            await conn.begin()
            await command.upgrade(config, "head", connection=conn)
            await conn.commit()
    finally:
        await engine.dispose()
    assert await tables_and_versions(pg_db) == ({"t1", "t2", "t3"}, {"c3"})
    assert not any("SAVEPOINT asyncmigrate_step_" in q for q in sent)


@pytest.mark.parametrize("how", ["op.execute", "get_bind"])
async def test_a_migration_committing_by_itself_ends_grouping(
    tmp_path: Path, pg_db: URL, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    # As some real histories do before ALTER TYPE ... ADD VALUE: after that COMMIT the
    # statements run outside a transaction block, where no savepoint may follow.
    commit = (
        'op.execute(sa.text("COMMIT"))' if how == "op.execute"
        else 'op.get_bind().exec_driver_sql("COMMIT")'
    )
    sent = record_sql(monkeypatch)
    revisions = [
        SLOW_FIRST,
        Rev("b2", "a1", create("t2")),
        Rev("c3", "b2", f"{commit}\n" + create("t3")),
        Rev("d4", "c3", create("t4")),
        Rev("e5", "d4", create("t5")),
    ]
    config = make_project(tmp_path, revisions, url=pg_db)
    await command.upgrade(config, "head")
    assert await tables_and_versions(pg_db) == ({"t1", "t2", "t3", "t4", "t5"}, {"e5"})
    after = sent[next(i for i, q in enumerate(sent) if "CREATE TABLE t3" in q):]
    assert not any("SAVEPOINT" in q for q in after)


async def test_a_step_reading_while_steps_wait_sees_them(tmp_path: Path, pg_db: URL) -> None:
    # b2 waits behind a1's slow batch when c3 queries: the query first sends b2 (and what
    # c3 queued before it), so c3 sees b2's rows; events and version rows stay in order.
    revisions = [
        SLOW_FIRST,
        Rev("b2", "a1", create("t2") + "\nop.execute('INSERT INTO t2 (id) VALUES (1), (2)')"),
        Rev("c3", "b2", """
            op.create_table("t3_before", sa.Column("id", sa.Integer, primary_key=True))
            count = op.get_bind().execute(sa.text('SELECT count(*) FROM t2')).scalar()
            op.create_table(f"t3_{count}", sa.Column("id", sa.Integer, primary_key=True))
            """),
        Rev("d4", "c3", create("t4")),
    ]
    config = make_project(tmp_path, revisions, url=pg_db)
    events: list[StepEvent] = []
    await command.upgrade(config, "head", on_step=events.append)
    assert await tables_and_versions(pg_db) == ({"t1", "t2", "t3_before", "t3_2", "t4"}, {"d4"})
    assert [(e.kind, e.revision) for e in events] == [
        (kind, rev) for rev in ("a1", "b2", "c3", "d4") for kind in ("started", "finished")
    ]


async def test_a_waiting_steps_failure_seen_by_a_later_query_is_its_own(tmp_path: Path, pg_db: URL) -> None:
    revisions = [
        SLOW_FIRST,
        Rev("b2", "a1", create("t2") + "\nop.execute('INSERT INTO t2 (id) VALUES (1), (1)')"),
        Rev("c3", "b2", "op.get_bind().execute(sa.text('SELECT 1')).scalar()"),
    ]
    config = make_project(tmp_path, revisions, url=pg_db)
    events: list[StepEvent] = []
    with pytest.raises(MigrationError) as caught:
        await command.upgrade(config, "head", on_step=events.append)
    assert caught.value.revision == "b2"
    assert [(e.kind, e.revision) for e in events] == [
        ("started", "a1"), ("finished", "a1"), ("started", "b2"), ("failed", "b2"),
    ]
    assert await tables_and_versions(pg_db) == (set(), set())
