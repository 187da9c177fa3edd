"""One tenant's turn in a fan-out: connect, retry, keep the deadline, report the truth.

:class:`TenantAttempt` runs one command on one tenant and always returns
a :class:`~asyncmigrate.tenants.report.TenantResult`; it never raises for
the tenant's own failures. What it guarantees:

- **Retries** cover every failure to connect (refused, reset, timed out,
  a dropped pooled connection), with exponential backoff and jitter; a
  failing migration is never retried.
- **The deadline** (``timeout``) bounds the tenant's whole turn, retries and
  cancellation included: when it passes, the statement in flight is
  cancelled on the server, the run gets a short grace to roll back by
  itself, and then its sessions are ended and its task cancelled. The
  grace and every server round trip it makes fit in :data:`CLEANUP`.
- **The result is truthful**: ``applied`` lists the revisions whose steps
  committed (from the runtime's step events), ``to`` is where the tenant
  stands, read back when a failure left it unclear and time allows, and
  ``None`` when it cannot be known.
- **Read-only commands create nothing**: ``current``/``check`` on a SQLite
  file that does not exist fail with "database file does not exist"
  instead of creating an empty database.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import anyio
from sqlalchemy.ext.asyncio import AsyncEngine

from .. import command, lines
from ..config import Config
from ..events import StepEvent
from ..exceptions import AsyncMigrateError, ConnectionFailedError
from ..masking import get_logger
from ..runtime.sessions import SessionProbe
from ..script import ScriptDirectory
from ..urls import mask_passwords_in, missing_sqlite_file
from .model import Tenant
from .report import TenantResult, TenantStatus

__all__ = ["CLEANUP", "TenantAttempt", "one_line"]

log = get_logger(__name__)

#: Seconds a tenant past its deadline gets, in all, to stop its statement and roll back.
CLEANUP = 2.0
#: Seconds at most spent reading back where a failed tenant stands.
READ_BACK = 5.0
MUTATING = ("upgrade", "downgrade", "stamp")


@dataclass
class _Steps:
    """What the runtime's step events said about one tenant's run."""

    started: bool = False
    applied: list[str] = field(default_factory=list)
    rolled_back: int = 0
    retried: int = 0
    in_flight: bool = False
    failed: str | None = None
    """The runtime's one-line error of the step that failed, if one did."""
    in_doubt: list[str] = field(default_factory=list)
    """Revisions whose COMMIT was cut off before its answer: they may or may not have committed."""

    def __call__(self, event: StepEvent) -> None:
        kind = event.kind
        if kind == "started":
            self.started = self.in_flight = True
        elif kind == "committed":
            self.applied.append(event.revision or "base")
            self.in_flight = False
        elif kind == "rolled_back":
            self.rolled_back += 1
            self.in_flight = False
        elif kind == "retrying":
            self.retried += 1
        elif kind == "failed":
            self.in_flight = False
            self.failed = event.error or event.description
        elif kind == "in_doubt":
            self.in_flight = False
            self.in_doubt.append(event.revision or "base")


