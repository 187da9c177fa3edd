"""Shards: balanced for any set of names, independent of listing order, and cheap to grow."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from asyncmigrate.cli import cli
from asyncmigrate.exceptions import ConfigError
from asyncmigrate.tenants import Tenant, migrate_tenants, select_tenants, shard_names

from ..project import Rev, make_project

COMPANIES = ["acme", "globex", "initech", "umbrella", "hooli", "stark", "wayne", "wonka"]


def split(names: list[str], count: int) -> list[set[str]]:
    return [shard_names(names, index, count) for index in range(count)]


@pytest.mark.parametrize(
    ("names", "count"),
    [
        ([f"t{i}" for i in range(7)], 2),  # was 7/0
        (COMPANIES, 2),  # was 6/2
        (COMPANIES, 3),
        (COMPANIES, 8),
        ([f"tenant_{i:05d}" for i in range(1001)], 7),
        (["only"], 4),
    ],
)
def test_shards_are_balanced_and_cover_every_tenant_once(names: list[str], count: int) -> None:
    shards = split(names, count)
    sizes = [len(s) for s in shards]
    assert max(sizes) - min(sizes) <= 1, sizes
    assert sum(sizes) == len(names)
    assert set().union(*shards) == set(names)


def test_a_tenants_shard_does_not_depend_on_listing_order() -> None:
    names = [f"customer-{i}" for i in range(50)]
    shuffled = names[:]
    random.Random(7).shuffle(shuffled)
    assert split(names, 4) == split(shuffled, 4)


def test_adding_a_tenant_moves_few() -> None:
    names = [f"customer-{i}" for i in range(400)]
    before = split(names, 4)
    after = split([*names, "newcomer"], 4)
    moved = {
        name for index in range(4) for name in before[index] if name not in after[index]
    }
    # Only tenants next to the cuts between shards move: at most one per cut.
    assert len(moved) <= 3, moved


async def test_migrate_tenants_shards_seven_tenants_evenly(tmp_path: Path) -> None:
    config = make_project(tmp_path, [Rev("r1", None, 'op.execute("CREATE TABLE t (id INTEGER)")')])
    tenants = [Tenant(f"t{i}", f"sqlite:///{tmp_path}/t{i}.db") for i in range(7)]
    reports = [await migrate_tenants(config, tenants, "head", shard=(i, 2)) for i in range(2)]
    assert sorted(len(r.results) for r in reports) == [3, 4]
    assert {r.name for report in reports for r in report.results} == {t.name for t in tenants}
    assert all(report.counts["ok"] == len(report.results) for report in reports)
    assert [r.shards for r in reports] == [["0/2"], ["1/2"]]


async def test_duplicates_are_refused_before_sharding() -> None:
    tenants = [Tenant("a", "sqlite:///a.db"), Tenant("b", "sqlite:///b.db"), Tenant("a", "sqlite:///c.db")]
    with pytest.raises(ConfigError, match="more than once"):
        await select_tenants(tenants, (0, 2))


def test_an_empty_shard_warns_on_stderr(tmp_path: Path) -> None:
    from ..clirunner import cli_runner

    make_project(tmp_path, [Rev("r1", None, 'op.execute("CREATE TABLE t (id INTEGER)")')])
    (tmp_path / "tenants.toml").write_text(
        '[[tenants]]\nname = "solo"\nurl = "sqlite:///solo.db"\n', encoding="utf-8"
    )
    runner = cli_runner()
    outputs = []
    for index in range(2):
        result = runner.invoke(
            cli,
            ["-c", str(tmp_path / "alembic.ini"), "upgrade", "head", "--tenants",
             str(tmp_path / "tenants.toml"), "--shard", f"{index}/2", "--no-progress"],
            catch_exceptions=False,
        )
        outputs.append((result.exit_code, result.stderr))
    warned = [err for _, err in outputs if "warning: shard" in err and "selects no tenants" in err]
    assert len(warned) == 1, outputs
    assert all(code == 0 for code, _ in outputs)
