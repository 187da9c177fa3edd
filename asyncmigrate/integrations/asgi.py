"""Migrate at application start-up: an ASGI lifespan that is safe with many workers.

::

    from fastapi import FastAPI
    import asyncmigrate

    app = FastAPI(lifespan=asyncmigrate.lifespan("alembic.ini"))

:func:`lifespan` returns a :class:`MigrationLifespan`. Used as an app's
``lifespan=`` it migrates before the app serves and hands the app a
:class:`StartupStatus` (``request.state.asyncmigrate``); used as
``async with asyncmigrate.lifespan(config) as status:`` it nests inside an
app's own lifespan. Everything runs in the server's event loop.

Many workers, replicas and hosts may start together against one database:
each runs ``upgrade``, which reads the version table (one query) and, only
when there is work, takes the cross-process migration lock and reads again.
So exactly one process migrates; the others wait on the lock, find the
database at head, and start.

When a migration fails, start-up fails by default (``on_failure="fail"``)
after one ``ERROR`` log line naming the target, the database and the cause;
with ``on_failure="serve"`` the app starts anyway and its
:class:`StartupStatus` reports the failure, so a readiness probe can keep
traffic away. :func:`readiness` asks the database itself.

With tenants (see :mod:`asyncmigrate.tenants`), ``core_tenants`` are migrated
before serving and ``tenants`` in the background while the app serves;
:class:`TenantProgress` counts them for a health endpoint.
"""

from __future__ import annotations

import logging
import os
import time
import traceback
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import anyio
from sqlalchemy.engine.url import URL
from sqlalchemy.ext.asyncio import AsyncEngine

from .. import command
from ..config import Config
from ..events import StepEvent, StepEventHandler
from ..exceptions import CommandError, MigrationError
from ..masking import get_logger
from ..results import MigrationResult
from ..signals import StopSignals, signal_name
from ..urls import mask_password, mask_passwords_in

if TYPE_CHECKING:
    from ..tenants import FanoutReport, TenantEvent, TenantSource

__all__ = [
    "FailurePolicy",
    "MigrationLifespan",
    "Readiness",
    "StartupState",
    "StartupStatus",
    "TenantProgress",
    "lifespan",
    "readiness",
]

log = get_logger("asyncmigrate.lifespan")

#: Where a start-up migration is.
StartupState: TypeAlias = Literal["pending", "migrating", "ready", "failed"]
#: What start-up does when migrating fails: raise (the server exits) or serve and report it.
FailurePolicy: TypeAlias = Literal["fail", "serve"]
#: An application's own lifespan: ``app -> async context manager`` (Starlette's protocol).
AppLifespan: TypeAlias = Callable[[Any], AbstractAsyncContextManager[Any]]


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    first = text.splitlines()[0] if text else ""
    return mask_passwords_in(first or type(exc).__name__)


class TenantProgress:
    """Count one fan-out's tenants as they start and finish, for a health endpoint to read.

    It owns nothing but counters: the fan-out (:func:`asyncmigrate.tenants.migrate_tenants`)
    does the work and reports :class:`~asyncmigrate.tenants.TenantEvent`\\ s to
    :meth:`record`.
    """

    def __init__(self, phase: Literal["core", "background"]) -> None:
        self.phase = phase
        """``core`` (migrated before serving) or ``background`` (while serving)."""
        self.total = 0
        """How many tenants the run covers (known once the first tenant starts)."""
        self.running: set[str] = set()
        """Tenants migrating right now."""
        self.finished: dict[str, str] = {}
        """Tenant name to its outcome: ``ok``, ``unchanged``, ``failed`` or ``skipped``."""
        self.errors: dict[str, str] = {}
        """Tenant name to its one-line error, for tenants that failed."""
        self.done = False
        """True once the run is over (finished, stopped or cancelled)."""
        self.error: str | None = None
        """Why the run itself failed (not one tenant), if it did."""
        self.report: FanoutReport | None = None
        """The fan-out's report, once it is over."""

    def record(self, event: TenantEvent) -> None:
        """Take one fan-out event into account."""
        if event.total:
            self.total = event.total
        if event.kind == "started":
            self.running.add(event.tenant)
        elif event.kind == "finished" and event.result is not None:
            self.running.discard(event.tenant)
            self.finished[event.tenant] = event.result.status
            if event.result.error and event.result.status == "failed":
                self.errors[event.tenant] = event.result.error

    def finish(self, report: FanoutReport | None = None, error: str | None = None) -> None:
        """Mark the run over, with its report or the error that ended it."""
        self.report = report
        self.error = error
        if report is not None:
            self.total = len(report.results)
            self.running.clear()
            for result in report.results:
                self.finished[result.name] = result.status
                if result.status == "failed" and result.error:
                    self.errors[result.name] = result.error
        self.done = True

    @property
    def counts(self) -> dict[str, int]:
        """Tenants per state: ``pending``, ``running``, ``ok``, ``unchanged``, ``failed``, ``skipped``."""
        counts = dict.fromkeys(("ok", "unchanged", "failed", "skipped"), 0)
        for status in self.finished.values():
            counts[status] = counts.get(status, 0) + 1
        seen = len(self.finished) + len(self.running)
        return {"pending": max(0, self.total - seen), "running": len(self.running), **counts}

    @property
    def succeeded(self) -> bool:
        """True once the run is over and every tenant ended ``ok`` or ``unchanged``."""
        return (
            self.done
            and self.error is None
            and all(s in ("ok", "unchanged") for s in self.finished.values())
        )

    def as_dict(self) -> dict[str, Any]:
        """Return the progress as JSON-ready data."""
        return {
            "phase": self.phase,
            "total": self.total,
            "done": self.done,
            "counts": self.counts,
            "errors": dict(self.errors),
            "error": self.error,
        }


