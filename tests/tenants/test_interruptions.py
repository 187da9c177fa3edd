"""The fan-out interruption campaign: a mixed fleet stopped at random points.

One fleet -- PostgreSQL schema tenants and a plain tenant sharing one URL,
MariaDB schema tenants, SQLite files -- is migrated with several tenants in
flight and stopped at a point drawn (reproducibly) from the run's length:
``migrate_tenants`` cancelled in the caller's loop, or the command line
killed with SIGKILL, SIGTERM or SIGINT, in one process or split between
worker processes. After every stop:

* nothing of the stopped run still works on a server or holds a lock;
* every tenant stands at a recorded revision whose tables are all there
  (MariaDB commits DDL as it goes: the stopped step's table may be there
  too, and its idempotent DDL copes on the re-run);
* where a report was written, each tenant's record agrees with its
  database: ``ok`` at head, ``skipped`` untouched, ``failed`` at the
  revision its ``to`` names, its ``applied`` exactly the revisions between
  ``from`` and ``to`` -- or, when the stop cut a ``COMMIT`` off before its
  answer and no read-back could settle it, saying so;
* a re-run migrates every tenant to head, starting where each one stood.

``ASYNCMIGRATE_CAMPAIGN=N`` runs N stop points per case instead of the
suite's few (a longer campaign, on demand).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import anyio
import pytest
from sqlalchemy import inspect, text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from asyncmigrate.tenants import Tenant, TenantResult, migrate_tenants

from ..backends import drop_mysql_databases
from ..project import PER_MIGRATION_ENV, Rev, make_project
from ..runtime.interruptions import SLEEPS, sqlite_rows_per_second
from .test_jobs import _workers_in

STEPS = 4
ROUNDS = int(os.environ.get("ASYNCMIGRATE_CAMPAIGN", "0"))
STEP_SECONDS = 0.1
BIN = Path(sys.executable).parent


def _revisions() -> list[Rev]:
    """r1..r4: each creates its table (idempotently) and works a little on the server."""
    rows = int(2 * STEP_SECONDS * sqlite_rows_per_second())
    sleeps = {name: sql.format(s=STEP_SECONDS, n=rows) for name, sql in SLEEPS.items()}
    return [
        Rev(f"r{i}", f"r{i - 1}" if i > 1 else None, f"""
            op.execute("CREATE TABLE IF NOT EXISTS t{i} (id INTEGER)")
            op.execute({sleeps!r}[op.get_bind().dialect.name])
        """, f'op.drop_table("t{i}")')
        for i in range(1, STEPS + 1)
    ]


@dataclass(frozen=True)
class Member:
    """One tenant of the fleet, as the test reads it back."""

    name: str
    url: str
    schema: str | None = None

    @property
    def backend(self) -> str:
        return self.url.split(":", 1)[0].split("+", 1)[0]

    def tenant(self) -> Tenant:
        return Tenant(self.name, self.url, self.schema)


def _fleet(root: Path, pg: URL, mysql: URL) -> list[Member]:
    shared_pg = pg.render_as_string(hide_password=False)
    shared_my = mysql.render_as_string(hide_password=False)
    (root / "db").mkdir()
    return [
        *(Member(f"pg{i}", shared_pg, f"tenant_pg{i}") for i in range(4)),
        Member("pg_plain", shared_pg),
        *(Member(f"my{i}", shared_my, f"{mysql.database}_s{i}") for i in range(2)),
        *(Member(f"lite{i}", f"sqlite+aiosqlite:///{root}/db/lite{i}.db") for i in range(4)),
    ]


async def _standing(member: Member) -> tuple[set[str], list[str]]:
    """The tenant's own tables and version rows, read as an operator would (nothing created)."""
    if member.backend == "sqlite" and not Path(member.url.split("///", 1)[1]).exists():
        return set(), []
    engine = create_async_engine(member.url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            def tables_of(sync: object) -> set[str]:
                inspector = inspect(sync)
                if member.schema is not None and member.schema not in inspector.get_schema_names():
                    return set()  # a schema tenant that never started
                return set(inspector.get_table_names(schema=member.schema))

            tables = await conn.run_sync(tables_of)
            if "alembic_version" not in tables:
                return tables, []
            prefix = "" if member.schema is None else f"{conn.dialect.identifier_preparer.quote(member.schema)}."
            rows = await conn.execute(text(f"SELECT version_num FROM {prefix}alembic_version"))
            return tables - {"alembic_version"}, [r[0] for r in rows]
    finally:
        await engine.dispose()


async def _consistent(member: Member) -> int:
    """Assert the tenant stands at a recorded revision with all its tables; return its number."""
    tables, versions = await _standing(member)
    assert len(versions) <= 1, (member.name, versions)
    at = int(versions[0][1:]) if versions else 0
    expected = {f"t{i}" for i in range(1, at + 1)}
    if member.backend == "mysql":  # DDL commits as it goes: the stopped step's table may stay
        assert expected <= tables <= expected | {f"t{at + 1}"}, (member.name, tables, versions)
    else:
        assert tables == expected, (member.name, tables, versions)
    return at


def _heads(at: int) -> tuple[str, ...]:
    return (f"r{at}",) if at else ()


def _agrees(record: TenantResult, at: int) -> None:
    """A tenant's record tells the truth about where its database stands (it started at base)."""
    where = (record.name, record.status, record.from_heads, record.to_heads, record.applied, record.error, at)
    if record.status == "ok":
        assert at == STEPS and record.to_heads == _heads(STEPS), where
    elif record.status == "skipped":
        assert at == 0 and not record.applied, where
    else:
        assert record.status == "failed", where
        committed = len(record.applied)
        assert record.applied == tuple(f"r{i}" for i in range(1, committed + 1)), where
        if record.to_heads is not None:
            assert record.to_heads == _heads(at) and committed == at, where
        elif "whether it committed is unknown" in (record.error or ""):
            # Cut off while its COMMIT was on the way and not read back: it may have committed.
            assert at in (committed, committed + 1), where
        else:  # it never read its database: nothing of it may have run
            assert at == 0 and committed == 0, where


async def _settled(pg: URL, mysql: URL, members: list[Member], within: float = 10.0) -> None:
    """Wait until no session of the stopped run works or holds a lock anywhere in the fleet."""
    deadline = time.monotonic() + within
    while True:
        busy = await _server_work(pg, mysql) + _held_sqlite_locks(members)
        if not busy:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"still busy {within}s after the stop: {busy}")
        await asyncio.sleep(0.1)


