"""SQLite paths in a tenants file are the file's; read-only commands never create a database."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy.engine import URL, make_url
from ..clirunner import cli_runner

from asyncmigrate.cli import cli
from asyncmigrate.tenants import Tenant, load_tenants_file, migrate_tenants

from ..project import Rev, make_project

REVS = [Rev("r1", None, 'op.execute("CREATE TABLE t (id INTEGER)")')]


def fleet(tmp_path: Path) -> Path:
    """A tenants file in ``fleet/`` naming SQLite files relative to it."""
    (tmp_path / "fleet" / "dbs").mkdir(parents=True)
    tenants = tmp_path / "fleet" / "tenants.toml"
    tenants.write_text(
        '[[tenants]]\nname = "a"\nurl = "sqlite:///dbs/a.db"\n\n'
        '[[tenants]]\nname = "b"\nurl = "sqlite:///dbs/b.db"\n',
        encoding="utf-8",
    )
    return tenants


def test_relative_paths_resolve_against_the_tenants_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenants = fleet(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    make_project(tmp_path / "project", REVS)
    result = cli_runner().invoke(
        cli, ["-c", str(tmp_path / "project" / "alembic.ini"), "upgrade", "head",
              "--tenants", str(tenants), "--no-progress"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "fleet" / "dbs").glob("*.db")) == ["a.db", "b.db"]
    assert list(elsewhere.iterdir()) == []
    assert load_tenants_file(tenants)[0].url == f"sqlite+aiosqlite:///{tmp_path}/fleet/dbs/a.db"


@pytest.mark.parametrize("operation", ["current", "check"])
async def test_read_only_commands_create_no_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, operation: str
) -> None:
    monkeypatch.chdir(tmp_path)
    config = make_project(tmp_path, REVS)
    await migrate_tenants(config, [Tenant("here", f"sqlite:///{tmp_path}/here.db")], "head")
    tenants = [
        Tenant("here", f"sqlite:///{tmp_path}/here.db"),
        Tenant("absent", f"sqlite:///{tmp_path}/absent.db"),
        Tenant("relative", "sqlite:///nowhere/relative.db"),
    ]
    report = await migrate_tenants(config, tenants, None, operation=operation)  # type: ignore[arg-type]
    here, absent, relative = report.results
    assert (here.status, here.to_heads) == ("ok", ("r1",))
    assert absent.status == relative.status == "failed"
    assert absent.error == f"database file does not exist: {tmp_path}/absent.db"
    assert relative.error == "database file does not exist: nowhere/relative.db"
    assert absent.to_heads is None  # not "base": nothing is known about it
    assert not (tmp_path / "absent.db").exists()
    assert not (tmp_path / "nowhere").exists()


def test_current_from_the_command_line_reports_the_missing_file(tmp_path: Path) -> None:
    tenants = fleet(tmp_path)
    make_project(tmp_path / "project", REVS)
    result = cli_runner().invoke(
        cli, ["-c", str(tmp_path / "project" / "alembic.ini"), "current",
              "--tenants", str(tenants), "--json"],
        catch_exceptions=False,
    )
    assert result.exit_code == 1
    errors = {t["name"]: t["error"] for t in json.loads(result.stdout)["tenants"]}
    assert errors == {
        "a": f"database file does not exist: {tmp_path}/fleet/dbs/a.db",
        "b": f"database file does not exist: {tmp_path}/fleet/dbs/b.db",
    }
    assert list((tmp_path / "fleet" / "dbs").iterdir()) == []


def test_file_uris_in_a_tenants_file_are_its_own_and_read_only_commands_create_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``sqlite:///file:dbs/c.db?uri=true`` is a path too: relative to the tenants file, never created by
    ``current``; an in-memory URI is left alone."""
    (tmp_path / "fleet" / "my dbs").mkdir(parents=True)
    tenants = tmp_path / "fleet" / "tenants.toml"
    tenants.write_text(
        '[[tenants]]\nname = "c"\nurl = "sqlite:///file:my%20dbs/c.db?uri=true"\n\n'
        '[[tenants]]\nname = "m"\nurl = "sqlite:///file:mem?mode=memory&uri=true"\n',
        encoding="utf-8",
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    make_project(tmp_path / "project", REVS)
    base = ["-c", str(tmp_path / "project" / "alembic.ini")]
    current = cli_runner().invoke(cli, [*base, "current", "--tenants", str(tenants), "--json"])
    assert current.exit_code == 1, current.output
    errors = {t["name"]: t["error"] for t in json.loads(current.stdout)["tenants"]}
    assert errors["c"] == f"database file does not exist: {tmp_path}/fleet/my dbs/c.db"
    assert list((tmp_path / "fleet" / "my dbs").iterdir()) == [] and list(elsewhere.iterdir()) == []
    upgrade = cli_runner().invoke(cli, [*base, "upgrade", "head", "--tenants", str(tenants), "--no-progress"])
    assert upgrade.exit_code == 0, upgrade.output
    assert [p.name for p in (tmp_path / "fleet" / "my dbs").glob("*.db")] == ["c.db"]
    assert list(elsewhere.iterdir()) == []
    assert make_url(load_tenants_file(tenants)[1].url).database == "file:mem"  # in memory: as it was


@pytest.mark.parametrize("operation", ["current", "check"])
async def test_a_schema_tenant_whose_schema_does_not_exist_reads_as_base_and_is_not_created(
    tmp_path: Path, server_db: URL, operation: str
) -> None:
    """PostgreSQL (a schema) and MySQL/MariaDB (a database) alike: at base, and still absent after."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine
    from sqlalchemy.pool import NullPool

    config = make_project(tmp_path, REVS)
    url = server_db.render_as_string(hide_password=False)
    ghost = f"{server_db.database}_ghost"
    report = await migrate_tenants(config, [Tenant("ghost", url, ghost)], None, operation=operation)  # type: ignore[arg-type]
    (result,) = report.results
    if operation == "current":
        assert (result.status, result.to_heads) == ("ok", ()), result
    else:
        assert result.status == "failed" and result.to_heads == (), result
        assert "not at head" in (result.error or ""), result
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            found = await conn.execute(
                text("SELECT count(*) FROM information_schema.schemata WHERE schema_name = :s"), {"s": ghost}
            )
            assert found.scalar_one() == 0
    finally:
        await engine.dispose()


async def test_a_downgrade_does_not_create_a_missing_tenant_file(tmp_path: Path) -> None:
    config = make_project(tmp_path, REVS)
    tenants = [Tenant("here", f"sqlite:///{tmp_path}/here.db"), Tenant("absent", f"sqlite:///{tmp_path}/absent.db")]
    await migrate_tenants(config, tenants[:1], "head")
    report = await migrate_tenants(config, tenants, "base", operation="downgrade")
    here, absent = report.results
    assert (here.status, here.to_heads) == ("ok", ()), here
    assert (absent.status, absent.error) == ("failed", f"database file does not exist: {tmp_path}/absent.db")
    assert not (tmp_path / "absent.db").exists()
