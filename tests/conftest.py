"""Shared fixtures: real databases per backend (SQLite always; PostgreSQL and MariaDB/MySQL when up)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.engine import URL

from . import backends

BACKENDS = ["sqlite", "postgresql", "mysql"]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Drop the scratch databases still queued for dropping."""
    backends.JANITOR.finish()


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


@pytest.fixture(params=["sqlite", "postgresql"])
async def sqlite_or_pg_db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[URL]:
    """A fresh database on SQLite, then on PostgreSQL."""
    if request.param == "sqlite":
        yield backends.sqlite_url(tmp_path / "test.db")
        return
    backends.require("postgresql")
    async with backends.scratch_database("postgresql") as url:
        yield url
