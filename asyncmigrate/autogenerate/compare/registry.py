"""The registry of comparison functions autogenerate runs, by target and dialect.

A comparison function looks at one level of the schema and appends
operations to the container it is given:

========================  ===============================================================
target                    called as
========================  ===============================================================
``"autogenerate"``        ``fn(autogen_context, upgrade_ops)``
``"schema"``              ``fn(autogen_context, upgrade_ops, schemas)``
``"table"``               ``fn(autogen_context, modify_table_ops, schema, table_name,
                          conn_table, metadata_table)`` (``conn_table`` is None for a new
                          table, ``metadata_table`` None for a removed one)
``"column"``              ``fn(autogen_context, alter_column_op, schema, table_name,
                          column_name, conn_column, metadata_column)``
========================  ===============================================================

Functions run in priority order (then in the order they were registered);
among the functions registered for one *element* (``"types"``,
``"nullable"``, ``"server_default"``, ``"comments"``...) the first to return
:attr:`DispatchResult.STOP` ends that element; functions without an element
always run.
The built-in comparators are registered here when
:mod:`asyncmigrate.autogenerate.compare` is imported; third-party plugins add
theirs with :meth:`Comparators.dispatch_for`, as they do with Alembic's
``comparators``.
"""

from __future__ import annotations

import enum
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ...compat import extensions

__all__ = ["Comparators", "DispatchPriority", "DispatchResult", "comparators"]

_F = TypeVar("_F", bound=Callable[..., Any])

TARGETS = ("autogenerate", "schema", "table", "column")

#: Registration order given to plugins registered on Alembic (after every function of ours).
_FOREIGN = 1 << 40


class DispatchResult(enum.Enum):
    """What a comparison function tells the functions after it (for the same element)."""

    #: Let the next function for the element run (returning None means the same).
    CONTINUE = "continue"
    #: The element is settled: skip the remaining functions for it.
    STOP = "stop"


class DispatchPriority(enum.IntEnum):
    """When a function runs among those registered for the same element."""

    FIRST = 10
    MEDIUM = 50
    LAST = 90


@dataclass(frozen=True)
class _Entry:
    fn: Callable[..., Any]
    target: str
    qualifier: str
    element: str | None
    priority: int
    order: int = field(compare=False)


def _stops(result: Any) -> bool:
    """Tell whether a function's result asks to stop (ours, or Alembic's result enum by name)."""
    if result is DispatchResult.STOP:
        return True
    return getattr(result, "name", None) == "STOP" or result == "stop"


class Comparators:
    """Hold comparison functions by target, dialect qualifier and element, and run them.

    The registry owns registration and call order; what a function compares
    and which operations it appends is the function's own business.
    """

    def __init__(self) -> None:
        self._entries: list[_Entry] = []
        self._counter = itertools.count()

    def dispatch_for(
        self,
        target: str,
        qualifier: str = "default",
        *,
        element: str | None = None,
        priority: int = DispatchPriority.MEDIUM,
    ) -> Callable[[_F], _F]:
        """Register the decorated function for ``target`` (``"schema"``, ``"table"``, ...).

        :param qualifier: ``"default"`` for every dialect, or a dialect name
            (``"postgresql"``) to run only there (after the default ones).
        :param element: group the function with others comparing the same
            aspect; a function returning :attr:`DispatchResult.STOP` ends its group.
        :param priority: order within the group (:class:`DispatchPriority`).
        :raises ValueError: for an unknown target.
        """
        if target not in TARGETS:
            raise ValueError(f"Unknown comparison target {target!r}; use one of {', '.join(TARGETS)}")

        def register(fn: _F) -> _F:
            self._entries.append(
                _Entry(fn, target, qualifier, element, int(priority), next(self._counter))
            )
            return fn

        return register

    def remove(self, fn: Callable[..., Any]) -> None:
        """Unregister every registration of ``fn``."""
        self._entries = [entry for entry in self._entries if entry.fn is not fn]

    def functions(self, target: str, dialect_name: str) -> list[Callable[..., Any]]:
        """Return the functions that run for ``target`` on ``dialect_name``, in call order."""
        return [entry.fn for entry in self._ordered(target, dialect_name)]

    def _ordered(self, target: str, dialect_name: str) -> list[_Entry]:
        # Plugins registered on the real Alembic's ``comparators`` run after ours at equal priority.
        foreign = [
            _Entry(found.fn, target, found.qualifier, found.element, found.priority, _FOREIGN + i)
            for i, found in enumerate(extensions.alembic_comparators(target))
        ]
        chosen = [
            entry
            for entry in [*self._entries, *foreign]
            if entry.target == target and entry.qualifier in ("default", dialect_name)
        ]
        # Priority first; then groups keep the position of their first registration;
        # then registration order, default before dialect-specific.
        first_seen: dict[Any, int] = {}
        for entry in chosen:
            key = entry.element if entry.element is not None else ("fn", entry.order)
            first_seen.setdefault(key, entry.order)

        def sort_key(entry: _Entry) -> tuple[int, int, int, int]:
            key = entry.element if entry.element is not None else ("fn", entry.order)
            return (entry.priority, first_seen[key], entry.qualifier != "default", entry.order)

        return sorted(chosen, key=sort_key)

    def run(self, target: str, dialect_name: str, *args: Any) -> None:
        """Call the functions for ``target`` with ``args``, honouring STOP within each element."""
        stopped: set[str] = set()
        for entry in self._ordered(target, dialect_name):
            if entry.element is not None and entry.element in stopped:
                continue
            result = entry.fn(*args)
            if entry.element is not None and _stops(result):
                stopped.add(entry.element)


#: The registry autogenerate runs (built-in comparators and plugins).
comparators = Comparators()
