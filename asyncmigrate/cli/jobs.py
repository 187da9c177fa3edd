"""``--jobs N``: one fan-out run by N worker processes, with one progress and one report.

A process runs Python on one core at a time, and a tenant's migration is
mostly Python: its env.py, its revision files, the DDL they compile. Where
a fleet's databases answer faster than one core can keep up (SQLite files,
a fast local server), ``--jobs`` splits the selected tenants between N
processes of the same command, each migrating its part under its share of
``--concurrency``.

The parent selects the tenants (source, ``--shard``, ``--rerun-failed``)
and hands each worker its part on stdin; workers stream each finished
tenant's result back on stdout (one marked JSON line each, so a revision
that prints is passed through, not parsed) and end with their report. The
parent renders the progress, merges the reports into one (tenants in the
order the source listed them), and forwards SIGINT/SIGTERM to the
workers, which stop the way a single process does: the first signal
starts no more tenants, the second cancels those in flight. A worker that
dies without reporting leaves its unreported tenants ``failed`` with the
reason, never missing; a worker whose parent was killed stops as on
SIGTERM when its next result finds nobody reading.

Options that need one count of failures across the fleet (``--fail-fast``,
``--max-failures``, ``--canary``) cannot be split this way and are refused.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import anyio
import click
from anyio.abc import Process
from anyio.streams.text import TextReceiveStream

from ..exceptions import ConfigError
from ..signals import StopSignals
from .tenants import say_stop_signal

if TYPE_CHECKING:
    from ..tenants import FanoutReport, Tenant, TenantEvent, TenantResult

__all__ = ["MARK", "WORKER_FLAG", "Channel", "Workers", "check_jobs", "worker_command", "workers"]

#: The hidden option that makes a process a worker of a ``--jobs`` run.
WORKER_FLAG = "--jobs-worker"
#: What starts a worker's protocol line on its stdout.
MARK = "\x1easyncmigrate-job "

#: Options the parent decides for its workers: dropped from their command line.
_WITH_VALUE = frozenset({
    "--tenants", "--tenants-query", "--control-url", "--schemas", "--sqlite-glob", "--concurrency",
    "--per-host", "--shard", "--report", "--rerun-failed", "--jobs",
})
_FLAGS = frozenset({"--progress", "--no-progress", "--json", WORKER_FLAG})


def check_jobs(jobs: int | None, *, fail_fast: bool, max_failures: str | None, canary: int | None) -> None:
    """Refuse ``--jobs`` with the options that need one process to count failures.

    :raises ConfigError: naming the options that cannot be combined.
    """
    if not jobs or jobs < 2:
        return
    given = [name for name, on in (("--fail-fast", fail_fast), ("--max-failures", max_failures is not None),
                                   ("--canary", canary is not None)) if on]
    if given:
        raise ConfigError(
            f"--jobs cannot be combined with {', '.join(given)}: they count failures across the "
            "whole fleet in one process (run the canary without --jobs first)"
        )


def worker_command(argv: list[str], concurrency: int, per_host: int | None) -> list[str]:
    """The command line of a worker: the parent's, less what the parent decides, plus the worker flag.

    :param argv: the parent's arguments (after the program name).
    """
    kept: list[str] = []
    skip_value = False
    for arg in argv:
        if skip_value:
            skip_value = False
            continue
        name, equals, _ = arg.partition("=")
        if name in _WITH_VALUE:
            skip_value = not equals
            continue
        if arg in _FLAGS:
            continue
        kept.append(arg)
    kept += [WORKER_FLAG, "--concurrency", str(concurrency)]
    if per_host is not None:
        kept += ["--per-host", str(per_host)]
    return [sys.executable, "-m", "asyncmigrate", *kept]


class Channel:
    """A worker's line to its parent: its stdout, one marked JSON line per result and one for its report.

    Owns whether the parent still reads. When a write finds the pipe broken
    (the parent was killed), the worker stops as on SIGTERM -- no new tenant
    starts, the ones in flight finish -- and writes nothing more.
    """

    def __init__(self) -> None:
        self.orphaned = False

    def send(self, kind: str, data: dict[str, Any]) -> None:
        """Write one line at once (``kind`` is ``result`` or ``report``)."""
        if self.orphaned:
            return
        try:
            sys.stdout.write(MARK + json.dumps({kind: data}) + "\n")
            sys.stdout.flush()
        except OSError:  # the pipe to the parent is broken
            self.orphaned = True
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())  # what is still buffered goes nowhere, quietly
            os.close(devnull)
            os.kill(os.getpid(), signal.SIGTERM)


def read_tenants(text: str) -> list[Tenant]:
    """The tenants a parent handed a worker on stdin."""
    from ..tenants import Tenant

    try:
        return [Tenant(str(t["name"]), str(t["url"]), t.get("schema")) for t in json.loads(text)]
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{WORKER_FLAG} reads the tenants to migrate as JSON on stdin: {exc}") from exc


def workers(jobs: int, concurrency: int, per_host: int | None) -> int:
    """How many workers a run gets: no more than ``--concurrency`` or ``--per-host``.

    Each worker migrates at least one tenant at a time, so more workers
    than either limit would break it.
    """
    return max(1, min(jobs, concurrency, per_host or concurrency))


def _share(total: int | None, jobs: int, index: int) -> int | None:
    """Worker ``index``'s part of ``total`` (the parts add up to it)."""
    return None if total is None else total // jobs + (1 if index < total % jobs else 0)


