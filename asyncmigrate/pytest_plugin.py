"""The pytest plugin: fresh migrated databases per test, a step-by-step runner, built-in checks.

Installed with asyncmigrate and registered through the ``pytest11`` entry
point. Every fixture is synchronous and does its database work in the
plugin's own event loop thread, so the plugin works the same under
pytest-asyncio (function, module or session loop scope), anyio's plugin, or
no async plugin at all, and never calls ``asyncio.run`` inside a running loop.
Objects the fixtures return have ``async`` methods that run in the test's loop.

Fixtures (override any of them in a ``conftest.py``):

``asyncmigrate_config``
    the project's :class:`~asyncmigrate.Config` (``alembic.ini`` and/or
    ``pyproject.toml`` in the rootdir, or the ``asyncmigrate_config`` ini option).
``asyncmigrate_url``
    where test databases go: a PostgreSQL or MySQL server URL, or any SQLite
    URL (copies go to a temporary directory). Default: the ``asyncmigrate_url``
    ini option, else the config's ``sqlalchemy.url``.
``asyncmigrate_target``
    the revision test databases are migrated to (default ``heads``).
``asyncmigrate_db``
    a :class:`~asyncmigrate.integrations.testing.TemporaryDatabase` at the
    target, new for each test and thrown away after it: on PostgreSQL a clone
    of a migrated template (``CREATE DATABASE ... TEMPLATE``), on SQLite a copy
    of a migrated file. The template is cached across sessions by a hash of
    the revision files, env.py and options.
``asyncmigrate_runner``
    a :class:`~asyncmigrate.integrations.testing.MigrationRunner` on a new,
    empty database, to upgrade and downgrade step by step (data migrations).
``asyncmigrate_factory``
    (session) the :class:`~asyncmigrate.integrations.testing.DatabaseFactory`
    behind them.

``asyncmigrate_options``
    the :class:`~asyncmigrate.integrations.testing.MigrationTestOptions`
    (data at revisions, downgrade policy, set-up hook...) every check and
    runner uses; from the ini options by default, override it for Python values.

Built-in checks: ``asyncmigrate_checks = all`` in the pytest ini (or
``--asyncmigrate-checks=all``; or a list of names) adds one test item per
check, marked ``asyncmigrate``. With several configurations
(``asyncmigrate_configs``), every check runs for each and every test using
the fixtures runs once per configuration (or for the one named by
``@pytest.mark.asyncmigrate_config(...)``).
"""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from sqlalchemy.engine import URL, Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from .config import Config
from .exceptions import AsyncMigrateError
from .integrations.testing import (
    CHECKS,
    CheckFailed,
    DatabaseFactory,
    MigrationRunner,
    MigrationTestOptions,
    TemporaryDatabase,
    run_check,
)
from .integrations.testing.checks import MigrationCheckWarning
from .integrations.testing.housekeeping import Sweep
from .urls import mask_password, to_async_url

__all__ = [
    "PluginSession",
    "asyncmigrate_config",
    "asyncmigrate_db",
    "asyncmigrate_factory",
    "asyncmigrate_options",
    "asyncmigrate_runner",
    "asyncmigrate_target",
    "asyncmigrate_url",
]

_GROUP = "asyncmigrate"


