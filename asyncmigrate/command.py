"""Commands: one coroutine per command, each taking a :class:`~asyncmigrate.Config` first.

They mirror :mod:`alembic.command` -- same names, same arguments -- but are
``async`` and run in the caller's event loop, and they *return* what they
found or did (scripts, :class:`~asyncmigrate.results.MigrationResult`, ...)
instead of printing it; the CLI renders those results. Commands that touch a
database accept ``url=``, ``engine=`` (an ``AsyncEngine``) or ``connection=``
(an ``AsyncConnection``, migrated inside the caller's transaction) to override
the configured database, and ``on_step=`` to receive
:class:`~asyncmigrate.events.StepEvent` progress.
"""

from __future__ import annotations

import io
import os
import re
import shlex
import shutil
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from .config import DEFAULT_LOCK_TIMEOUT, Config
from .events import StepEventHandler
from .exceptions import (
    AsyncMigrateError,
    CommandError,
    ConfigError,
    ConnectionFailedError,
    DatabaseError,
    DriftError,
    LintError,
    NoTargetMetadataError,
    NotAtHeadError,
)
from .results import AppliedStep, CurrentState, MigrationResult, TemplateInfo
from .revision.graph import recorded_heads
from .revision.plan import MigrationStep, downgrade_plan, stamp_plan, upgrade_plan
from .revision.revision import Revision, as_tuple
from .script import Script, ScriptDirectory
from .script.writer import render_template
from .urls import driver_missing, engine_error, mask_password, mask_passwords_in, to_async_url

if TYPE_CHECKING:
    from sqlalchemy.engine.url import URL
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

    from .audit import AppliedRecord, ValidationReport
    from .lint import LintReport
    from .runtime.environment import EnvironmentContext
    from .runtime.migration import MigrationContext

# The runtime (and SQLAlchemy with it) is imported when a command touches a database;
# reading the history (heads, history, show, branches) never needs it.

__all__ = [
    "branches",
    "check",
    "current",
    "downgrade",
    "edit",
    "ensure_version",
    "heads",
    "history",
    "init",
    "lint",
    "list_templates",
    "log",
    "merge",
    "revision",
    "show",
    "stamp",
    "upgrade",
    "validate",
]


# -- helpers ------------------------------------------------------------------------------


async def _script_directory(config: Config) -> ScriptDirectory:
    """Open the script directory and read its revision headers off the event loop."""

    def load() -> ScriptDirectory:
        script = ScriptDirectory.from_config(config)
        script.graph  # noqa: B018 - read the headers here, in the worker thread
        return script

    return await anyio.to_thread.run_sync(load)


def _step_options(config: Config) -> dict[str, Any]:
    """The ``step_*`` lock and statement timeout options set in the config (checked here, up front)."""
    from .runtime.timeouts import OPTION_NAMES, StepTimeouts

    found = {name: value for name in OPTION_NAMES if (value := config.get_alembic_option(name)) is not None}
    StepTimeouts.from_options(found)
    return found


def _lock_options(config: Config, lock: bool | None, lock_timeout: float | None) -> dict[str, Any]:
    if lock is None:
        configured = config.get_alembic_option("lock")
        lock = True if configured is None else str(configured).strip().lower() not in (
            "false", "0", "no", "off"
        )
    if lock_timeout is None:
        configured = config.get_alembic_option("lock_timeout")
        try:
            lock_timeout = float(configured) if configured is not None else DEFAULT_LOCK_TIMEOUT
        except ValueError as exc:
            raise ConfigError(f"lock_timeout must be a number of seconds, not {configured!r}") from exc
    return {"lock": lock, "lock_timeout": lock_timeout}


def _target_options(
    url: str | URL | None, engine: AsyncEngine | None, connection: AsyncConnection | None
) -> dict[str, Any]:
    opts: dict[str, Any] = {}
    if url is not None:
        from .urls import to_async_url

        opts["url"] = to_async_url(url).render_as_string(hide_password=False)
    if engine is not None:
        opts["engine"] = engine
    if connection is not None:
        opts["connection"] = connection
    return opts


@asynccontextmanager
async def _connecting_early(
    config: Config, sql: bool, target: dict[str, Any], env_opts: dict[str, Any]
) -> AsyncIterator[None]:
    """Start the command's own connection now, while the script directory loads.

    It joins ``target`` (as ``early_connection``) for env.py's engine to
    take, and is closed here if nothing took it (see ``envpy.connect_early``).
    """
    from .runtime.envpy import connect_early

    early = None if sql else connect_early(config, {**env_opts, **target})
    if early is None:
        yield
        return
    target["early_connection"] = early
    try:
        await anyio.sleep(0)  # let the connection request leave
        yield
    finally:
        await early.close()


