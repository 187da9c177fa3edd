"""Import revision files and env.py with ``alembic`` imports routed to asyncmigrate.

A revision file written for Alembic says ``from alembic import op``. When
asyncmigrate loads it, that import must give asyncmigrate's task-local ``op``
whether or not the real ``alembic`` package is installed -- and without
touching ``sys.modules``, so the real Alembic keeps working in the same
process. Each loaded module gets its own ``__builtins__`` whose
``__import__`` answers ``alembic`` and ``alembic.*`` from :data:`ALIASES`
and passes every other import through unchanged.
"""

from __future__ import annotations

import builtins
import importlib
import importlib.machinery
import importlib.util
import re
import types
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..exceptions import ScriptError

__all__ = [
    "ALIASES",
    "AliasModule",
    "alembic_alias_module",
    "alias",
    "import_python_file",
    "load_python_file",
    "rerun_module",
    "resolve_alias",
    "routed_builtins",
]

#: ``alembic`` module names and the asyncmigrate modules that stand in for them.
ALIASES: Mapping[str, str] = {
    "alembic.op": "asyncmigrate.op",
    "alembic.context": "asyncmigrate.context",
    "alembic.operations": "asyncmigrate.operations",
    "alembic.operations.ops": "asyncmigrate.operations.ops",
    "alembic.operations.base": "asyncmigrate.operations",
    "alembic.operations.batch": "asyncmigrate.operations.batch",
    "alembic.operations.schemaobj": "asyncmigrate.operations.schemaobj",
    "alembic.operations.toimpl": "asyncmigrate.operations.toimpl",
    "alembic.runtime": "asyncmigrate.runtime",
    "alembic.runtime.migration": "asyncmigrate.compat.migration",
    "alembic.runtime.environment": "asyncmigrate.runtime.environment",
    "alembic.migration": "asyncmigrate.compat.migration",
    "alembic.environment": "asyncmigrate.runtime.environment",
    "alembic.script": "asyncmigrate.script",
    "alembic.script.base": "asyncmigrate.script.directory",
    "alembic.script.revision": "asyncmigrate.compat.revision",
    "alembic.script.write_hooks": "asyncmigrate.script.write_hooks",
    "alembic.config": "asyncmigrate.compat.config",
    "alembic.command": "asyncmigrate.command",
    "alembic.autogenerate": "asyncmigrate.autogenerate",
    "alembic.autogenerate.api": "asyncmigrate.autogenerate",
    "alembic.autogenerate.compare": "asyncmigrate.autogenerate.compare",
    "alembic.autogenerate.rewriter": "asyncmigrate.autogenerate.rewriter",
    "alembic.autogenerate.render": "asyncmigrate.autogenerate.render",
    "alembic.ddl": "asyncmigrate.ddl",
    "alembic.ddl.impl": "asyncmigrate.ddl.impl",
    "alembic.ddl.base": "asyncmigrate.ddl.base",
    "alembic.ddl.postgresql": "asyncmigrate.ddl.postgresql",
    "alembic.ddl.sqlite": "asyncmigrate.ddl.sqlite",
    "alembic.ddl.mysql": "asyncmigrate.ddl.mysql",
    "alembic.util": "asyncmigrate.compat.util",
    "alembic.util.exc": "asyncmigrate.compat.util",
    "alembic.util.langhelpers": "asyncmigrate.compat.util",
    "alembic.util.messaging": "asyncmigrate.compat.util",
    "alembic.util.pyfiles": "asyncmigrate.compat.util",
    "alembic.util.editor": "asyncmigrate.compat.util",
    "alembic.util.sqla_compat": "asyncmigrate.compat.sqla_compat",
}

_ALEMBIC_MODULE: types.ModuleType | None = None


def resolve_alias(alembic_name: str) -> Any:
    """Return what stands in for the Alembic module ``alembic_name`` (a module, or ``op``/``context``).

    :raises ImportError: naming the modules there are stand-ins for, when
        ``alembic_name`` is not one of them.
    """
    target = ALIASES.get(alembic_name)
    if target is None:
        raise ImportError(
            f"asyncmigrate has no stand-in for '{alembic_name}'; revision files and env.py "
            f"may import {', '.join(sorted({'alembic', *ALIASES}))}",
            name=alembic_name,
        )
    module_name, _, attribute = target.rpartition(".")
    if target in ("asyncmigrate.op", "asyncmigrate.context"):
        return getattr(importlib.import_module(module_name), attribute)
    try:
        return importlib.import_module(target)
    except ModuleNotFoundError as exc:
        if exc.name and target.startswith(exc.name):
            raise ImportError(
                f"'{alembic_name}' is not available in this version of asyncmigrate",
                name=alembic_name,
            ) from exc
        raise


class AliasModule(types.ModuleType):
    """A stand-in for one ``alembic`` module: its names are those of the asyncmigrate module it aliases.

    Its submodules (``alembic.script`` -> ``.revision``) are the stand-ins
    :data:`ALIASES` names, so the aliased asyncmigrate module is never
    given attributes of its own for them. Names are resolved on first use.
    """

    def __init__(self, name: str, target: Any, doc: str | None = None) -> None:
        super().__init__(name, doc or f"asyncmigrate's stand-in for {name}")
        self.__dict__["_asyncmigrate_target"] = target

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        submodule = f"{self.__name__}.{name}"
        value = (
            self._submodule(submodule)
            if submodule in ALIASES
            else getattr(self.__dict__["_asyncmigrate_target"], name)
        )
        setattr(self, name, value)
        return value

    def _submodule(self, alembic_name: str) -> Any:
        return alias(alembic_name)

    def __dir__(self) -> list[str]:
        return sorted(set(dir(self.__dict__["_asyncmigrate_target"])) | set(self.__dict__))


