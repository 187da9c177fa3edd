"""The plugin across configurations and sessions: several histories, per-module servers, leftovers.

Inner pytest sessions in subprocesses; the housekeeping test keeps one
session alive (holding its database) while another cleans up, then kills it
with SIGKILL and checks that the next session drops what it left.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from asyncmigrate import Config
from asyncmigrate.integrations.testing.databases import project_key

from .. import backends
from ..project import Rev, make_project
from .test_pytest_plugin import PG_SERVER, REVS, database_names, drop_templates

pytest_plugins = ["pytester"]

EVENTS = [Rev("e1", None, "op.create_table('event', sa.Column('id', sa.Integer, primary_key=True))",
              "op.drop_table('event')")]

MULTI_INI = """
[db1]
script_location = %(here)s/one/migrations
sqlalchemy.url = sqlite:///one.db

[db2]
script_location = %(here)s/two/migrations
sqlalchemy.url = sqlite:///two.db
"""

MULTI_TESTS = '''
import pytest
from sqlalchemy import inspect


async def tables(db):
    async with db.connect() as conn:
        return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))


async def test_every_configuration(asyncmigrate_db, asyncmigrate_config):
    expected = {"db1": "account", "db2": "event"}[asyncmigrate_config.config_ini_section]
    assert expected in await tables(asyncmigrate_db)


@pytest.mark.asyncmigrate_config("multi.ini:db2")
async def test_one_configuration(asyncmigrate_db):
    assert "event" in await tables(asyncmigrate_db)
    assert "account" not in await tables(asyncmigrate_db)
'''


def test_several_configurations(pytester: pytest.Pytester) -> None:
    make_project(pytester.path / "one", REVS)
    make_project(pytester.path / "two", EVENTS)
    (pytester.path / "multi.ini").write_text(MULTI_INI)
    pytester.makeini(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
        "asyncmigrate_checks = single_head stairway\n"
        "asyncmigrate_configs =\n    multi.ini:db1\n    multi.ini:db2\n"
    )
    pytester.makepyfile(test_inner=MULTI_TESTS)
    result = pytester.runpytest_subprocess("-v")
    result.assert_outcomes(passed=7)
    result.stdout.fnmatch_lines_random([
        "*test_every_configuration?multi.ini:db1? PASSED*",
        "*test_every_configuration?multi.ini:db2? PASSED*",
        "*test_one_configuration PASSED*",
        "*asyncmigrate::single_head?multi.ini:db1? PASSED*",
        "*asyncmigrate::stairway?multi.ini:db2? PASSED*",
    ])
    # A section that does not exist is one clear line.
    pytester.makeini("[pytest]\nasyncmigrate_checks = single_head\nasyncmigrate_configs = multi.ini:db9\n")
    result = pytester.runpytest_subprocess()
    assert "multi.ini has no section [db9]" in result.stdout.str() + result.stderr.str()


HOLD = '''
import os
import time
from pathlib import Path


def test_hold(asyncmigrate_db):
    Path(os.environ["AM_READY"]).write_text(asyncmigrate_db.name)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        time.sleep(0.2)
'''

# A module that sends its tests to PostgreSQL through an engine, whatever the ini says.
OTHER = '''
import pytest
from sqlalchemy.ext.asyncio import create_async_engine


@pytest.fixture
def asyncmigrate_url():
    return create_async_engine({server!r})


def test_other(asyncmigrate_db):
    assert asyncmigrate_db.backend == "postgresql"
'''


def wait_for(predicate: object, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.2)
    return False


@pytest.mark.postgresql
def test_leftovers_of_a_killed_session_are_dropped_never_a_live_ones(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    backends.require("postgresql")
    config = make_project(pytester.path, REVS, url="sqlite:///app.db")
    pytester.makeini("[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(test_hold=HOLD, test_other=OTHER.format(server=PG_SERVER))
    ready = tmp_path / "ready"
    env = {**os.environ, "AM_READY": str(ready)}
    live = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "test_hold.py", f"--asyncmigrate-url={PG_SERVER}"],
        cwd=pytester.path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        assert wait_for(ready.exists, 120), "the first session never got its database"
        held = ready.read_text()
        token = held.split("_")[1]
        owned = {name for name in database_names(PG_SERVER) if name.startswith(f"amt_{token}_")}
        assert held in owned

        # A second session cleaning up (and testing, on PostgreSQL by a module's own fixture)
        # leaves the live session's databases and template alone.
        result = pytester.runpytest_subprocess("test_other.py", "--asyncmigrate-cleanup",
                                               f"--asyncmigrate-url={PG_SERVER}")
        result.assert_outcomes(passed=1)
        result.stdout.fnmatch_lines(["*asyncmigrate cleanup on *: dropped * in use by live sessions*"])
        assert owned <= database_names(PG_SERVER)
        assert live.poll() is None

        # Killed: nothing runs its teardown. The next session drops what it left.
        os.killpg(live.pid, signal.SIGKILL)
        live.wait(30)
        assert owned <= database_names(PG_SERVER)

        def swept() -> bool:
            pytester.runpytest_subprocess("test_other.py", f"--asyncmigrate-url={PG_SERVER}")
            return not (owned & database_names(PG_SERVER))

        assert wait_for(swept, 30), f"still there: {owned & database_names(PG_SERVER)}"
    finally:
        if live.poll() is None:
            os.killpg(live.pid, signal.SIGKILL)
            live.wait(30)
        drop_templates(config, PG_SERVER)


def test_cleanup_always_says_what_it_did(pytester: pytest.Pytester) -> None:
    make_project(pytester.path, REVS, url="")
    pytester.makeini("[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(test_plain="def test_nothing():\n    pass\n")
    result = pytester.runpytest_subprocess("--asyncmigrate-cleanup")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["asyncmigrate cleanup: nothing to sweep: no database URL*"])
    (pytester.path / "alembic.ini").write_text(
        (pytester.path / "alembic.ini").read_text().replace("sqlalchemy.url = ", "sqlalchemy.url = sqlite:///app.db")
    )
    result = pytester.runpytest_subprocess("--asyncmigrate-cleanup", "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["asyncmigrate cleanup: skipped: pytest's cache is off*"])
    result = pytester.runpytest_subprocess("--asyncmigrate-cleanup")
    result.stdout.fnmatch_lines(["asyncmigrate cleanup on sqlite*: dropped 0 database(s); 0 in use*"])


def templates_of(config: Config) -> list[str]:
    import psycopg2

    prefix = f"amtpl\\_{project_key(config, backends.server_url('postgresql'))}\\_%"
    conn = psycopg2.connect(PG_SERVER.replace("+asyncpg", ""))
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", (prefix,))
            return sorted(r[0] for r in cur.fetchall())
    finally:
        conn.close()


@pytest.mark.postgresql
def test_cleanup_drops_the_kept_template_also_with_the_cache_off(pytester: pytest.Pytester) -> None:
    """The template a session keeps for the next one goes with --asyncmigrate-cleanup, which says so."""
    backends.require("postgresql")
    config = make_project(pytester.path, REVS, url=PG_SERVER)  # as DATABASE_URL=postgresql://...
    pytester.makeini("[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(test_db="def test_db(asyncmigrate_db):\n    pass\n")
    cleanup = ("-p", "no:cacheprovider", "--asyncmigrate-cleanup", "--co", "-q")
    try:
        pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)
        (kept,) = templates_of(config)
        # A run of no test builds nothing: it leaves nothing of the project's on the server.
        result = pytester.runpytest_subprocess(*cleanup)
        dropped = f"asyncmigrate cleanup on postgresql*: dropped 1 database(s) ({kept});*"
        result.stdout.fnmatch_lines([dropped])
        assert templates_of(config) == []
        result = pytester.runpytest_subprocess(*cleanup)
        result.stdout.fnmatch_lines(["asyncmigrate cleanup on postgresql*: dropped 0 database(s);*"])
    finally:
        drop_templates(config, PG_SERVER)
