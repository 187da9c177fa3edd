"""ASGI start-up: migrate in the lifespan, policies, readiness, tenants -- in-process, real databases."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import event, text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import create_async_engine

import asyncmigrate
from asyncmigrate import command
from asyncmigrate.exceptions import MigrationError
from asyncmigrate.integrations import StartupStatus, readiness
from asyncmigrate.tenants import Tenant

from .. import backends
from ..project import Rev, make_project
from ..sent_sql import record_sql

REVS = [
    Rev("a1", None, "op.execute('CREATE TABLE account (id INTEGER PRIMARY KEY)')",
        "op.execute('DROP TABLE account')"),
    Rev("b2", "a1", "op.execute('CREATE TABLE invoice (id INTEGER PRIMARY KEY)')",
        "op.execute('DROP TABLE invoice')"),
]
BROKEN = [*REVS, Rev("c3", "b2", "op.execute('INSERT INTO no_such_table VALUES (1)')")]


def make_app(migration: asyncmigrate.integrations.MigrationLifespan) -> FastAPI:
    app = FastAPI(lifespan=migration)

    @app.get("/health")
    async def health(request: Request) -> JSONResponse:
        status: StartupStatus = request.state.asyncmigrate
        return JSONResponse(status.as_dict(), status_code=200 if status.ready else 503)

    return app


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            yield client


async def version_rows(url: URL | str) -> list[str]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return [r[0] for r in await conn.execute(text("SELECT version_num FROM alembic_version"))]
    finally:
        await engine.dispose()


async def test_migrates_before_serving(tmp_path: Path, sqlite_or_pg_db: URL) -> None:
    config = make_project(tmp_path, REVS, url=sqlite_or_pg_db)
    async with serving(make_app(asyncmigrate.lifespan(config))) as client:
        response = await client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["state"] == "ready"
    assert body["heads"] == ["b2"]
    assert body["applied"] == 2
    assert await version_rows(sqlite_or_pg_db) == ["b2"]


async def test_at_head_costs_one_query(
    tmp_path: Path, sqlite_or_pg_db: URL, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A service restarting at head pays for reading the version table and nothing else."""
    config = make_project(tmp_path, REVS, url=sqlite_or_pg_db)
    await command.upgrade(config, "head")
    engine = create_async_engine(sqlite_or_pg_db)
    statements: list[str] = []
    try:
        async with engine.connect() as conn:  # first connect: the dialect's own set-up queries
            await conn.execute(text("SELECT 1"))
            if engine.dialect.name == "sqlite":
                # The SQLite read goes straight to the driver in one thread hop, under
                # SQLAlchemy's events: watch what sqlite3 itself executes instead.
                raw = await conn.get_raw_connection()
                await raw.driver_connection.set_trace_callback(statements.append)
        if engine.dialect.name != "sqlite":
            # The PostgreSQL read goes straight to asyncpg: watch every statement asyncpg
            # prepares or sends (SQLAlchemy's own queries go through the same two paths).
            record_sql(monkeypatch, prepared=True, into=statements)
        async with asyncmigrate.lifespan(config, engine=engine) as status:
            assert status.ready
            assert status.result is not None
            assert not status.result.changed
    finally:
        await engine.dispose()
    queries = [s.strip() for s in statements
               if s.strip().rstrip(";").upper() not in ("BEGIN", "COMMIT", "ROLLBACK")]
    assert queries, "the version table was never read"
    assert all(q.upper().startswith("SELECT") for q in queries), queries
    # One statement: on PostgreSQL it finds the table and reads it; on SQLite it reads
    # it (a missing table is its only expected failure).
    assert len(queries) == 1, queries


async def test_failure_fails_start_up_with_one_clear_line(
    tmp_path: Path, sqlite_db: URL, caplog: pytest.LogCaptureFixture
) -> None:
    config = make_project(tmp_path, BROKEN, url=sqlite_db)
    caplog.set_level(logging.INFO, logger="asyncmigrate.lifespan")
    with pytest.raises(MigrationError, match="c3"):
        async with serving(make_app(asyncmigrate.lifespan(config))):
            pytest.fail("the app must not start")
    errors = [r for r in caplog.records if r.levelno == logging.ERROR and r.name == "asyncmigrate.lifespan"]
    assert len(errors) == 1
    line = errors[0].getMessage()
    assert "start-up migration to head failed" in line
    assert "c3" in line
    assert "will not start" in line
    # The database stays at the last revision that committed.
    assert (await command.current(config)).heads in {("b2",), ()}


async def test_serve_policy_starts_and_reports_unhealthy(tmp_path: Path, sqlite_or_pg_db: URL) -> None:
    config = make_project(tmp_path, BROKEN, url=sqlite_or_pg_db)
    migration = asyncmigrate.lifespan(config, on_failure="serve")
    async with serving(make_app(migration)) as client:
        response = await client.get("/health")
        probe = await readiness(config)
    assert response.status_code == 503
    body = response.json()
    assert body["state"] == "failed"
    assert "c3" in body["error"]
    assert not probe.ready
    assert probe.pending
    assert probe.pending[-1] == "c3"
    assert probe.error is None


async def test_readiness_answers_without_raising(tmp_path: Path, sqlite_or_pg_db: URL) -> None:
    config = make_project(tmp_path, REVS, url=sqlite_or_pg_db)
    before = await readiness(config)
    assert (before.ready, before.heads, before.pending) == (False, (), ("a1", "b2"))
    await command.upgrade(config, "head")
    after = await readiness(config)
    assert after.as_dict() == {"ready": True, "heads": ["b2"], "pending": [], "error": None}


