"""The plugin with options: data at revisions, a set-up hook, the downgrade policy, the runner helpers.

Inner pytest sessions (pytester, a subprocess each) on SQLite; one on
PostgreSQL for a set-up that creates a schema the history uses.
"""

from __future__ import annotations

import pytest

from .. import backends
from ..project import Rev, make_project
from .test_pytest_plugin import PG_SERVER, drop_templates

pytest_plugins = ["pytester"]

# b2 reads a row that must exist before it runs; d4 reads the plan c3's data puts in.
REVS = [
    Rev("a1", None, """
        op.create_table("account", sa.Column("id", sa.Integer, primary_key=True),
                        sa.Column("name", sa.String(50), nullable=False))
    """, "op.drop_table('account')"),
    Rev("b2", "a1", """
        first = op.get_bind().execute(sa.text("SELECT name FROM account ORDER BY id LIMIT 1")).scalar_one()
        op.add_column("account", sa.Column("display", sa.String(60)))
        op.execute("UPDATE account SET display = upper(name)")
    """, "op.drop_column('account', 'display')"),
    Rev("c3", "b2", """
        op.create_table("plan", sa.Column("id", sa.Integer, primary_key=True),
                        sa.Column("name", sa.String(20)))
    """, "raise NotImplementedError('plans stay')"),
    Rev("d4", "c3", """
        op.add_column("account", sa.Column("plan_id", sa.Integer))
        free = op.get_bind().execute(sa.text("SELECT id FROM plan WHERE name = 'free'")).scalar_one()
        op.execute(sa.text("UPDATE account SET plan_id = :p").bindparams(p=free))
    """, "op.drop_column('account', 'plan_id')"),
]

MODELS = """
import sqlalchemy as sa

target_metadata = sa.MetaData()
sa.Table("account", target_metadata, sa.Column("id", sa.Integer, primary_key=True),
         sa.Column("name", sa.String(50), nullable=False), sa.Column("display", sa.String(60)),
         sa.Column("plan_id", sa.Integer))
sa.Table("plan", target_metadata, sa.Column("id", sa.Integer, primary_key=True),
         sa.Column("name", sa.String(20)))
"""

CONFTEST = '''
import pytest
from sqlalchemy import text

from asyncmigrate.integrations.testing import MigrationTestOptions


def free_plan(connection):
    connection.execute(text("INSERT INTO plan (id, name) VALUES (1, 'free')"))


@pytest.fixture
def asyncmigrate_options(request):
    ini = request.config.getini("asyncmigrate_not_implemented_downgrade")
    return MigrationTestOptions(
        before_revision_data={"b2": [{"__tablename__": "account", "id": 1, "name": "ada"}]},
        at_revision_data={"c3": free_plan},
        setup=["CREATE VIEW setup_marker AS SELECT 1 AS ok"],
        not_implemented_downgrade=ini,
    )
'''

TESTS = '''
import pytest
from sqlalchemy import text

from asyncmigrate.exceptions import MigrationError


async def test_fresh_database_has_the_setup_and_the_data(asyncmigrate_db):
    async with asyncmigrate_db.connect() as conn:
        assert (await conn.execute(text("SELECT ok FROM setup_marker"))).scalar() == 1
        rows = (await conn.execute(text("SELECT name, display, plan_id FROM account"))).all()
    assert rows == [("ada", "ADA", 1)]


async def test_runner_helpers(asyncmigrate_runner):
    runner = asyncmigrate_runner
    async with runner.database.connect() as conn:  # the set-up ran on the empty database too
        assert (await conn.execute(text("SELECT ok FROM setup_marker"))).scalar() == 1
    assert await runner.current() == ()
    assert await runner.migrate_up_before("b2") == ("a1",)
    assert await runner.insert_into("account", [{"id": 2, "name": "bob"}]) == 1
    assert await runner.migrate_up_one() == "b2"  # ada comes in first, as b2's data
    account = await runner.table_at_revision("account")
    assert "display" in account.columns
    async with runner.database.connect() as conn:
        rows = (await conn.execute(text("SELECT name, display FROM account ORDER BY id"))).all()
    assert rows == [("ada", "ADA"), ("bob", "BOB")]
    assert await runner.migrate_up_to("c3") == ("c3",)
    assert await runner.roundtrip_next_revision() == "d4"
    assert await runner.current() == ("d4",)
    assert await runner.migrate_down_before("d4") == ("c3",)
    assert "plan_id" in (await runner.table_at_revision("account", revision="d4")).columns
    with pytest.raises(MigrationError, match="plans stay"):
        await runner.migrate_down_before("c3")
    assert not await runner.at_heads()
    assert await runner.migrate_up_to("heads") == ("d4",)
    assert await runner.at_heads()
    directives = await runner.generate_revision("nothing to do")
    assert directives[0].upgrade_ops.is_empty()
    assert (await runner.history()).revisions == ("a1", "b2", "c3", "d4")
'''


