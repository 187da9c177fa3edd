"""A project's ``[logger_alembic]`` governs asyncmigrate's log lines, from the CLI and from the API."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ..runtime.test_envpy import alembic_init

API = (
    "import anyio; from asyncmigrate import Config, command; "
    "anyio.run(lambda: command.upgrade(Config('alembic.ini'), 'head'))"
)


@pytest.mark.parametrize("how", ["cli", "api"])
@pytest.mark.parametrize("level", ["INFO", "WARN"])
def test_logger_alembic_level_shows_or_hides_the_running_lines(tmp_path: Path, how: str, level: str) -> None:
    alembic_init(tmp_path, "generic", f"sqlite:///{tmp_path / 'app.db'}")
    ini = tmp_path / "alembic.ini"
    text = ini.read_text(encoding="utf-8")
    assert "[logger_alembic]\nlevel = INFO" in text  # what `alembic init` writes
    ini.write_text(text.replace("[logger_alembic]\nlevel = INFO", f"[logger_alembic]\nlevel = {level}"))
    command = [sys.executable, "-m", "asyncmigrate", "upgrade", "head"] if how == "cli" else [
        sys.executable, "-c", API,
    ]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    running = [line for line in done.stderr.splitlines() if "Running upgrade" in line]
    if level == "INFO":
        # alembic.ini's console handler and format: "INFO  [logger] message", one per revision.
        assert [line.split("] ", 1)[0][:5] for line in running] == ["INFO "] * 3, done.stderr
        assert "-> a1" in running[0]
        assert "b2 -> c3" in running[2]
    else:
        assert running == [], done.stderr


@pytest.mark.parametrize("how", ["cli", "api"])
@pytest.mark.parametrize("level", ["INFO", "WARNING"])
def test_the_logger_asyncmigrate_section_init_writes_governs_the_running_lines(
    tmp_path: Path, how: str, level: str
) -> None:
    """``asyncmigrate init`` writes ``[logger_asyncmigrate]`` (WARNING); set to INFO, it shows them."""
    done = subprocess.run([sys.executable, "-m", "asyncmigrate", "init", "migrations"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    ini = tmp_path / "alembic.ini"
    text = ini.read_text(encoding="utf-8")
    section = "[logger_asyncmigrate]\nlevel = WARNING"
    assert section in text
    ini.write_text(text.replace(section, f"[logger_asyncmigrate]\nlevel = {level}"), encoding="utf-8")
    (tmp_path / "migrations" / "versions" / "a1.py").write_text(
        "from asyncmigrate import op\n\nrevision = 'a1'\ndown_revision = None\n\n\n"
        "def upgrade():\n    op.execute('CREATE TABLE t (id INTEGER)')\n\n\ndef downgrade():\n    pass\n",
        encoding="utf-8",
    )
    command = [sys.executable, "-m", "asyncmigrate", "upgrade", "head"] if how == "cli" else [
        sys.executable, "-c", API,
    ]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    running = [line for line in done.stderr.splitlines() if "Running upgrade" in line]
    assert len(running) == (1 if level == "INFO" else 0), done.stderr
