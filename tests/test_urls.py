"""Database URLs: sync-style URLs become async ones; passwords never show."""

from __future__ import annotations

from pathlib import Path

import pytest

from asyncmigrate.exceptions import ConfigError
from asyncmigrate.urls import mask_password, mask_passwords_in, to_async_url

from .isolated import run_without


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgresql://u:p@h/db", "postgresql+asyncpg://u:p@h/db"),
        ("postgres://u:p@h:5433/db", "postgresql+asyncpg://u:p@h:5433/db"),
        ("postgresql+psycopg2://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgresql+asyncpg://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("sqlite:///app.db", "sqlite+aiosqlite:///app.db"),
        ("sqlite://", "sqlite+aiosqlite://"),
        ("sqlite+aiosqlite:////tmp/x.db", "sqlite+aiosqlite:////tmp/x.db"),
        ("mysql://root@h/db", "mysql+asyncmy://root@h/db"),
        ("mysql+pymysql://root@h/db", "mysql+asyncmy://root@h/db"),
        ("mariadb://root@h/db", "mariadb+asyncmy://root@h/db"),
        ("mysql+aiomysql://root@h/db", "mysql+aiomysql://root@h/db"),
        ("oracle://u@h/db", "oracle://u@h/db"),
    ],
)
def test_sync_urls_map_to_async_drivers(given: str, expected: str) -> None:
    assert to_async_url(given).render_as_string(hide_password=False) == expected


def test_libpq_sslmode_becomes_asyncpg_ssl() -> None:
    url = to_async_url("postgres://u:p@h/db?sslmode=require")
    assert url.query == {"ssl": "require"}


def test_unknown_sslmode_is_rejected() -> None:
    with pytest.raises(ConfigError, match="sslmode"):
        to_async_url("postgres://u:p@h/db?sslmode=sometimes")


def test_malformed_url_error_hides_password() -> None:
    with pytest.raises(ConfigError) as info:
        to_async_url("postgresql://user:hunter2@host:notaport/db")
    assert "hunter2" not in str(info.value)


def test_masking() -> None:
    assert mask_password("postgresql://u:hunter2@h/db") == "postgresql://u:***@h/db"
    text = "failed for mysql://root:s3cret@db:3306/x and sqlite:///f.db"
    assert mask_passwords_in(text) == "failed for mysql://root:***@db:3306/x and sqlite:///f.db"


NO_ASYNCMY = """
from asyncmigrate.cli import main

main(["--url", "mysql://root:s3cret@127.0.0.1:3306/test", "current"])
"""


def test_mysql_url_without_its_driver_names_the_extra(tmp_path: Path) -> None:
    """Installed without ``[mysql]``: one line naming the extra, no password, exit 1."""
    done = run_without(["asyncmy"], NO_ASYNCMY, tmp_path, cwd=tmp_path)
    assert done.returncode == 1
    lines = (done.stdout + done.stderr).strip().splitlines()
    assert len(lines) == 1, lines
    assert "pip install 'asyncmigrate[mysql]'" in lines[0]
    assert "s3cret" not in lines[0]
