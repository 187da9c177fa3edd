"""The pytest plugin, run in inner pytest sessions (pytester) against real databases."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from asyncmigrate import Config
from asyncmigrate.integrations.testing.databases import project_key

from .. import backends
from ..project import Rev, make_project

pytest_plugins = ["pytester"]

PG_SERVER = str(backends.server_url("postgresql").render_as_string(hide_password=False))

# a1 records every time it runs, so tests can count template builds.
REVS = [
    Rev("a1", None, """
        import os
        log = os.environ.get("AM_BUILD_LOG")
        if log:
            with open(log, "a") as fh:
                fh.write("a1\\n")
        op.create_table(
            "account",
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("name", sa.String(50), nullable=False),
        )
    """, "op.drop_table('account')"),
    Rev("b2", "a1", """
        op.add_column("account", sa.Column("display", sa.String(60)))
        op.execute("UPDATE account SET display = upper(name)")
    """, "op.drop_column('account', 'display')"),
    Rev("c3", "b2", """
        op.create_index("ix_account_name", "account", ["name"])
    """, "op.drop_index('ix_account_name', 'account')"),
]

TEMPLATE = '''
import pytest
from sqlalchemy import text


@pytest.mark.parametrize("n", range(3))
{mark}async def test_each_test_has_its_own_database(asyncmigrate_db, n):
    async with asyncmigrate_db.begin() as conn:
        await conn.execute(text("INSERT INTO account (name) VALUES ('x')"))
        count = (await conn.execute(text("SELECT count(*) FROM account"))).scalar()
        version = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar()
    assert (count, version) == (1, "c3")


{mark}async def test_data_migration(asyncmigrate_runner):
    assert await asyncmigrate_runner.current() == ()
    await asyncmigrate_runner.upgrade("a1")
    async with asyncmigrate_runner.database.begin() as conn:
        await conn.execute(text("INSERT INTO account (name) VALUES ('ada'), ('bob')"))
    await asyncmigrate_runner.upgrade("b2")
    async with asyncmigrate_runner.database.connect() as conn:
        rows = (await conn.execute(text("SELECT display FROM account ORDER BY id"))).scalars().all()
    assert rows == ["ADA", "BOB"]
    await asyncmigrate_runner.downgrade("-1")
    assert await asyncmigrate_runner.current() == ("a1",)


def test_sync_tests_get_a_database_too(asyncmigrate_db):
    assert asyncmigrate_db.config.database_url.endswith(str(asyncmigrate_db.url.database))
'''


def inner_module(mark: str = "", header: str = "") -> str:
    """Return the inner test module, each async test decorated with ``mark``."""
    return header + TEMPLATE.replace("{mark}", mark + "\n" if mark else "")


TESTS = inner_module()


def project(pytester: pytest.Pytester, ini: str = "", revs: list[Rev] = REVS,
            url: str = "sqlite:///app.db") -> Config:
    config = make_project(pytester.path, revs, url=url)
    pytester.makeini(f"[pytest]\nasyncio_default_fixture_loop_scope = function\n{ini}")
    return config


def builds(log: Path) -> int:
    return len(log.read_text().splitlines()) if log.exists() else 0


def drop_templates(config: Config, server: str) -> None:
    """Drop this throwaway project's templates (tests use fresh paths, so fresh names)."""
    import psycopg2

    key = project_key(config, backends.server_url("postgresql"))
    conn = psycopg2.connect(server.replace("+asyncpg", ""))
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", (f"amtpl\\_{key}\\_%",))
            for (name,) in cur.fetchall():
                cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        conn.close()


def database_names(server: str) -> set[str]:
    import psycopg2

    conn = psycopg2.connect(server.replace("+asyncpg", ""))
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT datname FROM pg_database WHERE datname LIKE 'amt\\_%'")
            return {r[0] for r in cur.fetchall()}
    finally:
        conn.close()


def leaked(before: set[str], after: set[str]) -> list[str]:
    """Per-test databases that appeared and whose session is gone (its lock is free)."""
    import psycopg2

    from asyncmigrate.integrations.testing.housekeeping import owner_token

    found = []
    conn = psycopg2.connect(PG_SERVER.replace("+asyncpg", ""))
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            for name in sorted(after - before):
                key = f"asyncmigrate-session:{owner_token(name)}"
                cur.execute("SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", (key,))
                (free,) = cur.fetchone()
                if free:
                    cur.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", (key,))
                    found.append(name)
    finally:
        conn.close()
    return found


