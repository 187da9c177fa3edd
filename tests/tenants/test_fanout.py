"""Fan-out: many tenants concurrently, each isolated, failures contained and reported exactly."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import anyio
import pytest
from sqlalchemy import inspect, text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.pool import NullPool

from asyncmigrate.tenants import Tenant, TenantEvent, TenantResult, migrate_tenants

from .. import backends
from ..project import Rev, make_project

# Each revision records which tenant ran it, so cross-talk would show.
REVS = [
    Rev(f"r{i}", f"r{i - 1}" if i else None, f"""
        from asyncmigrate import context
        name = context.tenant.name
        if {i} == 0:
            op.execute("CREATE TABLE ran (tenant VARCHAR(40), rev VARCHAR(10))")
        op.execute(f"INSERT INTO ran VALUES ('{{name}}', 'r{i}')")
        if {i} == 2 and name.startswith("bad"):
            raise RuntimeError("broken data in " + name)
        if {i} == 1 and name.startswith("slow") and op.get_bind().dialect.name == "postgresql":
            op.execute("SELECT pg_sleep(0.4)")
        if {i} == 1 and name.startswith("stuck"):
            op.execute("SELECT pg_sleep(30)")
    """, "pass")
    for i in range(4)
]


async def state_of(url: str, schema: str | None = None) -> tuple[list[tuple[str, str]], list[str]]:
    """Return (ran rows, version rows) of a tenant database or schema."""
    engine = create_async_engine(url, poolclass=NullPool)
    prefix = f'"{schema}".' if schema else ""
    try:
        async with engine.connect() as conn:
            tables = await conn.run_sync(lambda c: inspect(c).get_table_names(schema=schema))
            if "alembic_version" not in tables:
                return [], []
            versions = [r[0] for r in await conn.execute(text(f"SELECT version_num FROM {prefix}alembic_version"))]
            ran = []
            if "ran" in tables:
                ran = [tuple(r) for r in await conn.execute(text(f"SELECT tenant, rev FROM {prefix}ran ORDER BY rev"))]
            return ran, versions  # type: ignore[return-value]
    finally:
        await engine.dispose()


def max_overlap(results: list[TenantResult]) -> int:
    edges = sorted(
        [(r.started, 1) for r in results if r.started is not None]
        + [(r.finished, -1) for r in results if r.finished is not None]
    )
    best = current = 0
    for _, delta in edges:
        current += delta
        best = max(best, current)
    return best


@pytest.fixture
async def pg_databases() -> AsyncIterator[list[URL]]:
    backends.require("postgresql")
    async with AsyncExitStack() as stack:
        yield [await stack.enter_async_context(backends.scratch_database("postgresql")) for _ in range(4)]


async def test_databases_and_schemas_concurrently_isolated(
    tmp_path: Path, pg_databases: list[URL], pg_db: URL
) -> None:
    config = make_project(tmp_path, REVS)
    tenants = [Tenant(f"sqlite{i}", f"sqlite:///{tmp_path}/t{i}.db") for i in range(10)]
    tenants += [Tenant(f"slowdb{i}", url.render_as_string(hide_password=False)) for i, url in enumerate(pg_databases)]
    shared = pg_db.render_as_string(hide_password=False)
    tenants += [Tenant(f"slowschema{i}", shared, f"tenant_{i}") for i in range(6)]
    events: list[TenantEvent] = []
    report = await migrate_tenants(config, tenants, "head", concurrency=6, on_event=events.append)
    assert report.counts == {"ok": 20, "unchanged": 0, "failed": 0, "skipped": 0}, report.failed
    for tenant in tenants:
        ran, versions = await state_of(tenant.url, tenant.schema)
        assert ran == [(tenant.name, f"r{i}") for i in range(4)], tenant
        assert versions == ["r3"]
    overlap = max_overlap(report.results)
    assert 2 <= overlap <= 6
    assert {e.kind for e in events} == {"started", "step", "finished"}
    assert sum(e.kind == "finished" for e in events) == 20
    # A second run finds everything at head; the schemas are answered by one pre-read.
    again = await migrate_tenants(config, tenants, "head", concurrency=6)
    assert again.counts["unchanged"] == 20


async def test_failures_are_contained_and_reported(tmp_path: Path, pg_db: URL) -> None:
    config = make_project(tmp_path, REVS)
    shared = pg_db.render_as_string(hide_password=False)
    tenants = [
        Tenant("good1", f"sqlite:///{tmp_path}/g1.db"),
        Tenant("bad1", f"sqlite:///{tmp_path}/b1.db"),
        Tenant("unreachable", "postgresql://app:hunter2@127.0.0.1:1/nowhere"),
        Tenant("good2", shared, "tenant_good2"),
        Tenant("bad2", shared, "tenant_bad2"),
        Tenant("good3", f"sqlite:///{tmp_path}/g3.db"),
    ]
    report = await migrate_tenants(config, tenants, "head", concurrency=3, report_path=tmp_path / "r.json")
    by_name = {r.name: r for r in report.results}
    assert [r.name for r in report.results] == [t.name for t in tenants]
    assert {n for n, r in by_name.items() if r.status == "ok"} == {"good1", "good2", "good3"}
    assert {n for n, r in by_name.items() if r.status == "failed"} == {"bad1", "bad2", "unreachable"}
    assert "broken data in bad1" in (by_name["bad1"].error or "")
    assert "Cannot connect" in (by_name["unreachable"].error or "")
    assert report.exit_code == 1
    # The failing tenants rolled back to where they started: nothing of r0..r2 remains.
    assert await state_of(tenants[1].url) == ([], [])
    assert await state_of(shared, "tenant_bad2") == ([], [])
    raw = (tmp_path / "r.json").read_text()
    assert "hunter2" not in raw
    data = json.loads(raw)
    assert data["counts"] == {"ok": 3, "unchanged": 0, "failed": 3, "skipped": 0}
    assert {t["status"] for t in data["tenants"]} == {"ok", "failed"}
    assert data["tenants"][0]["to"] == ["r3"]


async def test_timeout_rolls_back_the_stuck_tenant(tmp_path: Path, pg_db: URL) -> None:
    config = make_project(tmp_path, REVS)
    shared = pg_db.render_as_string(hide_password=False)
    tenants = [Tenant("stuck", shared, "tenant_stuck"), Tenant("fine", shared, "tenant_fine")]
    report = await migrate_tenants(config, tenants, "head", concurrency=2, timeout=1.0)
    stuck, fine = report.results
    assert stuck.status == "failed"
    assert "timed out after 1s" in (stuck.error or "")
    assert stuck.seconds < 5
    assert fine.status == "ok"
    assert await state_of(shared, "tenant_stuck") == ([], [])
    # The connection pool is healthy afterwards: the stuck tenant migrates once unblocked.
    assert (await state_of(shared, "tenant_fine"))[1] == ["r3"]


async def test_cancelling_the_run_starts_nothing_new_and_still_reports(tmp_path: Path, pg_db: URL) -> None:
    config = make_project(tmp_path, REVS)
    shared = pg_db.render_as_string(hide_password=False)
    tenants = [Tenant(f"slow{i}", shared, f"tenant_slow{i}") for i in range(8)]
    with anyio.move_on_after(0.6):
        await migrate_tenants(config, tenants, "head", concurrency=2, report_path=tmp_path / "r.json")
    data = json.loads((tmp_path / "r.json").read_text())
    statuses = [t["status"] for t in data["tenants"]]
    assert "skipped" in statuses
    # Every schema is at a consistent revision: its log matches its version row.
    for tenant in tenants:
        ran, versions = await state_of(shared, tenant.schema)
        if versions:
            assert ran[-1][1] == versions[0]
        else:
            assert ran == []


async def test_stop_event_lets_in_flight_tenants_finish(tmp_path: Path) -> None:
    config = make_project(tmp_path, REVS)
    tenants = [Tenant(f"t{i}", f"sqlite:///{tmp_path}/t{i}.db") for i in range(10)]
    stop = anyio.Event()

    def on_event(event: TenantEvent) -> None:
        if event.kind == "finished" and event.tenant == "t1":
            stop.set()

    report = await migrate_tenants(config, tenants, "head", concurrency=2, stop=stop, on_event=on_event)
    counts = report.counts
    assert counts["failed"] == 0
    assert counts["ok"] >= 2
    assert counts["skipped"] >= 6
    assert report.stopped == "stopped on request"


async def test_fail_fast_budget_and_canary(tmp_path: Path) -> None:
    config = make_project(tmp_path, REVS)

    def tenants(names: list[str]) -> list[Tenant]:
        return [Tenant(n, f"sqlite:///{tmp_path}/{n}.db") for n in names]

    report = await migrate_tenants(
        config, tenants(["bad_a", "ok_b", "ok_c", "ok_d"]), "head", concurrency=1, fail_fast=True
    )
    assert [r.status for r in report.results] == ["failed", "skipped", "skipped", "skipped"]
    report = await migrate_tenants(
        config, tenants(["bad_e", "ok_f", "bad_g", "ok_h", "ok_i"]), "head", concurrency=1, max_failures=2
    )
    assert [r.status for r in report.results] == ["failed", "ok", "failed", "skipped", "skipped"]
    report = await migrate_tenants(
        config, tenants([f"bad_{i}" for i in range(4)] + ["ok_j"] * 0), "head", concurrency=1, max_failures=0.5
    )
    assert [r.status for r in report.results] == ["failed", "failed", "skipped", "skipped"]
    report = await migrate_tenants(
        config, tenants(["ok_k", "bad_l", "ok_m", "ok_n"]), "head", concurrency=4, canary=2
    )
    assert [r.status for r in report.results] == ["ok", "failed", "skipped", "skipped"]
    assert "canary" in (report.stopped or "")


async def test_retries_only_for_connection_errors(tmp_path: Path) -> None:
    config = make_project(tmp_path, REVS)
    tenants = [
        Tenant("unreachable", "postgresql://u@127.0.0.1:1/x"),
        Tenant("bad_migration", f"sqlite:///{tmp_path}/b.db"),
    ]
    report = await migrate_tenants(config, tenants, "head", retries=2, retry_backoff=0.01)
    unreachable, bad = report.results
    assert unreachable.status == bad.status == "failed"
    assert unreachable.attempts == 3
    assert "Cannot connect" in (unreachable.error or "")
    # The failing migration was not retried; its error is the migration's.
    assert bad.attempts == 1
    assert "broken data" in (bad.error or "")


async def test_per_host_limit(tmp_path: Path, pg_db: URL) -> None:
    config = make_project(tmp_path, REVS)
    shared = pg_db.render_as_string(hide_password=False)
    tenants = [Tenant(f"slow{i}", shared, f"tenant_s{i}") for i in range(6)]
    report = await migrate_tenants(config, tenants, "head", concurrency=6, per_host=2)
    assert report.counts["ok"] == 6
    assert max_overlap(report.results) <= 2


async def test_current_histogram_and_check(tmp_path: Path, pg_db: URL) -> None:
    config = make_project(tmp_path, REVS)
    shared = pg_db.render_as_string(hide_password=False)
    tenants = [Tenant(f"t{i}", shared, f"tenant_h{i}") for i in range(5)]
    await migrate_tenants(config, tenants[:3], "head")
    await migrate_tenants(config, tenants[3:], "r1")
    current = await migrate_tenants(config, tenants, None, operation="current")
    assert current.histogram() == {"r3": 3, "r1": 2}
    check = await migrate_tenants(config, tenants, None, operation="check")
    assert [r.status for r in check.results] == ["ok", "ok", "ok", "failed", "failed"]
    # Tenants not at head still count where they stand, and say how far behind they are.
    assert check.histogram() == {"r3": 3, "r1": 2}
    assert {r.error for r in check.results if r.status == "failed"} == {"not at head: 2 revision(s) to apply"}
    down = await migrate_tenants(config, tenants, "-1", operation="downgrade")
    assert down.histogram() == {"r2": 3, "r0": 2}


async def test_shard_selects_a_stable_subset(tmp_path: Path) -> None:
    config = make_project(tmp_path, REVS)
    tenants = [Tenant(f"t{i}", f"sqlite:///{tmp_path}/t{i}.db") for i in range(12)]
    seen: list[str] = []
    for index in range(3):
        report = await migrate_tenants(config, tenants, "head", shard=(index, 3))
        seen += [r.name for r in report.results]
    assert sorted(seen) == sorted(t.name for t in tenants)


SHARING = [
    Rev("s0", None, """
        common = op.create_table(
            "common", sa.Column("id", sa.Integer, primary_key=True), sa.Column("v", sa.String(20))
        )
        op.create_index("ix_common_v", "common", ["v"])
        op.add_column("common", sa.Column("extra", sa.Integer, server_default="7"))
        # The Table a shared create_table hands back serves every tenant.
        op.bulk_insert(common, [{"v": "seed"}])
    """),
    Rev("s1", "s0", """
        from asyncmigrate import context
        # Tenant-specific DDL: must never be shared with another tenant.
        op.create_table(f"own_{context.tenant.name}", sa.Column("id", sa.Integer, primary_key=True))
        op.create_index(f"ix_own_{context.tenant.name}", f"own_{context.tenant.name}", ["id"])
    """),
    Rev("s2", "s1", """
        # Reads the database, then decides: also never shared.
        n = op.get_bind().execute(sa.text("SELECT count(*) FROM common")).scalar()
        op.create_table(f"counted_{n}", sa.Column("id", sa.Integer, primary_key=True))
    """),
]


async def test_each_schema_tenant_gets_what_its_own_run_computed(tmp_path: Path, pg_db: URL) -> None:
    config = make_project(tmp_path, SHARING)
    shared = pg_db.render_as_string(hide_password=False)
    tenants = [Tenant(f"t{i}", shared, f"tenant_share{i}") for i in range(6)]
    report = await migrate_tenants(config, tenants, "head", concurrency=3)
    assert report.counts["ok"] == 6, report.failed
    engine = create_async_engine(pg_db, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            for tenant in tenants:
                names = await conn.run_sync(lambda c, s=tenant.schema: set(inspect(c).get_table_names(schema=s)))
                assert names == {"alembic_version", "common", f"own_{tenant.name}", "counted_1"}
                indexes = await conn.run_sync(lambda c, s=tenant.schema: inspect(c).get_indexes("common", schema=s))
                assert [i["name"] for i in indexes] == ["ix_common_v"]
                own = await conn.run_sync(
                    lambda c, s=tenant.schema, n=tenant.name: inspect(c).get_indexes(f"own_{n}", schema=s)
                )
                assert [i["name"] for i in own] == [f"ix_own_{tenant.name}"]
                columns = await conn.run_sync(lambda c, s=tenant.schema: inspect(c).get_columns("common", schema=s))
                assert [c["name"] for c in columns] == ["id", "v", "extra"]
    finally:
        await engine.dispose()


@asynccontextmanager
async def sqlite_connection(path: Path) -> AsyncIterator[AsyncConnection]:
    engine = create_async_engine(backends.sqlite_url(path), poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            yield conn
    finally:
        await engine.dispose()


async def migrated_sqlite_tenants(tmp_path: Path, revisions: list[Rev], count: int) -> list[Tenant]:
    """Migrate ``count`` SQLite tenants to head, two at a time; all must succeed."""
    config = make_project(tmp_path, revisions)
    tenants = [Tenant(f"t{i}", f"sqlite:///{tmp_path}/t{i}.db") for i in range(count)]
    report = await migrate_tenants(config, tenants, "head", concurrency=2)
    assert report.counts["ok"] == count, report.failed
    return tenants


async def test_operations_land_in_each_sqlite_tenant(tmp_path: Path) -> None:
    tenants = await migrated_sqlite_tenants(tmp_path, SHARING, 5)
    for tenant in tenants:
        async with sqlite_connection(tmp_path / f"{tenant.name}.db") as conn:
            indexes = await conn.run_sync(lambda c: inspect(c).get_indexes("common"))
            assert [i["name"] for i in indexes] == ["ix_common_v"]
            own = await conn.run_sync(lambda c, n=tenant.name: inspect(c).get_indexes(f"own_{n}"))
            assert [i["name"] for i in own] == [f"ix_own_{tenant.name}"]
            seeded = (await conn.execute(text("SELECT v FROM common"))).scalars().all()
            assert seeded == ["seed"]
            row = (await conn.execute(text("INSERT INTO common (v) VALUES ('x') RETURNING extra"))).one()
            assert row[0] == 7
            version = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar()
            assert version == "s2"


async def test_rerun_only_failed_tenants_from_a_report(tmp_path: Path) -> None:
    from asyncmigrate.tenants import FanoutReport

    config = make_project(tmp_path, REVS)
    tenants = [Tenant(n, f"sqlite:///{tmp_path}/{n}.db") for n in ("ok_a", "bad_b", "ok_c", "bad_d")]
    await migrate_tenants(config, tenants, "head", report_path=tmp_path / "first.json")
    first = FanoutReport.read(tmp_path / "first.json")
    assert first.names("failed", "skipped") == {"bad_b", "bad_d"}
    # "Fix" the data problem by renaming nothing: re-run just those two, which fail again,
    # and the good ones are not touched (they would report "unchanged" anyway).
    rerun = [t for t in tenants if t.name in first.names("failed", "skipped")]
    second = await migrate_tenants(config, rerun, "head")
    assert [r.name for r in second.results] == ["bad_b", "bad_d"]
    with pytest.raises(Exception, match="not a readable fan-out report"):
        FanoutReport.read(tmp_path / "nope.json")


async def test_a_step_looking_at_its_connection_is_never_shared(tmp_path: Path) -> None:
    # The connection tells tenants apart without a query: such a step must run per tenant.
    revisions = [
        Rev("c0", None, 'op.create_table("common", sa.Column("id", sa.Integer, primary_key=True), '
                        'sa.Column("v", sa.String(20)))'),
        Rev("c1", "c0", """
            from pathlib import Path
            name = Path(op.get_bind().engine.url.database).stem
            op.create_index(f"ix_{name}", "common", ["v"])
        """),
        Rev("c2", "c1", """
            from pathlib import Path
            name = Path(op.migration_context.connection.engine.url.database).stem
            op.add_column("common", sa.Column(f"col_{name}", sa.Integer))
        """),
    ]
    tenants = await migrated_sqlite_tenants(tmp_path, revisions, 4)
    for tenant in tenants:
        async with sqlite_connection(tmp_path / f"{tenant.name}.db") as conn:
            indexes = await conn.run_sync(lambda c: inspect(c).get_indexes("common"))
            assert [i["name"] for i in indexes] == [f"ix_{tenant.name}"]
            columns = await conn.run_sync(lambda c: inspect(c).get_columns("common"))
            assert [c["name"] for c in columns] == ["id", "v", f"col_{tenant.name}"]
