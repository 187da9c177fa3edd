"""Migrate many tenants concurrently in one event loop, each isolated, each with a result.

A run takes the tenants (see :mod:`asyncmigrate.tenants.sources`), a command
and a target, and migrates every tenant in its own task -- its own
connection, its own task-local ``op``/``context``, its own transaction --
under a :class:`~anyio.CapacityLimiter` (and optionally a second limiter per
database host). One failing tenant never stops or corrupts another: its
transaction rolls back and it is reported ``failed``. Policies decide when
to stop *starting* tenants (fail-fast, a failure budget, a canary wave, an
external stop event); tenants not started are reported ``skipped``.

For schemas of one PostgreSQL database, the version tables of all of them
are read in one round trip before any work starts; tenants already at the
target are reported ``unchanged`` without being visited again.
"""

from __future__ import annotations

import datetime
import json
import logging
import math
import os
import random
import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeAlias

import anyio
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from .. import command
from ..config import Config
from ..events import StepEvent
from ..exceptions import AsyncMigrateError, ConfigError, ConnectionFailedError, NotAtHeadError
from ..revision.plan import downgrade_plan, stamp_plan, upgrade_plan
from ..revision.revision import as_tuple
from ..runtime.connecting import answer_first_connect
from ..runtime.pipeline import CompiledCache
from ..runtime.sessions import SessionProbe
from ..script import ScriptDirectory
from ..urls import mask_passwords_in
from .model import Tenant, in_shard
from .sources import TenantSource, iterate_tenants

__all__ = [
    "FanoutReport",
    "Operation",
    "TenantEvent",
    "TenantResult",
    "TenantStatus",
    "migrate_tenants",
]

log = logging.getLogger(__name__)

TenantStatus: TypeAlias = Literal["ok", "unchanged", "failed", "skipped"]
Operation: TypeAlias = Literal["upgrade", "downgrade", "stamp", "current", "check"]
_MUTATING = ("upgrade", "downgrade", "stamp")
#: Seconds a timed-out tenant gets to roll back after its statement is cancelled.
_TIMEOUT_GRACE = 10.0


@dataclass(frozen=True)
class TenantResult:
    """What happened to one tenant."""

    name: str
    url: str
    """The tenant's URL, password masked."""
    schema: str | None
    status: TenantStatus
    from_heads: tuple[str, ...] = ()
    to_heads: tuple[str, ...] = ()
    migrations: int = 0
    """Steps applied (migrations run, or stamp moves)."""
    seconds: float = 0.0
    error: str | None = None
    attempts: int = 0
    started: float | None = None
    """Seconds from the start of the run to when this tenant started."""
    finished: float | None = None
    """Seconds from the start of the run to when this tenant finished."""

    def to_dict(self) -> dict[str, Any]:
        """Return the result as JSON-ready data."""
        data = asdict(self)
        data["from"] = list(data.pop("from_heads"))
        data["to"] = list(data.pop("to_heads"))
        data["seconds"] = round(self.seconds, 6)
        for key in ("started", "finished"):
            if data[key] is not None:
                data[key] = round(data[key], 6)
        return data


@dataclass(frozen=True)
class TenantEvent:
    """Progress of a fan-out: a tenant started, made a step, or finished."""

    kind: Literal["started", "step", "finished"]
    tenant: str
    result: TenantResult | None = None
    """Set when ``kind == "finished"``."""
    step: StepEvent | None = None
    """Set when ``kind == "step"``."""
    total: int = 0
    """How many tenants the run covers."""


