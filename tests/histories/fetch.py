"""Download, unpack and lay out the real-world histories of :mod:`tests.histories.catalog`.

Everything lands in a cache directory outside git: ``$ASYNCMIGRATE_HISTORIES_CACHE``
or ``~/.cache/asyncmigrate-histories``::

    downloads/<package>-<version>-<kind>/    the file ``pip download`` fetched
    unpacked/<package>-<version>/             the artifact, unpacked
    deps/<history>-<hash>/                    extra requirements (pip --target, --no-deps)
    scripts/<history>/                        our script_location: env.py, script.py.mako,
                                              history.json
    locks/                                    fcntl locks, so parallel tests don't race
    recordings/                               alembic_side's JSON recordings (command line)

:func:`ensure_history` returns the script_location directory; :func:`prepare` returns a
:class:`PreparedHistory` with everything a runner needs (version locations, sys.path
additions, environment, configure options). Both the Alembic side and the asyncmigrate
side use the same :class:`PreparedHistory`.

When the package index cannot be reached (and nothing is cached), :class:`HistoryUnavailable`
is raised; tests turn it into a skip with its message.

This module imports neither Alembic nor asyncmigrate.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import catalog
from .catalog import Artifact, History

__all__ = [
    "CACHE_ENV",
    "HistoryUnavailable",
    "PreparedHistory",
    "activated",
    "cache_root",
    "ensure_history",
    "prepare",
]

CACHE_ENV = "ASYNCMIGRATE_HISTORIES_CACHE"
#: Bump to rewrite every scripts/<history>/ directory (env.py template changes).
LAYOUT_VERSION = 2
PIP_TIMEOUT = 600

_OFFLINE_MARKERS = (
    "Could not find a version that satisfies",
    "No matching distribution found",
    "Failed to establish a new connection",
    "Temporary failure in name resolution",
    "Network is unreachable",
    "Connection refused",
    "ConnectTimeoutError",
    "ReadTimeoutError",
    "ProxyError",
    "SSLError",
)


class HistoryUnavailable(RuntimeError):
    """The history's artifacts (or requirements) cannot be fetched: a reason to skip."""


def cache_root() -> Path:
    """Return (and create) the cache directory."""
    raw = os.environ.get(CACHE_ENV)
    root = Path(raw).expanduser() if raw else Path.home() / ".cache" / "asyncmigrate-histories"
    root.mkdir(parents=True, exist_ok=True)
    return root


@contextlib.contextmanager
def _locked(name: str) -> Iterator[None]:
    """Hold an exclusive inter-process lock called ``name`` (one file under locks/)."""
    locks = cache_root() / "locks"
    locks.mkdir(exist_ok=True)
    with open(locks / f"{name}.lock", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _pip(args: Sequence[str], what: str) -> None:
    cmd = [sys.executable, "-m", "pip", "--disable-pip-version-check", *args]
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT, check=False,
            env={**os.environ, "PIP_NO_INPUT": "1"},
        )
    except subprocess.TimeoutExpired as exc:
        raise HistoryUnavailable(f"pip timed out after {PIP_TIMEOUT}s fetching {what}") from exc
    if proc.returncode == 0:
        return
    output = (proc.stdout + proc.stderr).strip()
    tail = "\n".join(output.splitlines()[-6:])
    if any(marker in output for marker in _OFFLINE_MARKERS):
        raise HistoryUnavailable(f"package index unreachable or {what} not found there: {tail}")
    raise RuntimeError(f"pip failed fetching {what} (exit {proc.returncode}):\n{tail}")


def _download(artifact: Artifact) -> Path:
    """Return the downloaded artifact file, downloading it with pip if needed."""
    target = cache_root() / "downloads" / f"{artifact.package}-{artifact.version}-{artifact.kind}"
    marker = target / ".complete"
    if not marker.exists():
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        binary = ["--only-binary", ":all:"] if artifact.kind == "wheel" else ["--no-binary", ":all:"]
        _pip(
            ["download", "--no-deps", *binary, "--dest", str(target), artifact.requirement],
            artifact.requirement,
        )
        marker.write_text("ok\n")
    files = [p for p in target.iterdir() if p.name != ".complete"]
    if len(files) != 1:
        raise RuntimeError(f"expected one file in {target}, found {[p.name for p in files]}")
    return files[0]


