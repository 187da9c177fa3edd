"""Make ``alembic.op`` and ``alembic.context`` in *any* module answer for the running migration.

Revision files and env.py are executed with routed builtins
(:mod:`asyncmigrate.script.loader`), but the modules they import -- a
project's ``migrations/helpers.py``, a package's ``migrations/util.py`` --
are imported normally and say ``from alembic import op`` themselves. This
module makes that ``op`` (and ``context``) reach the migration running in
the *calling task*, whether or not Alembic is installed, without touching
how the real Alembic behaves for its own runs:

- **Alembic installed.** The real ``alembic.op`` and ``alembic.context``
  modules get a module class whose attribute lookup asks the task-local
  :func:`~asyncmigrate.runtime.local.current_operations` /
  :func:`~asyncmigrate.runtime.local.current_environment` first. Where no
  asyncmigrate migration runs in the calling task (a thread running
  Alembic's ``command.upgrade``, code outside any migration) the lookup is
  the module's own, so Alembic's proxies work as before.
- **Alembic not installed.** While a migration runs in the importing task,
  ``import alembic`` (and ``alembic.op``, ``alembic.operations`` ...) gives
  stand-in modules: ``alembic.op``/``alembic.context`` forward to the task's
  migration, the others to the asyncmigrate modules named in
  :data:`~asyncmigrate.script.loader.ALIASES`. Outside a run the import
  fails as it would without asyncmigrate (once imported, the stand-ins stay
  in ``sys.modules``, and their ``op`` raises
  :class:`~asyncmigrate.exceptions.NoMigrationContextError` outside a run).

Both go through one :class:`AlembicFinder` at the front of ``sys.meta_path``,
put there by :func:`install` (idempotent; the loader calls it before running
any revision file or env.py). The finder keeps no state: every answer is
decided by the calling task's context at the time of the call.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from ..runtime.local import context as task_context
from ..runtime.local import current_environment, current_operations
from ..runtime.local import op as task_op
from ..script.loader import ALIASES, AliasModule, resolve_alias

__all__ = ["AlembicFinder", "install"]


class _TaskLocalModule(types.ModuleType):
    """A module whose public names belong to the migration running in the calling task.

    Subclasses name the task-local proxy they forward to. Names starting
    with ``_`` and every name outside a run are the module's own.
    """

    #: The task-local proxy (``asyncmigrate.op`` or ``asyncmigrate.context``).
    _proxy: ClassVar[Any]
    #: What the proxy stands for in the calling task, or None outside a run.
    _current: ClassVar[Callable[[], Any]]

    def __getattribute__(self, name: str) -> Any:
        if not name.startswith("_"):
            target = type(self)._current()
            if target is not None:
                return getattr(target, name)
        return types.ModuleType.__getattribute__(self, name)

    def __getattr__(self, name: str) -> Any:
        # Only reached for a name the module lacks (a stand-in has no public names):
        # the proxy raises NoMigrationContextError outside a run.
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(type(self)._proxy, name)


class _TaskLocalOp(_TaskLocalModule):
    _proxy = task_op
    _current = staticmethod(current_operations)


class _TaskLocalContext(_TaskLocalModule):
    _proxy = task_context
    _current = staticmethod(current_environment)


#: The Alembic modules that answer for the running migration.
_TASK_LOCAL: dict[str, type[_TaskLocalModule]] = {
    "alembic.op": _TaskLocalOp,
    "alembic.context": _TaskLocalContext,
}


def _in_a_run() -> bool:
    return current_environment() is not None or current_operations() is not None


class _ImportedAlias(AliasModule):
    """A stand-in ``alembic.*`` module in ``sys.modules``: its submodules are imported as stand-ins too."""

    def _submodule(self, alembic_name: str) -> Any:
        return importlib.import_module(alembic_name)


class _StandInLoader(importlib.abc.Loader):
    """Create the stand-in for one ``alembic`` module name (Alembic not installed)."""

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        from ..compat import ALEMBIC_VERSION

        name = spec.name
        if name in _TASK_LOCAL:
            return _TASK_LOCAL[name](name, f"asyncmigrate's task-local stand-in for {name}")
        if name == "alembic":
            module = _ImportedAlias(name, types.SimpleNamespace())
            module.__version__ = ALEMBIC_VERSION  # type: ignore[attr-defined]
            return module
        return _ImportedAlias(name, resolve_alias(name))

    def exec_module(self, module: types.ModuleType) -> None:
        """Nothing to run: the stand-in resolves its names on access."""


class _TaskLocalPatchingLoader(importlib.abc.Loader):
    """Run the real Alembic module, then give it its task-local module class."""

    def __init__(self, loader: importlib.abc.Loader, module_class: type[_TaskLocalModule]) -> None:
        self._loader = loader
        self._module_class = module_class

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: types.ModuleType) -> None:
        self._loader.exec_module(module)
        module.__class__ = self._module_class

    def __getattr__(self, name: str) -> Any:
        # get_source(), get_code(), is_package() ... for tracebacks and inspect.
        return getattr(self._loader, name)


class AlembicFinder(importlib.abc.MetaPathFinder):
    """Answer imports of ``alembic`` and ``alembic.*``; every other name is left to the others.

    The real Alembic, where installed, is always what is imported; its
    ``op`` and ``context`` modules are given their task-local class as they
    load. Where it is not installed, stand-ins are given -- only to an import
    made while a migration runs in the calling task.
    """

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None = None,
        target: types.ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        """Return the spec for an ``alembic`` module name, or None for any other name."""
        if fullname != "alembic" and not fullname.startswith("alembic."):
            return None
        real = self._find_real(fullname, path, target)
        if real is not None:
            module_class = _TASK_LOCAL.get(fullname)
            if module_class is not None and real.loader is not None:
                real.loader = _TaskLocalPatchingLoader(real.loader, module_class)
            return real
        if not _in_a_run() or not _stand_in_exists(fullname):
            return None
        return importlib.machinery.ModuleSpec(
            fullname, _StandInLoader(), is_package=fullname not in _TASK_LOCAL
        )

    def _find_real(
        self, fullname: str, path: Sequence[str] | None, target: types.ModuleType | None
    ) -> importlib.machinery.ModuleSpec | None:
        parent = sys.modules.get("alembic")
        if parent is not None and isinstance(parent, AliasModule):
            return None  # the stand-in package is in place: its submodules are stand-ins too
        for finder in sys.meta_path:
            if finder is self or isinstance(finder, AlembicFinder):
                continue
            find_spec = getattr(finder, "find_spec", None)
            if find_spec is None:
                continue
            spec: importlib.machinery.ModuleSpec | None = find_spec(fullname, path, target)
            if spec is not None:
                return spec
        return None


def _stand_in_exists(fullname: str) -> bool:
    return fullname == "alembic" or fullname in ALIASES


def install() -> None:
    """Put the :class:`AlembicFinder` at the front of ``sys.meta_path`` (once per process).

    A real ``alembic.op`` / ``alembic.context`` imported before this call
    gets its task-local class now.
    """
    if not any(isinstance(finder, AlembicFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, AlembicFinder())
    for name, module_class in _TASK_LOCAL.items():
        module = sys.modules.get(name)
        if module is not None and not isinstance(module, _TaskLocalModule):
            module.__class__ = module_class