def _describe_target(env: EnvironmentContext) -> str | None:
    for ctx in env.migration_contexts:
        if ctx.connection is not None and not ctx.as_sql:
            try:
                return mask_password(ctx.connection.engine.url)
            except Exception:  # pragma: no cover - mock connections
                return None
    url = env.url
    return mask_password(url) if url else None


def _translate(exc: BaseException, env: EnvironmentContext) -> AsyncMigrateError | None:
    """Turn a driver/SQLAlchemy error escaping env.py into one of ours (or None)."""
    from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

    where = _describe_target(env) or "the database"
    if isinstance(exc, (NoSuchModuleError, ArgumentError)):
        return ConfigError(f"Invalid database URL or engine option: {mask_passwords_in(_line(exc))}")
    if driver_missing(exc):
        return ConfigError(f"Cannot connect to {where}: {engine_error(exc)}")
    if isinstance(exc, DBAPIError):
        detail = mask_passwords_in(_line(exc.orig if exc.orig is not None else exc))
        sqlite = _sqlite_error(detail, env)
        if sqlite is not None:
            return sqlite
        if exc.statement is None or exc.connection_invalidated:
            return ConnectionFailedError(f"Cannot connect to {where}: {detail}")
        return DatabaseError(f"Database error on {where}: {detail}")
    if isinstance(exc, (OSError, socket.gaierror, TimeoutError)):
        return ConnectionFailedError(f"Cannot connect to {where}: {mask_passwords_in(_line(exc))}")
    return None


def _sqlite_error(detail: str, env: EnvironmentContext) -> AsyncMigrateError | None:
    """Say which SQLite file is locked or cannot be opened, and what to do about it."""
    path = None
    for ctx in env.migration_contexts:
        if ctx.connection is not None and ctx.dialect.name == "sqlite":
            path = ctx.connection.engine.url.database
    if path is None and env.url:
        url = to_async_url(env.url)
        path = url.database if url.get_backend_name() == "sqlite" else None
    if path is None:
        return None
    if "database is locked" in detail:
        return DatabaseError(
            f"The SQLite database {path} is locked: another process holds a write transaction "
            "on it; let it finish (or stop it) and run again"
        )
    if "unable to open database file" in detail:
        return ConnectionFailedError(
            f"Cannot open the SQLite database {path}: its directory does not exist or is not writable"
        )
    return None


def _line(exc: BaseException) -> str:
    text = str(exc).strip()
    first = text.splitlines()[0] if text else ""
    return first or type(exc).__name__


async def _run(
    config: Config,
    script: ScriptDirectory,
    fn: Callable[[tuple[str, ...], MigrationContext], Sequence[MigrationStep]] | None,
    **opts: Any,
) -> EnvironmentContext:
    from .runtime.environment import EnvironmentContext, connect_timeout
    from .runtime.envpy import run_env
    from .runtime.sessions import SessionProbe
    from .runtime.stalls import StallWatch

    online = fn is not None and not opts.get("as_sql")
    given = [k for k in ("connection", "engine") if k in opts or k in config.attributes]
    # A run on connections of its own is stopped on the server too when the caller
    # cancels it: otherwise the abandoned session keeps running its statement and
    # holding its locks (the migration lock included) until the statement ends.
    probe = None
    if online and "session_probe" not in opts and not given:
        probe = opts["session_probe"] = SessionProbe()
    # Runs on connections of their own or the caller's engine are watched for a stalled
    # connection (read_timeout); the caller's own connection is left to the caller.
    watch = None
    if online and "connection" not in given:
        watched = opts.setdefault("session_probe", SessionProbe())
        watch = StallWatch.for_config(config, watched, connect_timeout(config))
    env = EnvironmentContext(config, script, fn=fn, **opts)
    try:
        if watch is None:
            await run_env(env)
        else:
            await watch.run(run_env(env))
    except anyio.get_cancelled_exc_class():
        if probe is not None and probe.sessions:
            await probe.interrupt(terminate=True)
        raise
    except AsyncMigrateError:
        raise
    except Exception as exc:
        translated = _translate(exc, env)
        if translated is None:
            raise
        raise translated from exc
    return env


