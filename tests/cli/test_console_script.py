"""End to end: the installed ``asyncmigrate`` console script in a subprocess, beside ``alembic``.

These few runs cover what ``CliRunner`` cannot: the entry point, real
stdout/stderr streams, exit codes as the shell sees them, a traceback printed
by the interpreter, and an untouched ``env.py`` (logging configured from the
ini file).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from asyncmigrate import __version__

from .harness import Rev, write_history
from .normalize import normalize

BIN = Path(sys.executable).parent
SECRET = "Sup3rSecretPw"


def run(
    tool: str, *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("ASYNCMIGRATE_", "ALEMBIC_"))}
    environ.update(env or {})
    return subprocess.run(
        [str(BIN / tool), *args], cwd=cwd, env=environ, capture_output=True, text=True, timeout=60,
        check=False,
    )


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project made by the real ``alembic init`` (env.py untouched), with three revisions."""
    root = tmp_path_factory.mktemp("console")
    done = run("alembic", "init", "migrations", cwd=root)
    assert done.returncode == 0, done.stderr
    ini = root / "alembic.ini"
    ini.write_text(
        ini.read_text().replace("driver://user:pass@localhost/dbname", "sqlite:///%(here)s/app.db")
    )
    from .harness import Project

    write_history(Project(root, "generic", root / "migrations", ini), [
        Rev("aaaa1111", None, message="first", labels="core"),
        Rev("bbbb2222", "aaaa1111", message="second"),
        Rev("cccc3333", "aaaa1111", message="side branch", depends_on="bbbb2222"),
    ])
    return root


def test_version() -> None:
    done = subprocess.run([str(BIN / "asyncmigrate"), "--version"], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0
    assert __version__ in done.stdout
    module = subprocess.run([sys.executable, "-m", "asyncmigrate", "--version"], capture_output=True,
                            text=True, check=False)
    assert module.stdout == done.stdout


def test_read_commands_print_what_alembic_prints(project: Path) -> None:
    for args in (["history", "-v"], ["branches"]):
        ours = run("asyncmigrate", "-c", "alembic.ini", *args, cwd=project)
        theirs = run("alembic", "-c", "alembic.ini", *args, cwd=project)
        assert ours.returncode == theirs.returncode == 0, ours.stderr
        assert normalize(ours.stdout, ["core"]) == normalize(theirs.stdout, ["core"])
        assert ours.stdout


def test_upgrade_then_both_tools_read_the_database(project: Path) -> None:
    done = run("asyncmigrate", "-c", "alembic.ini", "upgrade", "heads", cwd=project)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    ours = run("asyncmigrate", "-c", "alembic.ini", "current", cwd=project)
    theirs = run("alembic", "-c", "alembic.ini", "current", cwd=project)
    assert ours.returncode == theirs.returncode == 0
    # Alembic prints these from a set (normalize.py, rule 1); asyncmigrate in history order.
    assert sorted(ours.stdout.splitlines()) == sorted(theirs.stdout.splitlines())
    assert ours.stdout == "bbbb2222 (effective head)\ncccc3333 (head)\n"
    downgraded = run("asyncmigrate", "-c", "alembic.ini", "downgrade", "-1", cwd=project)
    assert downgraded.returncode == 0, downgraded.stderr
    assert run("alembic", "current", cwd=project).stdout == "bbbb2222 (effective head)\n"


def test_error_is_one_line_and_raiseerr_shows_the_traceback(project: Path) -> None:
    plain = run("asyncmigrate", "show", "zzzz", cwd=project)
    assert plain.returncode == 1
    assert plain.stdout == ""
    assert plain.stderr.count("\n") == 1
    assert "zzzz" in plain.stderr
    loud = run("asyncmigrate", "--raiseerr", "show", "zzzz", cwd=project)
    assert loud.returncode != 0
    assert "Traceback (most recent call last)" in loud.stderr
    assert "UnknownRevisionError" in loud.stderr


def test_unreachable_database_hides_the_password(project: Path) -> None:
    url = f"postgresql://alice:{SECRET}@127.0.0.1:1/app"
    for args, env in ((["--url", url, "current"], None), (["current"], {"ASYNCMIGRATE_DATABASE_URL": url})):
        done = run("asyncmigrate", *args, cwd=project, env=env)
        assert done.returncode == 1
        assert SECRET not in done.stdout + done.stderr
        errors = [line for line in done.stderr.splitlines() if not line.startswith("INFO ")]
        assert len(errors) == 1, done.stderr
        assert errors[0].startswith("ERROR: ")
        assert "alice:***@" in errors[0]


def test_init_names_the_example_tenants_file_it_wrote(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "asyncmigrate", "init", "-t", "multitenant", "migrations"],
        cwd=tmp_path, capture_output=True, text=True, check=True,
    )
    example = tmp_path / "migrations" / "tenants.example.toml"
    assert example.exists()
    assert f"An example tenants file is in {example}" in run.stdout, run.stdout
