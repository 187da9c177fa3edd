"""Passwords never reach an output: the CLI, the fan-out's text, JSON and report file, logs, exceptions.

Every password below contains the marker ``Zq9x``; a test fails if the
marker shows up anywhere a user or a log collector could read it.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

import asyncmigrate
from asyncmigrate import command
from asyncmigrate.exceptions import AsyncMigrateError
from asyncmigrate.masking import mask_secrets
from asyncmigrate.urls import mask_password

from . import backends
from .project import Rev, logging_sections, make_project

MARK = "Zq9x"


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("postgresql://bob:p@Zq9x@db/x", "postgresql://bob:***@db/x"),
        ("postgresql://bob:s%40Zq9x%3A@db/x?password=Zq9x&ssl=1", "postgresql://bob:***@db/x?password=***&ssl=1"),
        ("host=db password=Zq9x dbname=x", "host=db password=*** dbname=x"),
        ("{'user': 'u', 'password': 'Zq9x'}", "{'user': 'u', 'password': ***}"),
        ("CREATE ROLE r LOGIN PASSWORD 'Zq9x''s'", "CREATE ROLE r LOGIN PASSWORD '***'"),
        ("ALTER ROLE r WITH ENCRYPTED PASSWORD 'Zq9x' VALID UNTIL 'x'",
         "ALTER ROLE r WITH ENCRYPTED PASSWORD '***' VALID UNTIL 'x'"),
        ("CREATE USER 'u'@'%' IDENTIFIED BY 'Zq9x';", "CREATE USER 'u'@'%' IDENTIFIED BY '***';"),
        ("SET PASSWORD FOR 'u'@'h' = PASSWORD('Zq9x')", "SET PASSWORD FOR 'u'@'h' = PASSWORD('***')"),
        ('password authentication failed for user "bob"', 'password authentication failed for user "bob"'),
        ("mysql://root@db/x", "mysql://root@db/x"),
        ("ALTER USER bob IDENTIFIED BY 'Zq9x'", "ALTER USER bob IDENTIFIED BY '***'"),
        ("Can't locate revision identified by 'zzzz'", "Can't locate revision identified by 'zzzz'"),
    ],
)
def test_the_one_masking_function(text: str, shown: str) -> None:
    assert mask_secrets(text) == shown


def test_urls_and_exceptions_go_through_it() -> None:
    url = make_url("postgresql://bob:s@Zq9x@db/x?password=Zq9x")
    assert MARK not in mask_password(url)
    assert MARK not in mask_password("postgresql://bob:Zq9x@db/x?sslpassword=Zq9x")
    error = AsyncMigrateError("failed on postgresql://bob:Zq9x@db/x: [SQL: CREATE ROLE r PASSWORD 'Zq9x']")
    assert MARK not in str(error)
    assert MARK not in repr(error)


# -- through every output path, against real servers ---------------------------------------

UNREACHABLE = {
    "plain": "postgresql://postgres:Zq9x-plain@127.0.0.1:1/app",
    "encoded": "postgresql://postgres:p%40Zq9x%3Aw%2Frd%25@127.0.0.1:1/app",
    "raw @": "postgresql://postgres:p@Zq9x@127.0.0.1:1/app",
    "query": "postgresql://postgres@127.0.0.1:1/app?password=Zq9x-query",
}


def _reachable() -> dict[str, str]:
    """URLs that reach a server and fail there (wrong password, no such database)."""
    urls = {}
    if backends.unavailable_reason("mysql") is None:
        server = backends.server_url("mysql")
        urls["mysql wrong password"] = str(server.set(drivername="mysql", password="Zq9x-wrong")
                                           .render_as_string(hide_password=False))
    if backends.unavailable_reason("postgresql") is None:
        server = backends.server_url("postgresql")
        urls["pg no database"] = server.set(drivername="postgresql", password="Zq9x-pg",
                                            database="am_no_such_db").render_as_string(hide_password=False)
    return urls


def _cli(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "asyncmigrate", *args], cwd=cwd, capture_output=True, text=True,
        timeout=120, env={**os.environ, **(env or {})},
    )


def _assert_hidden(done: subprocess.CompletedProcess[str], *files: Path) -> None:
    assert done.returncode != 0, done
    seen = done.stdout + done.stderr + "".join(f.read_text() for f in files if f.exists())
    assert MARK not in seen, seen
    assert "Traceback" not in done.stderr or "--raiseerr" in done.args


def _all_urls() -> dict[str, str]:
    return {**UNREACHABLE, **_reachable()}


@pytest.mark.slow
def test_the_command_line_hides_every_form_of_password(tmp_path: Path) -> None:
    make_project(tmp_path, [Rev("r1", None)])
    for name, url in _all_urls().items():
        for args, env in (
            (["--url", url, "upgrade", "head"], None),
            (["--raiseerr", "--url", url, "upgrade", "head"], None),
            (["current", "--json"], {"ASYNCMIGRATE_DATABASE_URL": url}),
        ):
            done = _cli(tmp_path, *args, env=env)
            try:
                _assert_hidden(done)
            except AssertionError as exc:
                raise AssertionError(f"{name}: {args}") from exc


@pytest.mark.slow
def test_an_ini_variable_holding_the_password(tmp_path: Path) -> None:
    make_project(tmp_path, [Rev("r1", None)])
    ini = tmp_path / "alembic.ini"
    text = ini.read_text().replace(
        "sqlalchemy.url = \n",
        "db_password = Zq9x-ini\nsqlalchemy.url = postgresql://postgres:%(db_password)s@127.0.0.1:1/app\n",
    )
    ini.write_text(text)
    _assert_hidden(_cli(tmp_path, "upgrade", "head"))
    _assert_hidden(_cli(tmp_path, "--raiseerr", "current"))


@pytest.mark.slow
def test_the_fanout_hides_passwords_in_text_json_and_report(tmp_path: Path) -> None:
    make_project(tmp_path, [Rev("r1", None)])
    urls = _all_urls()
    tenants = tmp_path / "tenants.toml"
    entries = [f'[[tenants]]\nname = "t{i}"\nurl = "{url}"\n' for i, url in enumerate(urls.values())]
    entries.append('[[tenants]]\nname = "from-env"\nurl = "${TENANT_URL}"\n')
    tenants.write_text("\n".join(entries))
    env = {"TENANT_URL": UNREACHABLE["encoded"]}
    report = tmp_path / "report.json"
    for extra in ([], ["--json"]):
        done = _cli(tmp_path, "upgrade", "head", "--tenants", str(tenants), "--report", str(report),
                    "--no-progress", *extra, env=env)
        _assert_hidden(done, report)
        assert len(json.loads(report.read_text())["tenants"]) == len(urls) + 1


@pytest.mark.postgresql
def test_sql_that_sets_a_password_is_masked_in_the_failure(tmp_path: Path, pg_db: object) -> None:
    # The step fails (no such role) and the error shows its statement.
    body = "op.execute(\"ALTER ROLE am_no_such_role PASSWORD 'Zq9x-sql'\")"
    make_project(tmp_path, [Rev("r1", None, body)], url=pg_db)  # type: ignore[arg-type]
    for args in (["upgrade", "head"], ["--raiseerr", "upgrade", "head"]):
        done = _cli(tmp_path, *args)
        _assert_hidden(done)
        assert "PASSWORD '***'" in done.stderr


async def test_log_records_at_every_level_hide_the_password(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = make_project(tmp_path, [Rev("r1", None)])
    caplog.set_level(logging.DEBUG)
    for url in UNREACHABLE.values():
        with pytest.raises(AsyncMigrateError) as failed:
            await command.upgrade(config, "head", url=url)
        assert MARK not in str(failed.value)
        with pytest.raises(AsyncMigrateError):
            async with asyncmigrate.lifespan(config, url=url):
                pass
        report = await asyncmigrate.migrate_tenants(
            config, [asyncmigrate.Tenant("t", url)], "head", report_path=tmp_path / "r.json"
        )
        assert MARK not in json.dumps(report.to_dict())
        assert MARK not in (tmp_path / "r.json").read_text()
    assert caplog.records
    assert MARK not in caplog.text


LOGGING_INI = logging_sections(sqlalchemy="INFO", alembic="DEBUG")


def test_sql_echoed_by_the_logging_config_is_masked(tmp_path: Path) -> None:
    # alembic.ini's [logger_sqlalchemy] at INFO echoes statements on sqlalchemy.engine.Engine
    # (a step's own statements travel through the driver adapter; the revision logs one as
    # SQLAlchemy's echo would).
    body = (
        "import logging\n"
        "logging.getLogger('sqlalchemy.engine.Engine').info(\"ALTER ROLE r PASSWORD 'Zq9x'\")\n"
        "logging.getLogger('sqlalchemy.engine.Engine').info('%s', \"CREATE USER u PASSWORD 'Zq9x'\")"
    )
    make_project(tmp_path, [Rev("r1", None, body)], url=f"sqlite:///{tmp_path / 'app.db'}",
                 ini_extra=LOGGING_INI)
    done = _cli(tmp_path, "upgrade", "head")
    assert done.returncode == 0, done.stderr
    assert "[sqlalchemy.engine.Engine] BEGIN" in done.stderr  # the echo is on
    assert done.stderr.count("PASSWORD '***'") == 2, done.stderr
    assert MARK not in done.stdout + done.stderr


def test_a_query_string_password_is_masked_and_the_messages_separator_kept() -> None:
    """``...?password=x: [Errno 111] ...``: the ": " after the URL is the message's, not the password's;
    colons inside the password are the password's."""
    from asyncmigrate.masking import mask_secrets

    assert mask_secrets("Cannot connect to postgresql://u@h/db?password=s3cret: [Errno 111] refused") == (
        "Cannot connect to postgresql://u@h/db?password=***: [Errno 111] refused"
    )
    assert mask_secrets("postgresql://u@h/db?ssl=1&password=a:b:c&x=1: oops") == (
        "postgresql://u@h/db?ssl=1&password=***&x=1: oops"
    )
    assert mask_secrets("dsn password=ab:cd host=h") == "dsn password=*** host=h"