def _migration_result(
    env: EnvironmentContext, started: float, sql: io.StringIO | None = None
) -> MigrationResult:
    if not env.migration_contexts:
        raise CommandError("env.py finished without calling context.configure()")
    ctx = env.migration_contexts[0]
    record = ctx.record
    steps = tuple(
        AppliedStep(
            direction="upgrade" if info.is_upgrade else "downgrade",
            up_revisions=info.up_revision_ids,
            down_revisions=info.down_revision_ids,
            is_stamp=info.is_stamp,
            seconds=seconds,
        )
        for info, seconds in zip(record.steps, record.durations, strict=True)
    )
    return MigrationResult(
        from_heads=record.starting_heads,
        to_heads=record.final_heads if record.ran else record.starting_heads,
        steps=steps,
        seconds=time.perf_counter() - started,
        waited_for_lock=record.waited_for_lock,
        sql=sql.getvalue() if sql is not None else None,
        url=_describe_target(env),
    )


async def _migrate(
    config: Config,
    script: ScriptDirectory,
    plan: Callable[[tuple[str, ...], MigrationContext], Sequence[MigrationStep]],
    sql: bool,
    started: float,
    *,
    lock: bool | None,
    lock_timeout: float | None,
    target: dict[str, Any],
    env_opts: dict[str, Any],
    **opts: Any,
) -> MigrationResult:
    """Run ``plan`` as ``upgrade``/``downgrade``/``stamp`` do (or render it with ``sql``)."""
    from . import telemetry

    buffer = io.StringIO() if sql else None
    name = opts.pop("command_name")
    destination = opts.get("destination_rev")
    with telemetry.command_span(
        name, tenant=env_opts.get("tenant"), sql=sql,
        target=destination if isinstance(destination, str) else list(destination or ()),
    ) as span:
        opts["on_step"] = span.on_step(opts.get("on_step"))
        env = await _run(
            config,
            script,
            plan,
            as_sql=sql,
            **opts,
            **({"output_buffer": buffer} if buffer is not None else {}),
            **_lock_options(config, lock, lock_timeout),
            **{k: v for k, v in _step_options(config).items() if k not in env_opts},
            **target,
            **env_opts,
        )
        result = _migration_result(env, started, buffer)
        span.set_url(result.url)
        span.set(from_heads=result.from_heads, to_heads=result.to_heads, steps=len(result.steps))
        return result


# -- environment set-up -------------------------------------------------------------------


async def list_templates(config: Config) -> list[TemplateInfo]:
    """List the templates ``init`` can create an environment from."""
    root = Path(config.get_template_directory())
    found = []
    for path in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("_")):
        readme = path / "README"
        description = readme.read_text(encoding="utf-8").strip() if readme.exists() else ""
        found.append(TemplateInfo(path.name, " ".join(description.split()), path))
    return found


async def init(
    config: Config, directory: str, template: str = "async", package: bool = False
) -> Path:
    """Create a migration environment in ``directory`` from ``template``.

    Writes env.py, script.py.mako and versions/ there, and the config file
    (``config.config_file_name``) unless it exists; the ``pyproject`` template
    adds a ``[tool.asyncmigrate]`` section to ``config.toml_file_name``.

    :return: the environment directory.
    """
    target = Path(directory)
    if target.exists() and any(target.iterdir()):
        raise CommandError(f"Directory {target} already exists and is not empty")
    source = Path(config.get_template_directory()) / template
    if not source.is_dir():
        names = ", ".join(t.name for t in await list_templates(config))
        raise CommandError(f"No such template '{template}'; available: {names}")

    def location_for(config_path: str | None) -> str:
        if target.is_absolute() or config_path is None:
            return target.absolute().as_posix()
        base = Path(config_path).absolute().parent
        relative = Path(os.path.relpath(target.absolute(), base))
        return ("%(here)s" / relative).as_posix()

    def write() -> None:
        (target / "versions").mkdir(parents=True, exist_ok=True)
        for item in sorted(source.iterdir()):
            if item.name == "alembic.ini.mako":
                if config.config_file_name is None:
                    continue
                ini = Path(config.config_file_name)
                if not ini.exists():
                    render_template(
                        item, ini, script_location=location_for(config.config_file_name)
                    )
            elif item.name == "pyproject.toml.mako":
                if config.toml_file_name is None:
                    raise CommandError("The pyproject template needs a pyproject.toml path")
                toml = Path(config.toml_file_name)
                buffer = toml.with_suffix(".asyncmigrate-tmp")
                render_template(
                    item, buffer, script_location=location_for(config.toml_file_name)
                )
                addition = buffer.read_text(encoding="utf-8")
                buffer.unlink()
                existing = toml.read_text(encoding="utf-8") if toml.exists() else ""
                if "[tool.asyncmigrate]" in existing or "[tool.alembic]" in existing:
                    continue
                joined = (existing.rstrip() + "\n\n" if existing.strip() else "") + addition.lstrip()
                toml.write_text(joined, encoding="utf-8")
            elif item.is_file() and item.name != "__pycache__":
                shutil.copy(item, target / item.name)
        if package:
            for init_file in (target / "__init__.py", target / "versions" / "__init__.py"):
                init_file.touch()

    await anyio.to_thread.run_sync(write)
    return target