def _unpack(artifact: Artifact) -> Path:
    """Return the unpacked artifact's root directory (download and unpack if needed)."""
    root = cache_root() / "unpacked" / f"{artifact.package}-{artifact.version}"
    marker = root / ".complete-unpack"
    if marker.exists():
        return _sdist_top(root) if artifact.kind == "sdist" else root
    archive = _download(artifact)
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    if archive.suffix == ".whl" or archive.suffix == ".zip":
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(root)
    else:
        with tarfile.open(archive) as tf:
            tf.extractall(root, filter="data")
    marker.write_text("ok\n")
    return _sdist_top(root) if artifact.kind == "sdist" else root


def _sdist_top(root: Path) -> Path:
    tops = [p for p in root.iterdir() if p.is_dir()]
    return tops[0] if len(tops) == 1 else root


def _install_requirements(history: History) -> Path | None:
    if not history.requirements:
        return None
    digest = hashlib.sha256("\n".join(sorted(history.requirements)).encode()).hexdigest()[:12]
    target = cache_root() / "deps" / f"{history.name}-{digest}"
    marker = target / ".complete-deps"
    if not marker.exists():
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        _pip(
            [
                "install", "--no-deps", "--only-binary", ":all:", "--no-compile",
                "--target", str(target), *history.requirements,
            ],
            f"requirements of {history.name}",
        )
        marker.write_text("ok\n")
    return target


_ENV_PY = '''\
"""Minimal env.py for a real-world history (written by tests/histories/fetch.py).

Not the project's own env.py. It reads its context.configure options from
history.json beside it. A caller passes its Connection through
config.attributes["connection"]; otherwise one is made from sqlalchemy.url.
config.attributes["configure_overrides"] (a dict), if given, is merged into the options.
"""

import json
from pathlib import Path

from alembic import context
from sqlalchemy import MetaData, engine_from_config, pool

config = context.config
_settings = json.loads(Path(__file__).with_name("history.json").read_text())
options = dict(_settings["configure"])
if "target_metadata" in options:
    # {"naming_convention": {...}} -> MetaData(naming_convention=...): Alembic's ops
    # name unnamed constraints (batch mode needs names) from the target metadata.
    options["target_metadata"] = MetaData(**options["target_metadata"])
# A caller may add options (e.g. transaction_per_migration) without another env.py.
options.update(config.attributes.get("configure_overrides") or {})


def run_migrations_offline():
    context.configure(url=config.get_main_option("sqlalchemy.url"), literal_binds=True, **options)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online():
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, **options)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = engine_from_config(
        config.get_section(config.config_ini_section, {}),
        prefix="sqlalchemy.",
        poolclass=pool.NullPool,
    )
    try:
        with engine.connect() as connection:
            context.configure(connection=connection, **options)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
'''

_SCRIPT_MAKO = '''\
"""${message}

Revision ID: ${up_revision}
Revises: ${down_revision | comma,n}
Create Date: ${create_date}
"""
from alembic import op
import sqlalchemy as sa
${imports if imports else ""}
revision = ${repr(up_revision)}
down_revision = ${repr(down_revision)}
branch_labels = ${repr(branch_labels)}
depends_on = ${repr(depends_on)}


def upgrade():
    ${upgrades if upgrades else "pass"}


def downgrade():
    ${downgrades if downgrades else "pass"}
'''


@dataclass(frozen=True)
class PreparedHistory:
    """A history ready to run: where its files are and what it needs around them."""

    history: History
    #: Our script_location (env.py, script.py.mako, history.json).
    script_location: Path
    #: The directories of revision files (one per artifact), in catalog order.
    version_locations: tuple[Path, ...]
    #: Prepended to sys.path while running (unpacked artifacts whose package is imported).
    sys_path_prepend: tuple[Path, ...] = ()
    #: Appended to sys.path while running (extra requirements).
    sys_path_append: tuple[Path, ...] = ()
    #: Environment variables to set while running.
    environ: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.history.name

    def main_options(self, url: str | None = None) -> dict[str, str]:
        """Return the ``[alembic]`` main options a Config needs for this history."""
        options = {
            "script_location": str(self.script_location),
            "version_locations": os.pathsep.join(str(p) for p in self.version_locations),
            "path_separator": "os",
        }
        if url is not None:
            options["sqlalchemy.url"] = url
        return options

    def setup(self, connection: Any) -> None:
        """Create the tables the history expects to exist before its base revision.

        ``connection`` is a synchronous SQLAlchemy Connection; the caller commits.
        Call inside :func:`activated`.
        """
        spec = self.history.setup_metadata
        if not spec:
            return
        module_name, _, attr = spec.partition(":")
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
        obj.create_all(connection)