@dataclass(frozen=True)
class TenantAttempt:
    """Run one command on tenants, one tenant per :meth:`run` call.

    It owns retries, the deadline and the result; the scheduling of
    tenants (limits, waves, stopping) and the engines are the caller's.
    """

    config: Config
    script: ScriptDirectory
    operation: Literal["upgrade", "downgrade", "stamp", "current", "check", "validate"]
    target: Any
    timeout: float | None = None
    retries: int = 0
    retry_backoff: float = 0.5
    options: dict[str, Any] = field(default_factory=dict)
    """Passed to the mutating commands (lock, lock_timeout, tag, create_schema, purge)."""

    async def run(
        self,
        tenant: Tenant,
        engine_for: Callable[[], AsyncEngine],
        known: tuple[str, ...] | None,
        on_step: Callable[[StepEvent], None] | None = None,
        on_cancelled: Callable[[TenantResult], None] | None = None,
    ) -> TenantResult:
        """Run the command on ``tenant`` and return its result (never raises for its failures).

        :param engine_for: gives the engine for the tenant's URL; a URL no engine
            can be made for (a driver not installed) fails this tenant only.
        :param known: where the tenant stands, if read before (the fleet pre-read).
        :param on_step: receives the runtime's step events.
        :param on_cancelled: when the run is cancelled mid-migration, receives the
            tenant's result as it then stands (what committed, where it stands,
            attempts, seconds) before the cancellation goes on.
        """
        began = time.perf_counter()
        steps = _Steps()
        probe = SessionProbe()
        tries = [0]
        outcome: list[TenantResult] = []
        errors: list[Exception] = []

        def step(event: StepEvent) -> None:
            steps(event)
            if on_step is not None:
                on_step(event)

        engines: list[AsyncEngine] = []

        async def body() -> None:
            try:
                engines.append(engine_for())
                outcome.append(await self._with_retries(tenant, engines[0], probe, step, tries))
            except Exception as exc:
                errors.append(exc)
            except SystemExit as exc:  # env.py giving up on this tenant; the fleet goes on
                errors.append(RuntimeError(f"sys.exit({exc.code!r}) was called while migrating it"))
            except anyio.get_cancelled_exc_class() as exc:
                if cancelling():
                    raise
                # Raised by the tenant's own code (a revision, env.py), not a cancellation
                # of this run: a failure of this tenant, never a stop of the fleet.
                errors.append(RuntimeError(f"{type(exc).__name__} raised by the migration: {exc}"))

        try:
            timed_out = await self._within_deadline(body, probe)
        except anyio.get_cancelled_exc_class():
            # The whole run is being cancelled mid-migration: end the server sessions so
            # their transactions roll back now, not when their statements complete.
            if probe.sessions:
                await probe.interrupt(terminate=True, timeout=CLEANUP)
            if on_cancelled is not None:
                result = self._failed(tenant, _cancelled_message(steps), known, steps)
                if steps.in_doubt and engines:
                    result = _resolved(
                        await self._settle_doubt(tenant, engines[0], result, probe), steps,
                        self.operation == "upgrade",
                    )
                on_cancelled(replace(
                    result, seconds=time.perf_counter() - began, attempts=tries[0], step_retries=steps.retried
                ))
            raise
        elapsed = time.perf_counter() - began
        if outcome:  # it finished, even if the deadline passed meanwhile
            result = replace(outcome[0], applied=tuple(steps.applied))
        elif timed_out:
            result = self._failed(tenant, self._timeout_message(steps, probe), known, steps)
        else:
            error = errors[0]
            if isinstance(error, AsyncMigrateError):
                message = one_line(error)
            else:
                log.debug("Tenant %s failed", tenant.name, exc_info=error)
                message = f"{type(error).__name__}: {one_line(error)}"
            result = self._failed(tenant, message, known, steps)
            if steps.started and engines and not isinstance(error, ConnectionFailedError):
                result = await self._read_back(tenant, engines[0], result, began)
            result = _resolved(result, steps, self.operation == "upgrade")
        return replace(result, seconds=elapsed, attempts=tries[0], step_retries=steps.retried)

    async def _with_retries(
        self,
        tenant: Tenant,
        engine: AsyncEngine,
        probe: SessionProbe,
        on_step: Callable[[StepEvent], None],
        tries: list[int],
    ) -> TenantResult:
        while True:
            tries[0] += 1
            try:
                return await self._once(tenant, engine, probe, on_step)
            except ConnectionFailedError:
                if tries[0] > self.retries:
                    raise
                delay = self.retry_backoff * (2 ** (tries[0] - 1)) * (0.5 + random.random())
                log.info("Tenant %s: cannot connect, retrying in %.2fs", tenant.name, delay)
                await anyio.sleep(delay)
                probe.forget()  # the failed attempt's sessions never answer again

    def _common(self, tenant: Tenant, engine: AsyncEngine, probe: SessionProbe) -> dict[str, Any]:
        return {
            "engine": engine,
            "script": self.script,
            "tenant": tenant,
            "tenant_schema": tenant.schema,
            "session_probe": probe,
        }

    async def _once(
        self,
        tenant: Tenant,
        engine: AsyncEngine,
        probe: SessionProbe,
        on_step: Callable[[StepEvent], None],
    ) -> TenantResult:
        tenant_config = self.config.copy(url=tenant.url, attributes={"tenant": tenant})
        common = self._common(tenant, engine, probe)
        # Only upgrade and stamp start a new SQLite tenant; anything else on a missing file would
        # create an empty one (a mistyped path) and report it at base.
        missing = None if self.operation in ("upgrade", "stamp") else missing_sqlite_file(tenant.url)
        if missing is not None:
            return _result(
                tenant, "failed", from_heads=None, to_heads=None,
                error=f"database file does not exist: {missing}",
            )
        if self.operation in MUTATING:
            common.update(self.options, on_step=on_step)
            if self.operation == "stamp":
                result = await command.stamp(tenant_config, self.target, **common)
            else:
                fn = command.upgrade if self.operation == "upgrade" else command.downgrade
                result = await fn(tenant_config, self.target, **common)
            return _result(
                tenant, "ok" if result.changed else "unchanged", from_heads=result.from_heads,
                to_heads=result.to_heads, migrations=len(result.steps),
            )
        if self.operation == "validate":
            return await self._validate(tenant, tenant_config, common)
        current = await command.current(tenant_config, **common)
        if self.operation == "check" and not current.at_head:
            return _result(
                tenant, "failed", from_heads=current.heads, to_heads=current.heads,
                error=f"not at head: {len(current.pending)} revision(s) to apply",
            )
        return _result(tenant, "ok", from_heads=current.heads, to_heads=current.heads)

    async def _validate(self, tenant: Tenant, tenant_config: Config, common: dict[str, Any]) -> TenantResult:
        report = await command.validate(tenant_config, bool(self.options.get("repair")), **common)
        heads = report.record.heads
        details = tuple(
            [f"repaired: recorded the current checksum of {revision}" for revision in report.repaired]
            + [drift.message for drift in report.drift]
        )
        if report.ok:
            return _result(tenant, "ok", from_heads=heads, to_heads=heads, details=details)
        first = report.drift[0].message
        return _result(
            tenant, "failed", from_heads=heads, to_heads=heads, details=details,
            error=f"{len(report.drift)} drift(s); first: {first}",
        )

    async def _within_deadline(self, body: Callable[[], Awaitable[None]], probe: SessionProbe) -> bool:
        """Run ``body`` under the deadline; return whether the deadline passed first."""
        finished = anyio.Event()
        timed_out = False
        async with anyio.create_task_group() as watch:

            async def run_body() -> None:
                try:
                    await body()
                finally:
                    finished.set()
                    watch.cancel_scope.cancel()

            async def watchdog(limit: float) -> None:
                nonlocal timed_out
                await anyio.sleep(limit)
                timed_out = True
                await self._stop(probe, finished)
                watch.cancel_scope.cancel()

            if self.timeout is not None:
                watch.start_soon(watchdog, self.timeout)
            watch.start_soon(run_body)
        return timed_out

    async def _stop(self, probe: SessionProbe, finished: anyio.Event) -> None:
        """Past the deadline: cancel the statement, let the run roll back, then end its sessions.

        Takes at most :data:`CLEANUP` seconds, server round trips included; the
        run's own clean-up (rollback, closing its connection) then gets only
        what is left of them, so a server that never answers cannot stretch
        the tenant past its deadline.
        """
        probe.cleanup_deadline = time.monotonic() + CLEANUP
        if not probe.sessions:
            return  # nothing runs on a server (still connecting, or SQLite): cancel now
        with anyio.move_on_after(CLEANUP / 2):
            await probe.interrupt(timeout=CLEANUP / 2)
            await finished.wait()
        left = probe.cleanup_budget(CLEANUP)
        if not finished.is_set() and probe.sessions:
            ended = await probe.interrupt(terminate=True, timeout=left) if left > 0 else 0
            probe.unanswered = ended == 0

    def _timeout_message(self, steps: _Steps, probe: SessionProbe) -> str:
        message = f"timed out after {self.timeout:g}s"
        if not steps.started:
            return message + " before any migration step started; nothing was applied"
        message += _what_the_steps_did(steps)
        if probe.unanswered:
            message += (
                "; the server did not answer the cancellation, so its session may hold the open "
                "transaction and its locks until the server notices the connection is gone"
            )
        return message

    def _failed(
        self, tenant: Tenant, error: str, known: tuple[str, ...] | None, steps: _Steps
    ) -> TenantResult:
        """A failed tenant's result, with where it stood and stands when the steps tell it.

        A step whose COMMIT was cut off leaves where the tenant stands unknown
        (``to`` None) until it is read back.
        """
        applied = tuple(steps.applied)
        from_heads, to_heads = (known, known) if not applied else self._derive(known, applied)
        if steps.in_doubt:
            to_heads = None
        return _result(
            tenant, "failed", from_heads=from_heads, to_heads=to_heads, migrations=len(applied),
            applied=applied, error=error,
        )

    def _derive(
        self, known: tuple[str, ...] | None, applied: Sequence[str]
    ) -> tuple[tuple[str, ...] | None, tuple[str, ...] | None]:
        """Where a tenant stood and stands after ``applied`` committed (None where not derivable).

        Exact for a linear history (one revision at a time in the version
        table) and for upgrades from known heads; anything else is left unknown.
        """
        revisions = {}
        for revision in applied:
            try:
                found = self.script.graph.get_revision(revision)
            except AsyncMigrateError:
                return known, None
            if found is None or found.resolved_dependencies:
                return known, None  # depends_on moves version rows in ways not worth guessing
            revisions[revision] = found
        linear = all(
            len(rev.down_revisions) <= 1 and len(rev.nextrev) <= 1 and not rev.resolved_dependencies
            for rev in self.script.graph
        )
        first, last = revisions[applied[0]], revisions[applied[-1]]
        if self.operation == "upgrade":
            if known is not None:
                heads = set(known)
                for revision in applied:
                    heads = (heads - set(revisions[revision].down_revisions)) | {revision}
                return known, tuple(sorted(heads))
            return (tuple(first.down_revisions), (applied[-1],)) if linear else (None, None)
        if self.operation == "downgrade" and linear:
            return known or (applied[0],), tuple(last.down_revisions)
        return known, None

    async def _settle_doubt(
        self, tenant: Tenant, engine: AsyncEngine, result: TenantResult, probe: SessionProbe
    ) -> TenantResult:
        """Cancelled while a COMMIT was on the way: read where the tenant stands once that session is gone.

        Shielded and bounded by :data:`CLEANUP`. A server session that was
        ended finishes its COMMIT (or not) before it goes, so the version
        table is read only after the server no longer lists it; a SQLite
        connection's rollback already waited for its COMMIT. When that cannot
        be seen in time, ``to`` stays unknown.
        """
        with anyio.CancelScope(shield=True):
            deadline = time.monotonic() + CLEANUP
            while probe.sessions:
                left = deadline - time.monotonic()
                states = await probe.states(timeout=left) if left > 0 else [None]
                if all(state is not None and state.gone for state in states):
                    break
                if time.monotonic() >= deadline:
                    return result
                await anyio.sleep(0.02)
            return await self._read_back(tenant, engine, result, budget=deadline - time.monotonic())
        return result  # pragma: no cover - a shielded scope is never cancelled

    async def _read_back(
        self, tenant: Tenant, engine: AsyncEngine, result: TenantResult, began: float | None = None,
        budget: float = READ_BACK,
    ) -> TenantResult:
        """Read where a failed tenant stands now (bounded by ``budget`` and its deadline since ``began``)."""
        if self.timeout is not None and began is not None:
            budget = min(budget, self.timeout - (time.perf_counter() - began))
        if budget <= 0:
            return result
        tenant_config = self.config.copy(url=tenant.url, attributes={"tenant": tenant})
        with anyio.move_on_after(budget):
            try:
                state = await command.current(
                    tenant_config, engine=engine, script=self.script, tenant=tenant,
                    tenant_schema=tenant.schema,
                )
            except Exception as exc:  # best effort: the failure itself is what the report says
                log.debug("Could not read back where %s stands: %s", tenant.name, exc)
                return result
            return replace(result, to_heads=state.heads)
        return result