@pytest.mark.parametrize("loop_scope", ["function", "module", "session"])
def test_pytest_asyncio_loop_scopes(pytester: pytest.Pytester, loop_scope: str) -> None:
    project(pytester, "asyncio_mode = auto\n")
    pytester.makepyfile(test_inner=inner_module(f"@pytest.mark.asyncio(loop_scope={loop_scope!r})"))
    result = pytester.runpytest_subprocess("-p", "no:anyio")
    result.assert_outcomes(passed=5)


def test_pytest_asyncio_strict_mode(pytester: pytest.Pytester) -> None:
    project(pytester, "asyncio_mode = strict\n")
    pytester.makepyfile(test_inner=inner_module("@pytest.mark.asyncio"))
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=5)


def test_anyio_plugin(pytester: pytest.Pytester) -> None:
    project(pytester)
    header = "import pytest\n\n\n@pytest.fixture\ndef anyio_backend():\n    return 'asyncio'\n"
    pytester.makepyfile(test_inner=inner_module("@pytest.mark.anyio", header))
    result = pytester.runpytest_subprocess("-p", "no:asyncio")
    result.assert_outcomes(passed=5)


@pytest.mark.postgresql
def test_postgresql_clones_from_a_cached_template(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    backends.require("postgresql")
    config = project(pytester, f"asyncio_mode = auto\nasyncmigrate_url = {PG_SERVER}\n")
    log = pytester.path / "builds.log"
    monkeypatch.setenv("AM_BUILD_LOG", str(log))
    pytester.makepyfile(test_inner=TESTS)
    names_before = database_names(PG_SERVER)
    try:
        pytester.runpytest_subprocess().assert_outcomes(passed=5)
        # test_data_migration ran a1 once; the template was built once.
        assert builds(log) == 2
        pytester.runpytest_subprocess().assert_outcomes(passed=5)
        assert builds(log) == 3, "an unchanged history must reuse the template"
        assert leaked(names_before, database_names(PG_SERVER)) == []

        # Changing a revision file changes the key: rebuilt, and the stale template dropped.
        versions = pytester.path / "migrations" / "versions"
        c3 = next(versions.glob("c3_*.py"))
        c3.write_text(c3.read_text().replace("ix_account_name", "ix_account_name2"))
        pytester.runpytest_subprocess("-k", "own_database").assert_outcomes(passed=3)
        assert builds(log) == 4
        import psycopg2

        conn = psycopg2.connect(PG_SERVER.replace("+asyncpg", ""))
        with conn.cursor() as cur:
            key = project_key(config, backends.server_url("postgresql"))
            cur.execute("SELECT count(*) FROM pg_database WHERE datname LIKE %s", (f"amtpl\\_{key}\\_%",))
            assert cur.fetchone() == (1,)
        conn.close()
    finally:
        drop_templates(config, PG_SERVER)


@pytest.mark.mysql
def test_mysql_databases_are_migrated_per_test(pytester: pytest.Pytester) -> None:
    backends.require("mysql")
    server = backends.server_url("mysql").render_as_string(hide_password=False)
    project(pytester, f"asyncio_mode = auto\nasyncmigrate_url = {server}\n")
    pytester.makepyfile(test_inner=TESTS)
    pytester.runpytest_subprocess().assert_outcomes(passed=5)


def test_sqlite_template_is_cached_across_sessions(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    project(pytester, "asyncio_mode = auto\n")
    log = pytester.path / "builds.log"
    monkeypatch.setenv("AM_BUILD_LOG", str(log))
    pytester.makepyfile(test_inner=TESTS)
    pytester.runpytest_subprocess("-k", "own_database").assert_outcomes(passed=3)
    pytester.runpytest_subprocess("-k", "own_database").assert_outcomes(passed=3)
    assert builds(log) == 1
    pytester.runpytest_subprocess("-k", "own_database", "--asyncmigrate-rebuild").assert_outcomes(passed=3)
    assert builds(log) == 2
    # The application's own database file is never touched.
    assert not (pytester.path / "app.db").exists()


def test_config_fixture_can_be_overridden(pytester: pytest.Pytester) -> None:
    make_project(pytester.path / "elsewhere", REVS, url="sqlite:///elsewhere.db")
    pytester.makeini("[pytest]\nasyncio_mode = auto\nasyncmigrate_checks = single_head upgrade\n")
    pytester.makeconftest('''
import pytest
from asyncmigrate import Config

@pytest.fixture
def asyncmigrate_config(request):
    return Config(str(request.config.rootpath / "elsewhere" / "alembic.ini"))
''')
    pytester.makepyfile(test_inner=TESTS)
    result = pytester.runpytest_subprocess("-v")
    result.assert_outcomes(passed=7)
    result.stdout.fnmatch_lines(["*asyncmigrate::single_head PASSED*", "*asyncmigrate::upgrade PASSED*"])


def test_builtin_checks_pass_on_a_good_history(pytester: pytest.Pytester) -> None:
    project(pytester, "asyncmigrate_checks = all\n")
    pytester.makepyfile(test_placeholder="def test_nothing():\n    pass\n")
    result = pytester.runpytest_subprocess("-v", "-rs")
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) == 0, result.stdout.str()
    from asyncmigrate.integrations.testing import CHECKS

    assert outcomes["passed"] + outcomes.get("skipped", 0) == len(CHECKS) + 1
    result.stdout.fnmatch_lines([
        "*asyncmigrate::single_head PASSED*",
        "*asyncmigrate::upgrade PASSED*",
        "*asyncmigrate::stairway PASSED*",
        "*asyncmigrate::downgrade_clean PASSED*",
        "*asyncmigrate::lint PASSED*",
    ])
    # -m selects them (how they are counted: test_builtin_checks_are_collected_and_counted);
    # individual node ids leave them out.
    pytester.runpytest_subprocess("-m", "not asyncmigrate").assert_outcomes(passed=1, deselected=len(CHECKS))
    pytester.runpytest_subprocess("test_placeholder.py::test_nothing").assert_outcomes(passed=1)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_builtin_checks_find_problems(pytester: pytest.Pytester, backend: str) -> None:
    url = "sqlite:///app.db"
    if backend == "postgresql":
        backends.require("postgresql")
        # The configured database need not exist: admin work falls back to "postgres".
        url = str(backends.server_url("postgresql").set(database="am_no_such_database")
                  .render_as_string(hide_password=False))
    revs = [
        *REVS,
        # The downgrade forgets the index: downgrade_clean names d4. On SQLite the stairway's way
        # down then fails at b2, whose column the index uses (PostgreSQL drops the index with it).
        Rev("d4", "c3", "op.execute('CREATE INDEX IF NOT EXISTS ix_account_display ON account (display)')",
            "pass"),
        # A second head.
        Rev("e5", "c3", "op.create_table('other', sa.Column('id', sa.Integer, primary_key=True))",
            "op.drop_table('other')"),
    ]
    config = project(pytester, "asyncmigrate_checks = single_head stairway downgrade_clean\n", revs, url)
    pytester.makepyfile(test_placeholder="def test_nothing():\n    pass\n")
    try:
        result = pytester.runpytest_subprocess("-v")
    finally:
        if backend == "postgresql":
            drop_templates(config, PG_SERVER)
    sqlite = backend == "sqlite"
    result.assert_outcomes(passed=1 + (not sqlite), failed=2 + sqlite)
    result.stdout.fnmatch_lines([
        "*asyncmigrate::single_head FAILED*",
        f"*asyncmigrate::stairway {'FAILED' if sqlite else 'PASSED'}*",
        "*asyncmigrate::downgrade_clean FAILED*",
    ])
    output = result.stdout.str()
    assert "The history has 2 heads (d4, e5)" in output
    assert ("Stairway: downgrade b2 -> a1" in output) == sqlite
    # The failing revision and the object it left behind, by name.
    assert "Downgrading revision d4 (d4) does not undo its upgrade: " in output
    assert "table account: index ix_account_display: left behind" in output


def test_stairway_catches_a_downgrade_that_does_not_undo(pytester: pytest.Pytester) -> None:
    revs = [*REVS, Rev("d4", "c3", "op.create_table('other', sa.Column('id', sa.Integer))", "pass")]
    project(pytester, "asyncmigrate_checks = stairway\n", revs)
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*Stairway: upgrade c3 -> d4*failed*"])


MODELS = """
import sqlalchemy as sa

target_metadata = sa.MetaData()
sa.Table(
    "account", target_metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(50), nullable=False),
    sa.Column("display", sa.String(60)),
    sa.Index("ix_account_name", "name"),
    {extra}
)
"""


@pytest.mark.parametrize("models_match", [True, False])
def test_models_check(pytester: pytest.Pytester, models_match: bool) -> None:
    project(pytester, "asyncmigrate_checks = models\n")
    extra = "" if models_match else 'sa.Column("email", sa.String(200)),'
    env_py = pytester.path / "migrations" / "env.py"
    env_py.write_text(env_py.read_text().replace("target_metadata = None\n", MODELS.format(extra=extra)))
    result = pytester.runpytest_subprocess("-v")
    if models_match:
        result.assert_outcomes(passed=1)
    else:
        result.assert_outcomes(failed=1)
        result.stdout.fnmatch_lines(["*Models and migrations differ*email*"])


def test_unknown_check_is_a_usage_error(pytester: pytest.Pytester) -> None:
    project(pytester, "asyncmigrate_checks = stairway nonsense\n")
    result = pytester.runpytest_subprocess()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*unknown check(s) nonsense*"])


@pytest.mark.slow
@pytest.mark.postgresql
def test_xdist_workers_build_the_template_once(pytester: pytest.Pytester, tmp_path: Path) -> None:
    backends.require("postgresql")
    config = project(pytester, f"asyncio_mode = auto\nasyncmigrate_url = {PG_SERVER}\n")
    pytester.makepyfile(test_inner=inner_module().replace("range(3)", "range(12)"))
    log = tmp_path / "builds.log"
    env = {**os.environ, "AM_BUILD_LOG": str(log)}
    try:
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-p", "xdist", "-n", "3", "-q", "-p", "no:cacheprovider",
             "-k", "own_database"],
            cwd=pytester.path, env=env, capture_output=True, text=True, timeout=240,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "12 passed" in done.stdout
        assert builds(log) == 1
    finally:
        drop_templates(config, PG_SERVER)