def _write_script_location(history: History, version_locations: Sequence[Path]) -> Path:
    target = cache_root() / "scripts" / history.name
    settings = {
        "layout": LAYOUT_VERSION,
        "name": history.name,
        "configure": dict(history.configure),
        "version_locations": [str(p) for p in version_locations],
        "artifacts": [a.requirement for a in history.artifacts],
    }
    wanted = {
        "env.py": _ENV_PY,
        "script.py.mako": _SCRIPT_MAKO,
        "history.json": json.dumps(settings, indent=2, sort_keys=True) + "\n",
    }
    target.mkdir(parents=True, exist_ok=True)
    for filename, text in wanted.items():
        path = target / filename
        if not path.exists() or path.read_text() != text:
            tmp = path.with_suffix(path.suffix + ".tmp")
            tmp.write_text(text)
            tmp.replace(path)
    return target


def prepare(name: str) -> PreparedHistory:
    """Fetch (once, under a lock) and lay out the history ``name``.

    :raises HistoryUnavailable: when the index cannot be reached and nothing is cached.
    """
    history = catalog.get(name)
    with _locked(f"history-{history.name}"):
        roots: list[tuple[Artifact, Path]] = []
        for artifact in history.artifacts:
            with _locked(f"artifact-{artifact.package}-{artifact.version}"):
                roots.append((artifact, _unpack(artifact)))
        version_locations = []
        for artifact, root in roots:
            location = root / artifact.versions_path
            if not location.is_dir():
                raise RuntimeError(
                    f"{artifact.requirement}: no directory {artifact.versions_path} in {root}"
                )
            version_locations.append(location)
        deps = _install_requirements(history)
        script_location = _write_script_location(history, version_locations)
    return PreparedHistory(
        history=history,
        script_location=script_location,
        version_locations=tuple(version_locations),
        sys_path_prepend=tuple(dict.fromkeys(root for a, root in roots if a.import_root)),
        sys_path_append=(deps,) if deps else (),
        environ=dict(history.environ),
    )


def ensure_history(name: str) -> Path:
    """Fetch the history ``name`` if needed and return its script_location directory.

    The directory holds our env.py, script.py.mako and history.json; the revision
    files stay in the unpacked artifacts (``prepare(name).version_locations``).
    """
    return prepare(name).script_location


@contextlib.contextmanager
def activated(prepared: PreparedHistory) -> Iterator[PreparedHistory]:
    """Make the history's imports work in this process, and undo it afterwards.

    Prepends/appends its sys.path entries and sets its environment variables; on exit
    restores sys.path, the environment, sys.stdout/stderr/excepthook, and forgets the
    modules imported from the cache (so another history's versions of a package can be
    imported next). Import-time side effects beyond these (logging configuration,
    atexit hooks, threads) stay: run a history in its own process when that matters.
    """
    saved_path = list(sys.path)
    # Some applications wrap the standard streams or their write methods at import
    # (ZenML replaces sys.stdout.write / sys.stderr.write).
    saved_streams = (sys.stdout, sys.stderr, sys.excepthook)
    saved_stream_attrs = [(s, dict(getattr(s, "__dict__", {}))) for s in saved_streams[:2]]
    saved_env = {key: os.environ.get(key) for key in prepared.environ}
    before = set(sys.modules)
    sys.path[:0] = [str(p) for p in prepared.sys_path_prepend]
    sys.path.extend(str(p) for p in prepared.sys_path_append)
    os.environ.update(prepared.environ)
    importlib.invalidate_caches()
    try:
        yield prepared
    finally:
        sys.path[:] = saved_path
        sys.stdout, sys.stderr, sys.excepthook = saved_streams
        for stream, attrs in saved_stream_attrs:
            current = getattr(stream, "__dict__", None)
            if current is not None and current != attrs:
                current.clear()
                current.update(attrs)
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        root = str(cache_root())
        for module_name in set(sys.modules) - before:
            module = sys.modules.get(module_name)
            origin = getattr(module, "__file__", None) or ""
            if origin.startswith(root):
                del sys.modules[module_name]
        importlib.invalidate_caches()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m tests.histories.fetch [NAME...]``: fetch and print where things are."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("names", nargs="*", help="histories (default: all)")
    args = parser.parse_args(argv)
    for name in args.names or catalog.names():
        try:
            prepared = prepare(name)
        except HistoryUnavailable as exc:
            print(f"{name}: unavailable: {exc}")
            continue
        print(f"{name}: {prepared.script_location}")
        for location in prepared.version_locations:
            print(f"    versions: {location}")
        for path in prepared.sys_path_prepend:
            print(f"    sys.path prepend: {path}")
        for path in prepared.sys_path_append:
            print(f"    sys.path append: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
