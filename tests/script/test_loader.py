"""Revision files import ``alembic`` names and get asyncmigrate's objects."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import asyncmigrate
from asyncmigrate.exceptions import ScriptError
from asyncmigrate.script.loader import load_python_file


def test_alembic_imports_route_to_asyncmigrate(tmp_path: Path) -> None:
    path = tmp_path / "rev.py"
    path.write_text(
        "from alembic import op, context\n"
        "import alembic\n"
        "import alembic.op as op2\n"
        "from alembic.runtime.migration import MigrationContext\n"
        "from alembic.operations import Operations\n"
        "def inner():\n"
        "    from alembic import op as op3\n"
        "    return op3\n",
        encoding="utf-8",
    )
    before = sys.modules.get("alembic")
    module = load_python_file(path)
    from asyncmigrate.operations import Operations
    from asyncmigrate.runtime.migration import MigrationContext

    assert module.op is asyncmigrate.op
    assert module.context is asyncmigrate.context
    assert module.op2 is asyncmigrate.op
    assert module.inner() is asyncmigrate.op
    assert module.alembic.op is asyncmigrate.op
    assert module.MigrationContext is MigrationContext
    assert module.Operations is Operations
    # The real alembic package (installed for the tests) is untouched.
    assert sys.modules.get("alembic") is before


def test_works_when_real_alembic_cannot_be_imported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class BlockAlembic:
        def find_spec(self, name: str, path: object = None, target: object = None) -> None:
            if name == "alembic" or name.startswith("alembic."):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    for name in [n for n in sys.modules if n == "alembic" or n.startswith("alembic.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(sys, "meta_path", [BlockAlembic(), *sys.meta_path])
    with pytest.raises(ModuleNotFoundError):
        __import__("alembic")
    path = tmp_path / "rev.py"
    path.write_text("from alembic import op\n", encoding="utf-8")
    assert load_python_file(path).op is asyncmigrate.op


def test_unknown_alembic_module_is_a_clear_import_error(tmp_path: Path) -> None:
    path = tmp_path / "rev.py"
    path.write_text("from alembic.testing import fixtures\n", encoding="utf-8")
    with pytest.raises(ScriptError, match="no stand-in for 'alembic.testing'"):
        load_python_file(path)


def test_syntax_error_is_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.py"
    path.write_text("def upgrade(:\n    pass\n", encoding="utf-8")
    with pytest.raises(ScriptError, match=r"broken.py: invalid Python syntax at line 1"):
        load_python_file(path)


def test_op_outside_a_migration_raises(tmp_path: Path) -> None:
    with pytest.raises(asyncmigrate.exceptions.NoMigrationContextError, match="no migration is running"):
        asyncmigrate.op.create_table  # noqa: B018


def test_every_alembic_alias_resolves() -> None:
    from asyncmigrate.script.loader import ALIASES, resolve_alias

    for alembic_name in ALIASES:
        assert resolve_alias(alembic_name) is not None, alembic_name


def test_alembic_util_helpers(tmp_path: Path) -> None:
    """invenio-db's revisions say ``from alembic import op, util`` and call ``util.warn``."""
    path = tmp_path / "rev.py"
    path.write_text(
        "from alembic import op, util\n"
        "from alembic.util import CommandError\n"
        "def upgrade():\n"
        "    util.warn('constraint missing')\n",
        encoding="utf-8",
    )
    module = load_python_file(path)
    assert issubclass(module.CommandError, asyncmigrate.exceptions.CommandError)
    assert module.util.to_list("a") == ["a"]
    with pytest.warns(UserWarning, match="constraint missing"):
        module.upgrade()


def test_alembic_util_and_version_stand_ins(tmp_path: Path) -> None:
    from asyncmigrate.compat import ALEMBIC_VERSION
    from asyncmigrate.exceptions import CommandError

    path = tmp_path / "rev.py"
    path.write_text(
        "import alembic\n"
        "from alembic.util.exc import CommandError\n"
        "from alembic import util\n"
        "NEW_ENOUGH = tuple(int(p) for p in alembic.__version__.split('.')[:2]) >= (1, 7)\n",
        encoding="utf-8",
    )
    module = load_python_file(path)
    assert module.CommandError is CommandError
    assert module.util.CommandError is CommandError
    assert module.alembic.__version__ == ALEMBIC_VERSION
    assert module.NEW_ENOUGH
