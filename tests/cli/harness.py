"""Projects on disk and the two command lines run over them, for CLI parity tests.

A :class:`Project` is a migration environment made by Alembic's own ``init``
(templates ``generic``, ``async``, ``pyproject``), optionally filled with a
revision history written here from :class:`Rev` literals. Both tools run over
the same files:

* :func:`run_alembic` runs Alembic's command line in this process (its
  argument parser and its command functions, output captured), which is much
  faster than a subprocess per call;
* :func:`run_asyncmigrate` runs asyncmigrate's click command through
  ``CliRunner``.

Both run with the project directory as the working directory, as a user would.
"""

from __future__ import annotations

import io
import os
import re
import shlex
import sys
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

from ..clirunner import cli_runner

from asyncmigrate.cli import cli

__all__ = [
    "Outcome",
    "Project",
    "Rev",
    "alembic_init",
    "run_alembic",
    "run_asyncmigrate",
    "write_history",
]

Ids = str | tuple[str, ...] | None


@dataclass(frozen=True)
class Outcome:
    """What one command-line run printed and how it ended."""

    stdout: str
    stderr: str
    code: int

    @property
    def ok(self) -> bool:
        return self.code == 0


@dataclass
class Project:
    """A migration environment on disk: its root, config files and script directory."""

    root: Path
    template: str
    script_dir: Path
    ini: Path
    toml: Path | None = None
    #: SQLite files the tests upgraded, by name.
    databases: dict[str, Path] = field(default_factory=dict)

    @property
    def versions(self) -> Path:
        return self.script_dir / "versions"

    def sqlite_url(self, name: str) -> str:
        """Return the URL of SQLite file ``name`` as this template's env.py wants it."""
        path = self.root / f"{name}.db"
        self.databases[name] = path
        driver = "sqlite+aiosqlite" if self.template == "async" else "sqlite"
        return f"{driver}:///{path.as_posix()}"

    def set_url(self, url: str) -> None:
        """Point ``sqlalchemy.url`` in the ini file at ``url``."""
        text = self.ini.read_text(encoding="utf-8")
        text, count = re.subn(
            r"^sqlalchemy\.url\s*=.*$", lambda _: f"sqlalchemy.url = {url}", text, flags=re.M
        )
        assert count == 1, "the ini file has no sqlalchemy.url line"
        self.ini.write_text(text, encoding="utf-8")

    def set_ini_options(self, **options: str) -> None:
        """Add (or replace) options in the ``[alembic]`` section of the ini file."""
        text = self.ini.read_text(encoding="utf-8")
        for name, value in options.items():
            text = re.sub(rf"^{re.escape(name)}\s*=.*\n", "", text, flags=re.M)
            text = text.replace("[alembic]\n", f"[alembic]\n{name} = {value}\n", 1)
        self.ini.write_text(text, encoding="utf-8")


def _quiet_env_py(path: Path) -> None:
    # Both tools run in the test process; logging.config.fileConfig() in
    # env.py would replace the process's logging set-up (pytest's capture
    # handlers included). It only affects log lines on stderr, which the
    # parity tests do not compare, so the call is dropped from the project.
    text = path.read_text(encoding="utf-8")
    text, count = re.subn(r"^(\s*)fileConfig\(config\.config_file_name\)", r"\1pass", text, flags=re.M)
    assert count == 1, f"no fileConfig() call found in {path}"
    path.write_text(text, encoding="utf-8")


def alembic_init(root: Path, template: str, directory: str = "migrations") -> Project:
    """Create a project with Alembic's ``init`` (``generic``, ``async`` or ``pyproject``)."""
    from alembic import command as alembic_command
    from alembic.config import Config as AlembicConfig

    root.mkdir(parents=True, exist_ok=True)
    ini = root / "alembic.ini"
    toml = root / "pyproject.toml" if template == "pyproject" else None
    with working_directory(root):
        config = AlembicConfig(
            file_=str(ini), toml_file=str(toml) if toml else None, stdout=io.StringIO()
        )
        alembic_command.init(config, directory, template=template)
    project = Project(root, template, root / directory, ini, toml)
    _quiet_env_py(project.script_dir / "env.py")
    project.set_url(project.sqlite_url("main"))
    return project


