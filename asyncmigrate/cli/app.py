"""The ``asyncmigrate`` command line: Alembic's commands and flags over the async API."""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import threading
import traceback
from argparse import Namespace
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import anyio
import click

if sys.version_info < (3, 11):  # pragma: no cover
    from exceptiongroup import BaseExceptionGroup

from .. import command
from ..config import Config
from ..events import StepEvent
from ..exceptions import AsyncMigrateError
from ..lines import one_line
from ..results import CurrentState, MigrationResult
from ..script import Script, ScriptDirectory
from ..signals import StopSignals, exit_code, signal_name
from ..urls import mask_passwords_in
from . import lint as lint_cli
from . import render
from .params import Seconds
from .tenants import TenantOptions, options_from, reference, run_fanout, tenant_options

if TYPE_CHECKING:
    from ..tenants.fanout import Operation

__all__ = ["cli", "main"]

T = TypeVar("T")

EXIT_ERROR = 1


@dataclass
class State:
    """Global options, shared by every subcommand."""

    config_files: tuple[str, ...] = ()
    name: str = "alembic"
    x: tuple[str, ...] = ()
    url: str | None = None
    raiseerr: bool = False
    quiet: bool = False
    connect_timeout: float | None = None
    read_timeout: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def files(self) -> tuple[str, str]:
        """Return the (pyproject.toml, ini) paths, as Alembic picks them."""
        env = os.environ.get("ASYNCMIGRATE_CONFIG") or os.environ.get("ALEMBIC_CONFIG")
        toml_default, ini_default = "pyproject.toml", "alembic.ini"
        if env and os.path.basename(env) == "pyproject.toml":
            toml_default = env
        elif env:
            ini_default = env
        toml: str | None = None
        ini: str | None = None
        for name in self.config_files:
            if os.path.basename(name) == "pyproject.toml":
                if toml is not None:
                    fail("pyproject.toml indicated more than once")
                toml = name
            else:
                if ini is not None:
                    fail("only one ini file may be indicated")
                ini = name
        return toml or toml_default, ini or ini_default

    def config(self, *, must_exist: bool = True) -> Config:
        """Build the run's :class:`Config` from the global options.

        :param must_exist: fail when a file named with ``-c`` does not exist
            (``init`` passes False: it creates the file).
        """
        toml, ini = self.files()
        if must_exist:
            for name in self.config_files:
                if not os.path.isfile(name):
                    fail(f"No config file {name!r} found")
        config = Config(
            file_=ini,
            toml_file=toml,
            ini_section=self.name,
            cmd_opts=Namespace(x=list(self.x) or None, quiet=self.quiet, **self.extra),
        )
        if self.connect_timeout is not None:
            config.set_main_option("connect_timeout", repr(self.connect_timeout))
        if self.read_timeout is not None:
            config.set_main_option("read_timeout", repr(self.read_timeout))
        if self.url:
            try:
                config.set_main_option("sqlalchemy.url", self.url.replace("%", "%%"))
            except AsyncMigrateError as exc:
                if self.raiseerr:
                    raise
                fail(str(exc))
        return config


def fail(message: str, code: int = EXIT_ERROR) -> NoReturn:
    """Print one error line to stderr and exit."""
    line = mask_passwords_in(message.strip().splitlines()[0] if message.strip() else message)
    click.echo(click.style("ERROR: ", fg="red", bold=True) + line, err=True)
    sys.exit(code)


def _print_masked_traceback(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    """``--raiseerr``'s traceback (its causes too) as Python prints it, passwords masked."""
    sys.stderr.write(mask_passwords_in("".join(traceback.format_exception(kind, exc, tb))))


def _leaf(exc: BaseException) -> BaseException:
    """The single error inside (nested) exception groups, or the group itself."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


class Interrupted(BaseException):
    """A stop signal ended the run (raised once the run has rolled back and let go)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal_name(signum))
        self.signum = signum


def interrupted(signum: int) -> NoReturn:
    """Print the one line an interruption ends with and exit 128 + the signal (130, 143)."""
    fail(
        f"Interrupted by {signal_name(signum)} (the step in progress, if any, was stopped "
        "and rolled back; the migration lock released)",
        exit_code(signum),
    )


