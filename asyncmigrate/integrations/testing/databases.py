"""Fresh databases for tests: migrated templates, cached across sessions, and per-test copies.

A *template* is a database migrated once to the target and then only copied:

* PostgreSQL: a database named ``amtpl_<project>_<key>``, built under an
  advisory lock (so pytest-xdist workers racing for it build it once),
  renamed into place when complete and closed to connections, so that
  ``CREATE DATABASE ... TEMPLATE`` never meets a session on it. Per-test
  databases are cloned from it ahead of demand, a few at a time, and
  dropped in batches -- on PostgreSQL 15 every ``DROP DATABASE`` forces a
  checkpoint, which concurrent drops share.
* SQLite: a file in the cache directory, built under a file lock and
  renamed into place; each test gets a copy.
* MySQL/MariaDB: no template feature; each test gets a new database migrated
  from scratch.

The *key* is a hash of everything that decides the migrated schema: the
revision files and env.py, the configuration's main section, ``-x``
arguments, the target and the server. An unchanged history finds its
template from the previous session and migrates nothing.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeAlias

import anyio
import anyio.abc
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from ... import command
from ...config import Config
from ...exceptions import ConfigError, DatabaseError
from ...masking import get_logger
from ...script import ScriptDirectory
from ...urls import mask_password, to_async_url
from .housekeeping import SessionLease, Sweep
from .options import MigrationTestOptions, Setup, template_fingerprint
from .seeding import call_hook

__all__ = ["Backend", "DatabaseFactory", "Template", "TemporaryDatabase", "run_setup", "template_key"]

log = get_logger("asyncmigrate.testing")

Backend: TypeAlias = Literal["postgresql", "sqlite", "mysql"]

_VERSION = "1"  # bump when the template layout changes
_DROP_CONCURRENCY = 32  # drops at once: enough to share one checkpoint, well under max_connections


def backend_of(url: URL) -> Backend:
    """Name the backend of ``url`` among those the test databases support."""
    name = url.get_backend_name()
    if name == "postgresql":
        return "postgresql"
    if name == "sqlite":
        return "sqlite"
    if name in ("mysql", "mariadb"):
        return "mysql"
    raise ConfigError(f"Test databases are not supported on {name} ({mask_password(url)})")


def template_key(config: Config, base_url: URL, target: str, setup: str = "") -> str:
    """Hash what decides a migrated template's schema: files, options, target, set-up and server.

    :param setup: the options' fingerprint (:func:`~.options.template_fingerprint`).

    Reads the revision files and env.py (not imports: nothing runs).
    """
    script = ScriptDirectory.from_config(config)
    digest = hashlib.sha256()

    def add(label: str, value: str | bytes) -> None:
        data = value.encode() if isinstance(value, str) else value
        digest.update(f"{label}:{len(data)}:".encode())
        digest.update(data)

    add("layout", _VERSION)
    add("target", target)
    add("setup", setup)
    for path in sorted(script.revision_files()):
        add("revision", path.name)
        add("content", path.read_bytes())
    env_py = Path(script.env_py_location)
    add("env", env_py.read_bytes() if env_py.exists() else b"")
    main = config.get_section(config.config_ini_section) or {}
    for name in sorted(main):
        if name not in ("sqlalchemy.url", "here"):
            add(f"option {name}", str(main[name]))
    for name, value in sorted(config.toml_alembic_config.items()):
        add(f"toml {name}", repr(value))
    for name, value in sorted(config.x_arguments.items()):
        add(f"x {name}", value)
    backend = backend_of(base_url)
    if backend != "sqlite":
        add("server", f"{base_url.drivername}://{base_url.username}@{base_url.host}:{base_url.port}")
    return digest.hexdigest()


def project_key(config: Config, base_url: URL) -> str:
    """Hash where a project lives, so its stale templates can be found and dropped."""
    location = str(config.get_alembic_option("script_location", ""))
    where = os.path.abspath(config.config_file_name or config.toml_file_name or ".")
    return hashlib.sha256(f"{where}|{location}|{base_url.host}".encode()).hexdigest()[:6]


@dataclass(frozen=True)
class Template:
    """A database migrated to ``target`` once, that per-test databases copy."""

    backend: Backend
    key: str
    """The content hash (empty for an empty template)."""
    target: str | None
    """The revision it is migrated to; None for an empty database."""
    base_url: URL = field(repr=False)
    """The server URL (the maintenance database) or, for SQLite, any SQLite URL."""
    name: str = ""
    """PostgreSQL: the template database's name."""
    path: Path | None = None
    """SQLite: the template file."""
    built: bool = False
    """True when this session built it (False: found in the cache)."""
    options: MigrationTestOptions | None = field(default=None, repr=False, compare=False)
    """MySQL: the options each copy is built with (there is no template database)."""