def pytest_addoption(parser: pytest.Parser) -> None:
    """Register the plugin's command-line and ini options."""
    group = parser.getgroup(_GROUP, "asyncmigrate: migrated test databases and migration checks")
    group.addoption("--asyncmigrate-config", dest="asyncmigrate_config", default=None,
                    help="path of the alembic.ini (default: the ini option, else alembic.ini in rootdir)")
    group.addoption("--asyncmigrate-url", dest="asyncmigrate_url", default=None,
                    help="server (PostgreSQL, MySQL) or SQLite URL for test databases")
    group.addoption("--asyncmigrate-checks", dest="asyncmigrate_checks", default=None,
                    help="built-in checks to run: 'all', 'none' or names (" + ", ".join(CHECKS) + ")")
    group.addoption("--asyncmigrate-rebuild", dest="asyncmigrate_rebuild", action="store_true",
                    default=False, help="rebuild migrated templates even when cached")
    group.addoption("--asyncmigrate-cleanup", dest="asyncmigrate_cleanup", action="store_true",
                    default=False,
                    help="drop test databases of ended sessions and every template no session uses")
    parser.addini("asyncmigrate_config", "path of the alembic.ini, relative to rootdir", default="")
    parser.addini("asyncmigrate_configs", "several configurations: 'file.ini' or 'file.ini:section', "
                  "one a line (checks and fixtures run for each)", type="linelist", default=[])
    parser.addini("asyncmigrate_minimum_downgrade_revision",
                  "checks never downgrade to this revision or below", default="")
    parser.addini("asyncmigrate_skip_revisions", "revisions stamped instead of run", type="args",
                  default=[])
    parser.addini("asyncmigrate_not_implemented_downgrade",
                  "a downgrade raising NotImplementedError: warn, fail or ignore", default="warn")
    parser.addini("asyncmigrate_setup", "SQL run on each new test database before the history, "
                  "one statement a line", type="linelist", default=[])
    parser.addini("asyncmigrate_allowed_heads", "branch labels or revisions that may stay unmerged",
                  type="args", default=[])
    parser.addini("asyncmigrate_model_packages", "packages holding the models (all_models_register)",
                  type="args", default=[])
    parser.addini("asyncmigrate_url", "server or SQLite URL for test databases", default="")
    parser.addini("asyncmigrate_target", "revision test databases are migrated to", default="heads")
    parser.addini("asyncmigrate_checks", "built-in checks: all, none, or names", default="")
    parser.addini("asyncmigrate_prefetch", "PostgreSQL clones created ahead of demand", default="1")
    parser.addini("asyncmigrate_drop_batch", "drop PostgreSQL test databases this many at a time",
                  default="16")


def pytest_configure(config: pytest.Config) -> None:
    """Register the plugin's markers."""
    config.addinivalue_line("markers", "asyncmigrate: asyncmigrate's built-in migration checks")
    config.addinivalue_line(
        "markers",
        "asyncmigrate_config(name): run this test with one of asyncmigrate_configs ('file.ini:section')",
    )


def _option(config: pytest.Config, name: str) -> str:
    value = config.getoption(name, default=None)
    if value:
        return str(value)
    return str(config.getini(name) or "")


