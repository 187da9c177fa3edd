"""Projects shared by the CLI tests: built once per session, never modified by a test."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

from .harness import (
    Project,
    alembic_init,
    run_alembic,
    run_asyncmigrate,
    working_directory,
    write_history,
)
from .histories import RICH, SPREAD, SPREAD_LOCATIONS

TEMPLATES = ("generic", "async", "pyproject")


def _spread_locations(project: Project) -> None:
    """Point the project at SPREAD's two version locations, searched recursively."""
    locations = [f"%(here)s/{where}" for where in SPREAD_LOCATIONS]
    if project.toml is not None:
        text = project.toml.read_text(encoding="utf-8")
        listed = ", ".join(f'"{loc}"' for loc in locations)
        text = text.replace(
            "[tool.alembic]\n",
            f"[tool.alembic]\nversion_locations = [{listed}]\nrecursive_version_locations = true\n",
            1,
        )
        project.toml.write_text(text, encoding="utf-8")
        return
    # generic: an explicit ';'; async: 'os' (':' here), as alembic.ini writes it by default.
    separator, joined = (";", "; ".join(locations)) if project.template == "generic" else (
        "os", ":".join(locations)
    )
    project.set_ini_options(
        path_separator=separator,
        version_locations=joined,
        recursive_version_locations="true",
    )


def _alembic_made_revisions(project: Project) -> None:
    """Add revisions with Alembic's own ``revision``/``merge`` commands (its file template)."""
    from alembic import command as alembic_command
    from alembic.config import Config as AlembicConfig

    with working_directory(project.root):
        config = AlembicConfig(
            file_=str(project.ini),
            toml_file=str(project.toml) if project.toml else None,
            stdout=io.StringIO(),
        )
        alembic_command.revision(config, "create users table")
        alembic_command.revision(config, "add an index, with a comma")
        alembic_command.revision(config, "café ☕ unicode message")
        alembic_command.revision(config, "second root", head="base", branch_label="other")
        alembic_command.merge(config, "heads", message="merge the roots")


class Projects:
    """Build projects on first use and hand out the same ones afterwards."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._projects: dict[tuple[str, str], Project] = {}
        self._databases: dict[tuple[str, str, str, str], Path] = {}

    def get(self, kind: str, template: str) -> Project:
        """Return the ``kind`` project (empty, rich, spread, made) for ``template``."""
        key = (kind, template)
        if key not in self._projects:
            project = alembic_init(self.root / f"{kind}-{template}", template)
            if kind == "rich":
                write_history(project, RICH)
            elif kind == "spread":
                _spread_locations(project)
                write_history(project, SPREAD)
                sub = project.root / "plugins" / "versions" / "sub"
                (sub / "__init__.py").write_text("", encoding="utf-8")
                (project.versions / "2024" / "notes.txt").write_text("not a revision\n")
            elif kind == "made":
                _alembic_made_revisions(project)
            elif kind != "empty":
                raise ValueError(kind)
            self._projects[key] = project
        return self._projects[key]

    def database(self, project: Project, tool: str, target: str | None) -> str:
        """Return an ini file name whose URL is a SQLite file ``tool`` upgraded to ``target``."""
        key = (str(project.root), project.template, tool, target or "")
        if key not in self._databases:
            name = f"{tool}_{re.sub(r'[^A-Za-z0-9]+', '_', target or 'none')}"
            ini = project.root / f"{name}.ini"
            text = project.ini.read_text(encoding="utf-8")
            ini.write_text(
                re.sub(r"^sqlalchemy\.url\s*=.*$", f"sqlalchemy.url = {project.sqlite_url(name)}",
                       text, flags=re.M),
                encoding="utf-8",
            )
            if target is not None:
                run = run_alembic if tool == "alembic" else run_asyncmigrate
                done = run(project, ["-c", ini.name, "upgrade", target])
                assert done.ok, f"{tool} upgrade {target} failed:\n{done.stdout}\n{done.stderr}"
            self._databases[key] = ini
        return self._databases[key].name


@pytest.fixture(scope="session")
def projects(tmp_path_factory: pytest.TempPathFactory) -> Projects:
    """The session's shared projects (read-only for tests)."""
    return Projects(tmp_path_factory.mktemp("cli-projects"))
