"""Migrate many tenants concurrently in one event loop, each isolated, each with a result.

A run takes the tenants (see :mod:`asyncmigrate.tenants.sources`), a command
and a target, and migrates every tenant in its own task -- its own
connection, its own task-local ``op``/``context``, its own transaction --
under a :class:`~anyio.CapacityLimiter` (and optionally a second limiter per
database host). One failing tenant never stops or corrupts another.

This module only wires the units that do the work:

- :mod:`.selection` -- which tenants (each once; a balanced, stable shard);
- :mod:`.fleet` -- the one-query pre-read of many schemas' version tables,
  used only when it is certain to read the table env.py would;
- :mod:`.policy` -- when to stop starting tenants (fail-fast, a failure
  budget, a canary wave, a stop request); tenants not started are ``skipped``;
- :mod:`.attempt` -- one tenant's turn: retries, deadline, truthful result;
- :mod:`.engines` -- one pre-pinged pool per URL;
- :mod:`.report` -- the results and the report.
"""

from __future__ import annotations

import datetime
import os
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from functools import partial
from typing import Literal, TypeAlias

import anyio

from .. import command
from ..config import Config
from ..events import StepEvent
from ..exceptions import ConfigError
from ..masking import get_logger
from .attempt import TenantAttempt
from .engines import EnginePool
from .fleet import answer, pre_read
from .model import Tenant
from .policy import StopPolicy, failure_budget, waves
from .report import FanoutReport, TenantEvent, TenantEventHandler, TenantResult, TenantStatus
from .selection import select_tenants
from .sources import TenantSource

__all__ = [
    "FanoutReport",
    "Operation",
    "TenantEvent",
    "TenantResult",
    "TenantStatus",
    "migrate_tenants",
]

log = get_logger(__name__)

Operation: TypeAlias = Literal["upgrade", "downgrade", "stamp", "current", "check", "validate"]