# -- writing revisions --------------------------------------------------------------------


def new_revision_id() -> str:
    """Return a fresh 12-hex-digit revision id."""
    return uuid.uuid4().hex[-12:]


async def revision(
    config: Config,
    message: str | None = None,
    autogenerate: bool = False,
    sql: bool = False,
    head: str = "head",
    splice: bool = False,
    branch_label: str | Sequence[str] | None = None,
    version_path: str | os.PathLike[str] | None = None,
    rev_id: str | None = None,
    depends_on: str | Sequence[str] | None = None,
    process_revision_directives: Callable[..., None] | None = None,
    *,
    url: str | URL | None = None,
    engine: AsyncEngine | None = None,
    connection: AsyncConnection | None = None,
    **env_opts: Any,
) -> Script | list[Script]:
    """Create a new revision file (``alembic revision``).

    With ``autogenerate`` the models in env.py's ``target_metadata`` are
    compared with the database and the differences written as operations;
    ``url``/``engine``/``connection`` name the database to compare with
    (with many tenants: the reference tenant's), ``tenant=`` a
    :class:`~asyncmigrate.tenants.Tenant`.
    """
    script = await _script_directory(config)
    environment = bool(config.get_alembic_boolean_option("revision_environment"))
    # env.py runs (and its process_revision_directives hook with it) for autogenerate,
    # for a hook passed here, and for every revision under revision_environment.
    if autogenerate or process_revision_directives is not None or environment:
        api = _autogenerate_api()
        if api is None:
            raise CommandError("autogenerate is not available in this build of asyncmigrate")
        result: Script | list[Script] = await api.revision_with_autogenerate(
            config,
            script,
            message=message,
            autogenerate=autogenerate,
            sql=sql,
            head=head,
            splice=splice,
            branch_label=branch_label,
            version_path=version_path,
            rev_id=rev_id,
            depends_on=depends_on,
            process_revision_directives=process_revision_directives,
            url=url,
            engine=engine,
            connection=connection,
            **env_opts,
        )
        return result
    if sql:
        raise CommandError(
            "Using --sql with the revision command when revision_environment is not "
            "configured does not make any sense"
        )
    return await _write_empty_revision(
        script,
        config,
        rev_id,
        message,
        head=head,
        splice=splice,
        branch_labels=branch_label,
        version_path=version_path,
        depends_on=depends_on,
    )


async def _write_empty_revision(
    script: ScriptDirectory, config: Config, rev_id: str | None, message: str | None, **kw: Any
) -> Script:
    """Write a revision with empty upgrade()/downgrade() in a worker thread."""

    def write() -> Script:
        return script.generate_revision(
            rev_id or new_revision_id(),
            message,
            config=config,
            imports="",
            upgrades="pass",
            downgrades="pass",
            **kw,
        )

    return await anyio.to_thread.run_sync(write)


async def merge(
    config: Config,
    revisions: str | Sequence[str],
    message: str | None = None,
    branch_label: str | Sequence[str] | None = None,
    rev_id: str | None = None,
    splice: bool = False,
) -> Script:
    """Create a revision that merges ``revisions`` (e.g. ``heads``) into one.

    ``splice`` allows merging revisions that are not heads, as for ``revision``.
    """
    script = await _script_directory(config)
    return await _write_empty_revision(
        script, config, rev_id, message, head=revisions, branch_labels=branch_label, splice=splice
    )


# -- reading the history ---------------------------------------------------------------------


async def heads(
    config: Config, verbose: bool = False, resolve_dependencies: bool = False
) -> list[Script]:
    """Return the head revisions (``--resolve-dependencies``: heads once dependencies count)."""
    script = await _script_directory(config)
    ids = script.graph.real_heads if resolve_dependencies else script.graph.heads
    return list(script.get_revisions(ids))


