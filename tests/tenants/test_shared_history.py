"""One history table for a schema-per-tenant fleet (``history_table_schema``).

Each tenant schema's rows carry that schema's name; every run writes and
reads only its own; a schema taken over from Alembic gets its own baseline
although the shared table already exists; fresh tenants racing to create the
shared table all succeed; ``validate`` finds drift per tenant.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from asyncmigrate import Config
from asyncmigrate.tenants import Tenant, migrate_tenants

from ..project import Rev, make_project

REVS = [
    # The first step holds its transaction open a little: tenants starting together all find
    # the shared table missing and race to create it inside their first transaction.
    Rev("a1", None, "import time\ntime.sleep(0.3)\nop.create_table('t1', sa.Column('id', sa.Integer, "
                    "primary_key=True))", "op.drop_table('t1')"),
    Rev("b2", "a1", "op.create_table('t2', sa.Column('id', sa.Integer, primary_key=True))", "op.drop_table('t2')"),
    Rev("c3", "b2", "op.create_table('t3', sa.Column('id', sa.Integer, primary_key=True))", "op.drop_table('t3')"),
]


def main_schema(url: URL) -> str:
    return "public" if url.get_backend_name() == "postgresql" else str(url.database)


def project(root: Path, url: URL, history: bool = True) -> Config:
    extra = f"history_table = asyncmigrate_history\nhistory_table_schema = {main_schema(url)}" if history else ""
    return make_project(root, REVS, url=url, ini_extra=extra)


async def shared_rows(url: URL) -> list[tuple[Any, ...]]:
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            result = await conn.execute(text(
                f"SELECT version_schema, revision, kind, outcome FROM {main_schema(url)}.asyncmigrate_history "
                "ORDER BY id"
            ))
            return [tuple(r) for r in result]
    finally:
        await engine.dispose()


async def table_names(url: URL, schema: str) -> set[str]:
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            return set(await conn.run_sync(lambda c: inspect(c).get_table_names(schema=schema)))
    finally:
        await engine.dispose()


def fleet(url: URL, count: int) -> list[Tenant]:
    shared = url.render_as_string(hide_password=False)
    tenants = [Tenant(f"s{i}", shared, f"{url.database}_s{i}") for i in range(count)]  # dropped with it
    return [*tenants, Tenant("plain", shared)]  # the URL's own schema, beside the schema tenants


@pytest.mark.parametrize("concurrency", [1, 5])
async def test_one_table_keeps_each_schemas_record(tmp_path: Path, server_db: URL, concurrency: int) -> None:
    config = project(tmp_path, server_db)
    tenants = fleet(server_db, 4)
    report = await migrate_tenants(config, tenants, "head", concurrency=concurrency)
    assert report.counts["ok"] == len(tenants), [r.error for r in report.failed]

    rows = await shared_rows(server_db)
    by_schema: dict[str, list[tuple[Any, ...]]] = {}
    for schema, *rest in rows:
        by_schema.setdefault(schema, []).append(tuple(rest))
    want = [("a1", "migration", "applied"), ("b2", "migration", "applied"), ("c3", "migration", "applied")]
    owners = [t.schema or main_schema(server_db) for t in tenants]
    assert by_schema == {owner: want for owner in owners}
    for tenant in tenants[:-1]:  # no table of its own in any tenant schema
        assert await table_names(server_db, str(tenant.schema)) == {"alembic_version", "t1", "t2", "t3"}

    # Each tenant reads only its own rows: one downgrade shows in one record only.
    report = await migrate_tenants(config, tenants[1:2], "-1", operation="downgrade")
    assert report.counts["ok"] == 1
    rows = await shared_rows(server_db)
    assert rows[-1] == (tenants[1].schema, "c3", "migration", "applied")
    from asyncmigrate import command

    record = await command.log(config, url=server_db, tenant_schema=tenants[1].schema)
    assert [(r.revision, r.direction) for r in record.rows] == [
        ("a1", "upgrade"), ("b2", "upgrade"), ("c3", "upgrade"), ("c3", "downgrade")
    ]
    record = await command.log(config, url=server_db, tenant_schema=tenants[2].schema)
    assert [(r.revision, r.direction) for r in record.rows] == [("a1", "upgrade"), ("b2", "upgrade"), ("c3", "upgrade")]


async def test_each_schema_taken_over_gets_its_own_baseline(tmp_path: Path, server_db: URL) -> None:
    tenants = fleet(server_db, 2)
    # s0 and s1 migrated to b2 without any record (as Alembic would leave them) ...
    report = await migrate_tenants(project(tmp_path / "off", server_db, history=False), tenants[:2], "b2")
    assert report.counts["ok"] == 2
    config = project(tmp_path / "on", server_db)
    # ... then s0 moves on with the record on: the shared table is created, s0's baseline written ...
    assert (await migrate_tenants(config, tenants[:1], "head")).counts["ok"] == 1
    # ... and s1, finding the table there already, still gets a baseline of its own.
    assert (await migrate_tenants(config, tenants[1:2], "head")).counts["ok"] == 1
    assert await shared_rows(server_db) == [
        (tenants[0].schema, "b2", "baseline", "applied"),
        (tenants[0].schema, "c3", "migration", "applied"),
        (tenants[1].schema, "b2", "baseline", "applied"),
        (tenants[1].schema, "c3", "migration", "applied"),
    ]


async def test_validate_finds_drift_per_schema(tmp_path: Path, server_db: URL) -> None:
    config = project(tmp_path, server_db)
    tenants = fleet(server_db, 3)
    first = await migrate_tenants(config, tenants, "b2", concurrency=4)
    assert first.counts["ok"] == len(tenants), [r.error for r in first.failed]
    assert (await migrate_tenants(config, tenants[:1], "head")).counts["ok"] == 1
    c3 = next((tmp_path / "migrations" / "versions").glob("c3_*.py"))
    c3.write_text(c3.read_text() + "\n# edited after it was applied\n")
    report = await migrate_tenants(config, tenants, operation="validate", target=None, concurrency=4)
    # Only s0 applied c3: the others' records (in the same table) have nothing to compare.
    assert [r.name for r in report.failed] == ["s0"]
    assert report.counts["ok"] == len(tenants) - 1


async def test_a_table_created_in_a_transaction_still_open_is_not_taken_for_granted(
    tmp_path: Path, pg_db: URL
) -> None:
    """Tenant A creates the shared table and keeps its transaction open; B, on the same engine, starts then.

    B must not skip the table because A's run created it: A's table is not
    committed yet (invisible to B, and A may still roll back). B waits for A
    and uses the table once A commits.
    """
    env = (Path(__file__).parents[2] / "templates" / "async" / "env.py").read_text(encoding="utf-8").replace(
        "    with context.begin_transaction():\n        context.run_migrations()\n\n\nasync def",
        "    if context.tenant.name == 'B':  # start once A holds its transaction (a server-side wait)\n"
        "        connection.exec_driver_sql('SELECT pg_sleep(0.5)')\n"
        "        connection.commit()\n"
        "    with context.begin_transaction():\n        context.run_migrations()\n\n\nasync def",
    )
    assert "pg_sleep(0.5)" in env
    revs = [Rev("a1", None, "from asyncmigrate import context\n"
                            "if context.tenant.name == 'A':\n    op.execute('SELECT pg_sleep(1.5)')")]
    config = make_project(tmp_path, revs, url=pg_db, env_py=env,
                          ini_extra="history_table = asyncmigrate_history\nhistory_table_schema = public")
    tenants = [Tenant("A", pg_db.render_as_string(hide_password=False), "sa"),
               Tenant("B", pg_db.render_as_string(hide_password=False), "sb")]
    report = await migrate_tenants(config, tenants, "head", concurrency=2)
    assert report.counts["ok"] == 2, [r.error for r in report.failed]
    assert sorted(row[:2] for row in await shared_rows(pg_db)) == [("sa", "a1"), ("sb", "a1")]


async def test_failing_first_runs_still_record_their_failures(tmp_path: Path, server_db: URL) -> None:
    """The table created in a first run's transaction is rolled back with it; the failure row still lands."""
    config = make_project(tmp_path, [Rev("a1", None, "op.execute('SELECT * FROM nowhere')")], url=server_db,
                          ini_extra=f"history_table = asyncmigrate_history\n"
                                    f"history_table_schema = {main_schema(server_db)}")
    tenants = fleet(server_db, 3)
    report = await migrate_tenants(config, tenants, "head", concurrency=4)
    assert report.counts["failed"] == len(tenants)
    rows = await shared_rows(server_db)
    assert sorted(rows) == sorted(
        (t.schema or main_schema(server_db), "a1", "migration", "failed") for t in tenants
    )