@dataclass(frozen=True)
class Rev:
    """One revision file to write, as a project's history declares it."""

    revision: str
    down: Ids = None
    labels: Ids = None
    depends_on: Ids = None
    message: str = ""
    #: The file name (default ``<revision>_<slug>.py``).
    filename: str | None = None
    #: Directory relative to the project root (default: the script directory's versions/).
    where: str | None = None
    #: A second docstring paragraph (only ``show``/``-v`` print it).
    details: str = ""
    #: Write the header with type annotations, as Alembic's newer templates do.
    annotated: bool = False
    #: Write no module docstring at all (the message is then empty).
    docless: bool = False
    #: Write a merge's down_revision as a list, as some hand-written files do.
    down_as_list: bool = False
    #: One statement each for upgrade() and downgrade() (default ``pass``).
    upgrade: str = ""
    downgrade: str = ""


def _literal(value: Ids) -> str:
    if value is None:
        return "None"
    if isinstance(value, str):
        return repr(value)
    return "(" + ", ".join(repr(v) for v in value) + ("," if len(value) == 1 else "") + ")"


def revision_source(rev: Rev) -> str:
    """Return the text of a revision file in Alembic's format."""
    message = rev.message or f"revision {rev.revision}"
    downs = rev.down if isinstance(rev.down, tuple) else (rev.down,) if rev.down else ()
    doc = [
        message,
        "",
        f"Revision ID: {rev.revision}",
        f"Revises: {', '.join(downs)}",
        "Create Date: 2024-05-01 12:00:00.000000",
    ]
    if rev.details:
        doc += ["", rev.details]
    if rev.annotated:
        header = (
            f"revision: str = {rev.revision!r}\n"
            f"down_revision: Union[str, Sequence[str], None] = {_literal(rev.down)}\n"
            f"branch_labels: Union[str, Sequence[str], None] = {_literal(rev.labels)}\n"
            f"depends_on: Union[str, Sequence[str], None] = {_literal(rev.depends_on)}\n"
        )
        imports = "from collections.abc import Sequence\nfrom typing import Union\n\n"
    else:
        header = (
            f"revision = {rev.revision!r}\n"
            f"down_revision = {_literal(rev.down)}\n"
            f"branch_labels = {_literal(rev.labels)}\n"
            f"depends_on = {_literal(rev.depends_on)}\n"
        )
        imports = ""
    if rev.down_as_list and isinstance(rev.down, tuple):
        header = header.replace(_literal(rev.down), repr(list(rev.down)), 1)
    docstring = "" if rev.docless else '"""' + "\n".join(doc) + '\n\n"""\n'
    return (
        f"{docstring}{imports}"
        "import sqlalchemy as sa\n\n"
        "from alembic import op\n\n"
        "# revision identifiers, used by Alembic.\n"
        f"{header}\n\n"
        "def upgrade() -> None:\n"
        f"    {rev.upgrade or 'pass'}\n\n\n"
        "def downgrade() -> None:\n"
        f"    {rev.downgrade or 'pass'}\n"
    )


def write_history(project: Project, revisions: Sequence[Rev]) -> None:
    """Write ``revisions`` as files into the project."""
    for rev in revisions:
        directory = project.root / rev.where if rev.where else project.versions
        directory.mkdir(parents=True, exist_ok=True)
        slug = re.sub(r"\W+", "_", (rev.message or "rev").lower()).strip("_")[:40]
        name = rev.filename or f"{rev.revision}_{slug}.py"
        (directory / name).write_text(revision_source(rev), encoding="utf-8")


@contextmanager
def working_directory(path: Path) -> Iterator[None]:
    """Run the block with ``path`` as the working directory (and sys.path restored after)."""
    before = Path.cwd()
    saved_path = list(sys.path)
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)
        sys.path[:] = saved_path