@dataclass
class FanoutReport:
    """Every tenant's outcome, in the order tenants were given."""

    operation: str
    target: str | None
    results: list[TenantResult] = field(default_factory=list)
    started_at: str = ""
    seconds: float = 0.0
    stopped: str | None = None
    """Why the run stopped starting tenants early, if it did."""
    concurrency: int = 0

    @property
    def counts(self) -> dict[str, int]:
        """Tenants per status."""
        counts = Counter(r.status for r in self.results)
        return {status: counts.get(status, 0) for status in ("ok", "unchanged", "failed", "skipped")}

    @property
    def failed(self) -> list[TenantResult]:
        """The tenants that failed."""
        return [r for r in self.results if r.status == "failed"]

    @property
    def succeeded(self) -> bool:
        """True when every tenant ended ``ok`` or ``unchanged``."""
        return all(r.status in ("ok", "unchanged") for r in self.results)

    @property
    def exit_code(self) -> int:
        """0 when every tenant succeeded, 1 otherwise."""
        return 0 if self.succeeded else 1

    def histogram(self) -> dict[str, int]:
        """Tenants per resulting revision set (``base`` when empty), most common first."""
        counts = Counter(", ".join(r.to_heads) or "base" for r in self.results if r.status != "failed")
        return dict(counts.most_common())

    def to_dict(self) -> dict[str, Any]:
        """Return the report as JSON-ready data."""
        return {
            "operation": self.operation,
            "target": self.target,
            "started_at": self.started_at,
            "seconds": round(self.seconds, 6),
            "concurrency": self.concurrency,
            "stopped": self.stopped,
            "counts": self.counts,
            "tenants": [r.to_dict() for r in self.results],
        }

    def names(self, *statuses: TenantStatus) -> set[str]:
        """Return the names of the tenants that ended with one of ``statuses``.

        ``report.names("failed", "skipped")`` is what a re-run should cover.
        """
        return {r.name for r in self.results if r.status in statuses}

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> FanoutReport:
        """Load a report written by :meth:`write` (to re-run its failed tenants, say).

        :raises ConfigError: when the file is not a fan-out report.
        """
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            results = [
                TenantResult(
                    name=t["name"], url=t["url"], schema=t.get("schema"), status=t["status"],
                    from_heads=tuple(t.get("from", ())), to_heads=tuple(t.get("to", ())),
                    migrations=t.get("migrations", 0), seconds=t.get("seconds", 0.0),
                    error=t.get("error"), attempts=t.get("attempts", 0),
                    started=t.get("started"), finished=t.get("finished"),
                )
                for t in data["tenants"]
            ]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{path} is not a readable fan-out report: {exc}") from exc
        return cls(
            data.get("operation", ""), data.get("target"), results,
            started_at=data.get("started_at", ""), seconds=data.get("seconds", 0.0),
            stopped=data.get("stopped"), concurrency=data.get("concurrency", 0),
        )

    def write(self, path: str | os.PathLike[str]) -> None:
        """Write the report as JSON (atomically: a temp file renamed into place)."""
        target = Path(path)
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        tmp.replace(target)


TenantEventHandler: TypeAlias = Callable[[TenantEvent], None]


class _Engines:
    """Share one pooled engine per server URL among its tenants; dispose it after the last one."""

    def __init__(self, pool_size: int, remaining: Counter[str]) -> None:
        self._pool_size = pool_size
        self._remaining = remaining
        self._engines: dict[str, AsyncEngine] = {}

    def get(self, url: str) -> AsyncEngine:
        engine = self._engines.get(url)
        if engine is None:
            if url.startswith("sqlite"):
                engine = create_async_engine(url, poolclass=NullPool)
            else:
                size = max(1, min(self._pool_size, self._remaining[url]))
                engine = create_async_engine(url, pool_size=size, max_overflow=0)
                answer_first_connect(engine)
            self._engines[url] = engine
        return engine

    async def done(self, url: str) -> None:
        self._remaining[url] -= 1
        if self._remaining[url] <= 0:
            engine = self._engines.pop(url, None)
            if engine is not None:
                with anyio.CancelScope(shield=True):
                    await engine.dispose()

    async def close(self) -> None:
        engines, self._engines = list(self._engines.values()), {}
        with anyio.CancelScope(shield=True):
            for engine in engines:
                await engine.dispose()


def _one_line(exc: BaseException) -> str:
    text_ = str(exc).strip()
    line = text_.splitlines()[0] if text_ else type(exc).__name__
    return mask_passwords_in(line)


_VERSION_VALUE = re.compile(r"<version_num>([^<]*)</version_num>")


async def _fleet_versions(
    engines: _Engines, url: str, schemas: Sequence[str], version_table: str
) -> dict[str, tuple[str, ...]]:
    """Read the version rows of many schemas of one PostgreSQL database in one round trip."""
    query = text(
        "SELECT n.nspname, query_to_xml(format('SELECT version_num FROM %I.%I', n.nspname, "
        "c.relname), false, true, '') FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n "
        "ON n.oid = c.relnamespace WHERE c.relname = :table AND c.relkind IN ('r', 'p') "
        "AND n.nspname = ANY(:schemas)"
    )
    found: dict[str, tuple[str, ...]] = dict.fromkeys(schemas, ())
    async with engines.get(url).connect() as conn:
        for start in range(0, len(schemas), 5000):
            chunk = list(schemas[start : start + 5000])
            rows = await conn.execute(query, {"table": version_table, "schemas": chunk})
            for schema, xml in rows:
                found[schema] = tuple(_VERSION_VALUE.findall(xml or ""))
    return found


