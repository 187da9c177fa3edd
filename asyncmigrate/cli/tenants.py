"""The command line's multi-tenant side: tenant sources, fan-out options, progress, report."""

from __future__ import annotations

import json
import re
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import click

from ..config import Config
from ..exceptions import ConfigError

if TYPE_CHECKING:
    from ..tenants import FanoutReport, Tenant, TenantEvent
    from ..tenants.fanout import Operation

__all__ = ["TenantOptions", "reference", "run_fanout", "tenant_options"]

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class TenantOptions:
    """What the fan-out options on a command line said."""

    tenants: str | None = None
    tenants_query: str | None = None
    control_url: str | None = None
    schemas: str | None = None
    sqlite_glob: str | None = None
    concurrency: int = 8
    per_host: int | None = None
    fail_fast: bool = False
    max_failures: str | None = None
    canary: int | None = None
    timeout: float | None = None
    retries: int = 0
    shard: str | None = None
    report: str | None = None
    rerun_failed: str | None = None
    progress: bool | None = None

    @property
    def active(self) -> bool:
        """True when a tenant source was given (the command fans out)."""
        return any((self.tenants, self.tenants_query, self.schemas, self.sqlite_glob))


_OPTIONS: list[Callable[[F], F]] = [
    click.option("--tenants", metavar="FILE", help="Migrate the tenants listed in a TOML/JSON file."),
    click.option("--tenants-query", metavar="SQL",
                 help="Migrate the tenants a query returns (name, url[, schema]); needs --control-url."),
    click.option("--control-url", metavar="URL", help="The database --tenants-query runs against."),
    click.option("--schemas", metavar="PATTERN",
                 help="Migrate every schema matching a LIKE pattern (e.g. 'tenant_%') of the database."),
    click.option("--sqlite-glob", metavar="PATTERN", help="Migrate every SQLite file matching a glob."),
    click.option("--concurrency", type=click.IntRange(min=1), default=8, show_default=True,
                 help="Tenants migrated at once."),
    click.option("--per-host", type=click.IntRange(min=1), metavar="N",
                 help="At most N tenants at once per database server."),
    click.option("--fail-fast", is_flag=True, help="Start no more tenants after the first failure."),
    click.option("--max-failures", metavar="N|X%",
                 help="Start no more tenants after N failures (or X%% of all tenants)."),
    click.option("--canary", type=click.IntRange(min=1), metavar="N",
                 help="Migrate the first N tenants first; stop if any of them fails."),
    click.option("--timeout", "tenant_timeout", type=float, metavar="SECONDS",
                 help="Seconds one tenant may take; it is rolled back after that."),
    click.option("--retries", type=click.IntRange(min=0), default=0,
                 help="Retry a tenant that cannot connect this many times (with backoff)."),
    click.option("--shard", metavar="I/N", help="Migrate only the stable subset I (0-based) of N."),
    click.option("--report", metavar="FILE", help="Write the JSON report of every tenant here."),
    click.option("--rerun-failed", metavar="REPORT",
                 help="Only the tenants that failed or were skipped in an earlier report."),
    click.option("--progress/--no-progress", default=None,
                 help="A live progress bar (default: when stderr is a terminal)."),
]


def tenant_options(fn: F) -> F:
    """Add the fan-out options to a click command (they arrive as ``tenant_*`` keywords)."""
    for option in reversed(_OPTIONS):
        fn = option(fn)
    return fn


def options_from(kwargs: dict[str, Any]) -> TenantOptions:
    """Pop the fan-out options from a command's keyword arguments."""
    names = (
        "tenants", "tenants_query", "control_url", "schemas", "sqlite_glob", "concurrency",
        "per_host", "fail_fast", "max_failures", "canary", "tenant_timeout", "retries", "shard",
        "report", "rerun_failed", "progress",
    )
    values = {name: kwargs.pop(name, None) for name in names}
    values["timeout"] = values.pop("tenant_timeout")
    values["concurrency"] = values["concurrency"] or 8
    values["retries"] = values["retries"] or 0
    values["fail_fast"] = bool(values["fail_fast"])
    return TenantOptions(**values)


