"""Reports as data: unknown positions stay unknown, shard reports merge, text stays one line."""

from __future__ import annotations

from pathlib import Path

import pytest
from ..clirunner import cli_runner

from asyncmigrate.cli import cli
from asyncmigrate.exceptions import ConfigError
from asyncmigrate.tenants import FanoutReport, TenantResult, merge_reports
from asyncmigrate.tenants.policy import StopPolicy, failure_budget


def result(name: str, status: str = "ok", **kw: object) -> TenantResult:
    return TenantResult(name, "sqlite+aiosqlite:///x.db", None, status, **kw)  # type: ignore[arg-type]


def test_unknown_positions_round_trip_as_null(tmp_path: Path) -> None:
    report = FanoutReport("upgrade", "head", [
        result("never_connected", "failed", from_heads=None, to_heads=None, error="Cannot connect"),
        result("at_base", "unchanged", from_heads=(), to_heads=()),
        result("partial", "failed", from_heads=(), to_heads=("r1",), applied=("r0", "r1"), migrations=2),
    ])
    report.write(tmp_path / "r.json")
    again = FanoutReport.read(tmp_path / "r.json")
    assert again.results == report.results
    data = report.to_dict()["tenants"]
    assert (data[0]["from"], data[0]["to"]) == (None, None)
    assert (data[1]["from"], data[1]["to"]) == ([], [])
    assert report.histogram() == {"base": 1, "r1": 1}  # where each stands; unknown left out


def test_merge_combines_counts_and_flags_gaps() -> None:
    shards = [
        FanoutReport("upgrade", "head", [result("a"), result("b", "failed")], seconds=2.0, shards=["0/3"]),
        FanoutReport("upgrade", "head", [result("c")], seconds=5.0, shards=["1/3"]),
    ]
    merged = merge_reports(shards)
    assert [r.name for r in merged.results] == ["a", "b", "c"]
    assert merged.counts == {"ok": 2, "unchanged": 0, "failed": 1, "skipped": 0}
    assert merged.seconds == 5.0 and merged.exit_code == 1
    assert merged.warnings == ["shard report(s) missing: 2/3"]
    with pytest.raises(ConfigError, match="appears in reports 1 and 2"):
        merge_reports([shards[0], shards[0]])
    with pytest.raises(ConfigError, match="Nothing to merge"):
        merge_reports([])


def test_report_merge_alias_on_the_command_line(tmp_path: Path) -> None:
    FanoutReport("upgrade", "head", [result("a")], shards=["0/2"]).write(tmp_path / "s0.json")
    FanoutReport("upgrade", "head", [result("b", "unchanged")], shards=["1/2"]).write(tmp_path / "s1.json")
    merged = cli_runner().invoke(cli, ["report", "merge", str(tmp_path / "s0.json"), str(tmp_path / "s1.json"),
                                      "--json"])
    assert merged.exit_code == 0, merged.output
    assert '"ok": 1' in merged.stdout and '"unchanged": 1' in merged.stdout
    broken = cli_runner().invoke(cli, ["report", "merge", str(tmp_path / "nope.json")])
    assert broken.exit_code == 1 and "not a readable fan-out report" in broken.stderr


def test_stop_policy() -> None:
    assert failure_budget(None, 10, fail_fast=True) == 1
    assert failure_budget(0.25, 10, fail_fast=False) == 3
    policy = StopPolicy(budget=2, fail_fast=False, stop=None)
    policy.record(result("x", "failed"))
    assert policy.may_start()
    policy.record(result("y", "ok"))
    policy.record(result("z", "failed"))
    assert not policy.may_start()
    assert policy.stopped == "failure budget reached (2 failed)"
    canary = StopPolicy(budget=None, fail_fast=False, stop=None)
    canary.record(result("c", "failed"))
    canary.after_wave(0, 3, canary=True)
    assert canary.stopped == "canary wave failed (1 of 3 tenants)"
