"""Task-local ``op`` and ``context``: the objects revision files and env.py talk to.

Alembic's ``op`` and ``context`` are module-level proxies to process-global
state, so two migrations in one process overwrite each other. Here each is a
proxy to a :class:`~contextvars.ContextVar` that the task migrating one
database sets and resets by token. Tasks started by anyio or asyncio copy
their parent's context, and SQLAlchemy's greenlets (``run_sync``) share the
task's context, so a proxy always answers for the migration of the task it is
used in -- and raises :class:`NoMigrationContextError` where none is running.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

from ..exceptions import NoMigrationContextError

if TYPE_CHECKING:
    from ..operations import Operations
    from .environment import EnvironmentContext

__all__ = [
    "bind_environment",
    "bind_operations",
    "context",
    "current_environment",
    "current_operations",
    "op",
]

T = TypeVar("T")

_operations: ContextVar[Operations | None] = ContextVar("asyncmigrate_operations", default=None)
_environment: ContextVar[EnvironmentContext | None] = ContextVar(
    "asyncmigrate_environment", default=None
)


class _TaskLocalProxy(Generic[T]):
    """Forward attribute access to the value a ContextVar holds in the current task."""

    __slots__ = ("_name", "_var", "_where")

    def __init__(self, var: ContextVar[T | None], name: str, where: str) -> None:
        object.__setattr__(self, "_var", var)
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_where", where)

    def _target(self) -> T:
        value: T | None = self._var.get()
        if value is None:
            raise NoMigrationContextError(
                f"'{self._name}' is only available {self._where}; no migration is running "
                f"in this task"
            )
        return value

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target(), name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._target(), name, value)

    def __repr__(self) -> str:
        value = self._var.get()
        state = repr(value) if value is not None else "no migration running in this task"
        return f"<asyncmigrate task-local {self._name}: {state}>"

    def __dir__(self) -> list[str]:
        value = self._var.get()
        return dir(value) if value is not None else []


op = cast("Operations", _TaskLocalProxy(_operations, "op", "inside upgrade()/downgrade()"))
"""The running migration's :class:`~asyncmigrate.operations.Operations` (task-local)."""

context = cast(
    "EnvironmentContext", _TaskLocalProxy(_environment, "context", "while env.py runs")
)
"""The running command's :class:`~asyncmigrate.runtime.EnvironmentContext` (task-local)."""


def current_operations() -> Operations | None:
    """Return the Operations bound in this task, or None."""
    return _operations.get()


def current_environment() -> EnvironmentContext | None:
    """Return the EnvironmentContext bound in this task, or None."""
    return _environment.get()


@contextmanager
def bind_operations(operations: Operations) -> Iterator[Operations]:
    """Make ``op`` mean ``operations`` in this task until the block ends."""
    token = _operations.set(operations)
    try:
        yield operations
    finally:
        _operations.reset(token)


@contextmanager
def bind_environment(environment: EnvironmentContext) -> Iterator[EnvironmentContext]:
    """Make ``context`` mean ``environment`` in this task until the block ends."""
    token = _environment.set(environment)
    try:
        yield environment
    finally:
        _environment.reset(token)