async def branches(config: Config, verbose: bool = False) -> list[tuple[Script, list[Script]]]:
    """Return the branch points, newest first, each with the revisions it branches into."""
    script = await _script_directory(config)
    return [
        (point, list(script.get_revisions(sorted(point.nextrev))))
        for point in script.walk_revisions()
        if point.is_branch_point
    ]


async def show(config: Config, rev: str | Sequence[str]) -> list[Script]:
    """Return the revision(s) ``rev`` names (``current``: those in the database)."""
    script = await _script_directory(config)
    if rev == "current":
        state = await current(config)
        return list(script.get_revisions(state.heads))
    return list(script.get_revisions(rev))


async def history(
    config: Config,
    rev_range: str | None = None,
    verbose: bool = False,
    indicate_current: bool = False,
) -> list[tuple[Script, bool]]:
    """Return the revisions in ``rev_range`` (``[start]:[end]``), newest first.

    Each comes with whether the database holds it (only with ``indicate_current``
    or a ``current`` end of the range; otherwise False).
    """
    script = await _script_directory(config)
    base: str | None = None
    head: str | None = None
    if rev_range is not None:
        if ":" not in rev_range:
            raise CommandError("History range requires [start]:[end], [start]:, or :[end]")
        base, head = rev_range.strip().split(":", 1)
    currents: tuple[str, ...] = ()
    needs_db = indicate_current or "current" in (base, head) or config.get_alembic_boolean_option(
        "revision_environment"
    )
    if needs_db:
        currents = (await current(config)).heads
        if head == "current":
            head = ",".join(currents) or "base"
        if base == "current":
            base = ",".join(currents) or "base"
    upper: Any = tuple(head.split(",")) if head and "," in head else (head or "heads")
    lower: Any = tuple(base.split(",")) if base and "," in base else (base or "base")

    def walk() -> list[Script]:
        return list(
            script.iterate_revisions(upper, lower, inclusive=True, assert_relative_length=False)
        )

    scripts = walk()
    return [(s, s.revision in currents) for s in scripts]


async def current(
    config: Config,
    check_heads: bool = False,
    verbose: bool = False,
    *,
    url: str | URL | None = None,
    engine: AsyncEngine | None = None,
    connection: AsyncConnection | None = None,
    script: ScriptDirectory | None = None,
    **env_opts: Any,
) -> CurrentState:
    """Read the database's current revision(s).

    :param check_heads: raise :class:`NotAtHeadError` when an ``upgrade heads``
        would still apply revisions.
    :param script: a loaded script directory to reuse (fan-out shares one).
    """
    target = _target_options(url, engine, connection)
    async with _connecting_early(config, False, target, env_opts):
        script = script or await _script_directory(config)
        found: dict[str, Any] = {}

        def read(heads: tuple[str, ...], ctx: MigrationContext) -> list[MigrationStep]:
            found["heads"] = heads
            return []

        env = await _run(
            config, script, read, dont_mutate=True, **target, **env_opts
        )
        heads_found: tuple[str, ...] = found.get("heads", ())
        with recorded_heads(heads_found):
            pending = tuple(
                step.revision.revision for step in upgrade_plan(script.graph, heads_found, "heads")
            )
        state = CurrentState(
            heads=tuple(sorted(heads_found, key=_order_key(script))),
            at_head=not pending,
            pending=pending,
            url=_describe_target(env),
        )
        if check_heads and not state.at_head:
            raise NotAtHeadError(
                f"Database is not on all head revisions: {len(pending)} revision(s) to apply "
                f"({', '.join(pending[:5])}{'...' if len(pending) > 5 else ''})"
            )
        return state


def _order_key(script: ScriptDirectory) -> Callable[[str], int]:
    order = {rev.revision: i for i, rev in enumerate(script.graph)}
    return lambda rev: order.get(rev, -1)


async def check(
    config: Config,
    *,
    url: str | URL | None = None,
    engine: AsyncEngine | None = None,
    connection: AsyncConnection | None = None,
    script: ScriptDirectory | None = None,
    **env_opts: Any,
) -> CurrentState:
    """Fail with :class:`NotAtHeadError` unless the database is at the head revision(s).

    The models in env.py's ``target_metadata`` are also compared with the
    database (autogenerate) and any difference fails the check; as with
    Alembic, an env.py without ``target_metadata`` fails it with
    :class:`~asyncmigrate.exceptions.NoTargetMetadataError`.
    """
    state = await current(
        config, check_heads=True, url=url, engine=engine, connection=connection, script=script,
        **env_opts,
    )
    api = _autogenerate_api()
    if api is not None:
        try:
            await api.check_models(
                config, url=url, engine=engine, connection=connection, script=script, **env_opts
            )
        except NoTargetMetadataError as exc:
            env_py = (script or await _script_directory(config)).env_py_location
            raise NoTargetMetadataError(
                f"check compares your models with the database, but {env_py} does not provide a "
                "MetaData object (target_metadata) to compare: set it, or run 'current "
                "--check-heads' to check only that the database is at head"
            ) from exc
    return state