class StartupStatus:
    """Hold what one application's start-up migration found and did.

    The lifespan that migrates owns and updates it; request handlers only
    read it (``request.state.asyncmigrate`` when the lifespan is the app's
    ``lifespan=``). It holds no connection: :attr:`ready` costs nothing, and
    :func:`readiness` is there to ask the database itself.
    """

    def __init__(self, target: str, on_failure: FailurePolicy) -> None:
        self.target = target
        """The revision target start-up migrates to."""
        self.on_failure: FailurePolicy = on_failure
        self.state: StartupState = "pending"
        """``pending``, ``migrating``, ``ready`` or ``failed``."""
        self.result: MigrationResult | None = None
        """What ``upgrade`` did to the application's database (None with tenants only)."""
        self.error: str | None = None
        """The one-line reason start-up migration failed."""
        self.exception: BaseException | None = None
        """The exception behind :attr:`error`."""
        self.core_tenants: TenantProgress | None = None
        """Progress of the tenants migrated before serving."""
        self.tenants: TenantProgress | None = None
        """Progress of the tenants migrated in the background while serving."""
        self.started_at: float | None = None
        """Wall-clock time (``time.time()``) start-up migration began."""
        self.finished_at: float | None = None
        """Wall-clock time start-up migration ended (background tenants aside)."""

    def __repr__(self) -> str:
        return f"<StartupStatus {self.state} target={self.target!r}>"

    @property
    def ready(self) -> bool:
        """True when the database (and every core tenant) reached the target."""
        return self.state == "ready"

    def as_dict(self) -> dict[str, Any]:
        """Return the status as JSON-ready data, e.g. for a ``/health`` endpoint."""
        data: dict[str, Any] = {
            "state": self.state,
            "ready": self.ready,
            "target": self.target,
            "error": self.error,
        }
        if self.result is not None:
            data.update(
                heads=list(self.result.to_heads),
                applied=len(self.result.steps),
                seconds=round(self.result.seconds, 6),
                waited_for_lock=round(self.result.waited_for_lock, 6),
            )
        if self.core_tenants is not None:
            data["core_tenants"] = self.core_tenants.as_dict()
        if self.tenants is not None:
            data["tenants"] = self.tenants.as_dict()
        return data


