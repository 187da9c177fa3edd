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

Built-in checks: ``asyncmigrate_checks = all`` in the pytest ini (or
``--asyncmigrate-checks=all``; or a list of ``single_head upgrade stairway
downgrade_clean models``) adds one test item per check, marked ``asyncmigrate``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal

from .config import Config
from .integrations.testing import (
    CHECKS,
    CheckFailed,
    DatabaseFactory,
    MigrationRunner,
    TemporaryDatabase,
    run_check,
)

__all__ = [
    "PluginSession",
    "asyncmigrate_config",
    "asyncmigrate_db",
    "asyncmigrate_factory",
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
    parser.addini("asyncmigrate_config", "path of the alembic.ini, relative to rootdir", default="")
    parser.addini("asyncmigrate_url", "server or SQLite URL for test databases", default="")
    parser.addini("asyncmigrate_target", "revision test databases are migrated to", default="heads")
    parser.addini("asyncmigrate_checks", "built-in checks: all, none, or names", default="")
    parser.addini("asyncmigrate_prefetch", "PostgreSQL clones created ahead of demand", default="1")
    parser.addini("asyncmigrate_drop_batch", "drop PostgreSQL test databases this many at a time",
                  default="16")


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker of the built-in checks."""
    config.addinivalue_line("markers", "asyncmigrate: asyncmigrate's built-in migration checks")


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
    )
    with (
        start_blocking_portal("asyncio", name="asyncmigrate") as portal,
        portal.wrap_async_context_manager(factory) as running,
    ):
        yield PluginSession(portal, running)


@pytest.fixture
def asyncmigrate_config(request: pytest.FixtureRequest) -> Config:
    """Return the project's config (override this fixture to build it another way)."""
    root = Path(request.config.rootpath)
    configured = _option(request.config, "asyncmigrate_config")
    ini = root / (configured or "alembic.ini")
    if configured and not ini.is_file():
        raise pytest.UsageError(f"asyncmigrate_config: no such file {ini}")
    toml = root / "pyproject.toml"
    return Config(
        os.fspath(ini) if ini.is_file() else None,
        toml_file=os.fspath(toml) if toml.is_file() else None,
    )


@pytest.fixture
def asyncmigrate_url(request: pytest.FixtureRequest, asyncmigrate_config: Config) -> str:
    """Return where test databases go (override or parametrize it to test on several backends)."""
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
def asyncmigrate_target(request: pytest.FixtureRequest) -> str:
    """Return the revision test databases are migrated to (default ``heads``)."""
    return str(request.config.getini("asyncmigrate_target") or "heads")


@pytest.fixture
def asyncmigrate_db(
    asyncmigrate_factory: PluginSession,
    asyncmigrate_config: Config,
    asyncmigrate_url: str,
    asyncmigrate_target: str,
) -> Iterator[TemporaryDatabase]:
    """Yield a fresh database at the target revision, for this test only."""
    session = asyncmigrate_factory
    template = session.call(
        session.factory.template, asyncmigrate_config, asyncmigrate_url, asyncmigrate_target
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
    asyncmigrate_url: str,
) -> Iterator[MigrationRunner]:
    """Yield a runner on a new, empty database, to migrate it step by step."""
    session = asyncmigrate_factory
    template = session.call(session.factory.template, asyncmigrate_config, asyncmigrate_url, None)
    database: TemporaryDatabase = session.call(session.factory.create, template, asyncmigrate_config)
    try:
        yield MigrationRunner(database)
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
    """Hold the built-in checks' test items (they are made, not collected from files)."""

    def collect(self) -> list[pytest.Item | pytest.Collector]:
        """Collect nothing: the plugin adds the items itself."""
        return []


def _check_function(name: str) -> Callable[..., None]:
    def check(
        asyncmigrate_factory: PluginSession,
        asyncmigrate_config: Config,
        asyncmigrate_url: str,
        asyncmigrate_target: str,
    ) -> None:
        session = asyncmigrate_factory
        try:
            reason = session.call(
                run_check, name, session.factory, asyncmigrate_config, asyncmigrate_url,
                asyncmigrate_target,
            )
        except CheckFailed as exc:
            pytest.fail(str(exc), pytrace=False)
        if reason:
            pytest.skip(reason)

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


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    """Add the built-in checks the project turned on (before -k/-m deselect anything)."""
    names = _enabled_checks(config)
    if not names:
        return
    args = [str(a) for a in config.args]
    if args and all("::" in a for a in args):
        return  # the user picked individual tests
    parent = _checks_parent(session, items)
    collector = ChecksCollector.from_parent(parent, name="asyncmigrate")
    for name in names:
        item = pytest.Function.from_parent(collector, name=name, callobj=_check_function(name))
        item.add_marker(pytest.mark.asyncmigrate)
        items.append(item)
