"""The script directory: finding revision files, lazy imports, writing new revisions."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from asyncmigrate import Config, command
from asyncmigrate.exceptions import CommandError, DuplicateRevisionError, RevisionError
from asyncmigrate.script import ScriptDirectory

from ..project import Rev, make_project, write_revisions


def test_files_with_dots_and_non_hex_ids(tmp_path: Path) -> None:
    config = make_project(tmp_path, [
        Rev("059", None, filename="059.initial.schema.py"),
        Rev("kilo", "059", filename="kilo_v2.0.py"),
        Rev("v3.0.0.c", "kilo", filename="v3.0.0.c_release.py"),
    ])
    script = ScriptDirectory.from_config(config)
    assert script.get_heads() == ["v3.0.0.c"]
    assert [s.revision for s in script.walk_revisions()] == ["v3.0.0.c", "kilo", "059"]


def test_ignores_non_revision_files(tmp_path: Path) -> None:
    config = make_project(tmp_path, [Rev("aaaa", None)])
    versions = tmp_path / "migrations" / "versions"
    (versions / "__init__.py").write_text("", encoding="utf-8")
    (versions / "notes.txt").write_text("hi", encoding="utf-8")
    (versions / ".#aaaa.py").write_text("garbage(", encoding="utf-8")
    assert ScriptDirectory.from_config(config).get_heads() == ["aaaa"]


def test_several_version_locations_and_recursive(tmp_path: Path) -> None:
    config = make_project(tmp_path, [], ini_extra=(
        "path_separator = os\n"
        "version_locations = %(here)s/core:%(here)s/plugins\n"
        "recursive_version_locations = true\n"
    ))
    write_revisions(tmp_path / "core", [Rev("c1", None, branch_labels="core")])
    write_revisions(tmp_path / "plugins" / "billing", [Rev("b1", None, branch_labels="billing")])
    write_revisions(tmp_path / "plugins" / "billing" / "deep", [Rev("b2", "b1")])
    script = ScriptDirectory.from_config(config)
    assert sorted(script.get_heads()) == ["b2", "c1"]
    assert script.get_revision("billing@head").revision == "b2"  # type: ignore[union-attr]


def test_not_recursive_by_default(tmp_path: Path) -> None:
    config = make_project(tmp_path, [Rev("aaaa", None)])
    write_revisions(tmp_path / "migrations" / "versions" / "sub", [Rev("bbbb", "aaaa")])
    assert ScriptDirectory.from_config(config).get_heads() == ["aaaa"]


def test_duplicate_revision_names_both_files(tmp_path: Path) -> None:
    config = make_project(tmp_path, [Rev("aaaa", None, filename="one.py"), Rev("aaaa", None, filename="two.py")])
    with pytest.raises(DuplicateRevisionError, match=r"one\.py.*two\.py"):
        ScriptDirectory.from_config(config).get_heads()


def test_loading_a_thousand_revisions_imports_none(tmp_path: Path) -> None:
    revs = [Rev(f"r{i:04d}", f"r{i - 1:04d}" if i else None,
                upgrade="raise RuntimeError('imported!')") for i in range(1000)]
    config = make_project(tmp_path, revs)
    started = time.perf_counter()
    script = ScriptDirectory.from_config(config)
    assert script.get_heads() == ["r0999"]
    elapsed = time.perf_counter() - started
    assert not any(s.is_loaded for s in script.graph)  # type: ignore[attr-defined]
    assert elapsed < 5  # generous: the benchmark, not this test, measures speed
    assert not (tmp_path / "migrations" / "versions" / "__pycache__").exists()


async def test_revision_command_writes_loadable_files(tmp_path: Path) -> None:
    config = make_project(tmp_path)
    first = await command.revision(config, "create users table", rev_id="aaa1")
    assert Path(first.path).name == "aaa1_create_users_table.py"  # type: ignore[union-attr]
    second = await command.revision(config, "more", rev_id="bbb2", branch_label="main")
    assert second.down_revision == "aaa1"  # type: ignore[union-attr]
    spliced = await command.revision(config, "side", rev_id="ccc3", head="aaa1", splice=True)
    assert spliced.down_revision == "aaa1"  # type: ignore[union-attr]
    with pytest.raises(CommandError, match="not a head revision"):
        await command.revision(config, "x", head="aaa1")
    with pytest.raises(CommandError, match="Multiple heads"):
        await command.revision(config, "x")
    dep = await command.revision(config, "dep", rev_id="ddd4", head="ccc3", depends_on=["main"])
    assert dep.dependencies == "main"  # type: ignore[union-attr]
    assert [h.revision for h in await command.heads(config)] == ["bbb2", "ddd4"]
    assert [h.revision for h in await command.heads(config, resolve_dependencies=True)] == ["ddd4"]
    merged = await command.merge(config, ["bbb2", "ddd4"], "merge it", rev_id="eee5")
    assert set(merged.down_revisions) == {"bbb2", "ddd4"}
    script = ScriptDirectory.from_config(config)
    assert script.get_heads() == ["eee5"]
    assert script.get_revision("bbb2").own_branch_labels == ("main",)  # type: ignore[union-attr]
    module = script.get_revision("eee5").module  # type: ignore[union-attr]
    assert module.down_revision == ("bbb2", "ddd4")
    with pytest.raises(RevisionError, match="already exists"):
        await command.revision(config, "again", rev_id="aaa1", head="eee5")


async def test_revision_with_version_path(tmp_path: Path) -> None:
    config = make_project(tmp_path, [], ini_extra=(
        "path_separator = os\nversion_locations = %(here)s/a:%(here)s/b\n"
    ))
    with pytest.raises(CommandError, match="--version-path"):
        await command.revision(config, "one", rev_id="a001")
    made = await command.revision(config, "one", rev_id="a001", version_path=str(tmp_path / "b"))
    assert Path(made.path).parent == tmp_path / "b"  # type: ignore[union-attr]
    with pytest.raises(CommandError, match="not represented"):
        await command.revision(config, "two", version_path=str(tmp_path / "c"))


async def test_file_template(tmp_path: Path) -> None:
    config = make_project(tmp_path, [], ini_extra="file_template = %%(year)d_%%(rev)s_%%(slug)s\n")
    made = await command.revision(config, "Hello, World!", rev_id="abcd")
    assert Path(made.path).name.endswith("_abcd_hello_world.py")  # type: ignore[union-attr]


def test_missing_script_location(tmp_path: Path) -> None:
    (tmp_path / "alembic.ini").write_text("[alembic]\n", encoding="utf-8")
    from asyncmigrate.exceptions import ConfigError

    with pytest.raises(ConfigError, match="script_location"):
        ScriptDirectory.from_config(Config(str(tmp_path / "alembic.ini")))
