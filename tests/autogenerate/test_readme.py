"""The README's Autogenerate section runs as written (env.py, ini hook, Python API)."""

from __future__ import annotations

import re
import sys
import textwrap
from pathlib import Path

import pytest

from ..project import make_project

README = Path(__file__).resolve().parents[2] / "README.md"

MODELS = """
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Account(Base):
    __tablename__ = "account"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(50))
    email: Mapped[str] = mapped_column(sa.String(200))
"""


def section() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("### Autogenerate\n")
    end = re.compile(r"^##+ ", re.M).search(text, start + 4)
    assert end is not None
    return text[start : end.start()]


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", section(), re.S)


async def test_autogenerate_section(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env_py, api = blocks("python")
    (ini_hooks,) = blocks("ini")
    package = tmp_path / "src" / "myapp"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "models.py").write_text(MODELS)
    monkeypatch.syspath_prepend(str(tmp_path / "src"))
    project = tmp_path / "project"
    make_project(project, url="sqlite:///app.db", env_py=env_py, ini_extra=ini_hooks)
    monkeypatch.chdir(project)
    import sqlite3

    with sqlite3.connect(project / "app.db") as db:
        db.execute("CREATE TABLE celery_taskmeta (id INTEGER PRIMARY KEY)")
        db.execute("CREATE TABLE account (id INTEGER NOT NULL PRIMARY KEY, name VARCHAR(50) NOT NULL)")

    code = "async def readme():\n" + textwrap.indent(api, "    ")
    namespace: dict[str, object] = {}
    exec(compile(code, "README:autogenerate", "exec"), namespace)
    await namespace["readme"]()  # type: ignore[operator]

    written = sorted((project / "migrations" / "versions").glob("*.py"))
    assert len(written) == 2
    first = next(path.read_text() for path in written if "add email" in path.read_text())
    assert 'sa.Column("email", sa.String(length=200), nullable=True)' in first  # the rewriter
    assert "celery_taskmeta" not in first  # include_name
    assert 'revision: str = "' in first  # ruff format ran
    second = next(path.read_text() for path in written if "tighten email" in path.read_text())
    assert "nullable=False" in second
    for name in [n for n in sys.modules if n == "myapp" or n.startswith("myapp.")]:
        monkeypatch.delitem(sys.modules, name)