async def stoppable(fn: Callable[[], Awaitable[T]]) -> T:
    """Await ``fn()``; SIGINT or SIGTERM cancels it (server work stopped, lock released).

    A second signal exits at once, without waiting for the clean-up.

    :raises Interrupted: after a stop signal cancelled the run.
    """
    with anyio.CancelScope() as scope:

        def on_signal(signum: int) -> None:
            if len(watch.received) > 1:
                click.echo(click.style("ERROR: ", fg="red", bold=True)
                           + f"{signal_name(signum)} again: exiting without waiting", err=True)
                os._exit(exit_code(watch.received[0]))
            scope.cancel()

        with StopSignals(on_signal) as watch:
            try:
                return await fn()
            except Exception:
                if watch.first is None:
                    raise
                # An error raised while the run was being stopped: the signal is the story.
    assert watch.first is not None, "only a stop signal cancels this scope"
    raise Interrupted(watch.first)


def run(state: State, fn: Callable[[], Awaitable[T]]) -> T:
    """Run a command coroutine in a fresh event loop, turning errors into one line."""
    try:
        try:
            return anyio.run(stoppable, fn, backend="asyncio")
        except BaseExceptionGroup as group:
            leaf = _leaf(group)
            if leaf is group:
                raise
            raise leaf from group
    except Interrupted as stop:
        interrupted(stop.signum)
    except KeyboardInterrupt:
        interrupted(signal.SIGINT)
    except AsyncMigrateError as exc:
        if state.raiseerr:
            raise
        fail(str(exc))
    except Exception as exc:
        if state.raiseerr:
            raise
        fail(
            f"unexpected {type(exc).__name__}: {one_line(str(exc))} "
            f"(run with --raiseerr for the traceback)"
        )


def echo(state: State, text: str = "") -> None:
    """Print a line unless ``--quiet``."""
    if not state.quiet:
        click.echo(text)


def emit_json(data: Any) -> None:
    """Print JSON to stdout (never suppressed by --quiet)."""
    click.echo(json.dumps(data, indent=2, sort_keys=False))


def progress_printer(state: State) -> Callable[[StepEvent], None] | None:
    """Return an event handler printing one line per committed step and per retry (None when quiet)."""
    if state.quiet:
        return None

    def handle(event: StepEvent) -> None:
        # A step is announced when it is committed (applied), not when it ran;
        # a failed step is reported once, by the error line the run ends with.
        line = render.event_line(event) if event.kind in ("committed", "retrying") else None
        if line is not None:
            click.echo(line, err=True)

    return handle


_RELATIVE_DOWN = re.compile(r"^-\d+$")


class RevisionCommand(click.Command):
    """A command whose positional revisions may be relative steps down, such as ``-1``.

    click would read ``downgrade -1`` as an unknown option ``-1``; Alembic's
    command line takes it as the revision. Before parsing, a ``-<digits>``
    token that is not the value of an option is given a leading space (no
    longer option-like); :func:`_revision_argument` strips it again.
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        valued = {
            name
            for param in self.get_params(ctx)
            if isinstance(param, click.Option) and not param.is_flag
            for name in (*param.opts, *param.secondary_opts)
        }
        marked: list[str] = []
        for i, arg in enumerate(args):
            if arg == "--":
                marked.extend(args[i:])
                break
            if _RELATIVE_DOWN.match(arg) and (i == 0 or args[i - 1] not in valued):
                arg = " " + arg
            marked.append(arg)
        return super().parse_args(ctx, marked)


def _revision_argument(name: str, **kwargs: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def strip(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if isinstance(value, tuple):
            return tuple(v.lstrip(" ") for v in value)
        return value.lstrip(" ") if isinstance(value, str) else value

    return click.argument(name, callback=strip, **kwargs)


def _attached_value(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """Read ``-r=VALUE`` as ``VALUE``, as argparse (and so Alembic) does for short options."""

    def strip(item: Any) -> Any:
        return item[1:] if isinstance(item, str) and item.startswith("=") else item

    return tuple(strip(v) for v in value) if isinstance(value, tuple) else strip(value)


pass_state = click.make_pass_decorator(State)
json_option = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
verbose_option = click.option("-v", "--verbose", is_flag=True, help="Use more verbose output.")


class _Root(click.Group):
    """The command group, keeping the arguments it was given (``--jobs`` hands them to its workers)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta[ARGV] = list(args)
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.NoSuchOption as exc:
            # An option of the tool itself, given after the command (``upgrade head --url ...``).
            own = {opt: param for param in self.params for opt in (*param.opts, *param.secondary_opts)}
            param = own.get(exc.option_name)
            if not isinstance(param, click.Option) or exc.ctx is None:
                raise
            value = "" if param.is_flag else f" {param.metavar or 'VALUE'}"
            raise click.UsageError(
                f"{exc.option_name} is an option of asyncmigrate itself: give it before the command "
                f"(asyncmigrate {exc.option_name}{value} {exc.ctx.info_name} ...)", exc.ctx,
            ) from None