def make(pytester: pytest.Pytester, ini: str = "", url: str = "sqlite:///app.db") -> None:
    make_project(pytester.path, REVS, url=url)
    env_py = pytester.path / "migrations" / "env.py"
    env_py.write_text(env_py.read_text().replace("target_metadata = None\n", MODELS))
    pytester.makeini(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
        "asyncmigrate_checks = single_head branches upgrade stairway downgrade_clean models\n" + ini
    )
    pytester.makeconftest(CONFTEST)


def test_data_setup_policy_and_runner(pytester: pytest.Pytester) -> None:
    make(pytester)
    pytester.makepyfile(test_inner=TESTS)
    result = pytester.runpytest_subprocess("-v", "-W", "error::DeprecationWarning")
    result.assert_outcomes(passed=8, warnings=2)
    result.stdout.fnmatch_lines([
        "*asyncmigrate::stairway PASSED*",
        "*asyncmigrate::downgrade_clean PASSED*",
        "*MigrationCheckWarning: The downgrade of c3 raised NotImplementedError; downgrades stop above it*",
    ])

    # The policy can make that a failure instead; the message names the revision.
    (pytester.path / "test_inner.py").unlink()
    pytester.makeini(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
        "asyncmigrate_checks = stairway downgrade_clean\nasyncmigrate_not_implemented_downgrade = fail\n"
    )
    result = pytester.runpytest_subprocess("-v")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines([
        "*stairway FAILED*", "*downgrade_clean FAILED*",
        "Downgrading revision c3 failed: downgrade c3 -> b2, c3 failed: NotImplementedError: plans stay;*",
    ])

    # Without the data, the data migrations fail and say where.
    (pytester.path / "conftest.py").unlink()
    pytester.makeini("[pytest]\nasyncmigrate_checks = upgrade\n")
    result = pytester.runpytest_subprocess("-v")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*upgrade a1 -> b2, b2 failed: NoResultFound*"])


def test_ini_options_are_read_and_checked(pytester: pytest.Pytester) -> None:
    make(pytester, "asyncmigrate_not_implemented_downgrade = sometimes\n")
    result = pytester.runpytest_subprocess("-p", "no:randomly")
    # The conftest passes the ini value on: a bad policy is one clear line, no traceback.
    result.stdout.fnmatch_lines(["*not_implemented_downgrade must be one of warn, fail, ignore*"])
    assert "Traceback" not in result.stdout.str()


SCHEMA_REVS = [
    Rev("a1", None, """
        op.create_table("invoice", sa.Column("id", sa.Integer, primary_key=True), schema="billing")
    """, "op.drop_table('invoice', schema='billing')"),
    Rev("b2", "a1", """
        op.add_column("invoice", sa.Column("total", sa.Integer), schema="billing")
        op.create_index("ix_invoice_total", "invoice", ["total"], schema="billing")
    """, "op.drop_column('invoice', 'total', schema='billing')"),
]