class _Ledger:
    """Each tenant's outcome as a run goes: finished, running (and what it committed), or not started.

    Owns only bookkeeping; :meth:`close` turns it into one result per tenant,
    whatever state a stop or a cancellation left the run in.
    """

    def __init__(self, t0: float, known: dict[str, tuple[str, ...]]) -> None:
        self._t0 = t0
        self._known = known
        self.results: dict[str, TenantResult] = {}
        self._running: dict[str, float] = {}
        self._committed: dict[str, list[str]] = {}

    def now(self) -> float:
        """Seconds since the run started."""
        return time.perf_counter() - self._t0

    def started(self, name: str) -> float:
        """A tenant starts; return when (seconds into the run)."""
        self._running[name] = self.now()
        return self._running[name]

    def step(self, name: str, event: StepEvent) -> None:
        """Note a step event: committed steps are what a cancelled tenant's record must still say."""
        if event.kind == "committed":
            self._committed.setdefault(name, []).append(event.revision or "base")

    def finished(self, result: TenantResult) -> None:
        """A tenant has its result."""
        self._running.pop(result.name, None)
        self.results[result.name] = result

    def close(self, tenants: Sequence[Tenant], stopped: str | None) -> list[TenantResult]:
        """One result per tenant, in order: running ones were cancelled, the rest not started."""
        for tenant in tenants:
            if tenant.name in self.results:
                continue
            known = self._known.get(tenant.name)
            if tenant.name in self._running:
                applied = tuple(self._committed.get(tenant.name, ()))
                done = f"committed before that: {', '.join(applied)}" if applied else "nothing was committed"
                self.results[tenant.name] = TenantResult(
                    tenant.name, tenant.masked_url, tenant.schema, "failed", from_heads=known, to_heads=None,
                    error=f"cancelled while migrating; {done}", started=self._running[tenant.name],
                    finished=self.now(), applied=applied, migrations=len(applied),
                    seconds=self.now() - self._running[tenant.name], attempts=1,
                )
            else:
                self.results[tenant.name] = TenantResult(
                    tenant.name, tenant.masked_url, tenant.schema, "skipped", from_heads=known,
                    to_heads=known, error=f"not started: {stopped or 'run cancelled'}",
                )
        return [self.results[t.name] for t in tenants]


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
    repair: bool = False,
    into: FanoutReport | None = None,
) -> FanoutReport:
    """Run ``operation`` to ``target`` on every tenant, concurrently, and report each outcome.

    :param tenants: a list or (async) iterable of :class:`Tenant`.
    :param target: the revision target (``head``, ``-1``...; several for ``stamp``).
    :param operation: ``upgrade``, ``downgrade``, ``stamp``, ``current``, ``check`` or
        ``validate`` (each tenant's applied record against the revision files; a
        drifted tenant fails, its drift in :attr:`TenantResult.details`).
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
    :param repair: with ``validate``: record the current checksums of changed files.
    :param into: a report to fill in place -- still filled when the call is cancelled.
    :return: the report; it is also written to ``report_path`` when given.
    """
    if operation not in ("upgrade", "downgrade", "stamp", "current", "check", "validate"):
        raise ConfigError(f"Unknown fan-out operation {operation!r}")
    if concurrency < 1:
        raise ConfigError("concurrency must be at least 1")
    if per_host is not None and per_host < 1:
        raise ConfigError("per_host must be at least 1")
    if operation in ("upgrade", "downgrade") and not isinstance(target, str):
        raise ConfigError(f"{operation} needs one target revision")
    started_wall = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    t0 = time.perf_counter()
    selection = await select_tenants(tenants, shard)
    selected = selection.tenants
    total = len(selected)
    report = into if into is not None else FanoutReport(operation, "")
    report.operation, report.target = operation, _target_text(target)
    report.started_at, report.concurrency = started_wall, concurrency
    if shard is not None:
        report.shards = [f"{shard[0]}/{shard[1]}"]
    if selection.empty_shard:
        warning = selection.describe_empty()
        log.warning("%s", warning)
        report.warnings.append(warning)
    policy = StopPolicy(failure_budget(max_failures, total, fail_fast), fail_fast, stop)
    script = await command._script_directory(config)
    engines = EnginePool(min(concurrency, per_host or concurrency), Counter(t.url for t in selected))
    limiter = anyio.CapacityLimiter(concurrency)
    host_limiters: dict[str, anyio.CapacityLimiter] = {}
    attempt = TenantAttempt(
        config, script, operation, target, timeout=timeout, retries=retries,
        retry_backoff=retry_backoff,
        options={"lock": lock, "lock_timeout": lock_timeout, "tag": tag,
                 "create_schema": create_schema, **({"purge": purge} if operation == "stamp" else {}),
                 **({"repair": repair} if operation == "validate" else {})},
    )

    def emit(event: TenantEvent) -> None:
        if on_event is None:
            return
        try:
            on_event(event)
        except Exception:  # a progress callback must never break a run
            log.exception("on_event callback failed")

    def finish(result: TenantResult) -> None:
        ledger.finished(result)
        policy.record(result)
        emit(TenantEvent("finished", result.name, result=result, total=total))

    known = await pre_read(config, script, engines.get, selected, operation, timeout)
    ledger = _Ledger(t0, known)

    async def guarded(tenant: Tenant, token: object) -> None:
        host = host_limiters.setdefault(tenant.host, anyio.CapacityLimiter(per_host or concurrency))
        try:
            async with host:
                began = ledger.started(tenant.name)
                emit(TenantEvent("started", tenant.name, total=total))

                def on_step(event: StepEvent) -> None:
                    ledger.step(tenant.name, event)
                    emit(TenantEvent("step", tenant.name, step=event, total=total))

                def on_cancelled(result: TenantResult) -> None:  # its line too: it ends here
                    result = replace(result, started=began, finished=ledger.now())
                    ledger.finished(result)
                    emit(TenantEvent("finished", result.name, result=result, total=total))

                result = await attempt.run(
                    tenant, partial(engines.get, tenant.url), known.get(tenant.name), on_step, on_cancelled
                )
                finish(replace(result, started=began, finished=ledger.now()))
        finally:
            limiter.release_on_behalf_of(token)
            await engines.done(tenant.url)

    async def start_wave(wave: Sequence[Tenant]) -> None:
        async with anyio.create_task_group() as group:
            for tenant in wave:
                if not policy.may_start():
                    break
                done = answer(script, operation, target, tenant, known.get(tenant.name))
                if done is not None:
                    finish(done)
                    await engines.done(tenant.url)
                    continue
                token = object()
                await limiter.acquire_on_behalf_of(token)
                if not policy.may_start():
                    limiter.release_on_behalf_of(token)
                    break
                group.start_soon(guarded, tenant, token)

    cancelled = False
    try:
        for index, wave in enumerate(waves(selected, canary)):
            await start_wave(wave)
            policy.after_wave(index, len(wave), bool(canary))
    except anyio.get_cancelled_exc_class():
        cancelled = True
        raise
    finally:
        with anyio.CancelScope(shield=True):
            await engines.close()
            stopped = policy.final(cancelled)
            report.results = ledger.close(selected, stopped)
            report.seconds = ledger.now()
            report.stopped = stopped
            if report_path is not None:
                report.write(report_path)
    return report


def _target_text(target: str | Sequence[str] | None) -> str | None:
    if target is None or isinstance(target, str):
        return target
    return " ".join(target)