def _plan_is_empty(
    script: ScriptDirectory, operation: str, heads: tuple[str, ...], target: str | Sequence[str]
) -> bool | None:
    """Tell whether ``operation`` to ``target`` has nothing to do from ``heads`` (None: unknown)."""
    graph = script.graph
    try:
        if operation == "upgrade":
            return not upgrade_plan(graph, heads, str(target))
        if operation == "downgrade":
            return not downgrade_plan(graph, heads, str(target))
        if operation == "stamp":
            return not stamp_plan(graph, as_tuple(target), heads)
    except AsyncMigrateError:
        return None
    return None


async def migrate_tenants(
    config: Config,
    tenants: TenantSource,
    target: str | Sequence[str] | None = "head",
    *,
    operation: Operation = "upgrade",
    concurrency: int = 8,
    per_host: int | None = None,
    fail_fast: bool = False,
    max_failures: int | float | None = None,
    canary: int | None = None,
    timeout: float | None = None,
    retries: int = 0,
    retry_backoff: float = 0.5,
    shard: tuple[int, int] | None = None,
    stop: anyio.Event | None = None,
    on_event: TenantEventHandler | None = None,
    report_path: str | os.PathLike[str] | None = None,
    create_schema: bool = True,
    lock: bool | None = None,
    lock_timeout: float | None = None,
    tag: str | None = None,
    purge: bool = False,
    into: FanoutReport | None = None,
) -> FanoutReport:
    """Run ``operation`` to ``target`` on every tenant, concurrently, and report each outcome.

    :param tenants: a list or (async) iterable of :class:`Tenant`.
    :param target: the revision target (``head``, ``-1``...; several for ``stamp``).
    :param operation: ``upgrade``, ``downgrade``, ``stamp``, ``current`` or ``check``.
    :param concurrency: how many tenants migrate at once.
    :param per_host: at most this many at once on one database server.
    :param fail_fast: stop starting tenants at the first failure.
    :param max_failures: stop starting tenants after this many failures (an int),
        or once this fraction of all tenants failed (a float below 1).
    :param canary: migrate the first N tenants first; start no others if any of them fails.
    :param timeout: seconds one tenant may take (its transaction rolls back).
    :param retries: retry a tenant this many times when it cannot connect
        (connection errors only), with exponential backoff from ``retry_backoff``.
    :param shard: ``(index, count)``: migrate only the stable subset ``index`` of ``count``.
    :param stop: set this event to stop starting tenants (in-flight ones finish).
    :param on_event: called for every tenant start, step and finish.
    :param report_path: write the JSON report here, even when the run is cancelled.
    :param create_schema: create a tenant's schema when an ``upgrade``/``stamp`` finds it missing.
    :param into: a report to fill in place -- still filled when the call is cancelled.
    :return: the report; it is also written to ``report_path`` when given.
    """
    if operation not in ("upgrade", "downgrade", "stamp", "current", "check"):
        raise ConfigError(f"Unknown fan-out operation {operation!r}")
    if concurrency < 1:
        raise ConfigError("concurrency must be at least 1")
    if per_host is not None and per_host < 1:
        raise ConfigError("per_host must be at least 1")
    if operation in ("upgrade", "downgrade") and not isinstance(target, str):
        raise ConfigError(f"{operation} needs one target revision")
    started_wall = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    t0 = time.perf_counter()
    selected: list[Tenant] = []
    names: set[str] = set()
    async for tenant in iterate_tenants(tenants):
        if shard is not None and not in_shard(tenant.name, *shard):
            continue
        if tenant.name in names:
            raise ConfigError(f"Tenant name {tenant.name!r} appears more than once")
        names.add(tenant.name)
        selected.append(tenant)
    total = len(selected)
    report = into if into is not None else FanoutReport(operation, "")
    report.operation, report.target = operation, _target_text(target)
    report.started_at, report.concurrency = started_wall, concurrency
    results: dict[str, TenantResult] = {}
    running: dict[str, float] = {}
    state: dict[str, Any] = {"failures": 0, "stopped": None}
    budget = _failure_budget(max_failures, total, fail_fast)
    script = await command._script_directory(config)
    engines = _Engines(min(concurrency, per_host or concurrency), Counter(t.url for t in selected))
    compiled = CompiledCache()
    limiter = anyio.CapacityLimiter(concurrency)
    host_limiters: dict[str, anyio.CapacityLimiter] = {}
    target_arg: Any = target

    def emit(event: TenantEvent) -> None:
        if on_event is None:
            return
        try:
            on_event(event)
        except Exception:  # a progress callback must never break a run
            log.exception("on_event callback failed")

    def finish(result: TenantResult) -> None:
        results[result.name] = result
        if result.status == "failed":
            state["failures"] += 1
            if budget is not None and state["failures"] >= budget and state["stopped"] is None:
                state["stopped"] = (
                    "fail-fast: a tenant failed" if fail_fast
                    else f"failure budget reached ({state['failures']} failed)"
                )
        emit(TenantEvent("finished", result.name, result=result, total=total))

    def base_result(tenant: Tenant, status: TenantStatus, **kw: Any) -> TenantResult:
        return TenantResult(tenant.name, tenant.masked_url, tenant.schema, status, **kw)

    # Schemas of one PostgreSQL database: read every version table in one round trip.
    known: dict[str, tuple[str, ...]] = {}
    by_url: dict[str, list[Tenant]] = {}
    for tenant in selected:
        if tenant.schema and tenant.sa_url.get_backend_name() == "postgresql":
            by_url.setdefault(tenant.url, []).append(tenant)
    version_table = str(config.get_alembic_option("version_table", "alembic_version"))
    for url, group in by_url.items():
        if len(group) < 2 and operation in _MUTATING:
            continue
        try:
            versions = await _fleet_versions(engines, url, [t.schema or "" for t in group], version_table)
        except (DBAPIError, OSError) as exc:
            log.info("Could not pre-read versions on %s: %s", group[0].masked_url, _one_line(exc))
            continue
        for tenant in group:
            known[tenant.name] = versions[tenant.schema or ""]

    async def run_tenant(tenant: Tenant, tries: list[int], probe: SessionProbe) -> TenantResult:
        while True:
            tries[0] += 1
            attempts = tries[0]
            try:
                return await attempt(tenant, attempts, probe)
            except ConnectionFailedError:
                if attempts > retries:
                    raise
                delay = retry_backoff * (2 ** (attempts - 1)) * (0.5 + random.random())
                log.info("Tenant %s: cannot connect, retrying in %.2fs", tenant.name, delay)
                await anyio.sleep(delay)

    async def attempt(tenant: Tenant, attempts: int, probe: SessionProbe) -> TenantResult:
        tenant_config = config.copy(url=tenant.url, attributes={"tenant": tenant})
        engine = engines.get(tenant.url)

        def on_step(event: StepEvent) -> None:
            emit(TenantEvent("step", tenant.name, step=event, total=total))

        common: dict[str, Any] = {
            "engine": engine,
            "script": script,
            "tenant": tenant,
            "tenant_schema": tenant.schema,
            "session_probe": probe,
            "compiled_cache": compiled,
        }
        began = time.perf_counter()
        if operation in _MUTATING:
            common.update(
                on_step=on_step, lock=lock, lock_timeout=lock_timeout, tag=tag,
                create_schema=create_schema,
            )
            if operation == "stamp":
                result = await command.stamp(tenant_config, target_arg, purge=purge, **common)
            else:
                fn = command.upgrade if operation == "upgrade" else command.downgrade
                result = await fn(tenant_config, target_arg, **common)
            return base_result(
                tenant,
                "ok" if result.changed else "unchanged",
                from_heads=result.from_heads,
                to_heads=result.to_heads,
                migrations=len(result.steps),
                seconds=time.perf_counter() - began,
                attempts=attempts,
            )
        current = await command.current(tenant_config, **common)
        if operation == "check" and not current.at_head:
            raise NotAtHeadError(f"not at head: {len(current.pending)} revision(s) to apply")
        return base_result(
            tenant, "ok", from_heads=current.heads, to_heads=current.heads,
            seconds=time.perf_counter() - began, attempts=attempts,
        )

    async def guarded(tenant: Tenant, token: object) -> None:
        host = host_limiters.setdefault(
            tenant.host, anyio.CapacityLimiter(per_host or concurrency)
        )
        tries = [0]
        probe = SessionProbe()
        finished = False
        try:
            async with host:
                began = time.perf_counter()
                running[tenant.name] = began - t0
                emit(TenantEvent("started", tenant.name, total=total))
                timed_out = False
                outcome: list[TenantResult] = []
                errors: list[Exception] = []
                async with anyio.create_task_group() as watch:

                    async def body() -> None:
                        try:
                            outcome.append(await run_tenant(tenant, tries, probe))
                        except Exception as exc:
                            errors.append(exc)
                        finally:
                            watch.cancel_scope.cancel()

                    async def watchdog(limit: float) -> None:
                        nonlocal timed_out
                        await anyio.sleep(limit)
                        timed_out = True
                        # Stop the statement on the server: the migration then fails and
                        # rolls back like any other; if it does not unwind in time, end
                        # the session.
                        await probe.interrupt()
                        await anyio.sleep(_TIMEOUT_GRACE)
                        await probe.interrupt(terminate=True)
                        watch.cancel_scope.cancel()

                    if timeout is not None:
                        watch.start_soon(watchdog, timeout)
                    watch.start_soon(body)
                elapsed = time.perf_counter() - began
                if outcome:  # it committed, even if the deadline passed meanwhile
                    result = outcome[0]
                elif timed_out:
                    result = base_result(
                        tenant, "failed", seconds=elapsed, from_heads=known.get(tenant.name, ()),
                        error=f"timed out after {timeout:g}s; its transaction was rolled back",
                    )
                elif isinstance(errors[0], AsyncMigrateError):
                    result = base_result(
                        tenant, "failed", error=_one_line(errors[0]), seconds=elapsed,
                        from_heads=known.get(tenant.name, ()),
                    )
                else:
                    log.debug("Tenant %s failed", tenant.name, exc_info=errors[0])
                    result = base_result(
                        tenant, "failed", seconds=elapsed,
                        error=f"{type(errors[0]).__name__}: {_one_line(errors[0])}",
                    )
                result = TenantResult(**{
                    **asdict(result),
                    "attempts": tries[0],
                    "started": began - t0,
                    "finished": time.perf_counter() - t0,
                })
                running.pop(tenant.name, None)
                finished = True
                finish(result)
        finally:
            if not finished and probe.sessions:
                # The run is being cancelled mid-migration: end the server session so
                # its transaction rolls back now, not when its statement completes.
                await probe.interrupt(terminate=True)
            limiter.release_on_behalf_of(token)
            await engines.done(tenant.url)

    async def start_wave(wave: Sequence[Tenant]) -> None:
        async with anyio.create_task_group() as group:
            for tenant in wave:
                if stop is not None and stop.is_set() and state["stopped"] is None:
                    state["stopped"] = "stopped on request"
                if state["stopped"] is not None:
                    break
                heads = known.get(tenant.name)
                at_head = None if heads is None else _plan_is_empty(script, "upgrade", heads, "heads")
                if heads is not None and at_head is not None and operation in ("current", "check"):
                    if operation == "check" and not at_head:
                        finish(base_result(tenant, "failed", from_heads=heads, to_heads=heads,
                                           error="not at head"))
                    else:
                        finish(base_result(tenant, "ok", from_heads=heads, to_heads=heads))
                    await engines.done(tenant.url)
                    continue
                if heads is not None and _plan_is_empty(script, operation, heads, target_arg):
                    finish(base_result(tenant, "unchanged", from_heads=heads, to_heads=heads))
                    await engines.done(tenant.url)
                    continue
                token = object()
                await limiter.acquire_on_behalf_of(token)
                if (stop is not None and stop.is_set()) or state["stopped"] is not None:
                    limiter.release_on_behalf_of(token)
                    break
                group.start_soon(guarded, tenant, token)

    waves: list[Sequence[Tenant]] = [selected]
    if canary:
        waves = [selected[:canary], selected[canary:]]
    try:
        for index, wave in enumerate(waves):
            await start_wave(wave)
            if canary and index == 0 and state["failures"] and state["stopped"] is None:
                state["stopped"] = f"canary wave failed ({state['failures']} of {len(wave)} tenants)"
            if stop is not None and stop.is_set() and state["stopped"] is None:
                state["stopped"] = "stopped on request"
    finally:
        with anyio.CancelScope(shield=True):
            await engines.close()
            cancelled = state["stopped"] or "run cancelled"
            for tenant in selected:
                if tenant.name in results:
                    continue
                if tenant.name in running:
                    results[tenant.name] = base_result(
                        tenant, "failed", error="cancelled while migrating; its transaction was rolled back",
                        started=running[tenant.name], finished=time.perf_counter() - t0,
                    )
                else:
                    results[tenant.name] = base_result(tenant, "skipped", error=f"not started: {cancelled}")
            report.results = [results[t.name] for t in selected]
            report.seconds = time.perf_counter() - t0
            report.stopped = state["stopped"]
            if report_path is not None:
                report.write(report_path)
    return report


def _failure_budget(max_failures: int | float | None, total: int, fail_fast: bool) -> int | None:
    if fail_fast:
        return 1
    if max_failures is None:
        return None
    if isinstance(max_failures, float) and 0 < max_failures < 1:
        return max(1, math.ceil(max_failures * total))
    if max_failures < 1:
        raise ConfigError("max_failures must be a count >= 1 or a fraction between 0 and 1")
    return int(max_failures)


def _target_text(target: str | Sequence[str] | None) -> str | None:
    if target is None or isinstance(target, str):
        return target
    return " ".join(target)
