"""``asyncmigrate.sync``: the commands for synchronous callers (scripts, Celery tasks)."""

from __future__ import annotations

import inspect
from pathlib import Path

import anyio
import pytest

from asyncmigrate import command, sync
from asyncmigrate.exceptions import CommandError

from . import backends
from .project import make_project
from .runtime.test_run import LINEAR, tables_and_versions


def test_every_command_has_a_synchronous_twin() -> None:
    assert sorted(sync.__all__) == sorted(command.__all__)
    for name in command.__all__:
        twin = getattr(sync, name)
        assert not inspect.iscoroutinefunction(twin), name
        assert inspect.signature(twin) == inspect.signature(getattr(command, name)), name


def test_synchronous_code_migrates_without_an_event_loop(tmp_path: Path) -> None:
    url = backends.sqlite_url(tmp_path / "app.db")
    config = make_project(tmp_path, LINEAR, url=url)
    result = sync.upgrade(config, "head")
    assert result.to_heads == ("c3",)
    assert sync.current(config).at_head
    sync.downgrade(config, "a1")
    assert anyio.run(tables_and_versions, url) == ({"t1"}, {"a1"})
    assert [script.revision for script in sync.heads(config)] == ["c3"]


async def test_inside_a_running_loop_it_names_the_coroutine_to_await(tmp_path: Path) -> None:
    url = backends.sqlite_url(tmp_path / "app.db")
    config = make_project(tmp_path, LINEAR, url=url)
    with pytest.raises(CommandError, match=r"await asyncmigrate\.command\.upgrade\(\.\.\.\)"):
        sync.upgrade(config, "head")
    assert await tables_and_versions(url) == (set(), set())
    # A worker thread of an async application runs no loop: there it works.
    await anyio.to_thread.run_sync(sync.upgrade, config, "head")
    assert await tables_and_versions(url) == ({"t1", "t2", "t3"}, {"c3"})


def test_readme_section_runs_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import re

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme.split("### From synchronous code", 1)[1].split("\n### ", 1)[0]
    (code,) = re.findall(r"```python\n(.*?)```", section, re.S)
    make_project(tmp_path, LINEAR, url=backends.sqlite_url(tmp_path / "app.db"))
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README:sync", "exec"), {})
    assert anyio.run(tables_and_versions, backends.sqlite_url(tmp_path / "app.db"))[1] == {"c3"}