#: What a server shows of a stopped run still at work: (label, query of one column), per backend.
_BUSY = {
    "postgresql": [
        ("postgresql", "SELECT state || ': ' || query FROM pg_stat_activity WHERE datname = current_database() "
                       "AND pid <> pg_backend_pid() AND state <> 'idle'"),
        ("postgresql advisory lock of pid", "SELECT l.pid FROM pg_locks l JOIN pg_database d ON d.oid = "
                                            "l.database WHERE l.locktype = 'advisory' AND d.datname = current_database()"),
    ],
    "mysql": [
        ("mysql", "SELECT CONCAT(command, ': ', COALESCE(info, '')) FROM information_schema.processlist "
                  "WHERE db LIKE CONCAT(DATABASE(), '%') AND id <> CONNECTION_ID() AND command <> 'Sleep'"),
    ],
}


async def _server_work(pg: URL, mysql: URL) -> list[str]:
    found: list[str] = []
    for url in (pg, mysql):
        engine = create_async_engine(url, poolclass=NullPool)
        try:
            async with engine.connect() as conn:
                for label, sql in _BUSY[url.get_backend_name()]:
                    found += [f"{label}: {r[0]}" for r in await conn.execute(text(sql))]
        finally:
            await engine.dispose()
    return found


def _held_sqlite_locks(members: list[Member]) -> list[str]:
    import fcntl

    held = []
    for member in members:
        if member.backend != "sqlite":
            continue
        path = Path(member.url.split("///", 1)[1] + ".asyncmigrate-lock")
        if not path.exists():
            continue
        with open(path, "a+b") as handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                held.append(f"sqlite lock {path.name}")
                continue
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    return held


async def _after_the_stop(pg: URL, mysql: URL, members: list[Member], report: Path | None) -> dict[str, int]:
    """Check the fleet after a stop; return where each tenant stands."""
    await _settled(pg, mysql, members)
    standing = {m.name: await _consistent(m) for m in members}
    if report is not None:
        records = [TenantResult.from_dict(t) for t in json.loads(report.read_text())["tenants"]]
        assert sorted(r.name for r in records) == sorted(standing), records
        for record in records:
            _agrees(record, standing[record.name])
    return standing


def _check_rerun(results: list[TenantResult], standing: dict[str, int]) -> None:
    """A re-run took every tenant to head, each from where it stood."""
    by_name = {r.name: r for r in results}
    assert sorted(by_name) == sorted(standing)
    for name, at in standing.items():
        record = by_name[name]
        assert record.status == ("unchanged" if at == STEPS else "ok"), (name, record.status, record.error)
        assert record.from_heads == _heads(at), (name, record.from_heads, at)
        assert record.applied == tuple(f"r{i}" for i in range(at + 1, STEPS + 1)), (name, record.applied, at)


@pytest.fixture
async def servers(pg_db: URL, mysql_db: URL) -> tuple[URL, URL]:
    yield pg_db, mysql_db  # type: ignore[misc]
    await drop_mysql_databases(mysql_db, f"{mysql_db.database}_s%")


@pytest.mark.parametrize("seed", range(ROUNDS or 4))
async def test_a_fleet_cancelled_at_a_random_point(tmp_path: Path, servers: tuple[URL, URL], seed: int) -> None:
    pg, mysql = servers
    chooser = random.Random(f"fleet-cancel-{seed}")
    per_migration = seed % 2 == 1
    config = make_project(tmp_path, _revisions(), env_py=PER_MIGRATION_ENV if per_migration else None)
    members = _fleet(tmp_path, pg, mysql)
    # 11 tenants, 4 at a time, each ~4 x 0.1 s of server work: the run lasts well over 1.2 s.
    delay = chooser.uniform(0.05, 1.2)
    with anyio.move_on_after(delay) as scope:
        await migrate_tenants(config, [m.tenant() for m in members], "head", concurrency=4,
                              report_path=tmp_path / "report.json")
    assert scope.cancelled_caught, "the fleet finished before it could be stopped"
    standing = await _after_the_stop(pg, mysql, members, tmp_path / "report.json")
    print(f"stopped after {delay:.2f}s: {standing}")
    rerun = await migrate_tenants(config, [m.tenant() for m in members], "head", concurrency=4, lock_timeout=5)
    _check_rerun(rerun.results, standing)
    assert {await _consistent(m) for m in members} == {STEPS}