def alias(alembic_name: str) -> Any:
    """Return what routed code gets for ``import alembic_name``: ``op``, ``context`` or an AliasModule."""
    target = resolve_alias(alembic_name)
    return AliasModule(alembic_name, target) if isinstance(target, types.ModuleType) else target


def alembic_alias_module() -> types.ModuleType:
    """Return the stand-in for the ``alembic`` package (never placed in ``sys.modules``)."""
    global _ALEMBIC_MODULE
    if _ALEMBIC_MODULE is None:
        from ..compat import ALEMBIC_VERSION

        module = AliasModule("alembic", types.SimpleNamespace(), "asyncmigrate's stand-in for alembic")
        module.__version__ = ALEMBIC_VERSION  # type: ignore[attr-defined]
        _ALEMBIC_MODULE = module
    return _ALEMBIC_MODULE


def _routed_import(
    name: str,
    globals: Mapping[str, object] | None = None,
    locals: Mapping[str, object] | None = None,
    fromlist: Sequence[str] | None = (),
    level: int = 0,
) -> types.ModuleType:
    if level == 0 and (name == "alembic" or name.startswith("alembic.")):
        top = alembic_alias_module()
        if name == "alembic":
            return top
        resolve_alias(name)  # a clear ImportError for a module there is no stand-in for
        if not fromlist:
            return top  # ``import alembic.x.y``: the name bound is ``alembic``
        found: Any = top
        for part in name.split(".")[1:]:
            found = getattr(found, part)
        return found  # type: ignore[no-any-return]
    return builtins.__import__(name, globals, locals, fromlist or (), level)


_ROUTED_BUILTINS: dict[str, Any] = {**vars(builtins), "__import__": _routed_import}


def routed_builtins() -> dict[str, Any]:
    """Return the ``__builtins__`` mapping whose ``__import__`` routes ``alembic``.

    Also makes ``alembic.op``/``alembic.context`` in the modules such code
    imports reach the running migration (:func:`asyncmigrate.compat.bridge.install`).
    """
    from ..compat import bridge

    bridge.install()
    return _ROUTED_BUILTINS


def load_python_file(path: str | Path, module_name: str | None = None) -> types.ModuleType:
    """Import the Python file at ``path`` (``.py``, or ``.pyc`` when sourceless).

    The module is not added to ``sys.modules``; ``alembic`` imports inside it,
    at module level or inside functions, resolve to asyncmigrate.

    :raises ScriptError: when the file does not exist or fails to import; the
        original exception is chained.
    """
    return import_python_file(path, module_name)[0]


def import_python_file(
    path: str | Path, module_name: str | None = None
) -> tuple[types.ModuleType, types.CodeType]:
    """Import the file at ``path`` like :func:`load_python_file`; also return the code it ran.

    :func:`rerun_module` runs that code again into a new module, without
    reading the file again.
    """
    path = Path(path)
    if module_name is None:
        module_name = "_asyncmigrate_" + re.sub(r"\W", "_", path.name)
    if path.suffix == ".py":
        loader: importlib.machinery.SourceFileLoader | importlib.machinery.SourcelessFileLoader = (
            importlib.machinery.SourceFileLoader(module_name, str(path))
        )
    else:
        loader = importlib.machinery.SourcelessFileLoader(module_name, str(path))
    spec = importlib.util.spec_from_file_location(module_name, path, loader=loader)
    if spec is None:  # pragma: no cover - defensive
        raise ScriptError(f"Cannot load Python file {path}")
    try:
        code = loader.get_code(module_name)
    except FileNotFoundError as exc:
        raise ScriptError(f"No such file: {path}") from exc
    except SyntaxError as exc:
        raise ScriptError(
            f"{path}: invalid Python syntax at line {exc.lineno}: {exc.msg}"
        ) from exc
    except (OSError, ImportError, ValueError, EOFError) as exc:  # unreadable, or a bad .pyc
        raise ScriptError(f"{path}: failed to import: {type(exc).__name__}: {exc}") from exc
    if code is None:  # pragma: no cover - defensive: both loaders return code or raise
        raise ScriptError(f"Cannot load Python file {path}")
    module = importlib.util.module_from_spec(spec)
    _execute(code, module, path)
    return module, code


def rerun_module(code: types.CodeType, like: types.ModuleType) -> types.ModuleType:
    """Run ``code`` (from :func:`import_python_file`) into a new module named and placed like ``like``.

    The new module's top-level code runs again from the start, so nothing
    it computed or kept in ``like`` carries over.

    :raises ScriptError: when the code fails, as :func:`load_python_file` would.
    """
    spec = like.__spec__
    assert spec is not None, "a module made by import_python_file has a spec"
    module = importlib.util.module_from_spec(spec)
    _execute(code, module, Path(spec.origin or like.__name__))
    return module


def _execute(code: types.CodeType, module: types.ModuleType, path: Path) -> None:
    module.__builtins__ = routed_builtins()  # type: ignore[attr-defined]
    try:
        exec(code, module.__dict__)
    except ScriptError:
        raise
    except Exception as exc:
        raise ScriptError(f"{path}: failed to import: {type(exc).__name__}: {exc}") from exc
