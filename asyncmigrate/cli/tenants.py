"""The command line's multi-tenant side: tenant sources, fan-out options, progress, report."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import click

from ..config import Config, missing_url_error
from ..exceptions import ConfigError
from ..lines import printable
from ..signals import StopSignals, signal_name
from .params import Seconds

if TYPE_CHECKING:
    from ..tenants import FanoutReport, Tenant, TenantEvent
    from ..tenants.fanout import Operation

__all__ = ["TenantOptions", "reference", "run_fanout", "tenant_options"]

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


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
    jobs: int | None = None
    jobs_worker: bool = False
    argv: tuple[str, ...] = ()
    """The command line's arguments (what ``--jobs`` gives its workers, less what it decides)."""

    @property
    def source_given(self) -> bool:
        """True when a tenant source was given."""
        return any((self.tenants, self.tenants_query, self.schemas, self.sqlite_glob))

    @property
    def fleet_only(self) -> list[str]:
        """The fan-out options given that mean nothing to a plain single-database run."""
        given = {
            "--timeout": self.timeout is not None, "--retries": bool(self.retries),
            "--report": self.report is not None, "--fail-fast": self.fail_fast,
            "--max-failures": self.max_failures is not None, "--canary": self.canary is not None,
            "--shard": self.shard is not None, "--rerun-failed": self.rerun_failed is not None,
            "--per-host": self.per_host is not None, "--jobs": self.jobs is not None,
        }
        return [name for name, on in given.items() if on]

    @property
    def active(self) -> bool:
        """True when the command fans out: a tenant source, or fan-out options on one database.

        Without a tenant source, ``--timeout``, ``--retries``, ``--report`` and
        the other fan-out options make the configured database a fleet of one.
        """
        return self.source_given or self.jobs_worker or bool(self.fleet_only)


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
                 help="Start no more tenants after N failures (or X% of all tenants)."),
    click.option("--canary", type=click.IntRange(min=1), metavar="N",
                 help="Migrate the first N tenants first; stop if any of them fails."),
    click.option("--timeout", "tenant_timeout", type=Seconds(positive=True), metavar="SECONDS",
                 help="Seconds one tenant may take; it is rolled back after that."),
    click.option("--retries", type=click.IntRange(min=0), default=0,
                 help="Retry a tenant that cannot connect this many times (with backoff)."),
    click.option("--shard", metavar="I/N", help="Migrate only the stable subset I (0-based) of N."),
    click.option("--report", metavar="FILE", help="Write the JSON report of every tenant here."),
    click.option("--rerun-failed", metavar="REPORT",
                 help="Only the tenants that failed or were skipped in an earlier report."),
    click.option("--progress/--no-progress", default=None,
                 help="A live progress bar (default: when stderr is a terminal)."),
    click.option("--jobs", type=click.IntRange(min=1), metavar="N",
                 help="Split the tenants between N worker processes (each with its share of "
                 "--concurrency): for fleets a single core cannot keep up with."),
    click.option("--jobs-worker", is_flag=True, hidden=True,
                 help="Be one worker of a --jobs run (tenants as JSON on stdin)."),
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
        "report", "rerun_failed", "progress", "jobs", "jobs_worker",
    )
    values = {name: kwargs.pop(name, None) for name in names}
    values["jobs_worker"] = bool(values["jobs_worker"])
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
        discover_schemas,
        load_tenants_file,
        sqlite_files,
        tenants_from_query,
    )

    if options.jobs_worker:  # the parent of a --jobs run selected them
        from .jobs import read_tenants

        return read_tenants(sys.stdin.read())
    sources = [(flag, value) for flag, value in (
        ("--tenants", options.tenants), ("--tenants-query", options.tenants_query),
        ("--schemas", options.schemas), ("--sqlite-glob", options.sqlite_glob),
    ) if value]
    if not sources:
        return [_the_database(config)]
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
    if not tenants:  # a mistyped path or pattern must not pass as a fleet with nothing to do
        flag, value = sources[0]
        click.echo(printable(f"warning: {flag} {value!r} names no tenant"), err=True)
    return tenants


def _the_database(config: Config) -> Tenant:
    """The configured database as a fleet of one (fan-out options without a tenant source)."""
    from ..tenants import Tenant
    from ..urls import to_async_url

    url = config.database_url
    if not url:
        raise missing_url_error("pass --url")
    async_url = to_async_url(url)
    name = (async_url.database or "").rsplit("/", 1)[-1] or "database"
    return Tenant(name, async_url.render_as_string(hide_password=False))