@dataclass
class TemporaryDatabase:
    """One test's own database: its URL, a config pointing at it, ways to connect.

    The factory that made it drops (or deletes) it when the test ends.
    """

    __test__ = False  # not a test class, whatever pytest thinks of the name

    url: URL
    """The database's URL (async driver)."""
    config: Config
    """A copy of the project's config whose ``sqlalchemy.url`` is :attr:`url`."""
    backend: Backend
    name: str
    """The database name (PostgreSQL, MySQL) or file path (SQLite)."""
    template: Template | None = None

    def engine(self, **kwargs: Any) -> AsyncEngine:
        """Return a new ``AsyncEngine`` on this database (``NullPool``; dispose it yourself)."""
        kwargs.setdefault("poolclass", NullPool)
        return create_async_engine(self.url, **kwargs)

    @contextlib.asynccontextmanager
    async def connect(self) -> AsyncIterator[AsyncConnection]:
        """Open a connection to this database for the block."""
        engine = self.engine()
        try:
            async with engine.connect() as connection:
                yield connection
        finally:
            await engine.dispose()

    @contextlib.asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        """Open a connection in a transaction, committed when the block succeeds."""
        engine = self.engine()
        try:
            async with engine.begin() as connection:
                yield connection
        finally:
            await engine.dispose()


class _Clones:
    """Clones of one PostgreSQL template, created ahead of demand by a few cloner tasks."""

    def __init__(self, url: URL) -> None:
        self.url = url
        # No buffer: each cloner holds at most one finished clone, so at most
        # ``prefetch`` ready clones exist (every live clone makes DROP's checkpoint dearer).
        self.send, self.receive = anyio.create_memory_object_stream[tuple[str, BaseException | None]](0)
        self.requests = 0
        self.cloners = 0


