"""Network faults: no tenant gets a dead pooled connection; retries and the deadline hold."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy.engine import URL

from asyncmigrate.tenants import Tenant, TenantEvent, migrate_tenants

from .. import backends
from ..netfaults import proxy_to
from ..project import Rev, make_project

REVS = [
    Rev(f"r{i}", f"r{i - 1}" if i else None, f'op.execute("CREATE TABLE t{i} (id INTEGER)")')
    for i in range(3)
]


async def test_a_reset_between_tenants_hands_no_one_a_dead_connection(
    tmp_path: Path, server_db: URL
) -> None:
    config = make_project(tmp_path, REVS)
    async with proxy_to(server_db) as proxy:
        url = proxy.url(server_db).render_as_string(hide_password=False)
        tenants = [Tenant(f"t{i}", url, f"{server_db.database}_s{i}") for i in range(4)]
        dropped: list[int] = []

        def on_event(event: TenantEvent) -> None:
            # Each time a tenant finishes, the network drops every connection the pool holds.
            if event.kind == "finished":
                dropped.append(proxy.drop_all())

        report = await migrate_tenants(config, tenants, "head", concurrency=1, on_event=on_event)
    assert report.counts["ok"] == 4, report.failed
    assert [r.attempts for r in report.results] == [1, 1, 1, 1]
    assert sum(dropped[:-1]) >= 3  # the pool really held connections that were dropped


async def test_retries_cover_a_refused_connection(tmp_path: Path, pg_db: URL) -> None:
    config = make_project(tmp_path, REVS)
    async with proxy_to(pg_db, refuse_first=2) as proxy:
        url = proxy.url(pg_db).render_as_string(hide_password=False)
        report = await migrate_tenants(
            config, [Tenant("flaky", url, "tenant_flaky")], "head", retries=3, retry_backoff=0.01
        )
    (result,) = report.results
    assert result.status == "ok", result
    assert result.attempts == 3
    assert result.applied == ("r0", "r1", "r2")


@pytest.mark.parametrize("backend", ["postgresql", "mysql"])
async def test_timeout_bounds_a_tenant_whose_server_never_answers(
    tmp_path: Path, backend: str
) -> None:
    backends.require(backend)
    config = make_project(tmp_path, REVS)
    server = backends.server_url(backend)
    async with proxy_to(server, silent=True) as proxy:
        url = proxy.url(server).render_as_string(hide_password=False)
        tenants = [Tenant("silent", url, "tenant_silent"), Tenant("fine", f"sqlite:///{tmp_path}/fine.db")]
        began = time.perf_counter()
        report = await migrate_tenants(config, tenants, "head", timeout=2.0, retries=2, retry_backoff=0.01)
        elapsed = time.perf_counter() - began
    silent, fine = report.results
    assert proxy.accepted >= 1
    assert silent.status == "failed"
    assert silent.error == "timed out after 2s before any migration step started; nothing was applied"
    assert silent.seconds < 2.0 + 3.0, silent.seconds
    assert elapsed < 2.0 + 3.0, elapsed
    assert silent.applied == ()
    assert fine.status == "ok"


@pytest.mark.parametrize("backend", ["postgresql", "mysql"])
async def test_timeout_holds_when_the_server_goes_silent_mid_statement(tmp_path: Path, backend: str) -> None:
    """The deadline bounds the clean-up too: cancelling, rolling back and closing over a
    connection that never answers again take what is left of the 2 s, not 10 s each."""
    import asyncio

    from asyncmigrate.tenants.attempt import CLEANUP

    from ..runtime.interruptions import server_busy, slow_steps

    backends.require(backend)
    async with backends.scratch_database(backend) as db:
        config = make_project(tmp_path, slow_steps(backend, count=1, seconds=30))
        async with proxy_to(db) as proxy:
            url = proxy.url(db).render_as_string(hide_password=False)

            async def silence_mid_statement() -> None:
                while not any("sleep" in q.lower() for q in await server_busy(db)):
                    await asyncio.sleep(0.02)
                proxy.go_silent()

            silencer = asyncio.ensure_future(silence_mid_statement())
            began = time.perf_counter()
            report = await migrate_tenants(config, [Tenant("goes_silent", url)],
                                           "head", timeout=2.0)
            elapsed = time.perf_counter() - began
            assert silencer.done()
    (result,) = report.results
    assert result.status == "failed"
    assert (result.error or "").startswith("timed out after 2s"), result.error
    assert "the server did not answer the cancellation" in (result.error or "")
    assert elapsed < 2.0 + CLEANUP + 1.5, elapsed


async def test_a_silent_fleet_is_bounded_pre_read_included(tmp_path: Path) -> None:
    backends.require("postgresql")
    config = make_project(tmp_path, REVS)
    server = backends.server_url("postgresql")
    async with proxy_to(server, silent=True) as proxy:
        url = proxy.url(server).render_as_string(hide_password=False)
        # Several schemas of one database: the fleet pre-read is tried first, and given up.
        tenants = [Tenant(f"s{i}", url, f"tenant_s{i}") for i in range(3)]
        began = time.perf_counter()
        report = await migrate_tenants(config, tenants, "head", timeout=2.0, concurrency=3)
        elapsed = time.perf_counter() - began
    assert [r.status for r in report.results] == ["failed"] * 3
    assert all(r.seconds < 2.0 + 3.0 for r in report.results), report.results
    # The pre-read waits no longer than one tenant's timeout before tenants start on their own.
    assert elapsed < 2.0 + 2.0 + 3.0, elapsed


async def test_a_stalled_connection_fails_the_tenant_and_a_retry_completes_it(
    tmp_path: Path, pg_db: URL
) -> None:
    """A one-way stall mid-step: noticed (read_timeout), the session ended, the retry migrates."""
    import asyncio

    from ..runtime.interruptions import server_busy, settled, slow_steps

    config = make_project(tmp_path, slow_steps("postgresql", count=2, seconds=0.4))
    config.set_main_option("read_timeout", "1")
    async with proxy_to(pg_db) as proxy:
        url = proxy.url(pg_db).render_as_string(hide_password=False)
        tenants = [Tenant(f"t{i}", url, f"tenant_stall{i}") for i in range(3)]

        async def stall_once() -> None:
            while not any("pg_sleep" in q for q in await server_busy(pg_db)):
                await asyncio.sleep(0.02)
            proxy.stall()

        staller = asyncio.ensure_future(stall_once())
        once = await migrate_tenants(config, tenants, "head", concurrency=3)
        assert staller.done()
        failed = [r for r in once.results if r.status == "failed"]
        assert failed, once.results
        assert all("The connection stalled" in (r.error or "") for r in failed), failed
        await settled(pg_db)
        report = await migrate_tenants(config, tenants, "head", concurrency=3, retries=1)
    assert report.counts["failed"] == 0, report.failed
    assert all(r.to_heads == ("r2",) for r in report.results), report.results


async def test_a_reset_during_the_asyncpg_self_check_is_a_connect_failure_a_retry_covers(
    tmp_path: Path, pg_db: URL, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The once-per-process check of the asyncpg fast path loses its connection: the tenant is
    retried (not failed with a bare driver error), and the check is made again, not given up."""
    from asyncmigrate.runtime.drivers import asyncpg as fast_path

    monkeypatch.setattr(fast_path, "_VERIFIED", {})  # the check runs in this test's first session
    config = make_project(tmp_path, REVS)
    async with proxy_to(pg_db) as proxy:
        proxy.drop_on(b"\nSELECT 1\x00")  # the check's folded BEGIN; SELECT 1
        url = proxy.url(pg_db).render_as_string(hide_password=False)
        report = await migrate_tenants(
            config, [Tenant("reset", url, "tenant_reset")], "head", retries=1, retry_backoff=0.01
        )
    (result,) = report.results
    assert result.status == "ok", result
    assert result.attempts == 2
    assert result.applied == ("r0", "r1", "r2")
    assert list(fast_path._VERIFIED.values()) == [True]  # checked again on the new connection
    assert "Traceback" not in caplog.text
