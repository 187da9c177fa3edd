"""Shared fixtures: real databases per backend (SQLite always; PostgreSQL and MariaDB/MySQL when up)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import URL

from . import backends

BACKENDS = ["sqlite", "postgresql", "mysql"]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Drop the scratch databases still queued for dropping."""
    backends.JANITOR.finish()


@pytest.fixture(autouse=True)
def _logging_as_it_was() -> Iterator[None]:
    """Undo what a test's env.py did to logging (as a new process would start).

    A project's ``fileConfig`` (ours or real Alembic's, run by differential
    tests) sets the ``alembic`` and ``asyncmigrate`` loggers' level, handlers
    and propagation, and real Alembic's disables every logger it does not name;
    left in place, a later test's ``caplog`` would see none of our records.
    """
    saved = {name: _logger_state(logger) for name, logger in _our_loggers()}
    saved.setdefault("alembic", _logger_state(logging.getLogger("alembic")))
    yield
    for name, logger in _our_loggers():
        if name not in saved:
            logger.disabled = False  # created during the test; a fileConfig may have disabled it
            continue
        level, handlers, propagate, disabled, attrs = saved[name]
        logger.setLevel(level)
        logger.handlers[:] = handlers
        logger.propagate, logger.disabled = propagate, disabled
        for key in [k for k in vars(logger) if k.startswith("_asyncmigrate") and k not in attrs]:
            delattr(logger, key)


def _our_loggers() -> list[tuple[str, logging.Logger]]:
    return [(name, logger) for name, logger in list(logging.root.manager.loggerDict.items())
            if isinstance(logger, logging.Logger) and name.startswith(("asyncmigrate", "alembic"))]


def _logger_state(logger: logging.Logger) -> tuple[int, list[logging.Handler], bool, bool, set[str]]:
    return logger.level, list(logger.handlers), logger.propagate, logger.disabled, set(vars(logger))


@pytest.fixture
async def sqlite_db(tmp_path: Path) -> URL:
    """A fresh SQLite database file (async URL)."""
    return backends.sqlite_url(tmp_path / "test.db")


@pytest.fixture
async def pg_db() -> AsyncIterator[URL]:
    """A fresh, empty PostgreSQL database (async URL), dropped after the test."""
    backends.require("postgresql")
    async with backends.scratch_database("postgresql") as url:
        yield url


@pytest.fixture
async def mysql_db() -> AsyncIterator[URL]:
    """A fresh, empty MariaDB/MySQL database (async URL), dropped after the test."""
    backends.require("mysql")
    async with backends.scratch_database("mysql") as url:
        yield url


@pytest.fixture(params=BACKENDS)
async def any_db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[URL]:
    """A fresh database on each backend in turn."""
    if request.param == "sqlite":
        yield backends.sqlite_url(tmp_path / "test.db")
        return
    backends.require(request.param)
    async with backends.scratch_database(request.param) as url:
        yield url


@pytest.fixture(params=["postgresql", "mysql"])
async def server_db(request: pytest.FixtureRequest) -> AsyncIterator[URL]:
    """A fresh database on PostgreSQL, then on MariaDB/MySQL.

    On MySQL a schema tenant is a database of its own: those named
    ``<database>_s*`` are dropped with it.
    """
    backend = request.param
    backends.require(backend)
    async with backends.scratch_database(backend) as url:
        try:
            yield url
        finally:
            if backend == "mysql":
                await backends.drop_mysql_databases(url, f"{url.database}_s%")


@pytest.fixture(params=["sqlite", "postgresql"])
async def sqlite_or_pg_db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[URL]:
    """A fresh database on SQLite, then on PostgreSQL."""
    if request.param == "sqlite":
        yield backends.sqlite_url(tmp_path / "test.db")
        return
    backends.require("postgresql")
    async with backends.scratch_database("postgresql") as url:
        yield url