class Workers:
    """The worker processes of one ``--jobs`` run.

    Started before the parent reads its tenant source, so their start-up
    (imports, configuration) overlaps the parent's; each waits on stdin for
    its part. :meth:`run` hands the parts out and reads the results back;
    :meth:`abort` ends workers that never got one (the parent failed first).
    """

    def __init__(self, argv: list[str], count: int, *, concurrency: int, per_host: int | None) -> None:
        self.argv = argv
        self.count = count
        self.concurrency = concurrency
        self.per_host = per_host
        self.processes: list[Process] = []

    async def start(self) -> None:
        """Start the workers, each with its share of ``concurrency`` and ``per_host``."""
        for index in range(self.count):
            command = worker_command(self.argv, _share(self.concurrency, self.count, index) or 1,
                                     _share(self.per_host, self.count, index))
            # A session of its own: a terminal's Ctrl-C reaches the parent only, which forwards it once.
            self.processes.append(await anyio.open_process(
                command, stdin=-1, stdout=-1, stderr=None, start_new_session=True
            ))

    async def abort(self) -> None:
        """Stop the workers at once: none has been given a tenant."""
        with anyio.CancelScope(shield=True):
            for process in self.processes:
                if process.returncode is None:
                    process.kill()
                await process.aclose()

    async def run(
        self,
        tenants: list[Tenant],
        *,
        report: FanoutReport,
        on_event: Callable[[TenantEvent], None],
    ) -> int | None:
        """Migrate ``tenants`` with the workers; fill ``report``; return the first stop signal.

        Each worker gets every ``count``-th tenant (the split stays balanced
        for any set; with fewer tenants than workers, some get none).
        """
        from ..tenants import TenantEvent

        started, clock = datetime.now(timezone.utc), time.monotonic()
        parts = [tenants[i::self.count] for i in range(self.count)]
        total = len(tenants)
        results: dict[str, TenantResult] = {}
        reports: list[FanoutReport] = []
        exits: list[tuple[int, list[Tenant]]] = []

        def on_result(result: TenantResult) -> None:
            results[result.name] = result
            on_event(TenantEvent("finished", result.name, result, total=total))

        def on_signal(signum: int) -> None:
            say_stop_signal(signum, first=len(watch.received) == 1)
            for process in self.processes:
                if process.returncode is None:
                    process.send_signal(signal.Signals(signum))

        async def work(process: Process, part: list[Tenant]) -> None:
            async with process:
                assert process.stdin is not None
                listing = [{"name": t.name, "url": t.url, "schema": t.schema} for t in part]
                try:
                    await process.stdin.send(json.dumps(listing).encode("utf-8"))
                    await process.stdin.aclose()
                except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                    pass  # it died before reading: its tenants are reported below
                await _read(process, on_result, reports)
                exits.append((await process.wait(), part))

        with StopSignals(on_signal) as watch:
            async with anyio.create_task_group() as group:
                for process, part in zip(self.processes, parts, strict=True):
                    group.start_soon(work, process, part)
        _fill(report, reports, results, exits, tenants)
        report.started_at = started.isoformat(timespec="seconds")
        report.seconds = time.monotonic() - clock
        return watch.first


async def _read(process: Process, on_result: Callable[[TenantResult], None],
                reports: list[FanoutReport]) -> None:
    """Read a worker's stdout: protocol lines to ``on_result``/``reports``, other lines passed through."""
    from ..tenants import FanoutReport, TenantResult

    assert process.stdout is not None
    pending = ""
    async for chunk in TextReceiveStream(process.stdout):
        pending += chunk
        *lines, pending = pending.split("\n")
        for line in lines:
            if not line.startswith(MARK):
                click.echo(line)  # the worker's env.py or revisions printed it
                continue
            data = json.loads(line[len(MARK):])
            if "result" in data:
                on_result(TenantResult.from_dict(data["result"]))
            elif "report" in data:
                reports.append(FanoutReport.from_dict(data["report"]))
    if pending:
        click.echo(pending)


def _fill(report: FanoutReport, reports: list[FanoutReport], results: dict[str, TenantResult],
          exits: list[tuple[int, list[Tenant]]], tenants: list[Tenant]) -> None:
    """Put every tenant's result in ``report``, in source order; unreported tenants fail with the reason."""
    from ..tenants import TenantResult, merge_reports

    if reports:
        merged = merge_reports(reports)
        results.update({r.name: r for r in merged.results})
        report.stopped = merged.stopped
        report.warnings += merged.warnings
        report.concurrency = merged.concurrency
    for code, part in exits:
        for tenant in part:
            if tenant.name not in results:
                results[tenant.name] = TenantResult(
                    tenant.name, tenant.masked_url, tenant.schema, "failed", None, None,
                    error=f"its worker process exited with status {code} before reporting it",
                )
    report.results = [results[t.name] for t in tenants if t.name in results]
