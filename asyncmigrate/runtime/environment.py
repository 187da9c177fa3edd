"""What env.py talks to as ``context``: configuration in, a configured migration context out."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractContextManager, asynccontextmanager
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal, TextIO, TypeVar, overload

import anyio
from sqlalchemy import pool
from sqlalchemy.engine import Connection
from sqlalchemy.engine.url import URL
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.sql.expression import Executable

from .._greenlet import await_in_loop, in_loop_greenlet
from ..config import missing_url_error
from ..exceptions import CommandError, ConnectionFailedError
from ..urls import mask_password
from .connecting import EarlyConnection, answer_first_connect
from .local import bind_environment
from .migration import MigrationContext
from .sessions import SessionProbe
from .timeouts import parse_seconds

if TYPE_CHECKING:
    from sqlalchemy.schema import MetaData

    from ..config import Config
    from ..ddl import DefaultImpl
    from ..script import ScriptDirectory

__all__ = ["DEFAULT_CONNECT_TIMEOUT", "EnvironmentContext", "connect_timeout", "connected"]

#: Seconds to wait for a database connection before giving up (``connect_timeout``).
DEFAULT_CONNECT_TIMEOUT = 30.0


def connect_timeout(config: Config) -> float | None:
    """The configured ``connect_timeout`` in seconds (default 30; ``0`` for none).

    :raises ConfigError: when it is not a non-negative number.
    """
    configured = config.get_alembic_option("connect_timeout")
    return parse_seconds(configured, "connect_timeout", DEFAULT_CONNECT_TIMEOUT)


@asynccontextmanager
async def connected(
    engine: AsyncEngine, timeout: float | None, probe: SessionProbe | None = None
) -> AsyncIterator[AsyncConnection]:
    """Connect through ``engine``, giving up after ``timeout`` seconds with one clear error.

    A server that accepts the TCP connection and never answers (a stalled
    proxy, a hung host) would otherwise keep the command waiting for as
    long as the driver's own limit, if it has one.

    Closing waits for the server at most as long as ``probe``'s clean-up
    budget allows (a run past its deadline); then the connection is dropped.

    :raises ConnectionFailedError: when no connection is made in time.
    """
    connection = engine.connect()
    try:
        with anyio.fail_after(timeout):
            await connection.start()
    except TimeoutError as exc:
        waited = f"within {timeout:g}s (connect_timeout)" if timeout else "in the driver's time limit"
        where = mask_password(engine.url)
        raise ConnectionFailedError(f"Cannot connect to {where}: no answer {waited}") from exc
    try:
        yield connection
    finally:
        with anyio.CancelScope(shield=True):  # as AsyncConnection.__aexit__ does
            limit = probe.cleanup_budget(math.inf) if probe is not None else math.inf
            with anyio.move_on_after(limit) as closing:
                await connection.close()
            if closing.cancelled_caught:  # the server does not answer: drop it, no round trip
                await connection.invalidate()

T = TypeVar("T")


class EnvironmentContext:
    """The facade env.py sees as ``context``, for one command on one database.

    It owns the options a command passes down (the step function, offline
    mode, tags, locking) and the :class:`MigrationContext` objects env.py
    creates through :meth:`configure`. It leaves running steps to the
    migration context and opening connections to env.py -- or, through
    :meth:`connect`, to the engine or connection the caller handed in.
    One instance serves one task; ``context`` is bound to it task-locally.
    """

    def __init__(self, config: Config, script: ScriptDirectory, **kw: Any) -> None:
        self._config = config
        self.script = script
        self.context_opts: dict[str, Any] = kw
        self._migration_context: MigrationContext | None = None
        #: Every migration context env.py configured, in order (multi-database env.py files).
        self.migration_contexts: list[MigrationContext] = []
        #: The revision modules this run imported, by file: one import per run of env.py, shared
        #: by every migration context it configures (see :meth:`Script.module_for_run`).
        self.revision_modules: dict[str, ModuleType] = {}
        self._binding: AbstractContextManager[EnvironmentContext] | None = None
        # The run's own connection, opened before env.py asked (see envpy.connect_early).
        self._early: EarlyConnection | None = kw.pop("early_connection", None)

    def __enter__(self) -> EnvironmentContext:
        self._binding = bind_environment(self)
        return self._binding.__enter__()

    def __exit__(self, *exc: Any) -> None:
        if self._binding is not None:
            self._binding.__exit__(*exc)
            self._binding = None

    @property
    def config(self) -> Config:
        """The run's :class:`~asyncmigrate.Config` (each tenant has its own copy)."""
        return self._config

    # -- what the command asked for -----------------------------------------------------

    def is_offline_mode(self) -> bool:
        """True when rendering SQL (``--sql``) instead of running it."""
        return bool(self.context_opts.get("as_sql", False))

    def requires_connection(self) -> bool:
        """True when the command needs a database connection."""
        return not self.is_offline_mode()

    def is_transactional_ddl(self) -> bool:
        """True when the configured database runs DDL inside transactions."""
        return self.get_context().impl.transactional_ddl

    def get_head_revision(self) -> str | tuple[str, ...] | None:
        """The single head revision id (raises when there are several)."""
        return self.script.as_revision_number("head")

    def get_head_revisions(self) -> str | tuple[str, ...] | None:
        """Every head revision id."""
        return self.script.as_revision_number("heads")

    def get_starting_revision_argument(self) -> str | tuple[str, ...] | None:
        """The ``start`` of a ``start:end`` offline range."""
        if self._migration_context is not None:
            start = self._migration_context._start_from_rev
        elif "starting_rev" in self.context_opts:
            start = self.context_opts["starting_rev"]
        else:
            raise CommandError("No starting revision argument is available.")
        return self.script.as_revision_number(start if isinstance(start, str) else None)

    def get_revision_argument(self) -> str | tuple[str, ...] | None:
        """The destination revision the command targets, resolved when symbolic."""
        return self.script.as_revision_number(self.context_opts.get("destination_rev"))

    def get_tag_argument(self) -> str | None:
        """The ``--tag`` value."""
        return self.context_opts.get("tag")

    @overload
    def get_x_argument(self, as_dictionary: Literal[False] = ...) -> list[str]: ...

    @overload
    def get_x_argument(self, as_dictionary: Literal[True]) -> dict[str, str]: ...

    def get_x_argument(self, as_dictionary: bool = False) -> list[str] | dict[str, str]:
        """The ``-x`` arguments, as a list or as a ``key=value`` dict."""
        values = list(getattr(self.config.cmd_opts, "x", None) or [])
        if as_dictionary:
            return self.config.x_arguments
        return values

    # -- configuring --------------------------------------------------------------------

    def configure(
        self,
        connection: Connection | AsyncConnection | None = None,
        url: str | URL | None = None,
        dialect_name: str | None = None,
        dialect_opts: dict[str, Any] | None = None,
        transactional_ddl: bool | None = None,
        transaction_per_migration: bool = False,
        output_buffer: TextIO | None = None,
        starting_rev: str | None = None,
        tag: str | None = None,
        template_args: dict[str, Any] | None = None,
        render_as_batch: bool = False,
        target_metadata: MetaData | Sequence[MetaData] | None = None,
        include_name: Callable[..., bool] | None = None,
        include_object: Callable[..., bool] | None = None,
        include_schemas: bool = False,
        process_revision_directives: Callable[..., None] | None = None,
        compare_type: bool | Callable[..., bool | None] = True,
        compare_server_default: bool | Callable[..., bool | None] = False,
        render_item: Callable[..., Any] | None = None,
        literal_binds: bool = False,
        upgrade_token: str = "upgrades",
        downgrade_token: str = "downgrades",
        alembic_module_prefix: str = "op.",
        sqlalchemy_module_prefix: str = "sa.",
        user_module_prefix: str | None = None,
        on_version_apply: Callable[..., None] | Sequence[Callable[..., None]] | None = None,
        **kw: Any,
    ) -> None:
        """Create the migration context for this run (Alembic's ``context.configure``).

        Takes Alembic's arguments. ``connection`` may also be an
        :class:`~sqlalchemy.ext.asyncio.AsyncConnection`; its sync side is used.
        """
        opts = self.context_opts
        if transactional_ddl is not None:
            opts["transactional_ddl"] = transactional_ddl
        if output_buffer is not None:
            opts["output_buffer"] = output_buffer
        elif self.config.output_buffer is not None:
            opts.setdefault("output_buffer", self.config.output_buffer)
        if starting_rev:
            opts["starting_rev"] = starting_rev
        if tag:
            opts["tag"] = tag
        if template_args and "template_args" in opts:
            opts["template_args"].update(template_args)
        callbacks: tuple[Callable[..., None], ...]
        if on_version_apply is None:
            callbacks = ()
        elif callable(on_version_apply):
            callbacks = (on_version_apply,)
        else:
            callbacks = tuple(on_version_apply)
        opts.update(
            transaction_per_migration=transaction_per_migration,
            target_metadata=target_metadata,
            include_name=include_name,
            include_object=include_object,
            include_schemas=include_schemas,
            render_as_batch=render_as_batch,
            upgrade_token=upgrade_token,
            downgrade_token=downgrade_token,
            sqlalchemy_module_prefix=sqlalchemy_module_prefix,
            alembic_module_prefix=alembic_module_prefix,
            user_module_prefix=user_module_prefix,
            literal_binds=literal_binds,
            process_revision_directives=process_revision_directives,
            on_version_apply=callbacks,
            compare_type=compare_type,
            compare_server_default=compare_server_default,
            script=self.script,
        )
        if render_item is not None:
            opts["render_item"] = render_item
        opts.update(kw)
        sync_connection: Connection | None
        if isinstance(connection, AsyncConnection):
            sync_connection = connection.sync_connection
            if sync_connection is None:
                raise CommandError("The AsyncConnection passed to configure() is closed")
        else:
            sync_connection = connection
        if sync_connection is None and url is None and dialect_name is None and not self.is_offline_mode():
            raise CommandError("configure() needs a connection for an online migration")
        context = MigrationContext.configure(
            connection=sync_connection,
            url=url,
            dialect_name=dialect_name,
            environment_context=self,
            dialect_opts=dialect_opts,
            opts=dict(opts),
        )
        self._migration_context = context
        self.migration_contexts.append(context)

    # -- running ------------------------------------------------------------------------

    def run_migrations(self, **kw: Any) -> None:
        """Run the command's steps on the configured context."""
        self.get_context().run_migrations(**kw)

    def execute(self, sql: Executable | str, execution_options: dict[str, Any] | None = None) -> None:
        """Execute (or, offline, render) a statement outside any migration."""
        self.get_context().execute(sql, execution_options=execution_options)

    def static_output(self, text: str) -> None:
        """Write text to the offline SQL output."""
        self.get_context().impl.static_output(text)

    def begin_transaction(self) -> AbstractContextManager[Any]:
        """Begin the run's logical transaction (see :meth:`MigrationContext.begin_transaction`)."""
        return self.get_context().begin_transaction()

    def get_context(self) -> MigrationContext:
        """The migration context :meth:`configure` created.

        :raises CommandError: before :meth:`configure`.
        """
        if self._migration_context is None:
            raise CommandError("No context has been configured yet.")
        return self._migration_context

    def get_bind(self) -> Connection:
        """The connection migrations run on."""
        bind = self.get_context().bind
        if bind is None:  # pragma: no cover - online contexts always have one
            raise CommandError("No connection is configured")
        return bind

    def get_impl(self) -> DefaultImpl:
        """The dialect implementation in use."""
        return self.get_context().impl

    # -- asyncmigrate additions --------------------------------------------------------

    @property
    def tenant(self) -> Any:
        """The :class:`~asyncmigrate.tenants.Tenant` being migrated, or None outside a fan-out."""
        return self.context_opts.get("tenant")

    @property
    def url(self) -> str | None:
        """The database URL for this run (async driver), from the command or the config."""
        url = self.context_opts.get("url") or self.config.database_url
        return str(url) if url else None

    @asynccontextmanager
    async def connect(self, **engine_kwargs: Any) -> AsyncIterator[AsyncConnection]:
        """Open the connection this run should migrate over.

        In order: the ``AsyncConnection`` the caller passed (``connection=`` on
        the command, or ``config.attributes["connection"]``), a connection
        from the caller's ``AsyncEngine`` (``engine=``/``attributes["engine"]``),
        or a new engine on the configured URL (closed afterwards).
        """
        given = self.context_opts.get("connection") or self.config.attributes.get("connection")
        if given is not None:
            if not isinstance(given, AsyncConnection):
                raise CommandError(
                    f"Expected an AsyncConnection to migrate over, got {type(given).__name__}"
                )
            yield given
            return
        engine = self.context_opts.get("engine") or self.config.attributes.get("engine")
        if engine is not None:
            if not isinstance(engine, AsyncEngine):
                raise CommandError(f"Expected an AsyncEngine, got {type(engine).__name__}")
            async with connected(engine, self.connect_timeout, self._session_probe) as connection:
                yield connection
            return
        url = self.url
        if not url:
            raise missing_url_error("pass one to the command")
        engine_kwargs.setdefault("poolclass", pool.NullPool)
        owned = create_async_engine(url, **engine_kwargs)
        if self._early is not None:
            self._early.offer_to(owned)
        else:
            answer_first_connect(owned)
        try:
            async with connected(owned, self.connect_timeout, self._session_probe) as connection:
                yield connection
        finally:
            await owned.dispose()

    @property
    def _session_probe(self) -> SessionProbe | None:
        probe = self.context_opts.get("session_probe")
        return probe if isinstance(probe, SessionProbe) else None

    @property
    def connect_timeout(self) -> float | None:
        """Seconds :meth:`connect` waits for a connection (``connect_timeout``; 0 waits forever)."""
        return connect_timeout(self.config)

    async def close_early_connection(self) -> None:
        """Close the connection opened early for this run if env.py did not take it."""
        early, self._early = self._early, None
        if early is not None:
            await early.close()

    def run_async(self, awaitable: Awaitable[T] | Callable[[], Awaitable[T]]) -> T:
        """Await a coroutine (or a coroutine function) in the caller's event loop from env.py.

        env.py runs as sync module code in a greenlet of the caller's loop;
        this is how it awaits: ``context.run_async(run_migrations_online)``.
        """
        if callable(awaitable):
            awaitable = awaitable()
        if not in_loop_greenlet():
            raise CommandError(
                "context.run_async() can only be used while asyncmigrate runs env.py"
            )
        return await_in_loop(awaitable)