def _autogenerate_api() -> Any:
    """Return :mod:`asyncmigrate.autogenerate.api` when it is available."""
    import importlib

    try:
        return importlib.import_module("asyncmigrate.autogenerate.api")
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("asyncmigrate.autogenerate"):
            return None
        raise


# -- changing the database -----------------------------------------------------------------


async def upgrade(
    config: Config,
    revision: str,
    sql: bool = False,
    tag: str | None = None,
    *,
    url: str | URL | None = None,
    engine: AsyncEngine | None = None,
    connection: AsyncConnection | None = None,
    on_step: StepEventHandler | None = None,
    lock: bool | None = None,
    lock_timeout: float | None = None,
    script: ScriptDirectory | None = None,
    lint: bool = False,
    validate: bool = False,
    **env_opts: Any,
) -> MigrationResult:
    """Upgrade to ``revision`` (``head``, ``heads``, ``+2``, ``label@head``, an id...).

    :param sql: render the SQL instead of running it; ``start:end`` gives the
        starting point (default: base).
    :param tag: a free-form tag env.py can read (``context.get_tag_argument()``).
    :param lock: hold the cross-process migration lock (default: config ``lock``, else on).
    :param lock_timeout: seconds to wait for the lock (default: config, else 300).
    :param lint: first check the revisions the upgrade would run
        (:func:`asyncmigrate.lint.lint`) and run nothing when it finds errors.
    :param validate: first check the applied revisions against their files
        (:func:`validate`) and run nothing when any drifted.
    :raises LintError: with ``lint``, when the check found errors (its
        ``report`` has them all).
    :raises DriftError: with ``validate``, when applied revisions drifted.
    """
    started = time.perf_counter()
    target = _target_options(url, engine, connection)
    async with _connecting_early(config, sql, target, env_opts):
        script = script or await _script_directory(config)
        starting_rev = None
        if ":" in revision:
            if not sql:
                raise CommandError("Range revision not allowed")
            starting_rev, revision = revision.split(":", 2)
        destination = revision
        if lint and not sql:
            await _refuse_lint_errors(config, script, destination, url, engine, connection)
        if validate and not sql:
            await _refuse_drift(config, script, url, engine, connection, env_opts)

        def plan(heads: tuple[str, ...], ctx: MigrationContext) -> list[MigrationStep]:
            if _already_at(script, heads, destination):
                return []
            return list(upgrade_plan(script.graph, heads, destination))

        return await _migrate(
            config, script, plan, sql, started,
            lock=lock, lock_timeout=lock_timeout, target=target, env_opts=env_opts,
            starting_rev=starting_rev, destination_rev=destination, tag=tag, on_step=on_step,
            command_name="upgrade",
        )


async def _refuse_lint_errors(
    config: Config,
    script: ScriptDirectory,
    destination: str,
    url: str | URL | None,
    engine: AsyncEngine | None,
    connection: AsyncConnection | None,
) -> None:
    """Lint what ``upgrade destination`` would run; raise :class:`LintError` on errors."""
    report = await lint(config, target=destination, url=url, engine=engine, connection=connection,
                        script=script)
    if not report.ok:
        first = report.errors[0]
        where = f"{os.path.basename(first.path)}:{first.line}" if first.path else first.revision
        raise LintError(
            f"Refusing to upgrade: lint found {len(report.errors)} error(s); first: "
            f"{first.rule_id} {first.message} ({where})",
            report=report,
        )


async def _refuse_drift(
    config: Config,
    script: ScriptDirectory,
    url: str | URL | None,
    engine: AsyncEngine | None,
    connection: AsyncConnection | None,
    env_opts: dict[str, Any],
) -> None:
    """Validate the database; raise :class:`DriftError` when applied revisions drifted."""
    report = await validate(config, url=url, engine=engine, connection=connection, script=script,
                            **env_opts)
    if not report.ok:
        raise DriftError(
            f"Refusing to upgrade: {len(report.drift)} applied revision(s) drifted from their "
            f"files; first: {report.drift[0].message} (review, then 'asyncmigrate validate --repair')",
            report=report,
        )


