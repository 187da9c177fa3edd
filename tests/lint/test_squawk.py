"""asyncmigrate's linter against squawk on the catalogue: each finds what it should, and they agree.

squawk reads the offline SQL of each case (``upgrade b0:<case> --sql``);
asyncmigrate lints the same revision. Both results are pinned per case, and
where their rules overlap (:attr:`Rule.squawk`) they must agree unless the
case names a documented difference -- which then must really be one.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from asyncmigrate import command
from asyncmigrate.lint import RULES, lint

from ..project import make_project
from .catalogue import BASE, CASES, DIFFERENCES, OVERLAP, Case, squawk_executable

SQUAWK = squawk_executable()

README = Path(__file__).resolve().parents[2] / "README.md"

pytestmark = pytest.mark.skipif(SQUAWK is None, reason="squawk-cli is not installed")


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[set[str], set[str]]]:
    """Per case: (asyncmigrate's rule ids, squawk's overlapping rule names)."""
    import anyio

    root = tmp_path_factory.mktemp("catalogue")
    config = make_project(root, [BASE, *(c.revision() for c in CASES)], url="postgresql://app@db/app")
    sql_dir = root / "sql"
    sql_dir.mkdir()

    async def ours() -> dict[str, set[str]]:
        found = {}
        for case in CASES:
            report = await lint(config, [case.name], pg_version=case.pg_version, downgrades=False)
            found[case.name] = {f.rule_id for f in report.active}
            rendered = await command.upgrade(config, f"b0:{case.name}", sql=True)
            assert rendered.sql is not None
            (sql_dir / f"{case.name}.sql").write_text(rendered.sql, encoding="utf-8")
        return found

    mine = anyio.run(ours)
    theirs: dict[str, set[str]] = {case.name: set() for case in CASES}
    for version in sorted({case.pg_version for case in CASES}):
        files = [str(sql_dir / f"{c.name}.sql") for c in CASES if c.pg_version == version]
        done = subprocess.run(
            [SQUAWK or "squawk", "--reporter", "json", f"--pg-version={version}.0", *files],
            capture_output=True, text=True, timeout=120, check=False,
        )
        assert done.stdout.strip(), done.stderr
        for violation in json.loads(done.stdout):
            name = Path(violation["file"]).stem
            if violation["rule_name"] in OVERLAP:
                theirs[name].add(violation["rule_name"])
    return {name: (mine[name], theirs[name]) for name in mine}


def test_catalogue_is_large_enough() -> None:
    assert len(CASES) >= 40
    assert len({c.name for c in CASES}) == len(CASES)
    risky = {r for c in CASES for r in c.ours}
    # Every rule about migrations (not about suppressions) has an unsafe case, and a safe one exists.
    assert {r for r in RULES if r >= "AM100"} <= risky
    assert sum(1 for c in CASES if not c.ours) >= 15


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_findings(results: dict[str, tuple[set[str], set[str]]], case: Case) -> None:
    mine, theirs = results[case.name]
    assert mine == case.ours, "asyncmigrate"
    assert theirs == case.squawk, "squawk"


def _disagreements(mine: set[str], theirs: set[str]) -> list[str]:
    """Where the tools differ on an overlapping risk."""
    problems = []
    for rule_id in sorted(mine):
        names = set(RULES[rule_id].squawk)
        if names and not names & theirs:
            problems.append(f"{rule_id} without squawk's {sorted(names)}")
    covered = {name for rule_id in mine for name in RULES[rule_id].squawk}
    problems.extend(f"squawk {name} without asyncmigrate" for name in sorted(theirs - covered))
    return problems


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_agreement_where_rules_overlap(results: dict[str, tuple[set[str], set[str]]], case: Case) -> None:
    mine, theirs = results[case.name]
    problems = _disagreements(mine, theirs)
    if case.differs:
        assert problems, f"{case.name} is documented as a difference ({case.differs}) but the tools agree"
        assert set(case.differs) <= set(DIFFERENCES)
    else:
        assert not problems, problems


def test_every_difference_is_documented_and_used() -> None:
    readme = README.read_text(encoding="utf-8")
    used = {key for case in CASES for key in case.differs}
    assert used == set(DIFFERENCES)
    for key in DIFFERENCES:
        assert f"`{key}`" in readme, f"README's lint/squawk table lacks {key}"
