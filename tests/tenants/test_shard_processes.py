"""A fleet as 4 shard processes (the console script, as a Kubernetes Indexed Job runs it), then merged."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy.engine import URL

from ..project import Rev, make_project
from .test_fanout import state_of

BIN = Path(sys.executable).parent
REVS = [
    Rev("k1", None, """
        from asyncmigrate import context
        op.execute("CREATE TABLE t (id INTEGER)")
        if context.tenant.name.startswith("broken"):
            raise RuntimeError("cannot migrate " + context.tenant.name)
    """),
    Rev("k2", "k1", 'op.execute("CREATE TABLE u (id INTEGER)")'),
]


def test_four_shard_processes_migrate_one_postgresql_fleet(tmp_path: Path, pg_db: URL) -> None:
    make_project(tmp_path, REVS)
    shared = pg_db.render_as_string(hide_password=False)
    names = [f"company_{i}" for i in range(13)] + ["broken_co"]
    (tmp_path / "tenants.toml").write_text(
        "".join(f'[[tenants]]\nname = "{n}"\nurl = "{shared}"\nschema = "s_{n}"\n\n' for n in names),
        encoding="utf-8",
    )
    environ = {k: v for k, v in os.environ.items() if not k.startswith("ASYNCMIGRATE_")}
    shards = [
        subprocess.Popen(
            [str(BIN / "asyncmigrate"), "-c", "alembic.ini", "upgrade", "head", "--tenants", "tenants.toml",
             "--shard", f"{index}/4", "--report", f"shard-{index}.json", "--no-progress"],
            cwd=tmp_path, env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for index in range(4)
    ]
    outputs = [shard.communicate(timeout=120) for shard in shards]
    codes = [shard.returncode for shard in shards]
    sizes = [len(json.loads((tmp_path / f"shard-{i}.json").read_text())["tenants"]) for i in range(4)]
    assert sorted(sizes) == [3, 3, 4, 4]
    assert sorted(codes) == [0, 0, 0, 1], outputs  # the shard holding broken_co
    merged = subprocess.run(
        [str(BIN / "asyncmigrate"), "tenants", "report", "merge", *(f"shard-{i}.json" for i in range(4)),
         "-o", "fleet.json"],
        cwd=tmp_path, env=environ, capture_output=True, text=True, timeout=60, check=False,
    )
    assert merged.returncode == 1, merged.stderr
    fleet = json.loads((tmp_path / "fleet.json").read_text())
    assert fleet["counts"] == {"ok": 13, "unchanged": 0, "failed": 1, "skipped": 0}
    assert sorted(t["name"] for t in fleet["tenants"]) == sorted(names)
    assert [t["name"] for t in fleet["tenants"] if t["status"] == "failed"] == ["broken_co"]
    assert "14 tenants" in merged.stdout and "broken_co" in merged.stdout


async def test_every_shard_tenant_is_really_migrated(tmp_path: Path, pg_db: URL) -> None:
    from asyncmigrate import Config
    from asyncmigrate.tenants import FanoutReport, Tenant, merge_reports, migrate_tenants

    make_project(tmp_path, REVS)
    shared = pg_db.render_as_string(hide_password=False)
    tenants = [Tenant(f"c{i}", shared, f"s_c{i}") for i in range(10)]
    config = Config(str(tmp_path / "alembic.ini"))
    reports = [await migrate_tenants(config, tenants, "head", shard=(i, 4)) for i in range(4)]
    merged = merge_reports(reports)
    assert merged.counts["ok"] == 10 and merged.warnings == []
    for tenant in tenants:
        assert (await state_of(shared, tenant.schema))[1] == ["k2"]
    assert isinstance(merged, FanoutReport)