class DatabaseFactory:
    """Make, copy and throw away test databases for one test session.

    It owns the templates it built or found, the per-test copies it handed
    out, and the background work on PostgreSQL (clones created ahead, drops
    in batches). It leaves migrating to :mod:`asyncmigrate.command` and
    deciding which tests need which database to the pytest plugin. Its
    coroutines run in one event loop (the plugin's own thread): create it,
    use it and :meth:`aclose` it there.

    :param cache_dir: where SQLite templates live across sessions.
    :param work_dir: where per-test SQLite copies go.
    :param prefetch: PostgreSQL clones to keep ready per template.
    :param drop_batch: drop per-test PostgreSQL databases this many at a time.
    :param rebuild: rebuild templates even when the cache has them.
    :param cleanup: also drop every template no live session uses (leftovers
        of ended sessions are always dropped).
    """

    def __init__(
        self,
        cache_dir: Path,
        work_dir: Path,
        *,
        prefetch: int = 1,
        drop_batch: int = 16,
        rebuild: bool = False,
        cleanup: bool = False,
    ) -> None:
        self.cache_dir = cache_dir
        self.work_dir = work_dir
        self.prefetch = max(0, prefetch)
        self.drop_batch = max(1, drop_batch)
        self.rebuild = rebuild
        self._templates: dict[tuple[str, str, str | None, str], Template] = {}
        self._keys: dict[tuple[Any, ...], str] = {}
        self._build_locks: dict[tuple[str, str, str | None], anyio.Lock] = {}
        self._admins: dict[str, AsyncEngine] = {}
        self._maintenance: dict[str, URL] = {}
        self._clones: dict[tuple[str, str], _Clones] = {}
        self._to_drop: list[tuple[URL, str]] = []
        self.session = SessionLease(cache_dir, purge_templates=cleanup)
        self._group: anyio.abc.TaskGroup | None = None
        self._stack: contextlib.AsyncExitStack | None = None
        self.stats: dict[str, float] = {"templates_built": 0, "templates_reused": 0, "databases": 0}

    async def __aenter__(self) -> DatabaseFactory:
        stack = contextlib.AsyncExitStack()
        self._group = await stack.enter_async_context(anyio.create_task_group())
        self._stack = stack
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop cloning, drop every database this factory made, close admin connections."""
        for clones in self._clones.values():
            # Unused clones go to the drop list; cloners still creating one
            # finish it, fail to hand it over, put it there too and stop.
            while True:
                try:
                    name, _ = clones.receive.receive_nowait()
                except (anyio.WouldBlock, anyio.EndOfStream, anyio.ClosedResourceError):
                    break
                if name:
                    self._to_drop.append((clones.url, name))
            clones.receive.close()
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.aclose()  # waits for the cloners to stop
        self._group = None
        for clones in self._clones.values():
            clones.send.close()
        self._clones.clear()
        with anyio.CancelScope(shield=True):
            await self._drop_pending()
            for engine in self._admins.values():
                await engine.dispose()
            self._admins.clear()
            await self.session.release()

    # -- names and keys ---------------------------------------------------------------------

    def _key(self, config: Config, base_url: URL, target: str, setup: str) -> str:
        """Return the template key, re-hashing only when a file changed since the last call."""
        script = ScriptDirectory.from_config(config)
        files = [*script.revision_files(), Path(script.env_py_location)]
        stats = tuple((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in files if p.exists())
        memo = (config.config_file_name, config.config_ini_section, config.toml_file_name,
                str(base_url), target, setup, stats, tuple(sorted(config.x_arguments.items())))
        key = self._keys.get(memo)
        if key is None:
            key = self._keys[memo] = template_key(config, base_url, target, setup)
        return key

    # -- templates --------------------------------------------------------------------------

    async def template(
        self,
        config: Config,
        base_url: str | URL,
        target: str | None,
        options: MigrationTestOptions | None = None,
    ) -> Template:
        """Return the template for ``config`` migrated to ``target`` (None: no migration).

        Built on first use in this session, unless an earlier session left it.

        :param options: their ``setup`` runs on the new database before the
            history; with data at revisions (or skipped revisions) the history
            runs one revision at a time, the rows inserted, as the checks do.
            Part of the template's key.
        """
        url = to_async_url(base_url)
        backend = backend_of(url)
        fingerprint = template_fingerprint(options, target is not None)
        if target is None and not fingerprint:
            return Template(backend, "", None, url, name="template1" if backend == "postgresql" else "")
        label = "(none)" if target is None else target
        key = await anyio.to_thread.run_sync(self._key, config, url, label, fingerprint)
        server = "" if backend == "sqlite" else str(url.set(database=None))
        memo = (backend, server, target, key)
        found = self._templates.get(memo)
        if found is not None:
            return found
        lock = self._build_locks.setdefault((backend, server, target), anyio.Lock())
        async with lock:
            found = self._templates.get(memo)
            if found is None:
                if backend == "postgresql":
                    found = await self._pg_template(config, url, target, key, options)
                elif backend == "sqlite":
                    found = await self._sqlite_template(config, url, target, key, options)
                else:
                    found = Template(backend, key, target, url, options=options)
                self._templates[memo] = found
                self.stats["templates_built" if found.built else "templates_reused"] += 1
        return found

    async def _build(
        self, config: Config, url: URL, target: str | None, options: MigrationTestOptions | None
    ) -> None:
        """Run the set-up on the new database at ``url``, then migrate it to ``target``."""
        if options is not None and options.setup is not None:
            await run_setup(url, options.setup)
        if target is None:
            return
        if options is not None and options.steps_one_by_one:
            from .runner import MigrationRunner  # the runner builds on this module

            copy = config.copy(url=url.render_as_string(hide_password=False))
            database = TemporaryDatabase(url, copy, backend_of(url), str(url.database))
            await MigrationRunner(database, options, lock=False).migrate_up_to(target)
        else:
            await command.upgrade(
                config.copy(url=url.render_as_string(hide_password=False)), target, url=url, lock=False
            )

    async def _sqlite_template(
        self, config: Config, url: URL, target: str | None, key: str, options: MigrationTestOptions | None
    ) -> Template:
        path = self.cache_dir / f"sqlite-{key[:24]}.db"
        lock_path = self.cache_dir / f"sqlite-{key[:24]}.lock"
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        handle = await anyio.to_thread.run_sync(_flock, lock_path)
        try:
            if self.session.hold_files():
                self.session.sweep_files()  # half-built templates of ended sessions
            if path.exists() and not self.rebuild:
                log.info("Reusing the migrated SQLite template %s", path)
                return Template("sqlite", key, target, url, path=path)
            building = path.with_name(self.session.file_name(path.stem))
            started = time.perf_counter()
            try:
                await self._build(config, url.set(database=str(building)), target, options)
                if not building.exists():  # nothing was run: an empty database
                    building.touch()
                os.replace(building, path)
            finally:
                for leftover in (building, Path(f"{building}.asyncmigrate-lock")):
                    leftover.unlink(missing_ok=True)
            log.info("Built the SQLite template %s in %.2fs", path, time.perf_counter() - started)
            return Template("sqlite", key, target, url, path=path, built=True)
        finally:
            handle.close()

    def _admin(self, url: URL) -> AsyncEngine:
        server = str(url.set(database=None))
        engine = self._admins.get(server)
        if engine is None:
            engine = create_async_engine(
                self._maintenance.get(server, url),
                isolation_level="AUTOCOMMIT",
                pool_size=max(2, self.prefetch + 1),
                max_overflow=_DROP_CONCURRENCY + 2,
                pool_pre_ping=False,
            )
            self._admins[server] = engine
        return engine

    async def _resolve_maintenance(self, url: URL) -> None:
        """Connect to ``url``'s database for admin work, or to ``postgres`` when it does not exist.

        The configured URL is often the application's database, which need not exist yet.
        """
        server = str(url.set(database=None))
        if server in self._maintenance or url.get_backend_name() != "postgresql":
            self._maintenance.setdefault(server, url)
            return
        probe = create_async_engine(url, poolclass=NullPool)
        try:
            async with probe.connect():
                pass
            self._maintenance[server] = url
        except Exception as exc:
            if "does not exist" not in str(exc) or url.database == "postgres":
                raise DatabaseError(f"Cannot connect to {mask_password(url)}: {_line(exc)}") from exc
            log.info("%s does not exist; using the postgres database for admin work", url.database)
            self._maintenance[server] = url.set(database="postgres")
        finally:
            await probe.dispose()

    @contextlib.asynccontextmanager
    async def _admin_connection(self, url: URL) -> AsyncIterator[AsyncConnection]:
        await self._resolve_maintenance(url)
        async with self._admin(url).connect() as connection:
            if url.get_backend_name() == "postgresql":
                # Test databases need no durability; this halves CREATE DATABASE on slow disks.
                await connection.execute(text("SET synchronous_commit = off"))
            server = str(url.set(database=None))
            if await self.session.hold(self._maintenance.get(server, url)):
                await self.session.sweep(connection)  # leftovers of ended sessions
            yield connection

    async def _pg_template(
        self, config: Config, url: URL, target: str | None, key: str, options: MigrationTestOptions | None
    ) -> Template:
        project = project_key(config, url)
        name = f"amtpl_{project}_{key[:20]}"
        async with self._admin_connection(url) as admin:
            await admin.execute(text("SELECT pg_advisory_lock(hashtextextended(:k, 0))"),
                                {"k": f"build:{name}"})
            try:
                exists = (
                    await admin.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name})
                ).scalar()
                if exists and not self.rebuild:
                    log.info("Reusing the migrated PostgreSQL template %s", name)
                    await self.session.use_template(admin, name)
                    return Template("postgresql", key, target, url, name=name)
                if exists and not await self.session.drop_template(admin, name):
                    raise DatabaseError(
                        f"Cannot rebuild the template {name}: another test session is using it"
                    )
                building = self.session.building_name(project)
                await admin.execute(text(f'CREATE DATABASE "{building}"'))
                started = time.perf_counter()
                try:
                    await self._build(config, url.set(database=building), target, options)
                    await admin.execute(text(f'ALTER DATABASE "{building}" RENAME TO "{name}"'))
                except BaseException:
                    with anyio.CancelScope(shield=True):
                        await _pg_drop(admin, building)
                    raise
                # No session may ever sit on a template: CREATE DATABASE ... TEMPLATE would fail.
                await admin.execute(text(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false'))
                log.info("Built the PostgreSQL template %s in %.2fs", name, time.perf_counter() - started)
                await self.session.use_template(admin, name)
                await self.session.drop_stale_templates(admin, project, keep=name)
                return Template("postgresql", key, target, url, name=name, built=True)
            finally:
                await admin.execute(text("SELECT pg_advisory_unlock(hashtextextended(:k, 0))"),
                                    {"k": f"build:{name}"})

    async def sweep(self, base_url: str | URL, config: Config | None = None) -> Sweep:
        """Drop what ended sessions left on ``base_url``'s server (SQLite: in the cache directory).

        With ``cleanup``, also ``config``'s project's templates no live session uses.
        """
        url = to_async_url(base_url)
        if config is not None:
            self.session.projects.add(project_key(config, url))
        if backend_of(url) == "sqlite":
            self.session.hold_files()
            return self.session.sweep_files()
        async with self._admin_connection(url) as admin:
            if self.session.sweeps:
                return self.session.sweeps[-1]
            return await self.session.sweep(admin)

    # -- per-test databases -----------------------------------------------------------------

    async def create(self, template: Template, config: Config) -> TemporaryDatabase:
        """Return a new database copied from ``template`` (or empty), with a config on it."""
        self.stats["databases"] += 1
        if template.backend == "sqlite":
            path = self.work_dir / f"{self.session.database_name()}.db"
            path.parent.mkdir(parents=True, exist_ok=True)
            if template.path is not None:
                await anyio.to_thread.run_sync(shutil.copyfile, template.path, path)
            url = template.base_url.set(database=str(path))
            return self._database(url, config, "sqlite", str(path), template)
        if template.backend == "postgresql":
            name = await self._pg_clone(template)
            url = template.base_url.set(database=name)
            return self._database(url, config, "postgresql", name, template)
        name = self.session.database_name()
        async with self._admin_connection(template.base_url) as admin:
            await admin.execute(text(f"CREATE DATABASE `{name}`"))
        url = template.base_url.set(database=name)
        database = self._database(url, config, "mysql", name, template)
        if template.target is not None or template.options is not None:
            try:
                await self._build(config, url, template.target, template.options)
            except BaseException:
                with anyio.CancelScope(shield=True):
                    await self.discard(database)
                raise
        return database

    def _database(
        self, url: URL, config: Config, backend: Backend, name: str, template: Template
    ) -> TemporaryDatabase:
        copy = config.copy(url=url.render_as_string(hide_password=False))
        return TemporaryDatabase(url, copy, backend, name, template)

    async def _pg_clone(self, template: Template) -> str:
        if self.prefetch == 0 or self._group is None:
            name = self.session.database_name()
            async with self._admin_connection(template.base_url) as admin:
                await self._pg_create(admin, name, template.name)
            return name
        memo = (str(template.base_url), template.name)
        clones = self._clones.get(memo)
        if clones is None:
            clones = self._clones[memo] = _Clones(template.base_url)
        # Grow the cloners with demand: a template used once costs one clone, not ``prefetch``.
        clones.requests += 1
        if clones.cloners < min(self.prefetch, clones.requests):
            clones.cloners += 1
            self._group.start_soon(self._pg_cloner, template, clones)
        name, error = await clones.receive.receive()
        if error is not None:
            raise error
        return name

    async def _pg_cloner(self, template: Template, clones: _Clones) -> None:
        try:
            async with self._admin_connection(template.base_url) as admin:
                while True:
                    name = self.session.database_name()
                    try:
                        await self._pg_create(admin, name, template.name)
                    except Exception as exc:
                        with contextlib.suppress(anyio.ClosedResourceError, anyio.BrokenResourceError):
                            await clones.send.send(("", exc))
                        return
                    try:
                        await clones.send.send((name, None))
                    except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                        self._to_drop.append((template.base_url, name))
                        return
        except Exception as exc:  # could not even connect: the waiting test gets the error
            with contextlib.suppress(anyio.ClosedResourceError, anyio.BrokenResourceError):
                await clones.send.send(("", exc))
        finally:
            clones.cloners -= 1

    async def _pg_create(self, admin: AsyncConnection, name: str, template: str) -> None:
        for attempt in range(50):
            try:
                await admin.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
                return
            except Exception as exc:
                # "source database is being accessed by other users": someone sits on template1.
                if "being accessed" not in str(exc) or attempt == 49:
                    raise DatabaseError(
                        f"Cannot create a test database from {template}: {_line(exc)}"
                    ) from exc
                await anyio.sleep(0.1)

    async def discard(self, database: TemporaryDatabase) -> None:
        """Throw ``database`` away (PostgreSQL: in the next batch of drops)."""
        if database.backend == "sqlite":
            for suffix in ("", "-wal", "-shm", "-journal", ".asyncmigrate-lock"):
                Path(database.name + suffix).unlink(missing_ok=True)
            return
        if database.backend == "mysql":
            async with self._admin_connection(database.url.set(database=None)) as admin:
                await admin.execute(text(f"DROP DATABASE IF EXISTS `{database.name}`"))
            return
        assert database.template is not None
        self._to_drop.append((database.template.base_url, database.name))
        if len(self._to_drop) >= self.drop_batch:
            if self._group is not None:
                # In the background: tests go on while the batch shares its checkpoint.
                batch, self._to_drop = self._to_drop, []
                self._group.start_soon(self._drop, batch)
            else:
                await self._drop_pending()

    async def _drop_pending(self) -> None:
        pending, self._to_drop = self._to_drop, []
        await self._drop(pending)

    async def _drop(self, pending: list[tuple[URL, str]]) -> None:
        if not pending:
            return

        async def drop(url: URL, name: str) -> None:
            try:
                async with self._admin_connection(url) as admin:
                    await _pg_drop(admin, name)
            except Exception as exc:
                log.warning("Could not drop the test database %s: %s", name, _line(exc))

        # Concurrent drops share the checkpoint each DROP DATABASE forces (PostgreSQL 15+).
        limiter = anyio.CapacityLimiter(_DROP_CONCURRENCY)

        async def limited(url: URL, name: str) -> None:
            async with limiter:
                await drop(url, name)

        async with anyio.create_task_group() as group:
            for url, name in pending:
                group.start_soon(limited, url, name)


async def _pg_drop(admin: AsyncConnection, name: str) -> None:
    await admin.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def run_setup(url: URL, setup: Setup) -> None:
    """Run ``setup`` on the database at ``url``: SQL statements in order, or a callable, committed."""
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.begin() as connection:
            if callable(setup):
                await call_hook(connection, setup)
            else:
                for statement in [setup] if isinstance(setup, str) else setup:
                    await connection.exec_driver_sql(str(statement))
    except Exception as exc:
        raise ConfigError(f"The test databases' set-up failed on {mask_password(url)}: {_line(exc)}") from exc
    finally:
        await engine.dispose()


def _flock(path: Path) -> Any:
    handle = open(path, "a+b")  # noqa: SIM115 - closed by the caller
    fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
    return handle


def _line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    text_ = str(orig if orig is not None else exc).strip()
    return text_.splitlines()[0] if text_ else type(exc).__name__
