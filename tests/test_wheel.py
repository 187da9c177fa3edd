"""The built wheel works on its own: a fresh venv, the console script, the shipped templates.

Steps (timed; run with ``-s`` to see the figures):

1. build the wheel from this checkout (``pip wheel --no-deps``, pip's cache
   serves the build backend);
2. check its file list: every ``init`` template under ``asyncmigrate/templates/``,
   ``py.typed``, the console-script entry point, no tests;
3. create a venv without system site-packages and without pip (the outer pip
   installs into it with ``--python``, which skips bootstrapping pip);
4. install the wheel and its dependencies with ``--no-index`` from a wheelhouse
   kept in pytest's cache (filled by ``pip download`` on the first run, or
   when the dependencies change), then byte-compile in parallel;
5. from a scratch directory outside the checkout: ``asyncmigrate list_templates``,
   ``asyncmigrate init ./migrations`` (default template), ``revision``,
   ``upgrade head`` on SQLite, ``current``.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE_FILES = ("README", "alembic.ini.mako", "env.py", "script.py.mako")


class Timer:
    """Collect how long each phase takes."""

    def __init__(self) -> None:
        self.phases: list[tuple[str, float]] = []

    def __call__(self, name: str) -> _Phase:
        return _Phase(self, name)

    def report(self) -> str:
        total = sum(seconds for _, seconds in self.phases)
        parts = ", ".join(f"{name} {seconds:.1f}s" for name, seconds in self.phases)
        return f"wheel test: {parts}; total {total:.1f}s"


class _Phase:
    def __init__(self, timer: Timer, name: str) -> None:
        self.timer, self.name = timer, name

    def __enter__(self) -> None:
        self.started = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.timer.phases.append((self.name, time.perf_counter() - self.started))


def pip(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
        cwd=cwd, capture_output=True, text=True, timeout=600, check=False,
    )


def _requirements(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        metadata = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        text = archive.read(metadata).decode()
    return sorted(line.split(":", 1)[1].strip() for line in text.splitlines()
                  if line.startswith("Requires-Dist:") and "extra ==" not in line)


@pytest.fixture(scope="module")
def timer() -> Iterator[Timer]:
    timer = Timer()
    yield timer
    print("\n" + timer.report())


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory, timer: Timer) -> Path:
    out = tmp_path_factory.mktemp("dist")
    with timer("build"):
        done = pip("wheel", "--no-deps", "--quiet", "--wheel-dir", str(out), str(ROOT))
    assert done.returncode == 0, done.stderr
    (built,) = out.glob("asyncmigrate-*.whl")
    return built


@pytest.fixture(scope="module")
def wheelhouse(request: pytest.FixtureRequest, wheel: Path, tmp_path_factory: pytest.TempPathFactory,
               timer: Timer) -> Path:
    """The wheel's dependencies as wheels, reused across runs through pytest's cache."""
    key = hashlib.sha256(
        "\n".join([sys.version, sys.platform, *_requirements(wheel)]).encode()
    ).hexdigest()[:16]
    cache = getattr(request.config, "cache", None)
    house = cache.mkdir(f"wheelhouse-{key}") if cache is not None else tmp_path_factory.mktemp("wh")
    if not any(house.glob("*.whl")):
        with timer("download dependencies"):
            done = pip("download", "--quiet", "--dest", str(house), str(wheel))
        assert done.returncode == 0, done.stderr
        for own in house.glob("asyncmigrate-*.whl"):
            own.unlink()
    return house


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory, wheel: Path, wheelhouse: Path, timer: Timer) -> Path:
    """A fresh venv (no system site-packages) with the wheel installed; returns its bin dir."""
    root = tmp_path_factory.mktemp("venv")
    with timer("venv"):
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    python = root / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    with timer("install"):
        done = pip("--python", str(python), "install", "--quiet", "--no-index", "--no-compile",
                   "--find-links", str(wheelhouse), str(wheel))
        assert done.returncode == 0, done.stderr
        # pip compiles every module one by one (pygments' hundreds of lexers
        # included); compiling in parallel, without pygments, which no command
        # here imports, is what makes the commands start fast at half the cost.
        site = subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()
        subprocess.run([str(python), "-m", "compileall", "-q", "-j", "0", "-x", "/pygments/", site],
                       capture_output=True, check=True)
    return python.parent


def test_wheel_ships_templates_and_entry_point(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = archive.read(
            next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        ).decode()
    templates = sorted(p.name for p in (ROOT / "templates").iterdir() if p.is_dir())
    assert "async" in templates
    for template in templates:
        for filename in TEMPLATE_FILES:
            assert f"asyncmigrate/templates/{template}/{filename}" in names
    assert "asyncmigrate/py.typed" in names
    assert "asyncmigrate/cli/app.py" in names
    assert "asyncmigrate = asyncmigrate.cli:main" in entry_points
    assert not [n for n in names if n.startswith("tests/") or "__pycache__" in n]


def _run(bin_dir: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME") and not k.startswith("ASYNCMIGRATE_")}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env.pop("DATABASE_URL", None)
    return subprocess.run([str(bin_dir / args[0]), *args[1:]], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120, check=False)


def test_installed_wheel_runs_init_revision_upgrade(venv: Path, tmp_path: Path, timer: Timer) -> None:
    config = (venv.parent / "pyvenv.cfg").read_text()
    assert "include-system-site-packages = false" in config

    with timer("commands"):
        probe = (
            "import asyncmigrate, importlib.util as u; print(asyncmigrate.__file__, u.find_spec('alembic'))"
        )
        where, alembic = _run(venv, "python", "-c", probe, cwd=tmp_path).stdout.split()
        assert Path(where).is_relative_to(venv.parent), where
        assert alembic == "None", "alembic must not be a runtime dependency"

        listed = _run(venv, "asyncmigrate", "list_templates", cwd=tmp_path)
        assert listed.returncode == 0, listed.stderr
        for template in ("async", "pyproject", "multitenant"):
            assert f"{template} - " in listed.stdout

        made = _run(venv, "asyncmigrate", "init", "./migrations", cwd=tmp_path)
        assert made.returncode == 0, made.stderr
        for name in ("env.py", "script.py.mako", "versions"):
            assert (tmp_path / "migrations" / name).exists()
        assert (tmp_path / "alembic.ini").is_file()

        written = _run(venv, "asyncmigrate", "revision", "-m", "create things", "--rev-id", "abc123",
                       cwd=tmp_path)
        assert written.returncode == 0, written.stderr
        (revision,) = (tmp_path / "migrations" / "versions").glob("abc123_*.py")
        text = revision.read_text()
        revision.write_text(text.replace(
            '    """Upgrade schema."""\n    pass',
            '    """Upgrade schema."""\n    op.execute("CREATE TABLE things (id INTEGER PRIMARY KEY)")',
        ))

        upgraded = _run(venv, "asyncmigrate", "upgrade", "head", cwd=tmp_path)
        assert upgraded.returncode == 0, upgraded.stderr
        current = _run(venv, "asyncmigrate", "current", cwd=tmp_path)
        assert current.stdout == "abc123 (head)\n", current.stderr

    with sqlite3.connect(tmp_path / "app.db") as db:
        assert db.execute("SELECT version_num FROM alembic_version").fetchall() == [("abc123",)]
        assert db.execute("SELECT name FROM sqlite_master WHERE name = 'things'").fetchall()