def _rerun_filter(tenants: list[Tenant], options: TenantOptions) -> list[Tenant]:
    """Keep the tenants an earlier report lists as failed or skipped (``--rerun-failed``)."""
    from ..tenants import FanoutReport

    if not options.rerun_failed:
        return tenants
    wanted = FanoutReport.read(options.rerun_failed).names("failed", "skipped")
    return [t for t in tenants if t.name in wanted]


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
        moved = f"{_heads(result.from_heads)} -> {_heads(result.to_heads)}"
        detail = f"{result.status} {moved}"
        if result.status == "failed":
            detail = f"FAILED: {result.error}"
            if result.applied:
                detail += f" [committed: {', '.join(result.applied)}; now at {_heads(result.to_heads)}]"
        tries = []
        if result.step_retries:
            tries.append(_retries(result.step_retries))
        if result.attempts > 1:
            tries.append(f"{result.attempts} connection attempts")
        extra = f"; {', '.join(tries)}" if tries else ""
        line = f"[{self.done}/{self.total}] {result.name}: {detail} ({result.seconds:.2f}s{extra})"
        click.echo(printable(line), err=True)


def _retries(count: int) -> str:
    return f"{count} lock-timeout retr{'y' if count == 1 else 'ies'}"


def _heads(heads: tuple[str, ...] | None) -> str:
    """Revisions for a human: ``base`` when none, ``unknown`` when not known."""
    if heads is None:
        return "unknown"
    return ", ".join(heads) or "base"


def _cell(text: str) -> Any:
    """A table cell showing ``text`` literally: no rich markup, no control characters."""
    from rich.text import Text

    return Text(printable(text))


def _print_summary(report: FanoutReport, operation: str, *, quiet: bool = False) -> None:
    """Print a fan-out's results and failures, then (unless ``quiet``) its one-line summary."""
    from rich.console import Console
    from rich.table import Table

    # Not on a terminal (a CI log, a file): lines and table cells are never wrapped.
    console = Console(stderr=False, highlight=False, width=None if sys.stdout.isatty() else 100_000)
    counts = report.counts
    for result in report.results:  # validate: each drift and repair, a line each
        for detail in result.details:
            console.print(_cell(f"{result.name}: {detail}"))
    if operation in ("current", "check"):
        table = Table(title="Revisions across tenants")
        table.add_column("revision(s)")
        table.add_column("tenants", justify="right")
        for heads, count in report.histogram().items():
            table.add_row(_cell(heads), str(count))
        console.print(table)
    failed = report.failed
    if failed:
        table = Table(title=f"Failed tenants ({len(failed)})")
        table.add_column("tenant")
        table.add_column("error")
        for result in failed[:50]:
            table.add_row(_cell(result.name), _cell(result.error or ""))
        if len(failed) > 50:
            table.add_row("...", f"{len(failed) - 50} more in the report")
        console.print(table)
    if quiet:
        return
    line = ", ".join(f"{n} {status}" for status, n in counts.items() if n)
    stopped = f"; stopped early: {report.stopped}" if report.stopped else ""
    retried = [r for r in report.results if r.step_retries]
    if retried:
        stopped += f"; {_retries(sum(r.step_retries for r in retried))} in {len(retried)} tenant(s)"
    total = len(report.results)
    tenants = "tenant" if total == 1 else "tenants"
    console.print(_cell(f"{total} {tenants} in {report.seconds:.1f}s: {line or 'none'}{stopped}"))


def say_stop_signal(signum: int, *, first: bool) -> None:
    """Print the one line a fan-out gives a stop signal: the first stops new tenants, the next cancels."""
    lead = "\n" if sys.stderr.isatty() else ""  # after the terminal's ^C
    name = signal_name(signum)
    if first:
        click.echo(f"{lead}{name}: stopping; no new tenants start, in-flight ones finish "
                   "(send it again to cancel them).", err=True)
    else:
        click.echo(f"{lead}{name} again: cancelling in-flight tenants (they roll back).", err=True)


async def _run_with_signals(
    run: Callable[[anyio.Event], Awaitable[T]], *, quiet: bool = False
) -> tuple[T | None, int | None]:
    """Run ``run(stop)``: the first SIGINT/SIGTERM stops new work, the second cancels.

    Each signal prints one line (unless ``quiet``: a ``--jobs`` worker, whose
    parent says it once). Return the result (None when cancelled) and the
    first signal received, if any.
    """
    stop = anyio.Event()
    result: list[T] = []
    with anyio.CancelScope() as scope:

        def on_signal(signum: int) -> None:
            if not stop.is_set():
                if not quiet:
                    say_stop_signal(signum, first=True)
                stop.set()
            elif not scope.cancel_called:
                if not quiet:
                    say_stop_signal(signum, first=False)
                scope.cancel()

        with StopSignals(on_signal) as watch:
            result.append(await run(stop))
    return (result[0] if result else None), watch.first