def _cli(root: Path, *args: str) -> subprocess.Popen[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("ASYNCMIGRATE_")}
    return subprocess.Popen(
        [str(BIN / "asyncmigrate"), *args], cwd=root, env={**environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _tenants_file(root: Path, members: list[Member]) -> None:
    lines = []
    for m in members:
        lines += ["[[tenants]]", f'name = "{m.name}"', f'url = "{m.url}"']
        if m.schema is not None:
            lines.append(f'schema = "{m.schema}"')
        lines.append("")
    (root / "tenants.toml").write_text("\n".join(lines), encoding="utf-8")


CASES = [(name, jobs, seed) for seed in range(ROUNDS or 1)
         for name, jobs in [("SIGTERM", 1), ("SIGINT", 1), ("SIGKILL", 1), ("SIGTERM", 2), ("SIGKILL", 2)]]


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/cwd").exists(), reason="needs /proc to find the workers")
@pytest.mark.parametrize(("name", "jobs", "seed"), CASES, ids=[f"{n}-jobs{j}-{s}" for n, j, s in CASES])
async def test_a_fleet_killed_at_a_random_point(
    tmp_path: Path, servers: tuple[URL, URL], name: str, jobs: int, seed: int
) -> None:
    pg, mysql = servers
    chooser = random.Random(f"fleet-kill-{name}-{jobs}" + (f"-{seed}" if seed else ""))
    per_migration = chooser.random() < 0.5
    make_project(tmp_path, _revisions(), env_py=PER_MIGRATION_ENV if per_migration else None)
    members = _fleet(tmp_path, pg, mysql)
    _tenants_file(tmp_path, members)
    run = _cli(tmp_path, "upgrade", "head", "--tenants", "tenants.toml", "--concurrency", "4",
               "--jobs", str(jobs), "--report", "report.json", "--no-progress")
    try:
        await _until_a_tenant_holds_its_lock(pg, members, run)
        await asyncio.sleep(chooser.uniform(0.0, 1.0))
        run.send_signal(getattr(signal, name))
        out, err = await asyncio.to_thread(run.communicate, timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
            run.communicate()
    assert "Traceback" not in err, err
    if name != "SIGKILL":
        # A stop on request lets the tenants in flight finish, reports every tenant and ends
        # with the signal's code (143 / 130), as a shell or Kubernetes reads it.
        assert run.returncode == 128 + getattr(signal, name), (run.returncode, out, err)
        assert (tmp_path / "report.json").exists(), err
    deadline = time.monotonic() + 30
    while _workers_in(tmp_path) and time.monotonic() < deadline:  # orphans of a killed parent stop
        await asyncio.sleep(0.1)
    assert _workers_in(tmp_path) == []
    report = tmp_path / "report.json" if name != "SIGKILL" else None
    standing = await _after_the_stop(pg, mysql, members, report)
    print(f"{name} to {jobs} process(es): {standing}")
    if report is not None:
        stopped = json.loads(report.read_text())
        assert stopped["stopped"] and stopped["stopped"].startswith("stopped on request"), stopped["stopped"]
        # A stop on request cancels nothing: every tenant either finished or never started.
        assert set(standing.values()) <= {0, STEPS}, standing
    again = _cli(tmp_path, "upgrade", "head", "--tenants", "tenants.toml", "--concurrency", "4",
                 "--report", "again.json", "--no-progress", "--lock-timeout", "5")
    out, err = await asyncio.to_thread(again.communicate, timeout=120)
    assert again.returncode == 0, (out, err)
    records = [TenantResult.from_dict(t) for t in json.loads((tmp_path / "again.json").read_text())["tenants"]]
    _check_rerun(records, standing)
    assert {await _consistent(m) for m in members} == {STEPS}


async def _until_a_tenant_holds_its_lock(pg: URL, members: list[Member], run: subprocess.Popen[str]) -> None:
    """Wait until the run is migrating (some tenant holds its lock): start-up is not the point."""
    deadline = time.monotonic() + 60
    engine = create_async_engine(pg)
    try:
        while time.monotonic() < deadline and run.poll() is None:
            if _held_sqlite_locks(members):
                return
            async with engine.connect() as conn:
                if (await conn.execute(text(
                    "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database "
                    "WHERE l.locktype = 'advisory' AND d.datname = current_database()"
                ))).scalar():
                    return
            await asyncio.sleep(0.01)
    finally:
        await engine.dispose()
    raise AssertionError(f"the run never started migrating: {run.poll()}")