def _argv(args: str | Sequence[str]) -> list[str]:
    return shlex.split(args) if isinstance(args, str) else list(args)


class _DeclaredOrderDependencies:
    """Alembic's ``_normalized_resolved_dependencies``, kept in declared order.

    Alembic stores a revision's normalized dependencies as ``tuple(set(...))``,
    so their order -- and with it the order in which ``history`` walks the
    branches a revision depends on -- changes with the interpreter's hash seed
    from one run to the next. asyncmigrate keeps the declared order; pinning
    Alembic to it makes the reference output reproducible. The *set* of lines
    is unaffected (see ``test_parity.test_history_lines_are_hash_seed_free``).
    """

    def __get__(self, obj: object, owner: type | None = None) -> tuple[str, ...]:
        if obj is None:
            return ()
        return obj.__dict__.get("_pinned_normalized", ())  # type: ignore[no-any-return]

    def __set__(self, obj: object, value: Sequence[str]) -> None:
        keep = set(value)
        declared = obj._resolved_dependencies  # type: ignore[attr-defined]
        obj.__dict__["_pinned_normalized"] = tuple(d for d in declared if d in keep)


@contextmanager
def declared_dependency_order() -> Iterator[None]:
    """Pin Alembic's normalized-dependency order to the declared order (see above)."""
    from alembic.script.revision import Revision as AlembicRevision

    saved = AlembicRevision.__dict__.get("_normalized_resolved_dependencies")
    AlembicRevision._normalized_resolved_dependencies = _DeclaredOrderDependencies()  # type: ignore[assignment]
    try:
        yield
    finally:
        if saved is None:
            del AlembicRevision._normalized_resolved_dependencies
        else:
            AlembicRevision._normalized_resolved_dependencies = saved


def run_alembic(project: Project, args: str | Sequence[str], *, pinned: bool = True) -> Outcome:
    """Run Alembic's command line on ``project`` in this process and capture its output.

    :param pinned: pin the orders Alembic takes from set iteration (see
        :class:`_DeclaredOrderDependencies`).
    """
    from alembic.config import CommandLine
    from alembic.config import Config as AlembicConfig

    argv = _argv(args)
    buffer = io.BytesIO()
    stdout = io.TextIOWrapper(buffer, encoding="utf-8", newline="")
    errors = io.StringIO()
    cmdline = CommandLine(prog="alembic")
    code = 0
    with working_directory(project.root):
        try:
            options = cmdline.parser.parse_args(argv)
        except SystemExit as exc:
            return Outcome("", "", exc.code if isinstance(exc.code, int) else 2)
        # The same choice of files as Alembic's CommandLine.main().
        toml, ini = "pyproject.toml", "alembic.ini"
        for name in options.config or ():
            if os.path.basename(name) == "pyproject.toml":
                toml = name
            else:
                ini = name
        config = AlembicConfig(
            file_=ini, toml_file=toml, ini_section=options.name, cmd_opts=options, stdout=stdout
        )
        saved_out, saved_err = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = stdout, errors
        try:
            with declared_dependency_order() if pinned else nullcontext():
                cmdline.run_cmd(config, options)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except Exception:
            errors.write(traceback.format_exc())
            code = 1
        finally:
            sys.stdout, sys.stderr = saved_out, saved_err
    stdout.flush()
    return Outcome(buffer.getvalue().decode("utf-8"), errors.getvalue(), code)


def run_asyncmigrate(
    project: Project | Path, args: str | Sequence[str], env: dict[str, str | None] | None = None
) -> Outcome:
    """Run asyncmigrate's command line on ``project`` through click's ``CliRunner``."""
    root = project.root if isinstance(project, Project) else project
    runner = cli_runner()
    with working_directory(root):
        result = runner.invoke(cli, _argv(args), env=env, catch_exceptions=True)
    stderr = result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        stderr += "".join(traceback.format_exception(result.exception))
    return Outcome(result.stdout, stderr, result.exit_code)