class MigrationLifespan:
    """Migrate an application's database(s) at start-up, as (or inside) an ASGI lifespan.

    It owns the order of start-up work -- the application's database, then
    the core tenants, then the background tenants -- the failure policy and
    the :class:`StartupStatus`. Locking, transactions and per-tenant isolation
    are the commands' and the fan-out's. Create it with :func:`lifespan`.

    Use it in one of two ways:

    * as an app's lifespan: ``FastAPI(lifespan=migration)``; Starlette calls
      ``migration(app)`` and the app's request state gets the status under
      ``state_key``, merged with the state of ``app_lifespan`` if given;
    * as an async context manager inside your own lifespan:
      ``async with migration as status: ...``.
    """

    def __init__(
        self,
        config: Config | str | os.PathLike[str],
        target: str = "head",
        *,
        url: str | URL | None = None,
        engine: AsyncEngine | None = None,
        on_failure: FailurePolicy = "fail",
        lock: bool | None = None,
        lock_timeout: float | None = None,
        on_step: StepEventHandler | None = None,
        core_tenants: TenantSource | None = None,
        tenants: TenantSource | None = None,
        migrate_database: bool | None = None,
        fanout_options: Mapping[str, Any] | None = None,
        app_lifespan: AppLifespan | None = None,
        state_key: str = "asyncmigrate",
        shutdown_grace: float = 10.0,
    ) -> None:
        if on_failure not in ("fail", "serve"):
            raise CommandError(f"on_failure must be 'fail' or 'serve', not {on_failure!r}")
        self.config = config if isinstance(config, Config) else Config(os.fspath(config))
        self.target = target
        self.url = url
        self.engine = engine
        self.on_failure: FailurePolicy = on_failure
        self.lock = lock
        self.lock_timeout = lock_timeout
        self.on_step = on_step
        self.core_tenants = core_tenants
        self.tenants = tenants
        if migrate_database is None:
            migrate_database = core_tenants is None and tenants is None
        self.migrate_database = migrate_database
        self.fanout_options: dict[str, Any] = dict(fanout_options or {})
        self.app_lifespan = app_lifespan
        self.state_key = state_key
        self.shutdown_grace = shutdown_grace
        self._stack: AsyncExitStack | None = None

    # -- the two ways in ------------------------------------------------------------

    async def __aenter__(self) -> StartupStatus:
        if self._stack is not None:
            raise CommandError("This lifespan is already running; create one per application")
        stack = AsyncExitStack()
        status = await stack.enter_async_context(self.run())
        self._stack = stack
        return status

    async def __aexit__(self, *exc_info: Any) -> bool | None:
        stack, self._stack = self._stack, None
        if stack is None:
            return None
        return await stack.__aexit__(*exc_info)

    def __call__(self, app: Any) -> AbstractAsyncContextManager[dict[str, Any]]:
        """Return the lifespan context for ``app`` (Starlette's ``lifespan=`` protocol)."""
        return self._app_context(app)

    @asynccontextmanager
    async def _app_context(self, app: Any) -> AsyncIterator[dict[str, Any]]:
        async with AsyncExitStack() as stack:
            try:
                status = await stack.enter_async_context(self.run())
            except Exception as exc:
                # The ERROR line said it all; the server's copy of the traceback would bury it.
                _drop_server_traceback(exc)
                raise
            state: dict[str, Any] = {self.state_key: status}
            if self.app_lifespan is None:
                yield state
                return
            async with self.app_lifespan(app) as app_state:
                if app_state:
                    state.update(app_state)
                yield state

    # -- the work ------------------------------------------------------------------------

    @asynccontextmanager
    async def run(self) -> AsyncIterator[StartupStatus]:
        """Migrate, yield the status while the application serves, then stop background work."""
        status = StartupStatus(self.target, self.on_failure)
        await self._start(status)
        if self.tenants is None or status.state != "ready":
            yield status
            return
        stop = anyio.Event()
        finished = anyio.Event()
        async with anyio.create_task_group() as group:
            group.start_soon(self._background, status, stop, finished)
            try:
                yield status
            finally:
                # Start no new tenant; give in-flight ones time to commit, then cancel them.
                stop.set()
                with anyio.move_on_after(self.shutdown_grace, shield=True):
                    await finished.wait()
                group.cancel_scope.cancel()

    def _where(self) -> str:
        if self.url is not None:
            return mask_password(self.url)
        if self.engine is not None:
            return mask_password(self.engine.url)
        return self.config.masked_database_url or "the configured database"

    async def _start(self, status: StartupStatus) -> None:
        status.state = "migrating"
        status.started_at = time.time()
        # A server's SIGTERM/SIGINT (uvicorn waits for start-up to end before it
        # acts on one) cancels the migration: rolled back, lock released.
        with anyio.CancelScope() as scope, StopSignals(lambda _: scope.cancel(), chain=True) as stops:
            try:
                await self._migrate(status)
            except Exception:
                if stops.first is None:
                    raise
                log.debug("asyncmigrate: error while stopping the start-up migration", exc_info=True)
                scope.cancel()
        if stops.first is None or not scope.cancel_called:
            stops.resend_unhandled()  # no server handles it: the default action, now
            return  # migrated (a signal that came after is the server's business)
        status.state = "failed"
        status.error = f"interrupted by {signal_name(stops.first)}"
        status.finished_at = time.time()
        log.error(
            "asyncmigrate: start-up migration to %s interrupted by %s: stopped and rolled back, "
            "the lock released; the application will not start",
            self.target, signal_name(stops.first),
        )
        # Nothing of the application started: end as the signal asks (exit 143, 130).
        stops.end_process()
        status.exception = MigrationError(f"start-up migration {status.error}")
        raise status.exception

    async def _migrate(self, status: StartupStatus) -> None:
        try:
            if self.migrate_database:
                await self._migrate_database(status)
            if self.core_tenants is not None:
                await self._migrate_core_tenants(status)
        except Exception as exc:
            status.state = "failed"
            status.error = _one_line(exc)
            status.exception = exc
            status.finished_at = time.time()
            log.error(
                "asyncmigrate: start-up migration to %s failed: %s (%s)",
                self.target,
                status.error,
                "the application will not start" if self.on_failure == "fail"
                else "serving anyway; the status reports not ready",
            )
            if self.on_failure == "fail":
                raise
            return
        status.state = "ready"
        status.finished_at = time.time()

    def _step_handler(self) -> StepEventHandler:
        """The caller's ``on_step``, after a warning for each step retried on a lock timeout.

        A start-up that waits for a table lock is worth an operator's notice.
        """
        given = self.on_step

        def handle(event: StepEvent) -> None:
            if event.kind == "retrying":
                log.warning("asyncmigrate: %s", event.error)
            if given is not None:
                given(event)

        return handle

    async def _migrate_database(self, status: StartupStatus) -> None:
        where = self._where()
        log.debug("asyncmigrate: checking %s against %s", where, self.target)
        result = await command.upgrade(
            self.config,
            self.target,
            url=self.url,
            engine=self.engine,
            on_step=self._step_handler(),
            lock=self.lock,
            lock_timeout=self.lock_timeout,
        )
        status.result = result
        heads = ", ".join(result.to_heads) or "base"
        if result.changed:
            log.info(
                "asyncmigrate: migrated %s to %s (%d steps in %.2fs)",
                result.url or where, heads, len(result.steps), result.seconds,
            )
        elif result.waited_for_lock:
            log.info(
                "asyncmigrate: %s is at %s; another process migrated it (waited %.2fs)",
                result.url or where, heads, result.waited_for_lock,
            )
        else:
            log.info("asyncmigrate: %s is already at %s", result.url or where, heads)

    async def _migrate_core_tenants(self, status: StartupStatus) -> None:
        from ..tenants import migrate_tenants

        progress = status.core_tenants = TenantProgress("core")
        assert self.core_tenants is not None
        try:
            report = await migrate_tenants(
                self.config, self.core_tenants, self.target, on_event=progress.record,
                **self.fanout_options,
            )
        except Exception as exc:
            progress.finish(error=_one_line(exc))
            raise
        progress.finish(report)
        log.info(
            "asyncmigrate: core tenants migrated to %s: %s",
            self.target, ", ".join(f"{n} {k}" for k, n in report.counts.items() if n),
        )
        if not report.succeeded:
            failed = report.failed
            first = f"{failed[0].name}: {failed[0].error}" if failed else "run stopped early"
            raise MigrationError(
                f"{len(failed)} of {len(report.results)} core tenants failed ({first})"
            )

    async def _background(
        self, status: StartupStatus, stop: anyio.Event, finished: anyio.Event
    ) -> None:
        from ..tenants import migrate_tenants

        progress = status.tenants = TenantProgress("background")
        assert self.tenants is not None
        try:
            report = await migrate_tenants(
                self.config, self.tenants, self.target, stop=stop, on_event=progress.record,
                **self.fanout_options,
            )
        except Exception as exc:
            progress.finish(error=_one_line(exc))
            log.error("asyncmigrate: background tenant migration failed: %s", progress.error)
        else:
            progress.finish(report)
            counts = ", ".join(f"{n} {k}" for k, n in report.counts.items() if n)
            if report.succeeded:
                log.info("asyncmigrate: background tenants migrated to %s: %s", self.target, counts)
            else:
                log.error(
                    "asyncmigrate: background tenants: %s%s",
                    counts, f" ({report.stopped})" if report.stopped else "",
                )
        finally:
            finished.set()


