"""lint() on projects: which revisions, where findings point, unrenderable revisions, upgrade(lint=True)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.engine import URL

from asyncmigrate import command
from asyncmigrate.exceptions import LintError
from asyncmigrate.lint import Severity, lint

from ..project import Rev, make_project

ACCOUNT = Rev("0001", None, """
    op.create_table("account", sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("name", sa.String(50)))
""", 'op.drop_table("account")')
INDEX = Rev("0002", "0001", """
    op.add_column("account", sa.Column("email", sa.String(100)))
    op.create_index("ix_account_email", "account", ["email"])
""", """
    op.drop_index("ix_account_email", "account")
    op.drop_column("account", "email")
""")
NEW_TABLE = Rev("0003", "0002", """
    op.create_table("invoice", sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("account_id", sa.Integer))
    op.create_index("ix_invoice_account", "invoice", ["account_id"])
""", 'op.drop_table("invoice")')
HISTORY = [ACCOUNT, INDEX, NEW_TABLE]


def line_of(root: Path, rev: str, text: str) -> int:
    path = next((root / "migrations" / "versions").glob(f"{rev}_*.py"))
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if text in line)


@pytest.mark.postgresql
async def test_pending_revisions_read_from_the_database(pg_db: URL, tmp_path: Path) -> None:
    config = make_project(tmp_path, HISTORY, url=pg_db)
    await command.upgrade(config, "0001")
    report = await lint(config)
    assert report.revisions == ("0002", "0003")
    assert report.dialect == "postgresql"
    # 0003 indexes a table it creates itself: nothing to say; 0002's downgrade drops its index.
    finding, dropped = report.findings
    assert (dropped.rule_id, dropped.direction) == ("AM102", "downgrade")
    assert (finding.rule_id, finding.revision, finding.direction) == ("AM101", "0002", "upgrade")
    assert finding.line == line_of(tmp_path, "0002", "create_index")
    assert finding.lock == "SHARE on account"
    assert finding.statement == "CREATE INDEX ix_account_email ON account (email)"
    assert not report.ok
    assert report.exit_code == 1

    await command.upgrade(config, "head")
    report = await lint(config)
    assert report.revisions == ()
    assert report.findings == ()
    assert report.ok


@pytest.mark.postgresql
async def test_upgrade_with_lint_refuses_and_runs_nothing(pg_db: URL, tmp_path: Path) -> None:
    config = make_project(tmp_path, HISTORY, url=pg_db)
    await command.upgrade(config, "0001")
    with pytest.raises(LintError, match=r"Refusing to upgrade: lint found 1 error.*AM101.*0002_rev.py:\d+"):
        await command.upgrade(config, "head", lint=True)
    assert (await command.current(config)).heads == ("0001",)
    # Downgraded to a warning by configuration, the same finding no longer blocks.
    config.set_main_option("lint_rules", "AM101=warning")
    result = await command.upgrade(config, "head", lint=True)
    assert result.to_heads == ("0003",)


async def test_whole_history_judges_each_revision_alone(tmp_path: Path) -> None:
    config = make_project(tmp_path, HISTORY, url="postgresql://app@db/app")
    each = await lint(config, start="base", downgrades=False)
    assert [f.revision for f in each.findings] == ["0002"]
    together = await lint(config, start="base", downgrades=False, each=False)
    assert together.findings == ()  # as one deployment, account is new when 0002 indexes it
    only = await lint(config, ["0002"], downgrades=False)
    assert [f.rule_id for f in only.findings] == ["AM101"]


async def test_downgrades_are_checked_for_locks_not_for_drops(tmp_path: Path) -> None:
    config = make_project(tmp_path, HISTORY, url="postgresql://app@db/app")
    report = await lint(config, ["0002"])
    by_direction = {(f.direction, f.rule_id) for f in report.findings}
    # Dropping the index takes ACCESS EXCLUSIVE; dropping the column 0002 added is its job.
    assert by_direction == {("upgrade", "AM101"), ("downgrade", "AM102")}


async def test_operations_issued_by_a_helper_point_at_the_revision_line(tmp_path: Path) -> None:
    helper = tmp_path / "helpers_for_lint.py"
    helper.write_text(
        "from alembic import op\n\n\ndef index(table, column):\n"
        "    op.create_index(f'ix_{table}_{column}', table, [column])\n",
        encoding="utf-8",
    )
    rev = Rev("0002", "0001", "import helpers_for_lint\nhelpers_for_lint.index('account', 'name')")
    config = make_project(tmp_path, [ACCOUNT, rev], url="postgresql://app@db/app",
                          ini_extra=f"prepend_sys_path = {tmp_path}")
    report = await lint(config, ["0002"], downgrades=False)
    (finding,) = report.findings
    assert finding.path is not None
    assert finding.path.endswith("0002_rev.py")
    assert finding.line == line_of(tmp_path, "0002", "helpers_for_lint.index")


async def test_a_revision_that_cannot_render_is_reported_and_the_rest_still_checked(tmp_path: Path) -> None:
    broken = Rev("0002", "0001", """
        op.create_index("ix_account_name", "account", ["name"])
        rows = op.get_bind().execute(sa.text("SELECT 1")).fetchall()
    """)
    later = Rev("0003", "0002", 'op.drop_column("account", "name")')
    config = make_project(tmp_path, [ACCOUNT, broken, later], url="postgresql://app@db/app")
    report = await lint(config, ["0002", "0003"], downgrades=False)
    found = {(f.revision, f.rule_id) for f in report.findings}
    # The index before the failure is still checked; 0003 is rendered after 0002 failed.
    assert found == {("0002", "AM101"), ("0002", "AM004"), ("0003", "AM403")}
    failure = next(f for f in report.findings if f.rule_id == "AM004")
    assert failure.severity == Severity.WARNING
    assert failure.line == line_of(tmp_path, "0002", "fetchall")


async def test_unimportable_revision_file_is_reported(tmp_path: Path) -> None:
    config = make_project(tmp_path, [ACCOUNT, Rev("0002", "0001", "op.create_index(")],
                          url="postgresql://app@db/app")
    report = await lint(config, start="base")
    (failure,) = report.findings
    # An error, not a warning: nothing in the file was checked, and every run of it fails.
    assert (failure.rule_id, failure.severity) == ("AM006", Severity.ERROR)
    assert "cannot be imported" in failure.message
    assert failure.rule.name == "revision-not-importable" and not failure.rule.suppressible

    from asyncmigrate.cli import cli

    from ..clirunner import cli_runner

    import anyio

    args = ["-c", str(tmp_path / "alembic.ini"), "lint", "--all"]
    run = await anyio.to_thread.run_sync(lambda: cli_runner().invoke(cli, args))  # its own event loop
    said = run.stdout + run.stderr
    assert run.exit_code == 1, said
    assert "error[AM006 revision-not-importable]" in said, said
    assert "read the database" not in said  # AM004's explanation does not fit


async def test_suppressions_and_their_mistakes(tmp_path: Path) -> None:
    rev = Rev("0002", "0001", """
        op.create_index("ix_a", "account", ["name"])  # asyncmigrate: lint-ignore[AM101] reason: 40 rows
        op.drop_column("account", "name")  # asyncmigrate: lint-ignore[AM403]
        op.rename_table("account", "client")  # asyncmigrate: lint-ignore[AM999] reason: typo
        op.execute("SELECT 1")  # asyncmigrate: lint-ignore[AM301] reason: nothing to silence
    """)
    config = make_project(tmp_path, [ACCOUNT, rev], url="postgresql://app@db/app")
    report = await lint(config, ["0002"])
    suppressed = [f for f in report.findings if f.suppressed]
    assert [(f.rule_id, f.suppressed) for f in suppressed] == [("AM101", "40 rows")]
    active = sorted(f.rule_id for f in report.active)
    # No reason: ignored and reported; unknown id: reported; the rename stays; an unused marker.
    assert active == ["AM001", "AM002", "AM003", "AM402", "AM403"]
    # Without downgrades a marker may be meant for downgrade(): unused ones are not reported.
    partial = await lint(config, ["0002"], downgrades=False)
    assert "AM003" not in {f.rule_id for f in partial.active}


async def test_other_dialects_say_which_rules_do_not_apply(tmp_path: Path) -> None:
    config = make_project(tmp_path, HISTORY, url="postgresql://app@db/app")
    sqlite = await lint(config, ["0002"], dialect="sqlite")
    assert sqlite.dialect == "sqlite"
    assert sqlite.findings == ()
    assert "AM101" in sqlite.not_applicable
    assert "AM403" not in sqlite.not_applicable
    retype = Rev("0004", "0003", """
        op.alter_column("account", "name", type_=sa.String(100), existing_type=sa.String(50))
        op.alter_column("account", "email", type_=sa.String(200), existing_type=sa.String(100),
                        existing_nullable=True)
        op.alter_column("account", "id", type_=sa.BigInteger, existing_type=sa.Integer,
                        existing_nullable=False)
    """)
    config = make_project(tmp_path / "m", [*HISTORY, retype], url="postgresql://app@db/app")
    mysql = await lint(config, ["0004"], dialect="mysql", downgrades=False)
    # varchar(50) -> (100) in utf8mb4 goes from 1 to 2 length bytes: a copy; (100) -> (200) stays in place.
    assert sorted((f.rule_id, f.line) for f in mysql.findings) == [
        ("AM302", line_of(tmp_path / "m", "0004", '"name"')),
        ("AM302", line_of(tmp_path / "m", "0004", '"id"')),
    ]


async def test_bad_options_are_one_line_errors(tmp_path: Path) -> None:
    from asyncmigrate.exceptions import ConfigError

    config = make_project(tmp_path, HISTORY, url="postgresql://app@db/app")
    with pytest.raises(ConfigError, match="Unknown lint rule 'AM9'"):
        await lint(config, start="base", rules="AM9=off")
    with pytest.raises(ConfigError, match="severity must be error, warning, note or off"):
        await lint(config, start="base", rules="AM101=loud")
    config.set_main_option("lint_pg_version", "eleven")
    with pytest.raises(ConfigError, match="lint_pg_version"):
        await lint(config, start="base")
