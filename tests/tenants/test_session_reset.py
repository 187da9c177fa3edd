"""Session state never crosses tenants: what one run sets on its session, the next run on that URL never sees.

Each tenant's revision first records what its session looks like (settings,
variables, role, temporary tables, SQL-level prepared statements, advisory
locks), then changes all of it. Tenants share one URL, one at a time and two
at once; every tenant must have found a new session's state. On PostgreSQL
the fan-out pools connections across tenants (the test checks that it
really does: a test of isolation on connections never reused would prove
nothing); elsewhere each tenant gets a connection of its own.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from asyncmigrate import Config
from asyncmigrate.tenants import Tenant, migrate_tenants

from ..project import Rev, make_project

ROLE = "asyncmigrate_test_reset_role"

# What this session has (pg_class and pg_locks list every session's temp tables and locks:
# a tenant running at the same time legitimately holds its own).
PG_LOOK = """
    SELECT current_setting('statement_timeout'), current_setting('asyncmigrate.leak', true),
           current_user, current_setting('search_path'),
           (SELECT count(*) FROM pg_class WHERE relname = 'leak_tmp' AND relnamespace = pg_my_temp_schema()),
           (SELECT count(*) FROM pg_prepared_statements WHERE from_sql),
           (SELECT count(*) FROM pg_locks
            WHERE locktype = 'advisory' AND objid = 424242 AND pid = pg_backend_pid()),
           (SELECT count(*) FROM pg_listening_channels())
"""
PG_CHANGE = [
    "SET statement_timeout = 123456",
    "SELECT set_config('asyncmigrate.leak', 'from another tenant', false)",
    "CREATE TEMP TABLE leak_tmp (x int)",
    "PREPARE leak_stmt AS SELECT 1",
    "SELECT pg_advisory_lock(424242)",
    "LISTEN leak_channel",
    f"SET ROLE {ROLE}",
]
MYSQL_LOOK = """
    SELECT @@session.time_zone, @@session.sql_mode, @leak, @@session.lock_wait_timeout,
           (SELECT count(*) FROM information_schema.tables WHERE table_name = 'leak_tmp'),
           IS_USED_LOCK('asyncmigrate_leak_lock') = CONNECTION_ID()
"""
MYSQL_CHANGE = [
    "SET SESSION time_zone = '+05:00'",
    "SET SESSION sql_mode = 'ANSI_QUOTES'",
    "SET @leak = 'from another tenant'",
    "SET SESSION lock_wait_timeout = 123456",
    "CREATE TEMPORARY TABLE leak_tmp (x int)",
    "SELECT GET_LOCK('asyncmigrate_leak_lock', 0)",
]


def revision(look: str, change: list[str], pid: str) -> Rev:
    return Rev("s1", None, f"""
        import json
        bind = op.get_bind()
        seen = [str(v) for v in bind.execute(sa.text({look!r})).one()]
        pid = bind.execute(sa.text({pid!r})).scalar()
        op.create_table("seen", sa.Column("what", sa.Text), sa.Column("pid", sa.Integer))
        op.bulk_insert(sa.table("seen", sa.column("what"), sa.column("pid")),
                       [{{"what": json.dumps(seen), "pid": pid}}])
        for statement in {change!r}:
            op.execute(statement)
    """)


async def fresh_session_look(url: URL, look: str) -> list[str]:
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            return [str(v) for v in (await conn.execute(text(look))).one()]
    finally:
        await engine.dispose()


@pytest.mark.parametrize("concurrency", [1, 2])
async def test_no_session_state_reaches_the_next_tenant(
    tmp_path: Path, server_db: URL, concurrency: int
) -> None:
    postgres = server_db.get_backend_name() == "postgresql"
    look, change = (PG_LOOK, PG_CHANGE) if postgres else (MYSQL_LOOK, MYSQL_CHANGE)
    pid = "SELECT pg_backend_pid()" if postgres else "SELECT CONNECTION_ID()"
    if postgres:
        engine = create_async_engine(server_db, poolclass=NullPool)
        async with engine.begin() as conn:  # a role of the cluster: created once, kept
            await conn.execute(text(
                f"DO $$BEGIN CREATE ROLE {ROLE} SUPERUSER NOLOGIN; "
                "EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END$$"
            ))
        await engine.dispose()
    make_project(tmp_path, [revision(look, change, pid)])
    url = server_db.render_as_string(hide_password=False)
    tenants = [Tenant(f"t{i}", url, f"{server_db.database}_s{i}") for i in range(6)]
    report = await migrate_tenants(Config(str(tmp_path / "alembic.ini")), tenants, "head",
                                   concurrency=concurrency)
    assert report.counts["ok"] == len(tenants), report.failed

    new_session = await fresh_session_look(server_db, look)
    engine = create_async_engine(server_db, poolclass=NullPool)
    seen, pids = {}, []
    async with engine.connect() as conn:
        for tenant in tenants:
            row = (await conn.execute(text(f"SELECT what, pid FROM {tenant.schema}.seen"))).one()
            seen[tenant.name] = json.loads(row[0])
            pids.append(row[1])
    await engine.dispose()
    if postgres:
        for tenant in tenants:
            # The tenant's own schema is its search_path.
            assert seen[tenant.name][3] == tenant.schema
            seen[tenant.name][3] = new_session[3]
            # PostgreSQL cannot forget a custom setting's name once set in a session (nor can
            # DISCARD ALL): the reset leaves it empty, where a new session has none. The value
            # never crosses.
            assert seen[tenant.name][1] in ("None", "")
            seen[tenant.name][1] = new_session[1]
    assert seen == {tenant.name: new_session for tenant in tenants}, json.dumps([seen, new_session])
    if postgres:  # connections were reused across tenants, so the resets above were exercised
        assert len(set(pids)) < len(tenants), pids