class _OneTraceback(logging.Filter):
    """Drop the one log record that is the formatted traceback of a given exception."""

    def __init__(self, logger: logging.Logger, exc: BaseException) -> None:
        super().__init__()
        self.logger = logger
        self.last_line = "".join(traceback.format_exception_only(type(exc), exc)).strip()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message.startswith("Traceback") and message.rstrip().endswith(self.last_line):
            self.logger.removeFilter(self)
            return False
        return True


def _drop_server_traceback(exc: BaseException) -> None:
    """Keep the server from logging ``exc``'s traceback after the lifespan's one ERROR line.

    Starlette reports a lifespan that raised with its formatted traceback,
    and uvicorn logs it on ``uvicorn.error``; the one line asyncmigrate
    logged already names the target, the database and the cause (the
    exception stays on :attr:`StartupStatus.exception`).
    """
    logger = logging.getLogger("uvicorn.error")
    for stale in [f for f in logger.filters if isinstance(f, _OneTraceback)]:
        logger.removeFilter(stale)  # an earlier start-up's, never logged (not uvicorn)
    logger.addFilter(_OneTraceback(logger, exc))


def lifespan(
    config: Config | str | os.PathLike[str],
    target: str = "head",
    *,
    url: str | URL | None = None,
    engine: AsyncEngine | None = None,
    on_failure: FailurePolicy = "fail",
    lock: bool | None = None,
    lock_timeout: float | None = None,
    on_step: StepEventHandler | None = None,
    core_tenants: TenantSource | None = None,
    tenants: TenantSource | None = None,
    migrate_database: bool | None = None,
    fanout_options: Mapping[str, Any] | None = None,
    app_lifespan: AppLifespan | None = None,
    state_key: str = "asyncmigrate",
    shutdown_grace: float = 10.0,
) -> MigrationLifespan:
    """Return a lifespan that migrates to ``target`` before the application serves.

    :param config: the :class:`~asyncmigrate.Config`, or the path of an ``alembic.ini``.
    :param target: the revision to upgrade to (``head``, ``heads``, ``label@head``...).
    :param url: migrate this database instead of the configured one.
    :param engine: take the connection from this ``AsyncEngine`` (e.g. the app's own).
    :param on_failure: ``fail`` (default): log one error line and raise, so the
        server does not start; ``serve``: log it, start, and report not ready.
    :param lock: hold the cross-process migration lock (default: config, else on).
    :param lock_timeout: seconds to wait for another process's migration (default 300).
    :param on_step: called with every :class:`~asyncmigrate.events.StepEvent`.
    :param core_tenants: tenants to migrate before serving (a failure is a start-up failure).
    :param tenants: tenants to migrate in the background while serving.
    :param migrate_database: also migrate the configured database (default:
        only when no tenants are given).
    :param fanout_options: more arguments for :func:`asyncmigrate.tenants.migrate_tenants`
        (``concurrency``, ``per_host``, ``timeout``...).
    :param app_lifespan: the application's own lifespan, entered after migrating
        when this object is the app's ``lifespan=``; its state is merged in.
    :param state_key: the request-state name of the :class:`StartupStatus`.
    :param shutdown_grace: seconds background tenants get to finish at shutdown.
    """
    return MigrationLifespan(
        config,
        target,
        url=url,
        engine=engine,
        on_failure=on_failure,
        lock=lock,
        lock_timeout=lock_timeout,
        on_step=on_step,
        core_tenants=core_tenants,
        tenants=tenants,
        migrate_database=migrate_database,
        fanout_options=fanout_options,
        app_lifespan=app_lifespan,
        state_key=state_key,
        shutdown_grace=shutdown_grace,
    )