def _resolved(result: TenantResult, steps: _Steps, upgrade: bool) -> TenantResult:
    """A result whose COMMIT in doubt was read back: say how it ended, and count it if it committed.

    The steps in doubt shared one transaction: all of them committed if the
    last one's revision is where an upgraded tenant stands; else only where
    it stands is said.
    """
    if not steps.in_doubt or result.to_heads is None:
        return result
    where = ", ".join(result.to_heads) or "base"
    last = steps.in_doubt[-1]
    if upgrade and last in result.to_heads and last not in steps.applied:
        applied = (*result.applied, *steps.in_doubt)
        return replace(
            result, applied=applied, migrations=len(applied),
            error=f"{result.error}; read back: it committed, the tenant stands at {where}",
        )
    return replace(result, error=f"{result.error}; read back: the tenant stands at {where}")


def _cancelled_message(steps: _Steps) -> str:
    return "cancelled while migrating" + _what_the_steps_did(steps)


def _what_the_steps_did(steps: _Steps) -> str:
    """What an interrupted tenant's steps did: committed, rolled back, interrupted mid-step."""
    said = ""
    if steps.applied:
        said += f"; committed before that: {', '.join(steps.applied)}"
    if steps.rolled_back:
        said += f"; {steps.rolled_back} uncommitted step(s) rolled back"
    if steps.in_doubt:
        said += (
            f"; the COMMIT of {', '.join(steps.in_doubt)} was cut off before the answer, so whether "
            "it committed is unknown"
        )
    if steps.failed:
        said += f"; the step in flight was interrupted: {steps.failed}"
    elif steps.in_flight:
        said += "; the step in flight was interrupted"
    if not steps.applied and not steps.in_doubt:
        said += "; nothing was committed"
    return said


def cancelling() -> bool:
    """Whether the current task is being cancelled (a cancellation exception raised by
    code in it without one is that code's error). Without the count (Python 3.10), any."""
    task = asyncio.current_task()
    count = getattr(task, "cancelling", None)
    return count is None or count() > 0


def _result(tenant: Tenant, status: TenantStatus, **kw: Any) -> TenantResult:
    return TenantResult(tenant.name, tenant.masked_url, tenant.schema, status, **kw)


def one_line(exc: BaseException) -> str:
    """``exc``'s message as one line (every line kept, breaks escaped), passwords masked."""
    text_ = str(exc).strip()
    return mask_passwords_in(lines.one_line(text_) if text_ else type(exc).__name__)