async def run_fanout(
    config: Config,
    options: TenantOptions,
    operation: Operation,
    target: Any,
    *,
    quiet: bool,
    as_json: bool,
    env: dict[str, Any],
) -> tuple[FanoutReport, int | None]:
    """Run one command across the selected tenants, rendering progress; return the report and stop signal."""
    from ..tenants import FanoutReport, migrate_tenants, select_tenants
    from ..tenants.fanout import _target_text
    from .jobs import Channel, Workers, check_jobs, workers

    shard = _parse_shard(options.shard)
    max_failures = _parse_max_failures(options.max_failures)
    check_jobs(options.jobs, fail_fast=options.fail_fast, max_failures=options.max_failures,
               canary=options.canary)
    worker = options.jobs_worker
    pool: Workers | None = None
    count = workers(options.jobs or 1, options.concurrency, options.per_host)
    if count > 1 and not worker:  # started first: their start-up overlaps reading the source
        pool = Workers(list(options.argv), count, concurrency=options.concurrency, per_host=options.per_host)
        await pool.start()
    try:
        # The shard is cut from the whole source, then narrowed to an earlier report's
        # failures: a re-run of shard I covers exactly shard I's failed tenants.
        selection = await select_tenants(await _load_tenants(config, options), shard)
        tenants = _rerun_filter(selection.tenants, options)
    except BaseException:
        if pool is not None:
            await pool.abort()
        raise
    live = options.progress if options.progress is not None else sys.stderr.isatty()
    progress = _Progress(len(tenants), live and not as_json and not worker, quiet or as_json or worker)
    on_event: Callable[[TenantEvent], None] = progress
    channel = Channel() if worker else None
    if channel is not None:  # each finished tenant goes to the parent at once
        def on_event(event: TenantEvent) -> None:
            if event.kind == "finished" and event.result is not None:
                channel.send("result", event.result.to_dict())

    report_path = None if worker else options.report
    report = FanoutReport(operation, None)
    if selection.empty_shard:
        click.echo(f"warning: {selection.describe_empty()}", err=True)

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
                stop=stop,
                on_event=on_event,
                report_path=report_path,
                into=report,
                **env,
            )

    if pool is not None:
        report.target = _target_text(target)
        with progress:
            signum = await pool.run(tenants, report=report, on_event=progress)
        if report_path is not None:
            report.write(report_path)
    else:
        # Cancelled (a second Ctrl-C) or not, ``report`` holds every tenant's outcome.
        _, signum = await _run_with_signals(run, quiet=worker)
    if channel is not None:
        channel.send("report", report.to_dict())
        return report, signum
    if shard is not None:
        report.shards = [f"{shard[0]}/{shard[1]}"]
        if selection.empty_shard:
            report.warnings.append(selection.describe_empty())
        if report_path is not None:
            report.write(report_path)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:  # --quiet still prints results (current, check, validate) and failures
        _print_summary(report, operation, quiet=quiet)
    return report, signum


@click.group("tenants")
def tenants_group() -> None:
    """Fleet-wide tools for many tenants (see also --tenants on each command)."""


@tenants_group.group("report")
def report_group() -> None:
    """Work with fan-out reports (--report FILE)."""


@report_group.command("merge")
@click.argument("reports", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("-o", "--output", metavar="FILE", help="Write the merged fleet report here.")
@click.option("--json", "as_json", is_flag=True, help="Print the merged report as JSON.")
def merge_cmd(reports: tuple[str, ...], output: str | None, as_json: bool) -> None:
    """Merge the reports of a fleet's shards into one; exit 1 unless every tenant succeeded.

    Also exits 1 when shards of the split are missing (their tenants are unaccounted for).
    """
    from ..tenants import FanoutReport, merge_reports
    from .app import fail

    try:
        merged = merge_reports([FanoutReport.read(path) for path in reports])
    except ConfigError as exc:
        fail(str(exc))
    if output is not None:
        merged.write(output)
    if as_json:
        click.echo(json.dumps(merged.to_dict(), indent=2))
    else:
        _print_summary(merged, merged.operation)
    for warning in merged.warnings:
        click.echo(printable(f"warning: {warning}"), err=True)
    missing = any(w.startswith("shard report(s) missing") for w in merged.warnings)
    sys.exit(1 if missing else merged.exit_code)