def _parse_shard(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not match:
        raise ConfigError(f"--shard takes I/N (e.g. 0/4), not {text!r}")
    index, count = int(match[1]), int(match[2])
    if count < 1 or index >= count:
        raise ConfigError(f"--shard {text}: need 0 <= I < N")
    return index, count


def _parse_max_failures(text: str | None) -> int | float | None:
    if text is None:
        return None
    value = text.strip()
    try:
        if value.endswith("%"):
            fraction = float(value[:-1]) / 100
            if not 0 < fraction < 1:
                raise ValueError
            return fraction
        count = int(value)
        if count < 1:
            raise ValueError
        return count
    except ValueError as exc:
        raise ConfigError(f"--max-failures takes a count >= 1 or a percentage, not {text!r}") from exc


async def _load_tenants(config: Config, options: TenantOptions) -> list[Tenant]:
    from ..tenants import (
        FanoutReport,
        discover_schemas,
        load_tenants_file,
        sqlite_files,
        tenants_from_query,
    )

    sources = [s for s in (options.tenants, options.tenants_query, options.schemas, options.sqlite_glob) if s]
    if len(sources) > 1:
        raise ConfigError("Give one tenant source: --tenants, --tenants-query, --schemas or --sqlite-glob")
    if options.tenants:
        tenants = load_tenants_file(options.tenants)
    elif options.tenants_query:
        if not options.control_url:
            raise ConfigError("--tenants-query needs --control-url")
        tenants = await tenants_from_query(options.control_url, options.tenants_query)
    elif options.schemas:
        url = config.database_url
        if not url:
            raise ConfigError("--schemas needs a database URL (sqlalchemy.url or --url)")
        tenants = await discover_schemas(url, options.schemas)
    else:
        tenants = sqlite_files(options.sqlite_glob or "")
    if options.rerun_failed:
        wanted = FanoutReport.read(options.rerun_failed).names("failed", "skipped")
        tenants = [t for t in tenants if t.name in wanted]
    return tenants


async def reference(config: Config, options: TenantOptions, name: str | None) -> Tenant:
    """Pick the tenant ``revision --autogenerate`` compares with (``name``, or the first)."""
    tenants = await _load_tenants(config, options)
    if not tenants:
        raise ConfigError("The tenant source lists no tenants")
    if name is None:
        return tenants[0]
    for tenant in tenants:
        if tenant.name == name:
            return tenant
    raise ConfigError(f"No tenant named {name!r} in the tenant source")


class _Progress:
    """Render fan-out progress: a rich bar on a terminal, one plain line per tenant elsewhere."""

    def __init__(self, total: int, live: bool, quiet: bool) -> None:
        self.total = total
        self.live = live and not quiet
        self.quiet = quiet
        self.done = 0
        self.counts = {"ok": 0, "unchanged": 0, "failed": 0, "skipped": 0}
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> _Progress:
        if self.live:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._bar = Progress(
                TextColumn("[bold]migrating"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[summary]}"),
                TimeElapsedColumn(),
                TextColumn("eta"),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=False,
            )
            self._bar.__enter__()
            self._task = self._bar.add_task("tenants", total=self.total, summary=self._summary())
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)

    def _summary(self) -> str:
        c = self.counts
        failed = f"[red]{c['failed']} failed[/red]" if c["failed"] else "0 failed"
        return f"{c['ok']} ok, {c['unchanged']} unchanged, {failed}"

    def __call__(self, event: TenantEvent) -> None:
        if event.kind != "finished" or event.result is None:
            return
        result = event.result
        if event.total and event.total != self.total:
            self.total = event.total  # a shard covers fewer tenants than the source lists
            if self._bar is not None:
                self._bar.update(self._task, total=self.total)
        self.done += 1
        self.counts[result.status] += 1
        if self._bar is not None:
            self._bar.update(self._task, advance=1, summary=self._summary())
            return
        if self.quiet:
            return
        moved = f"{', '.join(result.from_heads) or 'base'} -> {', '.join(result.to_heads) or 'base'}"
        detail = f"{result.status} {moved}"
        if result.status == "failed":
            detail = f"FAILED: {result.error}"
        click.echo(f"[{self.done}/{self.total}] {result.name}: {detail} ({result.seconds:.2f}s)", err=True)


