"""The fleet pre-read answers only when it reads the table env.py would; otherwise env.py runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ..clirunner import cli_runner
from sqlalchemy.engine import URL

from asyncmigrate import command
from asyncmigrate.cli import cli
from asyncmigrate.tenants import Tenant, migrate_tenants
from asyncmigrate.tenants.fleet import preread_table

from ..project import TEMPLATES, Rev, make_project

REVS = [Rev(f"r{i}", f"r{i - 1}" if i else None, f'op.execute("CREATE TABLE t{i} (id INTEGER)")') for i in range(3)]

CUSTOM_TABLE_ENV = (TEMPLATES / "async" / "env.py").read_text(encoding="utf-8").replace(
    "context.configure(connection=connection, target_metadata=target_metadata)",
    'context.configure(connection=connection, target_metadata=target_metadata, version_table="my_versions")',
)


def test_custom_env_really_names_another_table() -> None:
    assert 'version_table="my_versions"' in CUSTOM_TABLE_ENV


async def test_custom_version_table_fleet_reports_at_head(tmp_path: Path, pg_db: URL) -> None:
    config = make_project(tmp_path, REVS, env_py=CUSTOM_TABLE_ENV)
    shared = pg_db.render_as_string(hide_password=False)
    tenants = [Tenant(f"t{i}", shared, f"tenant_v{i}") for i in range(4)]
    upgraded = await migrate_tenants(config, tenants, "head", concurrency=2)
    assert upgraded.counts["ok"] == 4, upgraded.failed
    current = await migrate_tenants(config, tenants, None, operation="current")
    assert current.histogram() == {"r2": 4}, current.results
    check = await migrate_tenants(config, tenants, None, operation="check")
    assert check.counts == {"ok": 4, "unchanged": 0, "failed": 0, "skipped": 0}, check.failed
    # A second upgrade finds them at head through env.py's table, not an absent alembic_version.
    again = await migrate_tenants(config, tenants, "head", concurrency=2)
    assert again.counts["unchanged"] == 4, again.results
    # And the table env.py named is the one that holds the rows.
    state = await command.current(config, url=shared, tenant_schema="tenant_v0")
    assert state.heads == ("r2",)


def test_custom_version_table_from_the_command_line(tmp_path: Path, pg_db: URL) -> None:
    make_project(tmp_path, REVS, env_py=CUSTOM_TABLE_ENV)
    shared = pg_db.render_as_string(hide_password=False)
    (tmp_path / "tenants.toml").write_text(
        "".join(f'[[tenants]]\nname = "c{i}"\nurl = "{shared}"\nschema = "tenant_c{i}"\n\n' for i in range(3)),
        encoding="utf-8",
    )
    runner = cli_runner()
    base = ["-c", str(tmp_path / "alembic.ini")]
    source = ["--tenants", str(tmp_path / "tenants.toml"), "--no-progress"]
    assert runner.invoke(cli, [*base, "upgrade", "head", *source]).exit_code == 0
    checked = runner.invoke(cli, [*base, "check", *source])
    assert checked.exit_code == 0, checked.output
    current = runner.invoke(cli, [*base, "current", *source, "--json"])
    assert [t["to"] for t in json.loads(current.stdout)["tenants"]] == [["r2"]] * 3


def test_only_stock_env_py_is_trusted(tmp_path: Path) -> None:
    from asyncmigrate.script import ScriptDirectory

    templates = str(TEMPLATES)
    stock = make_project(tmp_path / "stock", REVS)
    assert preread_table(ScriptDirectory.from_config(stock), templates) == "alembic_version"
    # Comments and layout do not matter; code does.
    reformatted = (TEMPLATES / "async" / "env.py").read_text(encoding="utf-8").replace(
        "target_metadata = None", "# a note\ntarget_metadata   =   None"
    )
    edited = make_project(tmp_path / "edited", REVS, env_py=reformatted)
    assert preread_table(ScriptDirectory.from_config(edited), templates) == "alembic_version"
    custom = make_project(tmp_path / "custom", REVS, env_py=CUSTOM_TABLE_ENV)
    assert preread_table(ScriptDirectory.from_config(custom), templates) is None
    helper = (TEMPLATES / "async" / "env.py").read_text(encoding="utf-8").replace(
        "from asyncmigrate import context", "from asyncmigrate import context\nimport myproject_settings"
    )
    imported = make_project(tmp_path / "helper", REVS, env_py=helper)
    assert preread_table(ScriptDirectory.from_config(imported), templates) is None


def test_alembic_stock_env_py_is_trusted(tmp_path: Path) -> None:
    alembic = pytest.importorskip("alembic")
    from asyncmigrate.script import ScriptDirectory

    for name in ("generic", "async"):
        source = (Path(alembic.__file__).parent / "templates" / name / "env.py").read_text(encoding="utf-8")
        config = make_project(tmp_path / name, REVS, env_py=source)
        assert preread_table(ScriptDirectory.from_config(config), str(TEMPLATES)) == "alembic_version", name