#: Where the command line's arguments are kept in the click context's ``meta``.
ARGV = "asyncmigrate.argv"


@click.group(cls=_Root,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(None, "--version", package_name="asyncmigrate", prog_name="asyncmigrate")
@click.option(
    "-c", "--config", "config_files", multiple=True, metavar="FILE", callback=_attached_value,
    help="Alternate config file (default: $ASYNCMIGRATE_CONFIG, $ALEMBIC_CONFIG or alembic.ini); "
    "may also name pyproject.toml; give it twice for both.",
)
@click.option("-n", "--name", default="alembic", show_default=True, callback=_attached_value,
              help="Name of the ini section with the main options.")
@click.option("-x", "x", multiple=True, metavar="KEY=VALUE", callback=_attached_value,
              help="Additional arguments for env.py (context.get_x_argument()).")
@click.option("--url", envvar=None, metavar="URL",
              help="Database URL, overriding sqlalchemy.url.")
@click.option("--raiseerr", "--traceback", "raiseerr", is_flag=True,
              help="Show the full traceback on error.")
@click.option("-q", "--quiet", is_flag=True, help="Print only results and errors.")
@click.option("--connect-timeout", type=Seconds(), metavar="SECONDS",
              help="Seconds to wait for the database to answer a new connection "
              "(default: connect_timeout, else 30; 0 waits forever).")
@click.option("--read-timeout", type=Seconds(), metavar="SECONDS",
              help="Seconds of silence from the database mid-run before asyncmigrate checks on the "
              "statement from a second connection and fails the run if the answer was lost "
              "(default: read_timeout, else 60; 0 waits forever).")
@click.pass_context
def cli(
    ctx: click.Context,
    config_files: tuple[str, ...],
    name: str,
    x: tuple[str, ...],
    url: str | None,
    raiseerr: bool,
    quiet: bool,
    connect_timeout: float | None,
    read_timeout: float | None,
) -> None:
    """Asyncio-native, Alembic-compatible schema migrations for SQLAlchemy.

    Exit status: 0 on success, 1 on an error (one line on stderr), 2 on a
    usage error (an unknown option or command), 130 when stopped by SIGINT
    (Ctrl-C) and 143 by SIGTERM, once the step in progress has rolled back
    and the migration lock is released. Options of asyncmigrate itself
    (-c, -x, --url, -q...) go before the command.
    """
    ctx.obj = State(config_files, name, x, url, raiseerr, quiet, connect_timeout=connect_timeout,
                    read_timeout=read_timeout)


# -- environment ---------------------------------------------------------------------------


@cli.command("list_templates")
@pass_state
def list_templates_cmd(state: State) -> None:
    """List the templates init can use."""
    templates = run(state, lambda: command.list_templates(state.config()))
    click.echo("Available templates:\n")
    for template in templates:
        click.echo(f"{template.name} - {template.description}")
    click.echo("\nTemplates are used via the 'init' command, e.g.:\n")
    click.echo("  asyncmigrate init --template async ./migrations")


@cli.command("init")
@click.argument("directory")
@click.option("-t", "--template", default="async", show_default=True,
              help="Setup template for use with 'init'.")
@click.option("--package", is_flag=True,
              help="Write empty __init__.py files to the environment and version locations.")
@pass_state
def init_cmd(state: State, directory: str, template: str, package: bool) -> None:
    """Create a new migration environment."""
    config = state.config(must_exist=False)
    path = run(state, lambda: command.init(config, directory, template, package))
    echo(state, f"Created migration environment in {path.absolute()}")
    edits = [config.config_file_name]
    if template == "pyproject":
        edits.insert(0, config.toml_file_name)
    echo(state, f"Check the settings in {' and '.join(str(e) for e in edits if e)} before proceeding.")
    example = path / "tenants.example.toml"
    if example.exists():
        echo(state, f"An example tenants file is in {example.absolute()}: list your tenants in a copy of it "
                    "and run 'asyncmigrate upgrade head --tenants <that file>'.")


# -- revisions -----------------------------------------------------------------------------


@cli.command("revision")
@click.option("-m", "--message", help="Message string to use with 'revision'.")
@click.option("--autogenerate", is_flag=True,
              help="Populate the revision with operations from comparing models and database.")
@click.option("--sql", is_flag=True, help="Dump the autogenerated script's SQL instead.")
@click.option("--head", default="head", show_default=True,
              help="Head revision or <branchname>@head to base the new revision on.")
@click.option("--splice", is_flag=True, help="Allow a non-head revision as the 'head' to splice onto.")
@click.option("--branch-label", help="Branch label to apply to the new revision.")
@click.option("--version-path", help="Version location to write the file into.")
@click.option("--rev-id", help="Hardcoded revision id instead of a generated one.")
@click.option("--depends-on", multiple=True, help="Revision(s) this revision depends on.")
@click.option("--tenants", metavar="FILE",
              help="With --autogenerate and many tenants: the tenants file to take the reference from.")
@click.option("--schemas", metavar="PATTERN", help="... or the schemas matching a LIKE pattern.")
@click.option("--sqlite-glob", metavar="PATTERN", help="... or the SQLite files matching a glob.")
@click.option("--reference-tenant", metavar="NAME",
              help="The tenant whose database --autogenerate compares with (default: the first).")
@pass_state
def revision_cmd(
    state: State,
    /,
    message: str | None,
    autogenerate: bool,
    sql: bool,
    head: str,
    splice: bool,
    branch_label: str | None,
    version_path: str | None,
    rev_id: str | None,
    depends_on: tuple[str, ...],
    tenants: str | None,
    schemas: str | None,
    sqlite_glob: str | None,
    reference_tenant: str | None,
) -> None:
    """Create a new revision file."""
    config = state.config()
    # As Alembic's CLI does: env.py recipes read cmd_opts.autogenerate.
    config.cmd_opts.autogenerate = autogenerate
    source = TenantOptions(tenants=tenants, schemas=schemas, sqlite_glob=sqlite_glob)
    if (source.active or reference_tenant) and not autogenerate:
        fail("--tenants, --schemas, --sqlite-glob and --reference-tenant go with --autogenerate")

    async def make() -> Any:
        extra: dict[str, Any] = {}
        if source.active:
            extra["tenant"] = await reference(config, source, reference_tenant)
            extra["url"] = extra["tenant"].url
        return await command.revision(
            config,
            message,
            autogenerate=autogenerate,
            sql=sql,
            head=head,
            splice=splice,
            branch_label=branch_label,
            version_path=version_path,
            rev_id=rev_id,
            depends_on=list(depends_on) or None,
            **extra,
        )

    result = run(state, make)
    for script in result if isinstance(result, list) else [result]:
        echo(state, f"Generating {script.path}")


@cli.command("merge", cls=RevisionCommand)
@_revision_argument("revisions", nargs=-1, required=True)
@click.option("-m", "--message", help="Message string to use with 'merge'.")
@click.option("--branch-label", help="Branch label to apply to the new revision.")
@click.option("--rev-id", help="Hardcoded revision id instead of a generated one.")
@pass_state
def merge_cmd(
    state: State,
    revisions: tuple[str, ...],
    message: str | None,
    branch_label: str | None,
    rev_id: str | None,
) -> None:
    """Merge two (or more) revisions together; creates a new revision file."""
    config = state.config()
    targets: str | list[str] = revisions[0] if len(revisions) == 1 else list(revisions)
    script = run(
        state, lambda: command.merge(config, targets, message, branch_label=branch_label, rev_id=rev_id)
    )
    echo(state, f"Generating {script.path}")


@cli.command("edit", cls=RevisionCommand)
@_revision_argument("revision")
@pass_state
def edit_cmd(state: State, revision: str) -> None:
    """Edit revision script(s) using $EDITOR."""
    config = state.config()
    run(state, lambda: command.edit(config, revision))


# -- reading -----------------------------------------------------------------------------------


@cli.command("heads")
@verbose_option
@click.option("--resolve-dependencies", is_flag=True, help="Treat dependency versions as down revisions.")
@json_option
@pass_state
def heads_cmd(state: State, verbose: bool, resolve_dependencies: bool, as_json: bool) -> None:
    """Show current available heads in the script directory."""
    config = state.config()
    scripts = run(state, lambda: command.heads(config, verbose, resolve_dependencies))
    if as_json:
        emit_json([render.script_data(s) for s in scripts])
        return
    for script in scripts:
        click.echo(
            render.log_entry(script)
            if verbose
            else render.short_line(script, include_branches=True, tree_indicators=False)
        )


@cli.command("branches")
@verbose_option
@json_option
@pass_state
def branches_cmd(state: State, verbose: bool, as_json: bool) -> None:
    """Show current branch points."""
    config = state.config()
    found = run(state, lambda: command.branches(config, verbose))
    if as_json:
        emit_json([render.script_data(point) for point, _ in found])
        return
    for point, children in found:
        click.echo(render.branch_lines(point, children, verbose))


@cli.command("history")
@click.option("-r", "--rev-range", callback=_attached_value,
              help="Revision range; format is [start]:[end].")
@verbose_option
@click.option("-i", "--indicate-current", is_flag=True, help="Indicate the current revision.")
@click.option("--applied", is_flag=True,
              help="Show what the database applied, from its history table (as 'log').")
@json_option
@pass_state
def history_cmd(
    state: State, rev_range: str | None, verbose: bool, indicate_current: bool, applied: bool,
    as_json: bool,
) -> None:
    """List changeset scripts in chronological order (newest first)."""
    config = state.config()
    if applied:
        if rev_range or indicate_current:
            fail("--applied shows the database's record; it takes no --rev-range or --indicate-current")
        _show_log(state, config, as_json)
        return
    found = run(state, lambda: command.history(config, rev_range, verbose, indicate_current))
    # The database's revisions are marked only when asked (-i), as Alembic does,
    # even when a ``current`` end of the range made the command read them.
    entries = [(script, current and indicate_current) for script, current in found]
    if as_json:
        emit_json([render.script_data(s, current if indicate_current else None) for s, current in entries])
        return
    for script, is_current in entries:
        if verbose:
            click.echo(render.log_entry(script, is_current))
        else:
            click.echo(
                render.short_line(
                    script,
                    include_branches=True,
                    include_doc=True,
                    include_parents=True,
                    is_current=is_current,
                )
            )


@cli.command("show", cls=RevisionCommand)
@_revision_argument("rev")
@json_option
@pass_state
def show_cmd(state: State, rev: str, as_json: bool) -> None:
    """Show the revision(s) denoted by the given symbol."""
    config = state.config()
    scripts = run(state, lambda: command.show(config, rev))
    if as_json:
        emit_json([render.script_data(s) for s in scripts])
        return
    for script in scripts:
        click.echo(render.log_entry(script))


@cli.command("current")
@verbose_option
@click.option("-c", "--check-heads", is_flag=True,
              help="Exit with an error unless the database is at the head revision(s).")
@json_option
@tenant_options
@pass_state
def current_cmd(
    state: State, /, verbose: bool, check_heads: bool, as_json: bool, **tenants: Any
) -> None:
    """Display the current revision for a database (or a histogram across tenants)."""
    config = state.config()
    if _fanout(state, config, tenants, "check" if check_heads else "current", None, as_json):
        return

    async def load() -> tuple[CurrentState, list[Script]]:
        found = await command.current(config, verbose=verbose)
        if not found.heads:
            return found, []
        script = await anyio.to_thread.run_sync(_script_directory, config)
        # Like Alembic, show each branch's tip: the version rows plus what they
        # depend on that no row supersedes (an "effective head").
        tips = script.graph.all_current(found.heads)
        return found, list(script.get_revisions([rev.revision for rev in tips]))

    found, scripts = run(state, load)
    behind = check_heads and not found.at_head
    if as_json:
        emit_json({
            "url": found.url,
            "heads": list(found.heads),
            "revisions": [render.script_data(s) for s in scripts],
            "at_head": found.at_head,
            "pending": list(found.pending),
        })
    elif not behind:  # as Alembic: a failed check lists no revisions, the error says where it is
        for line in render.current_lines(found, scripts, verbose):
            click.echo(line)
    if behind:
        pending = ", ".join(found.pending[:5]) + ("..." if len(found.pending) > 5 else "")
        fail(
            f"Database is not on all head revisions: at {', '.join(found.heads) or 'base'}, "
            f"{len(found.pending)} revision(s) to apply ({pending})"
        )


@cli.command("check")
@json_option
@tenant_options
@pass_state
def check_cmd(state: State, /, as_json: bool, **tenants: Any) -> None:
    """Exit 1 unless the database is at head (and models match it, with target_metadata)."""
    config = state.config()
    if _fanout(state, config, tenants, "check", None, as_json):
        return
    current = run(state, lambda: command.check(config))
    echo(state, f"OK: {current.url} is at {', '.join(current.heads) or 'base'}.")


# -- the applied record -----------------------------------------------------------------------------


def _show_log(state: State, config: Config, as_json: bool) -> None:
    record = run(state, lambda: command.log(config))
    if as_json:
        emit_json(record.to_dict())
        return
    for line in render.log_lines(record):
        click.echo(line)


@cli.command("log")
@click.option("--revision", metavar="REV",
              help="With tenants: only the rows of this revision (which tenants have it, when, by whom).")
@json_option
@tenant_options
@pass_state
def log_cmd(state: State, /, revision: str | None, as_json: bool, **tenants: Any) -> None:
    """Show the database's applied record: every step from its history table, oldest first."""
    config = state.config()
    options = options_from(tenants)
    ignored = [name for name in options.fleet_only if name != "--shard"]
    if ignored:  # log reads records: nothing to bound, retry, report or split
        fail(f"log reads the applied records; {', '.join(ignored)} cannot apply to it "
             "(it takes a tenant source, --shard and --concurrency)")
    if not options.active:
        if revision:
            fail("--revision selects rows across tenants; give a tenant source")
        _show_log(state, config, as_json)
        return
    from . import audit

    outcomes = run(state, lambda: audit.log_across(config, options))
    if as_json:
        emit_json([
            {"tenant": o.tenant.name, "error": o.error,
             **(o.result.to_dict() if o.result is not None else {})}
            for o in outcomes
        ])
    else:
        for line in render.fleet_log_lines(outcomes, revision):
            click.echo(line)
    sys.exit(EXIT_ERROR if any(o.error for o in outcomes) else 0)


@cli.command("validate")
@click.option("--repair", is_flag=True,
              help="Record the current checksums of changed files (after reviewing the edits).")
@json_option
@tenant_options
@pass_state
def validate_cmd(state: State, /, repair: bool, as_json: bool, **tenants: Any) -> None:
    """Check applied revisions against their files; exit 1 when any drifted.

    One line per applied revision whose file changed since, applied
    revision whose file is missing, and version row naming no revision.
    With tenants it runs like the migration fan-out (concurrency, shards,
    waves, --report, progress): each line starts with the tenant's name, and
    a drifted tenant counts as failed.
    """
    config = state.config()
    if _fanout(state, config, tenants, "validate", None, as_json, repair=repair):
        return
    report = run(state, lambda: command.validate(config, repair))
    if as_json:
        emit_json(report.to_dict())
    else:
        for revision in report.repaired:
            echo(state, f"Repaired: recorded the current checksum of {revision}")
        for drift in report.drift:
            click.echo(drift.message)
        if report.ok:
            echo(state, render.validated_line(report))
    sys.exit(0 if report.ok else EXIT_ERROR)


# -- changing ------------------------------------------------------------------------------------


def _migration_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed([
        click.option("--sql", is_flag=True, help="Print the SQL instead of running it (offline mode)."),
        click.option("--tag", help="Arbitrary tag name env.py can read."),
        click.option("--no-lock", is_flag=True, help="Do not take the cross-process migration lock."),
        click.option("--lock-timeout", type=Seconds(), metavar="SECONDS",
                     help="Seconds to wait for another process's migration (default 300)."),
        json_option,
    ]):
        fn = option(fn)
    return fn


def _report(state: State, result: MigrationResult, as_json: bool) -> None:
    if result.sql is not None:
        click.echo(result.sql, nl=False)
        return
    if as_json:
        emit_json(render.migration_data(result))
        return
    for line in render.result_lines(result):
        echo(state, line)


def _fanout(state: State, config: Config, kwargs: dict[str, Any], operation: Operation,
            target: Any, as_json: bool, sql: bool = False, **env: Any) -> bool:
    """Run the command across tenants when a tenant source was given; exit with its status."""
    options = options_from(kwargs)
    if not options.active:
        return False
    options = replace(options, argv=tuple(click.get_current_context().meta.get(ARGV, ())))
    if sql:
        given = "tenants" if options.source_given else ", ".join(options.fleet_only)
        fail(f"--sql renders one script for one database; it cannot be combined with {given}")
    async def fan_out() -> Any:
        from .. import telemetry

        with telemetry.span(f"fanout {operation}", target=target) as span:
            report, signum = await run_fanout(
                config, options, operation, target, quiet=state.quiet, as_json=as_json, env=env
            )
            counts = report.counts
            span.set(tenants=sum(counts.values()), **{f"tenants.{k}": v for k, v in counts.items()})
            return report, signum

    report, signum = run(state, fan_out)
    # Stopped by a signal: the report says which tenants ran; the status says why it ended.
    sys.exit(exit_code(signum) if signum is not None else report.exit_code)


def _move(state: State, operation: Operation, revision: str, sql: bool, tag: str | None,
          no_lock: bool, lock_timeout: float | None, as_json: bool, tenants: dict[str, Any],
          lint_first: bool = False, validate_first: bool = False) -> None:
    """Run ``upgrade`` or ``downgrade`` on one database, or across tenants."""
    config = state.config()
    lock = False if no_lock else None
    fleet = options_from(dict(tenants))
    if lint_first and fleet.active:
        fail("--lint checks one database's pending revisions before a plain run; with tenants or "
             "fan-out options, run 'asyncmigrate lint --from REV' first")
    if validate_first and fleet.active:
        fail("--validate checks one database before a plain run; with tenants or fan-out options, "
             "run 'asyncmigrate validate' (with the same options) first")
    if _fanout(state, config, tenants, operation, revision, as_json, sql,
               tag=tag, lock=lock, lock_timeout=lock_timeout):
        return
    if lint_first and not sql:
        _lint_before_upgrade(state, config, revision)
    fn = command.upgrade if operation == "upgrade" else command.downgrade
    extra: dict[str, Any] = {"validate": True} if validate_first else {}
    result = run(state, lambda: fn(
        config, revision, sql, tag, on_step=None if sql or as_json else progress_printer(state),
        lock=lock, lock_timeout=lock_timeout, **extra,
    ))
    _report(state, result, as_json)


def _lint_before_upgrade(state: State, config: Config, revision: str) -> None:
    """``upgrade --lint``: print the findings (to stderr); exit 1 without upgrading on errors."""
    report = run(state, lambda: command.lint(config, target=revision))
    if report.active and not state.quiet:
        click.echo(lint_cli.render_text(report, explain=False), err=True, nl=False)
    if not report.ok:
        fail(f"Refusing to upgrade: lint found {len(report.errors)} error(s) in the revisions to run")


@cli.command("upgrade", cls=RevisionCommand)
@_revision_argument("revision")
@_migration_options
@click.option("--lint", "lint_first", is_flag=True,
              help="Lint the revisions to run first; run nothing if it finds errors.")
@click.option("--validate", "validate_first", is_flag=True,
              help="Check applied revisions against their files first; run nothing if any drifted.")
@tenant_options
@pass_state
def upgrade_cmd(
    state: State, /, revision: str, sql: bool, tag: str | None, no_lock: bool,
    lock_timeout: float | None, as_json: bool, lint_first: bool, validate_first: bool,
    **tenants: Any,
) -> None:
    """Upgrade to a later version (head, +N, <rev>, <branch>@head ...)."""
    _move(state, "upgrade", revision, sql, tag, no_lock, lock_timeout, as_json, tenants, lint_first,
          validate_first)


@cli.command("downgrade", cls=RevisionCommand)
@_revision_argument("revision")
@_migration_options
@tenant_options
@pass_state
def downgrade_cmd(
    state: State, /, revision: str, sql: bool, tag: str | None, no_lock: bool,
    lock_timeout: float | None, as_json: bool, **tenants: Any,
) -> None:
    """Revert to a previous version (base, -N, <rev> ...)."""
    _move(state, "downgrade", revision, sql, tag, no_lock, lock_timeout, as_json, tenants)


@cli.command("stamp", cls=RevisionCommand)
@_revision_argument("revisions", nargs=-1, required=True)
@_migration_options
@click.option("--purge", is_flag=True, help="Unconditionally erase the version table before stamping.")
@tenant_options
@pass_state
def stamp_cmd(
    state: State, /, revisions: tuple[str, ...], sql: bool, tag: str | None, no_lock: bool,
    lock_timeout: float | None, as_json: bool, purge: bool, **tenants: Any,
) -> None:
    """'stamp' the version table with specific revision(s); runs no migrations."""
    config = state.config()
    targets: str | list[str] = revisions[0] if len(revisions) == 1 else list(revisions)
    if _fanout(state, config, tenants, "stamp", targets, as_json, sql, tag=tag, purge=purge,
                           lock=False if no_lock else None, lock_timeout=lock_timeout):
        return
    result = run(state, lambda: command.stamp(
        config, targets, sql, tag, purge, on_step=None if sql or as_json else progress_printer(state),
        lock=False if no_lock else None, lock_timeout=lock_timeout,
    ))
    _report(state, result, as_json)


@cli.command("ensure_version")
@click.option("--sql", is_flag=True, help="Print the SQL instead of running it.")
@pass_state
def ensure_version_cmd(state: State, sql: bool) -> None:
    """Create the version table if it does not exist."""
    config = state.config()
    result = run(state, lambda: command.ensure_version(config, sql))
    if result.sql is not None:
        click.echo(result.sql, nl=False)


@cli.command("lint", cls=RevisionCommand)
@_revision_argument("revisions", nargs=-1)
@click.option("--all", "all_", is_flag=True, help="Lint every revision (no database needed).")
@click.option("--from", "start", metavar="REV",
              help="Lint the revisions after REV (no database needed; 'base' = --all).")
@click.option("--to", "target", default="heads", show_default=True, metavar="REV",
              help="Last revision to lint.")
@click.option("--dialect", type=click.Choice(["postgresql", "mysql", "mariadb", "sqlite"]),
              help="Render for this dialect instead of sqlalchemy.url's.")
@click.option("--pg-version", type=click.IntRange(9, 99), metavar="N",
              help="PostgreSQL major version the rules assume (default: lint_pg_version, else 12).")
@click.option("--rule", "rule_overrides", multiple=True, metavar="ID=LEVEL",
              help="Override a rule's severity: error, warning, note or off (repeatable).")
@click.option("--format", "fmt", type=click.Choice(lint_cli.FORMATS), default="text", show_default=True)
@click.option("-o", "--output", metavar="FILE", help="Write the report to FILE instead of stdout.")
@click.option("--no-downgrades", is_flag=True, help="Check upgrade() only.")
@click.option("--each/--together", default=None,
              help="Judge each revision as if deployed alone, or the selection as one deployment "
              "(default: --each with --all, --together otherwise).")
@click.option("--show-suppressed", is_flag=True, help="List suppressed findings too (text format).")
@click.option("--list-rules", is_flag=True, help="List the rules and exit.")
@pass_state
def lint_cmd(
    state: State, /, revisions: tuple[str, ...], all_: bool, start: str | None, target: str,
    dialect: str | None, pg_version: int | None, rule_overrides: tuple[str, ...], fmt: str,
    output: str | None, no_downgrades: bool, each: bool | None, show_suppressed: bool, list_rules: bool,
) -> None:
    """Check revisions for changes that lock or break a live database (pending ones by default).

    Exit status: 0 without errors (warnings allowed), 1 with errors or when
    the lint cannot run.
    """
    if list_rules:
        click.echo(lint_cli.rules_text(), nl=False)
        return
    if sum(map(bool, (revisions, all_, start))) > 1:
        fail("give revisions, --all or --from, not several")
    config = state.config()
    selected: str | list[str] | None = None
    if revisions:
        selected = revisions[0] if len(revisions) == 1 and ":" in revisions[0] else list(revisions)
    report = run(state, lambda: command.lint(
        config, selected, start="base" if all_ else start, target=target, dialect=dialect,
        pg_version=pg_version, rules=", ".join(rule_overrides) or None, downgrades=not no_downgrades,
        each=each,
    ))
    run(state, _as_async(lambda: lint_cli.write_report(
        report, fmt, output, show_suppressed=show_suppressed, explain=not state.quiet
    )))
    sys.exit(report.exit_code)


def _as_async(fn: Callable[[], None]) -> Callable[[], Awaitable[None]]:
    async def call() -> None:
        fn()

    return call


def _script_directory(config: Config) -> ScriptDirectory:
    script = ScriptDirectory.from_config(config)
    script.graph  # noqa: B018 - read the headers here, off the event loop
    return script


def _late_thread_error(args: threading.ExceptHookArgs) -> None:
    """Say nothing of a driver's worker thread answering after the run ended and its loop closed.

    aiosqlite's connection thread can finish a failed connect after the
    command has already reported the failure; nothing is waiting for it.
    """
    if isinstance(args.exc_value, RuntimeError) and str(args.exc_value) == "Event loop is closed":
        return
    threading.__excepthook__(args)


def _terminated(signum: int, frame: object) -> None:
    raise Interrupted(signum)


def main(argv: list[str] | None = None) -> None:
    """Run the command line (console script entry point).

    SIGTERM is handled like Ctrl-C: outside the event loop it interrupts
    where it lands, inside it cancels the run (see :func:`stoppable`); both
    end with one line and exit status 143 (130 for Ctrl-C).
    """
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminated) if in_main else None
    # The command line owns the process: what ``--raiseerr`` lets escape is printed masked.
    sys.excepthook = _print_masked_traceback
    threading.excepthook = _late_thread_error
    try:
        cli.main(args=argv, prog_name="asyncmigrate")
    except Interrupted as stop:
        interrupted(stop.signum)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