async def lint(config: Config, revisions: str | Sequence[str] | None = None, **kwargs: Any) -> LintReport:
    """Check revisions for changes that lock or break a live database (``asyncmigrate lint``).

    The pending revisions by default; see :func:`asyncmigrate.lint.lint`
    for the arguments and the report.
    """
    from .lint import lint as run_lint

    return await run_lint(config, revisions, **kwargs)


_RELATIVE_TARGET = re.compile(r"(?:(.+?)@)?(\w+)?((?:\+|-)\d+)")


def _already_at(script: ScriptDirectory, heads: tuple[str, ...], destination: str) -> bool:
    """Tell cheaply whether an absolute upgrade target is already in the version table."""
    if not heads or _RELATIVE_TARGET.match(destination):
        return False
    try:
        targets = script.graph.get_revisions(destination)
    except AsyncMigrateError:
        return False  # the full planner reports the problem
    ids = {t.revision for t in targets if isinstance(t, Revision)}
    return bool(ids) and len(ids) == len(targets) and ids <= set(heads)


async def downgrade(
    config: Config,
    revision: str,
    sql: bool = False,
    tag: str | None = None,
    *,
    url: str | URL | None = None,
    engine: AsyncEngine | None = None,
    connection: AsyncConnection | None = None,
    on_step: StepEventHandler | None = None,
    lock: bool | None = None,
    lock_timeout: float | None = None,
    script: ScriptDirectory | None = None,
    **env_opts: Any,
) -> MigrationResult:
    """Downgrade to ``revision`` (``base``, ``-1``, ``label@-1``, an id...).

    :param sql: render the SQL instead of running it; needs ``start:end``.
    """
    started = time.perf_counter()
    target = _target_options(url, engine, connection)
    async with _connecting_early(config, sql, target, env_opts):
        script = script or await _script_directory(config)
        starting_rev = None
        if ":" in revision:
            if not sql:
                raise CommandError("Range revision not allowed")
            starting_rev, revision = revision.split(":", 2)
        elif sql:
            raise CommandError("downgrade with --sql requires <fromrev>:<torev>")
        destination = revision

        def plan(heads: tuple[str, ...], ctx: MigrationContext) -> list[MigrationStep]:
            return list(downgrade_plan(script.graph, heads, destination))

        return await _migrate(
            config, script, plan, sql, started,
            lock=lock, lock_timeout=lock_timeout, target=target, env_opts=env_opts,
            starting_rev=starting_rev, destination_rev=destination, tag=tag, on_step=on_step,
            command_name="downgrade",
        )


async def stamp(
    config: Config,
    revision: str | Sequence[str],
    sql: bool = False,
    tag: str | None = None,
    purge: bool = False,
    *,
    url: str | URL | None = None,
    engine: AsyncEngine | None = None,
    connection: AsyncConnection | None = None,
    on_step: StepEventHandler | None = None,
    lock: bool | None = None,
    lock_timeout: float | None = None,
    script: ScriptDirectory | None = None,
    **env_opts: Any,
) -> MigrationResult:
    """Set the version table to ``revision`` (one or several) without running migrations.

    :param purge: empty the version table first.
    """
    started = time.perf_counter()
    target = _target_options(url, engine, connection)
    async with _connecting_early(config, sql, target, env_opts):
        script = script or await _script_directory(config)
        destinations: list[str] = []
        starting_rev: str | None = None
        for item in as_tuple(revision):
            if sql and ":" in item:
                start, item = item.split(":", 2)
                if starting_rev not in (None, start):
                    raise CommandError(
                        "Stamp operation with --sql only supports a single starting revision at a time"
                    )
                starting_rev = start
            destinations.append(item)
        if purge and sql:
            raise CommandError("Can't use --purge with --sql mode")

        def plan(heads: tuple[str, ...], ctx: MigrationContext) -> list[MigrationStep]:
            return list(stamp_plan(script.graph, tuple(destinations), heads))

        return await _migrate(
            config, script, plan, sql, started,
            lock=lock, lock_timeout=lock_timeout, target=target, env_opts=env_opts,
            starting_rev=starting_rev, destination_rev=tuple(destinations), tag=tag,
            purge=purge, on_step=on_step, command_name="stamp",
        )