@pytest.mark.postgresql
def test_setup_creates_a_schema_the_history_uses(pytester: pytest.Pytester) -> None:
    backends.require("postgresql")
    config = make_project(pytester.path, SCHEMA_REVS, url="sqlite:///unused.db")
    pytester.makeini(
        f"[pytest]\nasyncio_mode = auto\nasyncmigrate_url = {PG_SERVER}\n"
        "asyncmigrate_checks = upgrade stairway downgrade_clean\n"
        "asyncmigrate_setup =\n    CREATE SCHEMA billing\n"
    )
    pytester.makepyfile(test_inner='''
from sqlalchemy import text

async def test_schema(asyncmigrate_db):
    async with asyncmigrate_db.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM billing.invoice"))).scalar() == 0
''')
    try:
        result = pytester.runpytest_subprocess("-v")
    finally:
        drop_templates(config, PG_SERVER)
    # b2's downgrade drops the column, and the index with it: clean. Only the checks' view of
    # the billing schema could tell -- and does (the column comes back on the stairway).
    result.assert_outcomes(passed=4)


@pytest.mark.postgresql
def test_downgrade_clean_names_the_object_in_another_schema(pytester: pytest.Pytester) -> None:
    backends.require("postgresql")
    revs = [*SCHEMA_REVS, Rev("c3", "b2", """
        op.create_table("refund", sa.Column("id", sa.Integer, primary_key=True),
                        sa.Column("amount", sa.Integer), schema="billing")
    """, "op.drop_column('refund', 'amount', schema='billing')")]
    config = make_project(pytester.path, revs, url="sqlite:///unused.db")
    pytester.makeini(
        f"[pytest]\nasyncmigrate_url = {PG_SERVER}\nasyncmigrate_checks = downgrade_clean\n"
        "asyncmigrate_setup = CREATE SCHEMA billing\n"
    )
    try:
        result = pytester.runpytest_subprocess("-v")
    finally:
        drop_templates(config, PG_SERVER)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*Downgrading revision c3 (c3) does not undo its upgrade: "
                                 "*table billing.refund: left behind*"])
    assert "During handling" not in result.stdout.str()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_checks_pass_on_a_project_made_by_init(pytester: pytest.Pytester, backend: str) -> None:
    """``asyncmigrate init`` keeps the history table (``history_table = asyncmigrate_history``): a
    downgrade leaves it, and its id sequence, in place -- the tool's own, not the revision's leftovers."""
    from asyncmigrate import Config
    from asyncmigrate.cli import cli

    from ..clirunner import cli_runner

    if backend == "postgresql":
        backends.require("postgresql")
    made = cli_runner().invoke(cli, ["-c", str(pytester.path / "alembic.ini"), "init", str(pytester.path / "migrations")])
    assert made.exit_code == 0, made.output
    assert "history_table = asyncmigrate_history" in (pytester.path / "alembic.ini").read_text()
    versions = pytester.path / "migrations" / "versions"
    for rev, down, up, undo in [
        ("0001", None, 'op.create_table("account", sa.Column("id", sa.Integer, primary_key=True))',
         'op.drop_table("account")'),
        ("0002", "0001", 'op.add_column("account", sa.Column("email", sa.String(100)))',
         'op.drop_column("account", "email")'),
    ]:
        (versions / f"{rev}.py").write_text(
            f"import sqlalchemy as sa\nfrom asyncmigrate import op\n\nrevision = {rev!r}\ndown_revision = {down!r}\n"
            f"branch_labels = None\ndepends_on = None\n\n\ndef upgrade():\n    {up}\n\n\ndef downgrade():\n    {undo}\n",
            encoding="utf-8",
        )
    url = f"asyncmigrate_url = {PG_SERVER}\n" if backend == "postgresql" else ""
    pytester.makeini(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
        f"asyncmigrate_checks = upgrade stairway downgrade_clean\n{url}"
    )
    try:
        result = pytester.runpytest_subprocess("-v")
    finally:
        if backend == "postgresql":
            drop_templates(Config(str(pytester.path / "alembic.ini")), PG_SERVER)
    result.assert_outcomes(passed=3)
