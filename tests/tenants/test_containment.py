"""One tenant's failure is that tenant's alone: whatever it is, the rest of the fleet migrates.

Failures that used to escape the tenant and stop (or crash) the whole run:
a URL no engine can be made for, a URL the fleet pre-read cannot connect
with, a migration raising a cancellation exception without being cancelled,
and env.py calling ``sys.exit()`` for one tenant.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sqlalchemy.engine import URL

from asyncmigrate import Config
from asyncmigrate.tenants import Tenant, migrate_tenants

from ..project import TEMPLATES, Rev, make_project

REVS = [
    Rev("c1", None, """
        import asyncio
        from asyncmigrate import context
        op.execute("CREATE TABLE t (id INTEGER)")
        if context.tenant.name == "raises_cancelled":
            raise asyncio.CancelledError("not a real cancellation")
    """),
]


def statuses(report: object) -> dict[str, str]:
    return {r.name: r.status for r in report.results}  # type: ignore[attr-defined]


def errors(report: object) -> dict[str, str | None]:
    return {r.name: r.error for r in report.results}  # type: ignore[attr-defined]


async def test_a_tenant_without_an_engine_fails_alone(tmp_path: Path) -> None:
    make_project(tmp_path, REVS)
    tenants = [Tenant(f"a{i}", f"sqlite:///{tmp_path}/a{i}.db") for i in range(3)]
    tenants.insert(1, Tenant("no_driver", "oracle://scott:tiger-secret@db.example/orcl"))
    report = await migrate_tenants(Config(str(tmp_path / "alembic.ini")), tenants, "head", concurrency=2)
    assert statuses(report) == {"a0": "ok", "no_driver": "failed", "a1": "ok", "a2": "ok"}
    error = errors(report)["no_driver"] or ""
    assert "driver is not installed" in error
    assert "tiger-secret" not in error


async def test_a_url_the_pre_read_cannot_use_fails_its_tenants_alone(tmp_path: Path, pg_db: URL) -> None:
    make_project(tmp_path, REVS)
    url = pg_db.render_as_string(hide_password=False)
    odd = url + "?options=-csearch_path%3Dx"  # asyncpg's connect() takes no 'options': a TypeError
    tenants = [Tenant("good", url, "good_s"), Tenant("odd1", odd, "odd1_s"), Tenant("odd2", odd, "odd2_s")]
    for operation in ("upgrade", "current"):
        report = await migrate_tenants(
            Config(str(tmp_path / "alembic.ini")), tenants, "head" if operation == "upgrade" else None,
            operation=operation,
        )
        assert statuses(report) == {"good": "ok", "odd1": "failed", "odd2": "failed"}, report.failed
        assert "options" in (errors(report)["odd1"] or "")


async def test_a_cancellation_raised_by_a_migration_is_its_failure(tmp_path: Path) -> None:
    make_project(tmp_path, REVS)
    names = ["raises_cancelled", "slow", "later", "last"]
    tenants = [Tenant(n, f"sqlite:///{tmp_path}/{n}.db") for n in names]
    report = await migrate_tenants(Config(str(tmp_path / "alembic.ini")), tenants, "head", concurrency=2)
    assert statuses(report) == {"raises_cancelled": "failed", "slow": "ok", "later": "ok", "last": "ok"}
    assert "CancelledError" in (errors(report)["raises_cancelled"] or "")
    assert report.results[0].to_heads == ()  # rolled back: still at base
    assert report.stopped is None


async def test_env_py_exiting_for_one_tenant_fails_that_tenant(tmp_path: Path) -> None:
    env = (TEMPLATES / "async" / "env.py").read_text()
    env = env.replace(
        "if context.is_offline_mode():",
        "import sys\nif context.tenant is not None and context.tenant.name == 'bad':\n"
        "    sys.exit('bad tenant is misconfigured')\n\nif context.is_offline_mode():", 1,
    )
    assert "sys.exit" in env
    make_project(tmp_path, REVS, env_py=env)
    tenants = [Tenant(n, f"sqlite:///{tmp_path}/{n}.db") for n in ["a", "bad", "c"]]
    report = await migrate_tenants(Config(str(tmp_path / "alembic.ini")), tenants, "head", concurrency=1)
    assert statuses(report) == {"a": "ok", "bad": "failed", "c": "ok"}
    assert "bad tenant is misconfigured" in (errors(report)["bad"] or "")


def test_a_tenant_whose_driver_extra_is_missing_fails_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without asyncmy (the ``[mysql]`` extra), a tenants file naming a MySQL tenant still loads; that
    tenant fails saying which extra to install, and the others migrate."""
    import sys

    from asyncmigrate.cli import cli
    from asyncmigrate.tenants import load_tenants_file

    from ..clirunner import cli_runner

    monkeypatch.setitem(sys.modules, "asyncmy", None)  # as if it were not installed
    make_project(tmp_path, [Rev("r1", None, 'op.execute("CREATE TABLE t (id INTEGER)")')])
    tenants = tmp_path / "tenants.toml"
    tenants.write_text(
        f'[[tenants]]\nname = "lite"\nurl = "sqlite:///{tmp_path}/lite.db"\n\n'
        '[[tenants]]\nname = "maria"\nurl = "mysql://root:s3cret@127.0.0.1:3306/nowhere"\n',
        encoding="utf-8",
    )
    assert [t.name for t in load_tenants_file(tenants)] == ["lite", "maria"]
    result = cli_runner().invoke(cli, ["-c", str(tmp_path / "alembic.ini"), "upgrade", "head",
                                       "--tenants", str(tenants), "--json"])
    assert result.exit_code == 1, result.output
    import json

    records = {t["name"]: t for t in json.loads(result.stdout)["tenants"]}
    assert records["lite"]["status"] == "ok"
    assert records["maria"]["status"] == "failed"
    assert "pip install 'asyncmigrate[mysql]'" in records["maria"]["error"]
    assert "s3cret" not in result.stdout + result.stderr
