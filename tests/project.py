"""Build throwaway migration projects on disk for tests."""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import URL

from asyncmigrate import Config

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"

def logging_sections(sqlalchemy: str = "WARNING", alembic: str = "INFO") -> str:
    """The logging sections ``alembic init`` writes into alembic.ini, at the given logger levels.

    For ``make_project(..., ini_extra=logging_sections())``: Alembic's own
    env.py templates call ``fileConfig`` and need them.
    """
    return f"""
[loggers]
keys = root,sqlalchemy,alembic

[handlers]
keys = console

[formatters]
keys = generic

[logger_root]
level = WARNING
handlers = console
qualname =

[logger_sqlalchemy]
level = {sqlalchemy}
handlers =
qualname = sqlalchemy.engine

[logger_alembic]
level = {alembic}
handlers =
qualname = alembic

[handler_console]
class = StreamHandler
args = (sys.stderr,)
level = NOTSET
formatter = generic

[formatter_generic]
format = %(levelname)-5.5s [%(name)s] %(message)s
datefmt = %H:%M:%S
"""


#: The async template's env.py with ``transaction_per_migration=True``, online and offline.
PER_MIGRATION_ENV = (
    (TEMPLATES / "async" / "env.py").read_text(encoding="utf-8")
    .replace("context.configure(connection=connection, target_metadata=target_metadata)",
             "context.configure(connection=connection, target_metadata=target_metadata, "
             "transaction_per_migration=True)")
    .replace("        literal_binds=True,\n", "        literal_binds=True,\n        transaction_per_migration=True,\n")
)


@dataclass
class Rev:
    """One revision file to write."""

    rev: str
    down: str | tuple[str, ...] | None
    upgrade: str = "pass"
    downgrade: str = "pass"
    message: str = ""
    branch_labels: str | tuple[str, ...] | None = None
    depends_on: str | tuple[str, ...] | None = None
    filename: str | None = None


def revision_source(spec: Rev, import_from: str = "alembic") -> str:
    """Return the text of a revision file in Alembic's format."""
    body_up = textwrap.indent(textwrap.dedent(spec.upgrade).strip(), "    ")
    body_down = textwrap.indent(textwrap.dedent(spec.downgrade).strip(), "    ")
    return (
        f'"""{spec.message or spec.rev}\n\nRevision ID: {spec.rev}\n"""\n'
        f"import sqlalchemy as sa\n\nfrom {import_from} import op\n\n"
        f"revision = {spec.rev!r}\n"
        f"down_revision = {spec.down!r}\n"
        f"branch_labels = {spec.branch_labels!r}\n"
        f"depends_on = {spec.depends_on!r}\n\n\n"
        f"def upgrade():\n{body_up}\n\n\ndef downgrade():\n{body_down}\n"
    )


def write_revisions(versions: Path, revisions: Sequence[Rev], import_from: str = "alembic") -> None:
    """Write revision files into ``versions``."""
    versions.mkdir(parents=True, exist_ok=True)
    for spec in revisions:
        name = spec.filename or f"{spec.rev}_{spec.message.replace(' ', '_') or 'rev'}.py"
        (versions / name).write_text(revision_source(spec, import_from), encoding="utf-8")


def make_project(
    root: Path,
    revisions: Sequence[Rev] = (),
    *,
    url: str | URL | None = None,
    env_py: str | None = None,
    ini_extra: str = "",
) -> Config:
    """Create ``root/alembic.ini`` and ``root/migrations`` (asyncmigrate's async env.py)."""
    root.mkdir(parents=True, exist_ok=True)
    migrations = root / "migrations"
    (migrations / "versions").mkdir(parents=True, exist_ok=True)
    shutil.copy(TEMPLATES / "async" / "script.py.mako", migrations / "script.py.mako")
    if env_py is None:
        shutil.copy(TEMPLATES / "async" / "env.py", migrations / "env.py")
    else:
        (migrations / "env.py").write_text(textwrap.dedent(env_py), encoding="utf-8")
    url_text = "" if url is None else (
        url.render_as_string(hide_password=False) if isinstance(url, URL) else url
    )
    (root / "alembic.ini").write_text(
        "[alembic]\n"
        f"script_location = %(here)s/migrations\n"
        f"sqlalchemy.url = {url_text.replace('%', '%%')}\n"
        f"{ini_extra}\n",
        encoding="utf-8",
    )
    write_revisions(migrations / "versions", revisions)
    return Config(str(root / "alembic.ini"))
