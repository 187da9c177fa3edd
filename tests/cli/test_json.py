"""``--json``: the read commands' output parses, lists what the text lists, and agrees with Alembic.

Every revision object is checked field by field against the :class:`Script`
Alembic builds for the same file.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from .conftest import Projects
from .harness import Project, declared_dependency_order, run_asyncmigrate, working_directory


@contextmanager
def alembic_scripts(project: Project, ini: str = "alembic.ini") -> Iterator[Any]:
    """Alembic's ScriptDirectory for the project (dependency order pinned, see harness)."""
    from alembic.config import Config as AlembicConfig
    from alembic.script import ScriptDirectory

    with working_directory(project.root), declared_dependency_order():
        toml = str(project.toml) if project.toml else None
        yield ScriptDirectory.from_config(AlembicConfig(ini, toml_file=toml))


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def expected_fields(script: Any) -> dict[str, Any]:
    """What asyncmigrate's JSON must say about Alembic's ``script``."""
    return {
        "revision": script.revision,
        "down_revisions": list(script._versioned_down_revisions),
        "depends_on": _as_list(script.dependencies),
        "resolved_dependencies": list(script._resolved_dependencies),
        "branch_labels": sorted(script.branch_labels),
        "is_head": script._is_real_head,
        "is_effective_head": script.is_head and not script._is_real_head,
        "is_branch_point": script.is_branch_point,
        "is_merge_point": script.is_merge_point,
        "branches_into": sorted(script.nextrev),
        "doc": script.doc,
        "longdoc": script.longdoc,
        "path": str(script.path),
    }


def run_json(project: Project, args: str) -> Any:
    outcome = run_asyncmigrate(project, f"{args} --json")
    assert outcome.code == 0, outcome.stderr
    return json.loads(outcome.stdout)


def _check_revisions(items: list[dict[str, Any]], scripts: Any) -> None:
    for item in items:
        got = {k: v for k, v in item.items() if k != "is_current"}
        assert got == expected_fields(scripts.get_revision(item["revision"]))


def _text_ids(text: str) -> list[str]:
    """Revision ids in the order a text listing prints them."""
    ids = []
    for line in text.splitlines():
        if line.startswith("Rev: "):
            ids.append(line.split()[1])
        elif " -> " in line and not line.startswith(" "):
            ids.append(line.split(" -> ", 1)[1].split()[0].rstrip(","))
        elif line and not line.startswith((" ", "Parent", "Merges", "Path", "Branch", "Also")):
            ids.append(line.split()[0])
    return ids


@pytest.mark.parametrize("kind", ["rich", "spread", "made"])
@pytest.mark.parametrize("command", ["heads", "heads --resolve-dependencies", "history", "show heads"])
def test_revision_listings(projects: Projects, kind: str, command: str) -> None:
    project = projects.get(kind, "generic")
    data = run_json(project, command)
    text = run_asyncmigrate(project, command).stdout
    assert [item["revision"] for item in data] == _text_ids(text)
    with alembic_scripts(project) as scripts:
        _check_revisions(data, scripts)
        if command == "history":
            assert [item["revision"] for item in data] == [s.revision for s in scripts.walk_revisions()]
        if command == "heads":
            assert [item["revision"] for item in data] == list(scripts.get_heads())


@pytest.mark.parametrize("rev_range", ["2b3c:6f7a", "reports@base:", ":v3.1"])
def test_history_range(projects: Projects, rev_range: str) -> None:
    project = projects.get("rich", "generic")
    data = run_json(project, f"history -r {rev_range}")
    assert [item["revision"] for item in data] == _text_ids(
        run_asyncmigrate(project, f"history -r {rev_range}").stdout
    )
    base, head = rev_range.split(":")
    with alembic_scripts(project) as scripts:
        expected = [s.revision for s in scripts.walk_revisions(base or "base", head or "heads")]
        _check_revisions(data, scripts)
    assert [item["revision"] for item in data] == expected


def test_branches(projects: Projects) -> None:
    project = projects.get("rich", "generic")
    data = run_json(project, "branches")
    with alembic_scripts(project) as scripts:
        points = [s for s in scripts.walk_revisions() if s.is_branch_point]
        _check_revisions(data, scripts)
    assert [item["revision"] for item in data] == [p.revision for p in points] == ["2b3c4d5e6f7a"]
    assert data[0]["branches_into"] == ["4d5e6f7a8b9c", "v3.0.0.c"]


@pytest.mark.parametrize("target", ["a1b1", "shop@head"])
def test_current_and_indicated_history(projects: Projects, target: str) -> None:
    project = projects.get("rich", "generic")
    ini = projects.database(project, "alembic", target)
    rows = sorted(
        r for (r,) in sqlite3.connect(project.databases[ini.removesuffix(".ini")]).execute(
            "SELECT version_num FROM alembic_version"
        )
    )
    current = run_json(project, f"-c {ini} current")
    assert sorted(current["heads"]) == rows
    assert current["url"].endswith(f"/{ini.removesuffix('.ini')}.db")
    text = run_asyncmigrate(project, f"-c {ini} current").stdout
    assert sorted(item["revision"] for item in current["revisions"]) == sorted(_text_ids(text))
    with alembic_scripts(project, ini) as scripts:
        _check_revisions(current["revisions"], scripts)
        shown = {s.revision for s in scripts.get_all_current(tuple(rows))}
        assert {item["revision"] for item in current["revisions"]} == shown
        assert current["at_head"] is (set(rows) == set(scripts.get_heads()))

    history = run_json(project, f"-c {ini} history -i")
    marked = [item["revision"] for item in history if item["is_current"]]
    assert sorted(marked) == rows
    text = run_asyncmigrate(project, f"-c {ini} history -i").stdout
    assert sorted(re.findall(r"-> (\S+) .*\(current\)", text)) == rows


def test_history_without_indicate_current_has_no_current_field(projects: Projects) -> None:
    data = run_json(projects.get("rich", "generic"), "history")
    assert all("is_current" not in item for item in data)


def test_json_ignores_quiet(projects: Projects) -> None:
    project = projects.get("rich", "generic")
    assert run_json(project, "-q heads") == run_json(project, "heads")


def test_empty_project(projects: Projects) -> None:
    project = projects.get("empty", "generic")
    for command in ("heads", "history", "branches"):
        assert run_json(project, command) == []
    current = run_json(project, "current")
    assert current["heads"] == []
    assert current["revisions"] == []
    assert current["at_head"] is True
