"""Helper modules that say ``from alembic import op, context`` reach the running migration."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from asyncmigrate import Config, migrate_tenants, sync
from asyncmigrate.tenants import Tenant

from ..histories.schema_snapshot import snapshot
from ..isolated import run_without
from .helper_project import helper_project


def rows_and_schema(path: Path) -> tuple[list[tuple[str, ...]], dict[str, object]]:
    """The account rows (without ids) and the schema snapshot of a SQLite database."""
    engine = sa.create_engine(f"sqlite:///{path}", poolclass=NullPool)
    with engine.connect() as conn:
        rows = [tuple(r)[1:] for r in conn.execute(sa.text("SELECT * FROM account"))]
        return rows, snapshot(conn, row_counts=False)


async def test_each_tenant_reaches_its_own_op_through_the_helper(tmp_path: Path) -> None:
    with helper_project(tmp_path, f"sqlite:///{tmp_path / 'unused.db'}") as (ini, _):
        tenants = [Tenant(f"t{i}", f"sqlite:///{tmp_path / f't{i}.db'}") for i in range(8)]
        report = await migrate_tenants(Config(str(ini)), tenants, concurrency=8)
    assert report.succeeded, [r.error for r in report.failed]
    for i in range(8):
        rows, schema = rows_and_schema(tmp_path / f"t{i}.db")
        assert rows == [(f"t{i}.db", "auditor")]  # each tenant's op, each tenant's database
        assert schema["version"] == ["r2"]


def test_real_alembic_and_asyncmigrate_interleaved_in_one_thread(tmp_path: Path) -> None:
    """asyncmigrate runs in the middle of an Alembic run (Alembic's global proxy installed)."""
    from alembic import command as alembic_command
    from alembic.config import Config as AlembicConfig

    with helper_project(tmp_path, f"sqlite:///{tmp_path / 'alembic.db'}") as (ini, package):
        config = Config(str(ini))
        config.set_main_option("sqlalchemy.url", f"sqlite:///{tmp_path / 'ours.db'}")
        alembic_config = AlembicConfig(str(ini))
        ran: list[str] = []

        def run_asyncmigrate() -> None:
            ran.append(sync.upgrade(config, "head").to_heads[0])

        sys.path.insert(0, str(tmp_path))
        helpers = __import__(f"{package}.helpers", fromlist=["HOOKS"])
        helpers.HOOKS.append(run_asyncmigrate)
        alembic_command.upgrade(alembic_config, "head")  # asyncmigrate runs at r1's checkpoint
        assert ran == ["r2"]

        theirs, ours = rows_and_schema(tmp_path / "alembic.db"), rows_and_schema(tmp_path / "ours.db")
        assert theirs[0] == [("alembic.db", "auditor")]
        assert ours[0] == [("ours.db", "auditor")]
        assert theirs[1] == ours[1]
        # Both keep working afterwards, in either order.
        alembic_command.downgrade(alembic_config, "base")
        sync.downgrade(config, "r1")
        alembic_command.upgrade(alembic_config, "r1")
        assert rows_and_schema(tmp_path / "alembic.db")[1] == rows_and_schema(tmp_path / "ours.db")[1]


NO_ALEMBIC_SCRIPT = """
import importlib.util
import sys

import anyio

assert importlib.util.find_spec("alembic") is None, "alembic must not be importable here"
try:
    import alembic
except ModuleNotFoundError:
    pass
else:
    raise AssertionError("import alembic succeeded outside a run")

from asyncmigrate import Config, migrate_tenants
from asyncmigrate.tenants import Tenant

ini, root = sys.argv[1], sys.argv[2]
tenants = [Tenant(f"t{i}", f"sqlite:///{root}/t{i}.db") for i in range(4)]
report = anyio.run(lambda: migrate_tenants(Config(ini), tenants, concurrency=4))
assert report.succeeded, [r.error for r in report.failed]
print("migrated", len(tenants))
"""


def test_helper_module_without_alembic_installed(tmp_path: Path) -> None:
    """A real interpreter whose ``import alembic`` fails: site-packages without alembic on the path."""
    with helper_project(tmp_path, f"sqlite:///{tmp_path / 'unused.db'}") as (ini, _):
        done = run_without(
            ["alembic"], textwrap.dedent(NO_ALEMBIC_SCRIPT), tmp_path, args=[str(ini), str(tmp_path)]
        )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "migrated 4" in done.stdout
    for i in range(4):
        rows, schema = rows_and_schema(tmp_path / f"t{i}.db")
        assert rows == [(f"t{i}.db", "auditor")]
        assert schema["version"] == ["r2"]


def test_outside_a_run_the_real_alembic_op_is_untouched() -> None:
    import alembic.op

    from asyncmigrate.compat import bridge

    bridge.install()
    # Outside an asyncmigrate run every name is the module's own (Alembic's proxies).
    for name in ("add_column", "create_table", "execute", "get_bind"):
        assert getattr(alembic.op, name) is vars(alembic.op)[name]
    assert alembic.context.configure is vars(alembic.context)["configure"]
