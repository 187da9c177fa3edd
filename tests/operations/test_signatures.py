"""Every ``op`` directive has exactly Alembic's signature: names, kinds and defaults.

Alembic is the reference only here (a test dependency); the package never imports it.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path
from typing import Any

import pytest

alembic = pytest.importorskip("alembic")

from alembic.operations import BatchOperations as AlembicBatchOperations  # noqa: E402
from alembic.operations import Operations as AlembicOperations  # noqa: E402

from asyncmigrate.operations import BatchOperations, Operations  # noqa: E402


def _op_namespace() -> list[str]:
    """Return the names ``from alembic import op`` offers (functions in ``op.pyi``)."""
    stub = Path(alembic.__file__).parent / "op.pyi"
    tree = ast.parse(stub.read_text())
    return sorted({node.name for node in tree.body if isinstance(node, ast.FunctionDef)})


def _batch_directives() -> list[str]:
    return sorted(
        name
        for name in dir(AlembicBatchOperations)
        if not name.startswith("_") and callable(getattr(AlembicBatchOperations, name))
        and name != "create_module_class_proxy"
    )


def _shape(fn: Any) -> list[tuple[str, str, str]]:
    signature = inspect.signature(fn)
    return [
        (
            param.name,
            param.kind.name,
            "<required>"
            if param.default is inspect.Parameter.empty
            else f"{type(param.default).__name__}:{param.default!r}",
        )
        for param in signature.parameters.values()
    ]


OP_NAMES = _op_namespace()


def test_the_op_namespace_is_known() -> None:
    assert len(OP_NAMES) >= 27
    assert {"alter_column", "batch_alter_table", "run_async", "implementation_for"} <= set(OP_NAMES)


@pytest.mark.parametrize("name", OP_NAMES)
def test_operations_directive_signature_matches_alembic(name: str) -> None:
    ours = getattr(Operations, name, None)
    assert ours is not None, f"Operations.{name} is missing"
    assert _shape(ours) == _shape(getattr(AlembicOperations, name))


@pytest.mark.parametrize("name", _batch_directives())
def test_batch_directive_signature_matches_alembic(name: str) -> None:
    ours = getattr(BatchOperations, name, None)
    assert ours is not None, f"BatchOperations.{name} is missing"
    assert _shape(ours) == _shape(getattr(AlembicBatchOperations, name))


def test_batch_operations_leave_out_whole_table_directives() -> None:
    for name in ("create_table", "drop_table", "rename_table", "bulk_insert"):
        assert not hasattr(AlembicBatchOperations, name)
        assert not hasattr(BatchOperations, name)


def test_directives_are_documented_with_an_imperative_line() -> None:
    for name in OP_NAMES:
        doc = inspect.getdoc(getattr(Operations, name)) or ""
        first = doc.splitlines()[0] if doc else ""
        assert first, name
        assert not first.startswith(("Returns", "This ")), name


def test_package_does_not_import_alembic() -> None:
    package = Path(inspect.getfile(Operations)).parents[1]
    offenders = [
        str(path.relative_to(package))
        for path in package.rglob("*.py")
        if any(
            isinstance(node, (ast.Import, ast.ImportFrom))
            and any(
                (alias.name if isinstance(node, ast.Import) else (node.module or "")).split(".")[0]
                == "alembic"
                for alias in node.names
            )
            for node in ast.walk(ast.parse(path.read_text()))
        )
    ]
    assert offenders == []
