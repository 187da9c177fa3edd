"""asyncmigrate lint against squawk on the real histories (PostgreSQL, default tier).

Each revision is linted on its own (``lint --all``) and squawk reads the
offline SQL of the same revision (``upgrade <parent>:<rev> --sql``; squawk's
findings are attributed to revisions by the script's ``-- Running upgrade``
lines). Where the tools' rules overlap they must agree per revision, except
for the disagreements pinned below, each one an instance of a documented
difference (``tests/lint/catalogue.py``, README "Compared with squawk").
Revisions that cannot be rendered offline are left out: squawk gets no SQL
for them (asyncmigrate reports them as AM004).
"""

from __future__ import annotations

import collections
import json
import re
import subprocess
from pathlib import Path

import anyio
import pytest

from asyncmigrate import command
from asyncmigrate.lint import lint
from asyncmigrate.script import ScriptDirectory

from ..lint.catalogue import DIFFERENCES, OVERLAP, squawk_executable
from ..lint.test_squawk import _disagreements
from . import fetch
from .asyncmigrate_side import config_for
from .selection import prepare_or_skip

SQUAWK = squawk_executable()

pytestmark = [
    pytest.mark.histories,
    pytest.mark.skipif(SQUAWK is None, reason="squawk-cli is not installed"),
]

SQUAWK_ONLY_CONSTRAINT = "squawk constraint-missing-not-valid without asyncmigrate"
SQUAWK_ONLY_INDEX_DROP = "squawk require-concurrent-index-deletion without asyncmigrate"

#: history -> {(revision, disagreement): the documented difference it is an instance of}
EXPECTED = {
    "phoenix": {
        ("575aa27302ee", SQUAWK_ONLY_CONSTRAINT): "unique-not-valid",
    },
    "ckan": {
        ("12d64978ab44", SQUAWK_ONLY_INDEX_DROP): "index-dropped-with-table",
        ("4eaa5fcf3092", SQUAWK_ONLY_INDEX_DROP): "index-dropped-with-table",
        ("54e3f155d945", SQUAWK_ONLY_CONSTRAINT): "unique-not-valid",
        ("6da92ef2df15", SQUAWK_ONLY_CONSTRAINT): "unique-not-valid",
        ("4f8becd4919a", "squawk adding-field-with-default without asyncmigrate"):
            "sql-value-function-default",
    },
    "invenio": {
        ("8ae99b034410", SQUAWK_ONLY_CONSTRAINT): "unique-not-valid",
        ("eb9743315a9d", SQUAWK_ONLY_CONSTRAINT): "unique-not-valid",
    },
}

_RUNNING = re.compile(r"-- Running upgrade .* -> (\S+),")


async def _compare(name: str) -> tuple[dict[tuple[str, str], int], int]:
    prepared = prepare_or_skip(name)
    with fetch.activated(prepared):
        config = config_for(prepared, "postgresql://app@db/app")
        report = await lint(config, start="base", downgrades=False)
        mine: dict[str, set[str]] = collections.defaultdict(set)
        for finding in report.active:
            mine[finding.revision or ""].add(finding.rule_id)
        failed = {rev for rev, rules in mine.items() if rules & {"AM004", "AM006"}}
        script = ScriptDirectory.from_config(config)
        owners: dict[tuple[str, int], str] = {}
        files = []
        with_sql: set[str] = set()
        work = Path(config.get_main_option("script_location") or ".").parent / f"squawk-{name}"
        work.mkdir(exist_ok=True)
        for revision in reversed(list(script.walk_revisions())):
            if revision.revision in failed:
                continue
            parents = revision.down_revision
            start = (parents[0] if isinstance(parents, (tuple, list)) else parents) or "base"
            try:
                rendered = await command.upgrade(config, f"{start}:{revision.revision}", sql=True)
            except Exception:
                continue  # its path runs a revision that cannot be rendered offline
            path = work / f"{revision.revision}.sql"
            path.write_text(rendered.sql or "", encoding="utf-8")
            files.append(str(path))
            with_sql.add(revision.revision)
            owner = revision.revision
            for number, line in enumerate((rendered.sql or "").splitlines()):
                match = _RUNNING.match(line)
                owner = match.group(1) if match else owner
                owners[(str(path), number)] = owner
    done = subprocess.run([SQUAWK or "squawk", "--reporter", "json", "--pg-version=12.0", *files],
                          capture_output=True, text=True, timeout=300, check=False)
    theirs: dict[str, set[str]] = collections.defaultdict(set)
    for violation in json.loads(done.stdout or "[]"):
        if violation["rule_name"] in OVERLAP:
            theirs[owners[(violation["file"], violation["line"])]].add(violation["rule_name"])
    found: dict[tuple[str, str], int] = {}
    compared = with_sql - failed
    for rev in compared:
        for problem in _disagreements(mine[rev], theirs[rev]):
            found[(rev, problem)] = 1
    return found, len(compared)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_lint_agrees_with_squawk_on_real_histories(name: str) -> None:
    found, compared = anyio.run(_compare, name)
    assert compared >= 10
    assert set(found) == set(EXPECTED[name])
    assert set(EXPECTED[name].values()) <= set(DIFFERENCES)