@dataclass
class PluginSession:
    """The plugin's state for one test session: an event loop thread and a factory living in it."""

    portal: BlockingPortal
    factory: DatabaseFactory

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run coroutine function ``fn(*args)`` in the plugin's loop and return its result.

        An exception comes back without the frames it had in the plugin's
        thread: they hold SQLAlchemy's greenlets, which must die in the thread
        that made them. The message (with the failing revision and the
        database's own error) is kept.
        """
        return self.portal.call(_in_plugin_thread, fn, *args)


async def _in_plugin_thread(fn: Callable[..., Any], *args: Any) -> Any:
    try:
        return await fn(*args)
    except Exception as exc:
        seen: set[int] = set()
        current: BaseException | None = exc
        while current is not None and id(current) not in seen:
            seen.add(id(current))
            current.__traceback__ = None
            current = current.__cause__ or current.__context__
        raise


@pytest.fixture(scope="session")
def asyncmigrate_factory(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PluginSession]:
    """Start the plugin's event loop thread and the database factory, for the whole session."""
    config = request.config
    cache = getattr(config, "cache", None)
    if cache is not None:
        cache_dir = Path(cache.mkdir("asyncmigrate"))
    else:
        cache_dir = tmp_path_factory.mktemp("asyncmigrate-cache")
    work_dir = tmp_path_factory.mktemp("asyncmigrate")
    factory = DatabaseFactory(
        cache_dir,
        work_dir,
        prefetch=int(_option(config, "asyncmigrate_prefetch") or 1),
        drop_batch=int(_option(config, "asyncmigrate_drop_batch") or 16),
        rebuild=bool(config.getoption("asyncmigrate_rebuild", default=False)),
        cleanup=bool(config.getoption("asyncmigrate_cleanup", default=False)),
    )
    with (
        start_blocking_portal("asyncio", name="asyncmigrate") as portal,
        portal.wrap_async_context_manager(factory) as running,
    ):
        yield PluginSession(portal, running)


def _configs(config: pytest.Config) -> list[str]:
    """Return the entries of ``asyncmigrate_configs`` ('file.ini' or 'file.ini:section')."""
    return [str(entry).strip() for entry in config.getini("asyncmigrate_configs") or [] if str(entry).strip()]


def _load_config(config: pytest.Config, entry: str | None) -> Config:
    """Return the project's Config for ``entry`` ('file.ini[:section]'; None: the default)."""
    root = Path(config.rootpath)
    section = "alembic"
    configured = entry if entry is not None else _option(config, "asyncmigrate_config")
    if configured and ":" in configured:
        configured, section = configured.rsplit(":", 1)
    ini = root / (configured or "alembic.ini")
    if configured and not ini.is_file():
        raise pytest.UsageError(f"asyncmigrate: no such configuration file {ini}")
    toml = root / "pyproject.toml"
    loaded = Config(
        os.fspath(ini) if ini.is_file() else None,
        toml_file=os.fspath(toml) if toml.is_file() else None,
        ini_section=section,
    )
    if ini.is_file() and section != "alembic" and loaded.get_section(section) is None:
        raise pytest.UsageError(f"asyncmigrate: {ini.name} has no section [{section}]")
    return loaded


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run tests that use the fixtures once per configuration when there are several."""
    entries = _configs(metafunc.config)
    if len(entries) < 2 or "asyncmigrate_config" not in metafunc.fixturenames:
        return
    if metafunc.definition.get_closest_marker("asyncmigrate_config") is not None:
        return
    metafunc.parametrize("asyncmigrate_config", entries, indirect=True, ids=entries)


@pytest.fixture
def asyncmigrate_config(request: pytest.FixtureRequest) -> Config:
    """Return the project's config (override this fixture to build it another way).

    With several ``asyncmigrate_configs``, the one this test runs for.
    """
    entry: str | None = getattr(request, "param", None)
    marker = request.node.get_closest_marker("asyncmigrate_config")
    if marker is not None and marker.args:
        entry = str(marker.args[0])
    elif entry is None and _configs(request.config):
        entry = _configs(request.config)[0]
    return _load_config(request.config, entry)


def _as_url(value: str | URL | AsyncEngine | Engine) -> str | URL:
    """Read a server URL from what an ``asyncmigrate_url`` override returns (an engine works)."""
    if isinstance(value, (AsyncEngine, Engine)):
        return value.url
    return value


@pytest.fixture
def asyncmigrate_url(request: pytest.FixtureRequest, asyncmigrate_config: Config) -> str | URL:
    """Return where test databases go (override it -- in a conftest.py or a test module -- or parametrize it).

    An override may return a URL or an engine (its URL is used).
    """
    explicit = _option(request.config, "asyncmigrate_url")
    if explicit:
        return explicit
    url = asyncmigrate_config.database_url
    if not url:
        pytest.fail(
            "asyncmigrate: no database URL for test databases; set sqlalchemy.url, "
            "ASYNCMIGRATE_DATABASE_URL, or asyncmigrate_url in the pytest ini",
            pytrace=False,
        )
    return url


@pytest.fixture
def asyncmigrate_options(request: pytest.FixtureRequest) -> MigrationTestOptions:
    """Return the migration tests' options, from the ini (override it to pass Python values)."""
    ini = request.config.getini
    try:
        return MigrationTestOptions(
            minimum_downgrade_revision=str(ini("asyncmigrate_minimum_downgrade_revision")) or None,
            skip_revisions=frozenset(ini("asyncmigrate_skip_revisions") or ()),
            not_implemented_downgrade=str(ini("asyncmigrate_not_implemented_downgrade") or "warn"),  # type: ignore[arg-type]
            setup=[str(s) for s in ini("asyncmigrate_setup")] or None,
            allowed_heads=frozenset(ini("asyncmigrate_allowed_heads") or ()),
            model_packages=tuple(ini("asyncmigrate_model_packages") or ()),
        )
    except AsyncMigrateError as exc:
        raise pytest.UsageError(f"asyncmigrate: {exc}") from None


@pytest.fixture
def asyncmigrate_target(request: pytest.FixtureRequest) -> str:
    """Return the revision test databases are migrated to (default ``heads``)."""
    return str(request.config.getini("asyncmigrate_target") or "heads")


@pytest.fixture
def asyncmigrate_db(
    asyncmigrate_factory: PluginSession,
    asyncmigrate_config: Config,
    asyncmigrate_url: str | URL | AsyncEngine | Engine,
    asyncmigrate_target: str,
    asyncmigrate_options: MigrationTestOptions,
) -> Iterator[TemporaryDatabase]:
    """Yield a fresh database at the target revision, for this test only."""
    session = asyncmigrate_factory
    template = session.call(
        session.factory.template, asyncmigrate_config, _as_url(asyncmigrate_url), asyncmigrate_target,
        asyncmigrate_options,
    )
    database: TemporaryDatabase = session.call(session.factory.create, template, asyncmigrate_config)
    try:
        yield database
    finally:
        session.call(session.factory.discard, database)


@pytest.fixture
def asyncmigrate_runner(
    asyncmigrate_factory: PluginSession,
    asyncmigrate_config: Config,
    asyncmigrate_url: str | URL | AsyncEngine | Engine,
    asyncmigrate_options: MigrationTestOptions,
) -> Iterator[MigrationRunner]:
    """Yield a runner on a new database (empty, or set up), to migrate it step by step."""
    session = asyncmigrate_factory
    template = session.call(
        session.factory.template, asyncmigrate_config, _as_url(asyncmigrate_url), None,
        asyncmigrate_options,
    )
    database: TemporaryDatabase = session.call(session.factory.create, template, asyncmigrate_config)
    try:
        yield MigrationRunner(database, asyncmigrate_options)
    finally:
        session.call(session.factory.discard, database)


# -- built-in checks -----------------------------------------------------------------------------


def _enabled_checks(config: pytest.Config) -> list[str]:
    raw = _option(config, "asyncmigrate_checks").replace(",", " ").split()
    if not raw or raw == ["none"]:
        return []
    if "all" in raw:
        return list(CHECKS)
    unknown = [name for name in raw if name not in CHECKS]
    if unknown:
        raise pytest.UsageError(
            f"asyncmigrate_checks: unknown check(s) {', '.join(unknown)}; choose from "
            f"all, none, {', '.join(CHECKS)}"
        )
    return [name for name in CHECKS if name in raw]


class ChecksCollector(pytest.Collector):
    """Collect the built-in checks the project turned on: one item per check and configuration.

    It sits in the deepest directory holding the session's other tests, so
    the ``conftest.py`` files there apply to the checks; :class:`ChecksPlacement`
    puts it there. Running a check is :func:`_check_function`'s job.
    """

    def collect(self) -> list[pytest.Item | pytest.Collector]:
        """Return the enabled checks' items, marked ``asyncmigrate`` (through this collector)."""
        entries = _configs(self.config)
        items: list[pytest.Item | pytest.Collector] = []
        for name in _enabled_checks(self.config):
            for entry in entries if len(entries) > 1 else [None]:
                label = name if entry is None else f"{name}[{entry}]"
                item = pytest.Function.from_parent(self, name=label, callobj=_check_function(name))
                if entry is not None:
                    item.add_marker(pytest.mark.asyncmigrate_config(entry))
                items.append(item)
        return items


class ChecksPlacement(pytest.Collector):
    """Collect, last in the session, the :class:`ChecksCollector` in the directory of the tests.

    The session's own tests are collected by then (:func:`pytest_itemcollected`
    recorded them), so the deepest directory holding them all is known.
    """

    def collect(self) -> list[pytest.Item | pytest.Collector]:
        """Return the checks' collector, its parent the tests' directory (the session when none)."""
        parent = _checks_parent(self.session, self.session.stash.get(_COLLECTED, []))
        checks = ChecksCollector.from_parent(parent, name="asyncmigrate")
        checks.add_marker(pytest.mark.asyncmigrate)
        return [checks]


_COLLECTED = pytest.StashKey[list[pytest.Item]]()


def _check_function(name: str) -> Callable[..., None]:
    def check(
        asyncmigrate_factory: PluginSession,
        asyncmigrate_config: Config,
        asyncmigrate_url: str | URL | AsyncEngine | Engine,
        asyncmigrate_target: str,
        asyncmigrate_options: MigrationTestOptions,
    ) -> None:
        session = asyncmigrate_factory
        failure = None
        try:
            outcome = session.call(
                run_check, name, session.factory, asyncmigrate_config, _as_url(asyncmigrate_url),
                asyncmigrate_target, asyncmigrate_options,
            )
        except CheckFailed as exc:
            failure = str(exc)
        if failure is not None:  # outside the except block: the report shows the message alone
            pytest.fail(failure, pytrace=False)
        for message in outcome.warnings:
            warnings.warn(MigrationCheckWarning(message), stacklevel=1)
        if outcome.skipped:
            pytest.skip(outcome.skipped)

    check.__name__ = check.__qualname__ = name
    check.__doc__ = f"asyncmigrate's built-in {name} check."
    return check


def _checks_parent(session: pytest.Session, items: list[pytest.Item]) -> pytest.Collector:
    """Return the deepest directory holding every collected item (so its conftest.py applies)."""
    if not items:
        return session
    candidates = [n for n in items[0].listchain() if isinstance(n, pytest.Directory)]
    for node in reversed(candidates):
        prefix = node.nodeid
        if not prefix or all(
            it.nodeid == prefix or it.nodeid.startswith((prefix + "/", prefix + "::")) for it in items
        ):
            return node
    return session


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(
    collector: pytest.Collector,
) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
    """Collect the built-in checks after the session's own tests, as collected items.

    So they count in 'collected N items', ``-k``/``-m``/``--deselect`` pick
    among them, and ``pytest_itemcollected`` sees them. Not when every
    argument names single tests (``file.py::test``).
    """
    report = yield
    if not isinstance(collector, pytest.Session) or not report.passed:
        return report
    config = collector.config
    args = [str(a) for a in config.args]
    if not _enabled_checks(config) or (args and all("::" in a for a in args)):
        return report
    collector.stash[_COLLECTED] = []
    report.result.append(ChecksPlacement.from_parent(collector, name="asyncmigrate-checks"))
    return report


def pytest_itemcollected(item: pytest.Item) -> None:
    """Record the session's tests, to place the checks in their directory."""
    collected = item.session.stash.get(_COLLECTED, None)
    if collected is not None:
        collected.append(item)


# -- housekeeping ----------------------------------------------------------------------------------


def pytest_sessionstart(session: pytest.Session) -> None:
    """With ``--asyncmigrate-cleanup``, drop what ended sessions left before any test runs.

    Servers are swept whether or not pytest's cache is on (their templates are
    found on the server); SQLite's templates live in the cache, so without it
    there is nothing of earlier sessions to find.
    """
    config = session.config
    if not config.getoption("asyncmigrate_cleanup", default=False) or hasattr(config, "workerinput"):
        return
    targets = _cleanup_targets(config)
    config.stash[_SWEPT] = []
    config.stash[_SWEPT_NOTES] = notes = []
    if not targets:
        notes.append(
            "asyncmigrate cleanup: nothing to sweep: no database URL (asyncmigrate_url, or "
            "sqlalchemy.url in the project's config)"
        )
        return
    cache = getattr(config, "cache", None)
    with tempfile.TemporaryDirectory(prefix="asyncmigrate-cleanup-") as scratch:
        for target_url, loaded in targets:
            async_url = to_async_url(target_url)
            where = mask_password(async_url)
            if cache is None and async_url.get_backend_name() == "sqlite":
                notes.append(
                    f"asyncmigrate cleanup: skipped: pytest's cache is off (-p no:cacheprovider), and "
                    f"the SQLite templates of earlier sessions are found through it ({where})"
                )
                continue
            cache_dir = Path(cache.mkdir("asyncmigrate")) if cache is not None else Path(scratch)
            try:
                config.stash[_SWEPT].append((where, anyio.run(_cleanup, async_url, loaded, cache_dir)))
            except Exception as exc:
                raise pytest.UsageError(f"asyncmigrate: cleanup of {where} failed: {exc}") from None


def _cleanup_targets(config: pytest.Config) -> list[tuple[str | URL, Config]]:
    """Return the database URL and config of each configuration (``--asyncmigrate-url`` first)."""
    targets: list[tuple[str | URL, Config]] = []
    explicit = _option(config, "asyncmigrate_url")
    entries: list[str | None] = [*_configs(config)] or [None]
    for entry in entries:
        loaded = _load_config(config, entry)
        url = explicit or loaded.database_url
        if url:
            targets.append((url, loaded))
    return targets


_SWEPT = pytest.StashKey[list[tuple[str, Sweep]]]()
_SWEPT_NOTES = pytest.StashKey[list[str]]()


async def _cleanup(url: URL, config: Config, cache_dir: Path) -> Sweep:
    factory = DatabaseFactory(cache_dir, cache_dir, cleanup=True)
    try:
        return await factory.sweep(url, config)
    finally:
        await factory.aclose()


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """Report what ``--asyncmigrate-cleanup`` dropped and what it left to live sessions."""
    for note in config.stash.get(_SWEPT_NOTES, []):
        terminalreporter.write_line(note)
    for where, sweep in config.stash.get(_SWEPT, []):
        terminalreporter.write_line(
            f"asyncmigrate cleanup on {where}: dropped {len(sweep.dropped)} database(s)"
            + (f" ({', '.join(sorted(sweep.dropped))})" if sweep.dropped else "")
            + f"; {len(sweep.in_use)} in use by live sessions left alone"
        )