@dataclass(frozen=True)
class Readiness:
    """Whether a database is at its head revision(s), as a readiness probe sees it."""

    ready: bool
    """True when nothing is left to upgrade."""
    heads: tuple[str, ...] = ()
    """The revisions the version table holds."""
    pending: tuple[str, ...] = ()
    """Revisions an ``upgrade heads`` would still apply."""
    error: str | None = None
    """Why the database could not be asked (then ``ready`` is False)."""

    def as_dict(self) -> dict[str, Any]:
        """Return the answer as JSON-ready data."""
        return {
            "ready": self.ready,
            "heads": list(self.heads),
            "pending": list(self.pending),
            "error": self.error,
        }


async def readiness(
    config: Config | str | os.PathLike[str],
    *,
    url: str | URL | None = None,
    engine: AsyncEngine | None = None,
    timeout: float = 5.0,
) -> Readiness:
    """Ask the database whether it is at head; never raise.

    One query reads the version table. An unreachable database, a missing
    configuration or a probe slower than ``timeout`` seconds answers not
    ready, with the reason in :attr:`Readiness.error`.
    """
    cfg = config if isinstance(config, Config) else Config(os.fspath(config))
    try:
        with anyio.fail_after(timeout):
            state = await command.current(cfg, url=url, engine=engine)
    except TimeoutError:
        return Readiness(False, error=f"no answer within {timeout:g}s")
    except Exception as exc:
        log.debug("readiness probe failed", exc_info=True)
        return Readiness(False, error=_one_line(exc))
    return Readiness(state.at_head, state.heads, state.pending)