def _print_summary(report: FanoutReport, operation: str) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(stderr=False, highlight=False)
    counts = report.counts
    if operation in ("current", "check"):
        table = Table(title="Revisions across tenants")
        table.add_column("revision(s)")
        table.add_column("tenants", justify="right")
        for heads, count in report.histogram().items():
            table.add_row(heads, str(count))
        console.print(table)
    failed = report.failed
    if failed:
        table = Table(title=f"Failed tenants ({len(failed)})")
        table.add_column("tenant")
        table.add_column("error")
        for result in failed[:50]:
            table.add_row(result.name, result.error or "")
        if len(failed) > 50:
            table.add_row("...", f"{len(failed) - 50} more in the report")
        console.print(table)
    line = ", ".join(f"{n} {status}" for status, n in counts.items() if n)
    stopped = f"; stopped early: {report.stopped}" if report.stopped else ""
    console.print(f"{len(report.results)} tenants in {report.seconds:.1f}s: {line or 'none'}{stopped}")


async def _run_with_signals(run: Callable[[anyio.Event], Any]) -> Any:
    """Run ``run(stop)``: the first Ctrl-C/SIGTERM stops new work, the second cancels."""
    stop = anyio.Event()
    result: list[Any] = []
    async with anyio.create_task_group() as group:

        async def watch() -> None:
            signals = [signal.SIGINT, signal.SIGTERM]
            with anyio.open_signal_receiver(*signals) as received:
                async for _ in received:
                    if not stop.is_set():
                        click.echo(
                            "\nStopping: no new tenants start; in-flight ones finish "
                            "(press again to cancel them).", err=True,
                        )
                        stop.set()
                    else:
                        click.echo("\nCancelling in-flight tenants (they roll back).", err=True)
                        main_scope.cancel()
                        return

        with anyio.CancelScope() as main_scope:
            if sys.platform != "win32":
                group.start_soon(watch)
            result.append(await run(stop))
        group.cancel_scope.cancel()
    return result[0] if result else None


async def run_fanout(
    config: Config,
    options: TenantOptions,
    operation: Operation,
    target: Any,
    *,
    quiet: bool,
    as_json: bool,
    env: dict[str, Any],
) -> FanoutReport:
    """Run one command across the selected tenants and render progress; return the report."""
    from ..tenants import FanoutReport, migrate_tenants

    shard = _parse_shard(options.shard)
    max_failures = _parse_max_failures(options.max_failures)
    tenants = await _load_tenants(config, options)
    live = options.progress if options.progress is not None else sys.stderr.isatty()
    progress = _Progress(len(tenants), live and not as_json, quiet or as_json)
    report_path = options.report
    report = FanoutReport(operation, None)

    async def run(stop: anyio.Event) -> FanoutReport:
        with progress:
            return await migrate_tenants(
                config,
                tenants,
                target,
                operation=operation,
                concurrency=options.concurrency,
                per_host=options.per_host,
                fail_fast=options.fail_fast,
                max_failures=max_failures,
                canary=options.canary,
                timeout=options.timeout,
                retries=options.retries,
                shard=shard,
                stop=stop,
                on_event=progress,
                report_path=report_path,
                into=report,
                **env,
            )

    # Cancelled (a second Ctrl-C) or not, ``report`` holds every tenant's outcome.
    await _run_with_signals(run)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    elif not quiet:
        _print_summary(report, operation)
    return report