async def ensure_version(
    config: Config,
    sql: bool = False,
    *,
    url: str | URL | None = None,
    engine: AsyncEngine | None = None,
    connection: AsyncConnection | None = None,
) -> MigrationResult:
    """Create the version table if it does not exist."""
    started = time.perf_counter()
    script = await _script_directory(config)

    def create(heads: tuple[str, ...], ctx: MigrationContext) -> list[MigrationStep]:
        if sql:
            ctx.impl._exec(ctx.version.create_construct())
        else:
            ctx.ensure_version_table()
        return []

    buffer = io.StringIO() if sql else None
    env = await _run(
        config,
        script,
        create,
        as_sql=sql,
        **({"output_buffer": buffer} if buffer is not None else {}),
        **_target_options(url, engine, connection),
    )
    return _migration_result(env, started, buffer)


# -- the applied record ------------------------------------------------------------------------


async def log(
    config: Config,
    *,
    url: str | URL | None = None,
    engine: AsyncEngine | None = None,
    connection: AsyncConnection | None = None,
    script: ScriptDirectory | None = None,
    **env_opts: Any,
) -> AppliedRecord:
    """Read the database's applied record: its history table, and what came before it.

    The table is the configured ``history_table`` (default
    ``asyncmigrate_history``); a database without one has an empty record,
    every applied revision "before the record".
    """
    from .audit import applied_record
    from .runtime.history import read_history

    target = _target_options(url, engine, connection)
    async with _connecting_early(config, False, target, env_opts):
        script = script or await _script_directory(config)
        found: dict[str, Any] = {}

        def read(heads: tuple[str, ...], ctx: MigrationContext) -> list[MigrationStep]:
            found["heads"] = heads
            found["table"], found["rows"] = read_history(ctx)
            return []

        env = await _run(config, script, read, dont_mutate=True, **target, **env_opts)
        return applied_record(
            script.graph, found.get("heads", ()), found.get("rows"),
            table=found["table"].name if "table" in found else "", url=_describe_target(env),
        )


async def validate(
    config: Config,
    repair: bool = False,
    *,
    url: str | URL | None = None,
    engine: AsyncEngine | None = None,
    connection: AsyncConnection | None = None,
    script: ScriptDirectory | None = None,
    **env_opts: Any,
) -> ValidationReport:
    """Compare the database's applied record with the revision files.

    Reports applied revisions whose file changed since (checksum
    mismatch), applied revisions whose file is missing, and version rows
    naming no known revision (see :mod:`asyncmigrate.audit`).

    :param repair: record the current checksums of changed files (after
        a reviewed edit); the report then lists what a repair cannot fix.
    """
    from .audit import ValidationReport, applied_record, find_drift
    from .runtime.history import read_history, record_repairs, revision_checksum

    target = _target_options(url, engine, connection)
    async with _connecting_early(config, False, target, env_opts):
        script = script or await _script_directory(config)
        graph = script.graph
        checksums = await anyio.to_thread.run_sync(
            lambda: {rev.revision: revision_checksum(script, rev.revision) for rev in graph}
        )
        found: dict[str, Any] = {}

        def check(heads: tuple[str, ...], ctx: MigrationContext) -> list[MigrationStep]:
            table, rows = read_history(ctx)
            drift = find_drift(graph, heads, rows or [], checksums)
            fixed = {d.revision: d.current for d in drift if d.kind == "changed" and d.current}
            if repair and fixed:
                record_repairs(ctx, fixed)
                table, rows = read_history(ctx)
                drift = find_drift(graph, heads, rows or [], checksums)
            found.update(heads=heads, table=table, rows=rows, drift=drift,
                         repaired=tuple(fixed) if repair else ())
            return []

        env = await _run(config, script, check, dont_mutate=not repair, **target, **env_opts)
        record = applied_record(
            graph, found.get("heads", ()), found.get("rows"),
            table=found["table"].name if "table" in found else "", url=_describe_target(env),
        )
        return ValidationReport(record, tuple(found.get("drift", ())), found.get("repaired", ()))


async def edit(config: Config, rev: str) -> list[Path]:
    """Open the revision file(s) ``rev`` names in ``$VISUAL``/``$EDITOR``."""
    script = await _script_directory(config)
    targets = list(script.get_revisions(rev))
    if not targets:
        raise CommandError(f"No revision files indicated by symbol '{rev}'")
    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR")
    if not editor:
        raise CommandError("Set $EDITOR (or $VISUAL) to edit revision files")
    paths = [Path(s.path) for s in targets]
    for path in paths:
        done = await anyio.run_process(
            [*shlex.split(editor), str(path)], stdin=None, stdout=None, stderr=None, check=False
        )
        if done.returncode != 0:
            raise CommandError(f"Editor exited with {done.returncode} for {path}")
    return paths