async def test_readiness_of_an_unreachable_database(tmp_path: Path) -> None:
    config = make_project(tmp_path, REVS, url="postgresql://nobody@127.0.0.1:1/none")
    answer = await readiness(config, timeout=10)
    assert not answer.ready
    assert answer.error
    assert "127.0.0.1" in answer.error


async def test_composes_with_the_apps_own_lifespan(tmp_path: Path, sqlite_db: URL) -> None:
    config = make_project(tmp_path, REVS, url=sqlite_db)
    order: list[str] = []

    @asynccontextmanager
    async def app_lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        order.append(f"app start, db at {(await command.current(config)).heads}")
        yield {"cache": "warm"}
        order.append("app stop")

    app = FastAPI(lifespan=asyncmigrate.lifespan(config, app_lifespan=app_lifespan))

    @app.get("/")
    async def index(request: Request) -> dict[str, Any]:
        return {"cache": request.state.cache, "ready": request.state.asyncmigrate.ready}

    async with serving(app) as client:
        assert (await client.get("/")).json() == {"cache": "warm", "ready": True}
    assert order == ["app start, db at ('b2',)", "app stop"]


async def test_nested_inside_an_app_lifespan(tmp_path: Path, sqlite_db: URL) -> None:
    config = make_project(tmp_path, REVS, url=sqlite_db)

    @asynccontextmanager
    async def app_lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        async with asyncmigrate.lifespan(config) as status:
            yield {"migration": status}

    app = FastAPI(lifespan=app_lifespan)

    @app.get("/")
    async def index(request: Request) -> dict[str, Any]:
        return request.state.migration.as_dict()  # type: ignore[no-any-return]

    async with serving(app) as client:
        body = (await client.get("/")).json()
    assert body["ready"] is True
    assert body["heads"] == ["b2"]


async def test_core_tenants_before_serving_and_the_rest_in_background(tmp_path: Path) -> None:
    config = make_project(tmp_path, REVS)
    core = [Tenant(f"core{i}", str(backends.sqlite_url(tmp_path / f"core{i}.db"))) for i in range(2)]
    rest = [Tenant(f"t{i}", str(backends.sqlite_url(tmp_path / f"t{i}.db"))) for i in range(6)]
    seen_at_start: dict[str, Any] = {}

    @asynccontextmanager
    async def app_lifespan(app: FastAPI) -> AsyncIterator[None]:
        seen_at_start["core"] = [await version_rows(t.url) for t in core]
        yield

    migration = asyncmigrate.lifespan(
        config, core_tenants=core, tenants=rest, fanout_options={"concurrency": 2},
        app_lifespan=app_lifespan,
    )
    app = make_app(migration)
    async with serving(app) as client:
        first = (await client.get("/health")).json()
        for _ in range(200):
            body = (await client.get("/health")).json()
            if body["tenants"]["done"]:
                break
            await anyio.sleep(0.05)
    assert seen_at_start["core"] == [["b2"], ["b2"]]
    assert first["ready"] is True
    assert first["core_tenants"]["counts"]["ok"] == 2
    assert body["tenants"]["done"] is True
    assert body["tenants"]["counts"] == {
        "pending": 0, "running": 0, "ok": 6, "unchanged": 0, "failed": 0, "skipped": 0,
    }
    for tenant in rest:
        assert await version_rows(tenant.url) == ["b2"]


async def test_a_failing_core_tenant_fails_start_up(tmp_path: Path) -> None:
    config = make_project(tmp_path, REVS)
    bad = tmp_path / "missing-dir" / "x.db"
    core = [
        Tenant("good", str(backends.sqlite_url(tmp_path / "good.db"))),
        Tenant("bad", str(backends.sqlite_url(bad))),
    ]
    migration = asyncmigrate.lifespan(config, core_tenants=core, on_failure="serve")
    async with serving(make_app(migration)) as client:
        response = await client.get("/health")
    assert response.status_code == 503
    body = response.json()
    assert "1 of 2 core tenants failed (bad:" in body["error"]
    assert body["core_tenants"]["counts"]["failed"] == 1


async def test_shutdown_stops_background_tenants(tmp_path: Path) -> None:
    slow = [Rev("a1", None, """
        from asyncmigrate._greenlet import sleep
        sleep(0.2)
        op.execute('CREATE TABLE account (id INTEGER PRIMARY KEY)')
    """)]
    config = make_project(tmp_path, slow)
    rest = [Tenant(f"t{i}", str(backends.sqlite_url(tmp_path / f"t{i}.db"))) for i in range(20)]
    async with asyncmigrate.lifespan(
        config, tenants=rest, fanout_options={"concurrency": 2}, shutdown_grace=5
    ) as status:
        await anyio.sleep(0.3)
    assert status.tenants is not None
    assert status.tenants.done
    counts = status.tenants.counts
    assert counts["failed"] == 0
    assert counts["ok"] >= 2
    assert counts["skipped"] >= 10
    assert counts["ok"] + counts["skipped"] == 20


def test_bad_policy_is_rejected(tmp_path: Path) -> None:
    config = make_project(tmp_path, REVS)
    with pytest.raises(asyncmigrate.exceptions.CommandError, match="on_failure"):
        asyncmigrate.lifespan(config, on_failure="ignore")  # type: ignore[arg-type]