def test_docs_of_fixtures(pytester: pytest.Pytester) -> None:
    project(pytester)
    result = pytester.runpytest_subprocess("--fixtures")
    result.stdout.fnmatch_lines([
        "*asyncmigrate_config*", "*asyncmigrate_url*", "*asyncmigrate_db*", "*asyncmigrate_runner*",
    ])
    assert "Yield a fresh database at the target revision" in result.stdout.str()


TAG_EVERY_ITEM = """
import pytest


def pytest_configure(config):
    config.addinivalue_line("markers", "tagged: every collected item")


def pytest_itemcollected(item):
    item.add_marker(pytest.mark.tagged)
"""


def test_builtin_checks_are_collected_and_counted(pytester: pytest.Pytester) -> None:
    """The checks are collected items: the count, -k, -m, --deselect and xdist all see them."""
    project(pytester, "asyncmigrate_checks = single_head upgrade lint\n")
    pytester.makepyfile(test_placeholder="def test_one():\n    pass\n\n\ndef test_two():\n    pass\n")
    runs: list[tuple[tuple[str, ...], str, int | None]] = [  # arguments, the count line, tests passed
        (("-p", "no:xdist"), "collected 5 items", 5),
        (("-p", "no:xdist", "-k", "nothing_matches"), "collected 5 items / 5 deselected / 0 selected", None),
        (("-p", "no:xdist", "-k", "upgrade or test_one"), "collected 5 items / 3 deselected / 2 selected", 2),
        (("-p", "no:xdist", "-m", "asyncmigrate"), "collected 5 items / 2 deselected / 3 selected", 3),
        (("-p", "no:xdist", "--deselect", "::asyncmigrate::lint"),
         "collected 5 items / 1 deselected / 4 selected", None),
        (("-p", "no:xdist", "--co", "-q"), "5 tests collected*", None),
        (("-p", "xdist", "-n", "2", "-p", "no:cacheprovider"), "2 workers [[]5 items[]]", 5),
    ]
    for args, count_line, passed in runs:
        result = pytester.runpytest_subprocess(*args)
        result.stdout.fnmatch_lines([count_line])
        if passed is not None:
            result.assert_outcomes(passed=passed)
    # Collected like any test: pytest_itemcollected sees them (a conftest tags every item).
    pytester.makeconftest(TAG_EVERY_ITEM)
    result = pytester.runpytest_subprocess("-p", "no:xdist", "-m", "tagged")
    result.stdout.fnmatch_lines(["collected 5 items"])
    result.assert_outcomes(passed=5)
    (pytester.path / "conftest.py").unlink()
    # A conftest.py next to the tests applies to the checks (they sit in the tests' directory).
    pytester.mkpydir("sub")
    (pytester.path / "test_placeholder.py").rename(pytester.path / "sub" / "test_placeholder.py")
    (pytester.path / "sub" / "conftest.py").write_text(
        "import pytest\n\n\n@pytest.fixture\n"
        "def asyncmigrate_target():\n    raise RuntimeError('sub conftest')\n"
    )
    result = pytester.runpytest_subprocess("-p", "no:xdist", "-k", "upgrade")
    result.stdout.fnmatch_lines(["collected 5 items / 4 deselected / 1 selected", "*sub conftest*"])
