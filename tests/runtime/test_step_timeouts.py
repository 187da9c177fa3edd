"""Step lock and statement timeouts with retry: a migration waiting for a lock never blocks the application for long.

On PostgreSQL a DDL statement waiting for its ACCESS EXCLUSIVE lock makes
every later query on the table queue behind it. With ``step_lock_timeout``
the wait is bounded; the step rolls back (releasing whatever its transaction
held) and is retried with backoff until the holder goes away, or fails
naming the holder.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.pool import NullPool

from asyncmigrate import command
from asyncmigrate.events import StepEvent
from asyncmigrate.exceptions import ConfigError, MigrationError
from asyncmigrate.runtime.timeouts import StepTimeouts, parse_duration

from ..project import PER_MIGRATION_ENV, Rev, make_project

BASE = Rev("a1", None, """
    op.create_table("account", sa.Column("id", sa.Integer, primary_key=True))
    op.create_table("audit", sa.Column("id", sa.Integer, primary_key=True))
    op.execute("INSERT INTO account (id) VALUES (1)")
    op.execute("INSERT INTO audit (id) VALUES (1)")
""")
ADD_EMAIL = Rev("c3", "b2", 'op.add_column("account", sa.Column("email", sa.String(50)))')
TOUCH_AUDIT = Rev("b2", "a1", 'op.add_column("audit", sa.Column("note", sa.String(50)))')


@asynccontextmanager
async def holding(url: URL, sql: str) -> AsyncIterator[tuple[AsyncConnection, int]]:
    """Another session that runs ``sql`` in an open transaction (holding its locks) until the block ends."""
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            pid_sql = "SELECT pg_backend_pid()" if url.get_backend_name() == "postgresql" else "SELECT CONNECTION_ID()"
            pid = (await conn.execute(text(pid_sql))).scalar_one()
            await conn.execute(text(sql))
            yield conn, int(pid)
            await conn.rollback()
    finally:
        await engine.dispose()


async def app_latencies(url: URL, table: str, until: anyio.Event) -> list[float]:
    """What the application sees: the time each of its reads of ``table`` takes, until ``until`` is set."""
    engine = create_async_engine(url, poolclass=NullPool)
    seen: list[float] = []
    try:
        async with engine.connect() as conn:
            while not until.is_set():
                started = time.perf_counter()
                await conn.execute(text(f"SELECT count(*) FROM {table}"))
                await conn.commit()
                seen.append(time.perf_counter() - started)
                await anyio.sleep(0.02)
    finally:
        await engine.dispose()
    return seen


async def scalar(url: URL, sql: str) -> Any:
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            return (await conn.execute(text(sql))).scalar()
    finally:
        await engine.dispose()


def setup(tmp_path: Path, url: URL, revisions: list[Rev], ini_extra: str = "") -> Any:
    return make_project(tmp_path / "p", [BASE, *revisions], url=url, ini_extra=ini_extra)


async def test_a_waiting_step_retries_until_the_holder_commits_and_never_blocks_the_app_for_long(
    tmp_path: Path, pg_db: URL
) -> None:
    config = setup(tmp_path, pg_db, [TOUCH_AUDIT, ADD_EMAIL],
                   "step_lock_timeout = 200ms\nstep_retries = 30\nstep_retry_delay = 100ms")
    await command.upgrade(config, "a1")
    events: list[StepEvent] = []
    done = anyio.Event()
    async with holding(pg_db, "SELECT * FROM account") as (holder, _pid):
        async with anyio.create_task_group() as tg:
            app: dict[str, list[float]] = {}

            async def read(table: str) -> None:
                app[table] = await app_latencies(pg_db, table, done)

            async def migrate() -> None:
                try:
                    await command.upgrade(config, "head", on_step=events.append)
                finally:
                    done.set()

            tg.start_soon(read, "account")
            tg.start_soon(read, "audit")
            tg.start_soon(migrate)
            await anyio.sleep(2.0)  # the holder keeps its transaction open for two seconds
            await holder.rollback()
    retries = [e for e in events if e.kind == "retrying"]
    assert len(retries) >= 3, [e.kind for e in events]
    assert all(e.revision == "c3" for e in retries)
    assert "timed out waiting for a lock" in (retries[0].error or "")
    # The whole transaction rolled back between attempts: b2 (which locked audit) was undone too.
    assert any(e.kind == "rolled_back" and e.revision == "b2" for e in events)
    assert [e.revision for e in events if e.kind == "committed"] == ["b2", "c3"]
    assert await scalar(pg_db, "SELECT version_num FROM alembic_version") == "c3"
    # Measured: while the migration waited for two seconds, no application read waited
    # much longer than one lock timeout (200 ms) -- on either table.
    worst = {table: max(seen) for table, seen in app.items()}
    print(f"worst application read while the migration waited: {worst}; retries: {len(retries)}")
    assert worst["account"] < 0.6 and worst["audit"] < 0.6, worst
    assert len(app["account"]) > 10


async def test_without_a_lock_timeout_the_app_queues_behind_the_waiting_migration(
    tmp_path: Path, pg_db: URL
) -> None:
    # The same scene as above with Alembic's behaviour: the measurement the timeout is for.
    config = setup(tmp_path, pg_db, [TOUCH_AUDIT, ADD_EMAIL])
    await command.upgrade(config, "a1")
    done = anyio.Event()
    app: list[float] = []
    async with holding(pg_db, "SELECT * FROM account") as (holder, _pid):
        async with anyio.create_task_group() as tg:
            async def read() -> None:
                app.extend(await app_latencies(pg_db, "account", done))

            async def migrate() -> None:
                try:
                    await command.upgrade(config, "head")
                finally:
                    done.set()

            tg.start_soon(migrate)
            await anyio.sleep(0.3)
            tg.start_soon(read)
            await anyio.sleep(1.5)
            await holder.rollback()
    print(f"worst application read without a lock timeout: {max(app):.2f}s")
    assert max(app) > 1.0


async def test_a_step_that_keeps_timing_out_fails_naming_the_holder(tmp_path: Path, pg_db: URL) -> None:
    config = setup(tmp_path, pg_db, [TOUCH_AUDIT, ADD_EMAIL],
                   "step_lock_timeout = 150ms\nstep_retries = 2\nstep_retry_delay = 50ms")
    await command.upgrade(config, "a1")
    events: list[StepEvent] = []
    async with holding(pg_db, "LOCK TABLE account IN ACCESS SHARE MODE") as (_holder, pid):
        started = time.perf_counter()
        with pytest.raises(MigrationError) as caught:
            await command.upgrade(config, "head", on_step=events.append)
        elapsed = time.perf_counter() - started
        message = str(caught.value)
        assert "gave up after 3 attempt(s) waiting for a lock of 150ms (step_lock_timeout)" in message
        assert f"held by pid {pid} (postgres" in message
        assert "AccessShareLock on account" in message
        assert "LOCK TABLE account IN ACCESS SHARE MODE" in message
        assert "ALTER TABLE account ADD COLUMN email" in message  # the statement that waited
        assert message.endswith("rolled back, the database is still at a1")
        assert "\n" not in message
        assert caught.value.database_at == ("a1",)
        assert len([e for e in events if e.kind == "retrying"]) == 2
        assert elapsed < 5.0  # three waits of 150 ms and two short pauses, on a shared machine
        # Nothing of the migration is left: no advisory lock, no other session of ours.
        locks = await scalar(pg_db, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND database = "
                                    "(SELECT oid FROM pg_database WHERE datname = current_database())")
        assert locks == 0
    assert await scalar(pg_db, "SELECT version_num FROM alembic_version") == "a1"
    await command.upgrade(config, "head")  # the holder is gone: it goes through
    assert await scalar(pg_db, "SELECT version_num FROM alembic_version") == "c3"


async def test_a_step_per_transaction_retries_only_itself(tmp_path: Path, pg_db: URL) -> None:
    config = make_project(tmp_path / "p", [BASE, TOUCH_AUDIT, ADD_EMAIL], url=pg_db, env_py=PER_MIGRATION_ENV,
                          ini_extra="step_lock_timeout = 100ms\nstep_retries = 1\nstep_retry_delay = 10ms")
    await command.upgrade(config, "a1")
    events: list[StepEvent] = []
    async with holding(pg_db, "SELECT * FROM account"):
        with pytest.raises(MigrationError) as caught:
            await command.upgrade(config, "head", on_step=events.append)
    # b2 committed on its own; c3 was tried twice, alone.
    assert [e.revision for e in events if e.kind == "committed"] == ["b2"]
    assert not any(e.kind == "rolled_back" for e in events)
    assert [e.attempt for e in events if e.kind == "retrying"] == [1]
    assert "gave up after 2 attempt(s)" in str(caught.value)
    assert caught.value.database_at == ("b2",)
    assert await scalar(pg_db, "SELECT version_num FROM alembic_version") == "b2"


async def test_a_revision_file_sets_its_own_limits_and_the_next_step_gets_the_defaults_back(
    tmp_path: Path, pg_db: URL
) -> None:
    strict = Rev("b2", "a1", """
        op.execute("CREATE TABLE seen (rev VARCHAR(5), lock_timeout TEXT)")
        op.execute("INSERT INTO seen SELECT 'b2', current_setting('lock_timeout')")
    """)
    plain = Rev("c3", "b2", """
        op.execute("INSERT INTO seen SELECT 'c3', current_setting('lock_timeout')")
    """)
    config = setup(tmp_path, pg_db, [strict, plain])
    path = next((tmp_path / "p" / "migrations" / "versions").glob("b2_*.py"))
    path.write_text(path.read_text() + '\nstep_lock_timeout = "2s"\n')
    await command.upgrade(config, "head")
    engine = create_async_engine(pg_db, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            rows = dict((await conn.execute(text("SELECT rev, lock_timeout FROM seen"))).all())
            default = (await conn.execute(text("SHOW lock_timeout"))).scalar()
    finally:
        await engine.dispose()
    assert rows == {"b2": "2s", "c3": default}


async def test_statement_timeout_stops_a_long_statement_without_retrying(tmp_path: Path, pg_db: URL) -> None:
    slow = Rev("b2", "a1", 'op.execute("SELECT pg_sleep(10)")')
    config = setup(tmp_path, pg_db, [slow], "step_statement_timeout = 300ms\nstep_retries = 3")
    await command.upgrade(config, "a1")
    events: list[StepEvent] = []
    started = time.perf_counter()
    with pytest.raises(MigrationError) as caught:
        await command.upgrade(config, "head", on_step=events.append)
    assert time.perf_counter() - started < 3.0
    assert "canceling statement due to statement timeout" in str(caught.value)
    assert not any(e.kind == "retrying" for e in events)
    assert await scalar(pg_db, "SELECT version_num FROM alembic_version") == "a1"


async def test_mariadb_step_waits_for_a_metadata_lock_then_fails_naming_the_holder_and_resets_the_session(
    tmp_path: Path, mysql_db: URL
) -> None:
    config = setup(tmp_path, mysql_db, [TOUCH_AUDIT, ADD_EMAIL],
                   "step_lock_timeout = 1s\nstep_retries = 1\nstep_retry_delay = 50ms")
    await command.upgrade(config, "b2")
    default = await scalar(mysql_db, "SELECT @@GLOBAL.lock_wait_timeout")
    engine = create_async_engine(mysql_db, pool_size=1, max_overflow=0)
    events: list[StepEvent] = []
    try:
        async with holding(mysql_db, "START TRANSACTION") as (holder, pid):
            await holder.execute(text("SELECT * FROM account"))  # a metadata lock until the transaction ends
            with pytest.raises(MigrationError) as caught:
                await command.upgrade(config, "head", engine=engine, on_step=events.append)
        message = str(caught.value)
        assert "gave up after 2 attempt(s) waiting for a lock of 1s (step_lock_timeout)" in message
        assert f"held by connection {pid} (" in message
        assert message.endswith("rolled back, the database is still at b2")
        assert [e.attempt for e in events if e.kind == "retrying"] == [1]
        # The pooled connection went back with the server's defaults, not the step's limits.
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT @@SESSION.lock_wait_timeout"))).scalar() == default
        # The holder gone, the same engine migrates.
        await command.upgrade(config, "head", engine=engine)
    finally:
        await engine.dispose()
    assert await scalar(mysql_db, "SELECT version_num FROM alembic_version") == "c3"


def test_cli_prints_each_retry_and_ends_with_one_line_naming_the_holder(tmp_path: Path, pg_db: URL) -> None:
    config = setup(tmp_path, pg_db, [TOUCH_AUDIT, ADD_EMAIL],
                   "step_lock_timeout = 100ms\nstep_retries = 1\nstep_retry_delay = 10ms")
    root = tmp_path / "p"
    env = {**os.environ, "ASYNCMIGRATE_DATABASE_URL": pg_db.render_as_string(hide_password=False)}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "asyncmigrate", *args], cwd=root, env=env,
                              capture_output=True, text=True, timeout=120)

    assert cli("upgrade", "a1").returncode == 0

    async def with_holder() -> subprocess.CompletedProcess[str]:
        async with holding(pg_db, "SELECT * FROM account"):
            return await anyio.to_thread.run_sync(cli, "upgrade", "head")

    done = anyio.run(with_holder)
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert "attempt 1 of 2 timed out waiting for a lock" in lines[0], lines
    assert "Traceback" not in done.stderr
    assert "gave up after 2 attempt(s)" in lines[-1] and "held by pid" in lines[-1]
    assert config is not None


@pytest.mark.parametrize(("raw", "seconds"), [
    ("5s", 5.0), ("500ms", 0.5), ("2min", 120.0), ("1.5", 1.5), (3, 3.0), ("off", None), ("0", None), (None, None),
])
def test_durations_read_as_a_user_writes_them(raw: Any, seconds: float | None) -> None:
    assert parse_duration(raw, "step_lock_timeout") == seconds


@pytest.mark.parametrize("raw", ["5 parsecs", "-1s", "soon", True])
def test_a_bad_duration_is_a_clear_config_error(raw: Any) -> None:
    with pytest.raises(ConfigError, match="step_lock_timeout must be"):
        StepTimeouts.from_options({"step_lock_timeout": raw})


def test_a_bad_option_in_the_ini_file_is_one_line_and_a_failed_exit(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    make_project(tmp_path / "p", [BASE], url=f"sqlite+aiosqlite:///{db}", ini_extra="step_retries = many")
    done = subprocess.run([sys.executable, "-m", "asyncmigrate", "upgrade", "head"], cwd=tmp_path / "p",
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert done.stderr.strip().splitlines() == ["ERROR: step_retries must be a whole number, not 'many'"]
    assert not db.exists() or db.stat().st_size == 0


@pytest.mark.parametrize("template", ["async", "multitenant", "pyproject"])
async def test_init_writes_safe_defaults_that_a_run_uses(tmp_path: Path, template: str) -> None:
    from asyncmigrate import Config

    config = Config(str(tmp_path / "alembic.ini"), toml_file=str(tmp_path / "pyproject.toml"))
    await command.init(config, str(tmp_path / "migrations"), template=template)
    config = Config(str(tmp_path / "alembic.ini"), toml_file=str(tmp_path / "pyproject.toml"))
    read = StepTimeouts.from_options({n: config.get_alembic_option(n) for n in
                                      ("step_lock_timeout", "step_statement_timeout", "step_retries",
                                       "step_retry_delay")})
    assert read == StepTimeouts(lock_timeout=5.0, statement_timeout=None, retries=5, retry_delay=1.0)


def test_a_project_without_the_options_keeps_alembics_behaviour(tmp_path: Path) -> None:
    assert not StepTimeouts.from_options({}).limited
    assert StepTimeouts.from_options({}).retries == 0


async def test_a_start_up_that_waits_for_a_lock_warns_and_then_serves(
    tmp_path: Path, pg_db: URL, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    from asgi_lifespan import LifespanManager
    from fastapi import FastAPI

    import asyncmigrate

    config = setup(tmp_path, pg_db, [TOUCH_AUDIT, ADD_EMAIL],
                   "step_lock_timeout = 100ms\nstep_retries = 20\nstep_retry_delay = 50ms")
    await command.upgrade(config, "a1")
    app = FastAPI(lifespan=asyncmigrate.lifespan(config))
    caplog.set_level(logging.WARNING, logger="asyncmigrate")
    async with holding(pg_db, "SELECT * FROM account") as (holder, _pid):
        async with anyio.create_task_group() as tg:
            async def release_soon() -> None:
                await anyio.sleep(0.8)
                await holder.rollback()

            tg.start_soon(release_soon)
            async with LifespanManager(app, startup_timeout=30):
                pass
    warnings = [r.getMessage() for r in caplog.records if "timed out waiting for a lock" in r.getMessage()]
    assert warnings and "upgrade b2 -> c3" in warnings[0]
    assert await scalar(pg_db, "SELECT version_num FROM alembic_version") == "c3"


async def test_mariadb_never_retries_a_step_whose_earlier_statements_the_ddl_committed(
    tmp_path: Path, mysql_db: URL
) -> None:
    # The INSERT runs, then the ALTER waits for the lock: MariaDB's DDL commits the INSERT as it
    # starts, so running the step again would insert twice. It fails at once, saying so.
    insert_then_alter = Rev("c3", "b2", """
        op.execute("INSERT INTO audit (id) VALUES (2)")
        op.add_column("account", sa.Column("email", sa.String(50)))
    """)
    config = setup(tmp_path, mysql_db, [TOUCH_AUDIT, insert_then_alter],
                   "step_lock_timeout = 1s\nstep_retries = 3\nstep_retry_delay = 50ms")
    await command.upgrade(config, "b2")
    events: list[StepEvent] = []
    async with holding(mysql_db, "START TRANSACTION") as (holder, _pid):
        await holder.execute(text("SELECT * FROM account"))
        with pytest.raises(MigrationError) as caught:
            await command.upgrade(config, "head", on_step=events.append)
    message = str(caught.value)
    assert not any(e.kind == "retrying" for e in events)
    assert "gave up after 1 attempt(s)" in message
    assert "1 statement(s) of this step were already committed" in message
    assert "INSERT INTO audit (id) VALUES (2)" in message
    assert await scalar(mysql_db, "SELECT count(*) FROM audit WHERE id = 2") == 1


async def test_a_fan_out_reports_each_tenants_lock_timeout_retries(tmp_path: Path, pg_db: URL) -> None:
    from asyncmigrate.tenants import FanoutReport, Tenant, migrate_tenants

    config = setup(tmp_path, pg_db, [TOUCH_AUDIT, ADD_EMAIL],
                   "step_lock_timeout = 100ms\nstep_retries = 40\nstep_retry_delay = 50ms")
    url = pg_db.render_as_string(hide_password=False)
    tenants = [Tenant(f"r{i}", url, f"tenant_retry{i}") for i in range(3)]
    first = await migrate_tenants(config, tenants, "a1")
    assert first.counts["ok"] == 3, first.failed
    async with holding(pg_db, "SELECT * FROM tenant_retry1.account") as (holder, _pid):
        async with anyio.create_task_group() as tg:
            reports: list[FanoutReport] = []

            async def migrate() -> None:
                reports.append(await migrate_tenants(config, tenants, "head", concurrency=3))

            tg.start_soon(migrate)
            await anyio.sleep(1.0)
            await holder.rollback()
    (report,) = reports
    assert report.counts["ok"] == 3, report.failed
    retries = {r.name: r.step_retries for r in report.results}
    assert retries["r1"] >= 2, retries
    assert retries["r0"] == retries["r2"] == 0, retries
    data = report.to_dict()
    assert data["step_retries"] == retries["r1"]
    path = tmp_path / "report.json"
    report.write(path)
    assert {r.name: r.step_retries for r in FanoutReport.read(path).results} == retries


def test_the_fan_out_cli_shows_lock_timeout_retries(tmp_path: Path, pg_db: URL) -> None:
    import threading

    import psycopg2
    from ..clirunner import cli_runner

    from asyncmigrate.cli import cli

    setup(tmp_path, pg_db, [TOUCH_AUDIT, ADD_EMAIL],
          "step_lock_timeout = 100ms\nstep_retries = 40\nstep_retry_delay = 50ms")
    ini = str(tmp_path / "p" / "alembic.ini")
    for i in range(2):
        anyio.run(_create_schema, pg_db, f"tenant_cliretry{i}")
    base = ["-c", ini, "upgrade"]
    fan = ["--schemas", "tenant_cliretry%", "--no-progress"]
    assert cli_runner().invoke(cli, [*base, "a1", *fan]).exit_code == 0
    holder = psycopg2.connect(host=pg_db.host, port=pg_db.port, user=pg_db.username, dbname=pg_db.database)
    release = threading.Timer(1.0, holder.rollback)
    try:
        holder.cursor().execute("SELECT * FROM tenant_cliretry1.account")
        release.start()
        result = cli_runner().invoke(cli, [*base, "head", *fan])
    finally:
        release.join()
        holder.close()
    assert result.exit_code == 0, (result.stdout, result.stderr)
    line = next(x for x in result.stderr.splitlines() if "tenant_cliretry1:" in x)
    assert "lock-timeout retr" in line, line
    assert "lock-timeout retr" not in next(x for x in result.stderr.splitlines() if "tenant_cliretry0:" in x)
    assert "lock-timeout retr" in result.stdout, result.stdout
    assert "in 1 tenant(s)" in result.stdout, result.stdout


async def _create_schema(url: URL, name: str) -> None:
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.begin() as conn:
            await conn.execute(text(f"CREATE SCHEMA IF NOT EXISTS {name}"))
    finally:
        await engine.dispose()


@pytest.mark.parametrize("per_migration", [False, True], ids=["per-run", "per-migration"])
async def test_offline_scripts_carry_the_timeouts_and_run(tmp_path: Path, pg_db: URL, per_migration: bool) -> None:
    """``--sql`` writes the limits after each BEGIN (a revision's own value for its step); psql runs it."""
    extra = "step_lock_timeout = 2s\nstep_statement_timeout = 1min\n"
    config = make_project(tmp_path / "p", [BASE, TOUCH_AUDIT, ADD_EMAIL], url=pg_db, ini_extra=extra,
                          env_py=PER_MIGRATION_ENV if per_migration else None)
    (b2,) = (tmp_path / "p" / "migrations" / "versions").glob("b2*.py")
    b2.write_text(b2.read_text() + '\nstep_lock_timeout = "250ms"\n')
    result = await command.upgrade(config, "head", sql=True)
    script = result.sql or ""
    blocks = script.split("BEGIN;")[1:]
    assert len(blocks) == (3 if per_migration else 1), script
    for block in blocks:
        first = [line for line in block.strip().splitlines() if line.strip()][:2]
        assert first[0].startswith("SET LOCAL lock_timeout = "), block
        assert first[1] == "SET LOCAL statement_timeout = '60000ms';", block
    assert "SET LOCAL lock_timeout = '250ms';" in script  # b2's own limit
    assert script.count("SET LOCAL lock_timeout = '2000ms';") == 2  # a1 and c3
    import psycopg2

    runner = psycopg2.connect(host=pg_db.host, port=pg_db.port, user=pg_db.username, dbname=pg_db.database)
    try:
        runner.autocommit = True  # the script's own BEGIN/COMMIT make its transactions
        runner.cursor().execute(script)
    finally:
        runner.close()
    assert await scalar(pg_db, "SELECT version_num FROM alembic_version") == "c3"


async def test_offline_scripts_without_timeouts_are_as_alembics(tmp_path: Path, pg_db: URL) -> None:
    config = setup(tmp_path, pg_db, [TOUCH_AUDIT, ADD_EMAIL])
    result = await command.upgrade(config, "head", sql=True)
    assert "lock_timeout" not in (result.sql or "")
