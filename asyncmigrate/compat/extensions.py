"""Extensions registered against the real Alembic, honoured by asyncmigrate.

Packages such as alembic_utils and alembic-postgresql-enum import Alembic
and register on its classes: ``Operations.register_operation`` and
``Operations.implementation_for`` (new ``op`` directives and how they run),
``alembic.autogenerate.comparators.dispatch_for`` (comparison functions),
``alembic.autogenerate.renderers.dispatch_for`` (how their operations are
written) and ``alembic.script.write_hooks.register`` (post-write hooks).
This module is the one place that reads those registries, so asyncmigrate's
own look-ups fall back to them:

- a directive missing from asyncmigrate's ``Operations`` is looked up on
  Alembic's (:func:`alembic_directive`) and called with asyncmigrate's
  ``Operations`` as ``self`` -- Alembic's directives only call
  ``operations.invoke(...)``, ``get_bind()``, ``migration_context`` ...;
- an operation asyncmigrate has no implementation for is executed with the
  one registered on Alembic (:func:`alembic_implementation`); an instance
  of one of Alembic's *own* operation classes is first converted to
  asyncmigrate's class of the same name (:func:`to_own`);
- comparison functions registered on Alembic's ``comparators`` run with
  asyncmigrate's (:func:`alembic_comparators`), given Alembic operation
  objects (:func:`to_alembic`) so their ``isinstance`` checks hold; what
  they leave is converted back;
- renderers registered on Alembic's ``renderers`` write the operations
  asyncmigrate has no renderer for (:func:`alembic_renderer`).

Nothing here imports Alembic: an extension that registered has imported it
already, so the registries are read from ``sys.modules`` only. The private
attributes read (``Operations._to_impl``, the dispatchers' ``_registry``)
are checked for the shape this module expects; any other shape counts as
"nothing registered" rather than an error.
"""

from __future__ import annotations

import inspect
import sys
import types
from collections.abc import Callable
from typing import Any, NamedTuple

__all__ = [
    "ForeignComparator",
    "alembic_comparator_from",
    "alembic_comparators",
    "alembic_directive",
    "alembic_implementation",
    "alembic_renderer",
    "alembic_write_hook",
    "is_alembic_operation",
    "to_alembic",
    "to_own",
]

#: Alembic's priorities (higher runs first) -> asyncmigrate's (lower runs first).
_PRIORITY = {50: 10, 25: 50, 10: 90}


def _module(name: str) -> types.ModuleType | None:
    module = sys.modules.get(name)
    # The stand-in ``alembic`` (asyncmigrate's own, when Alembic is not installed) has no registries.
    return None if module is None or module.__dict__.get("_asyncmigrate_target") is not None else module


def _alembic_ops_module() -> types.ModuleType | None:
    return _module("alembic.operations.ops")


def is_alembic_operation(operation: Any) -> bool:
    """Tell whether ``operation`` is an instance of one of the real Alembic's operation classes."""
    alembic_ops = _alembic_ops_module()
    return alembic_ops is not None and isinstance(operation, alembic_ops.MigrateOperation)


def alembic_directive(operations: Any, name: str) -> Callable[..., Any] | None:
    """Return Alembic's directive ``name`` bound to asyncmigrate's ``operations``, or None.

    Looks on Alembic's ``Operations`` (or ``BatchOperations``, for a batch
    block), where ``register_operation`` puts plugin directives.
    """
    base = _module("alembic.operations.base")
    if base is None:
        return None
    owner = getattr(base, type(operations).__name__, None) or getattr(base, "Operations", None)
    function = getattr(owner, name, None) if owner is not None else None
    if not inspect.isfunction(function):
        return None
    return types.MethodType(function, operations)


def _dispatch(dispatcher: Any, *args: Any) -> Callable[..., Any] | None:
    """Ask one of Alembic's ``Dispatcher`` objects for a function; None when it has none."""
    if dispatcher is None or not callable(getattr(dispatcher, "dispatch", None)):
        return None
    try:
        function: Callable[..., Any] = dispatcher.dispatch(*args)
    except ValueError:
        return None
    return function


def alembic_implementation(operation: Any, dialect_name: str) -> Callable[..., Any] | None:
    """Return the function registered with Alembic's ``implementation_for`` for ``operation``."""
    operations_cls = getattr(_module("alembic.operations.base"), "Operations", None)
    return _dispatch(getattr(operations_cls, "_to_impl", None), operation, dialect_name)


def alembic_renderer(operation: Any) -> Callable[..., Any] | None:
    """Return the function registered with Alembic's ``renderers.dispatch_for`` for ``operation``."""
    return _dispatch(getattr(_module("alembic.autogenerate.render"), "renderers", None), operation)


def alembic_write_hook(name: str) -> Callable[..., Any] | None:
    """Return the post-write hook registered with Alembic's ``write_hooks.register(name)``."""
    write_hooks = _module("alembic.script.write_hooks")
    registry = getattr(write_hooks, "_registry", None)
    if not isinstance(registry, dict):
        return None
    function = registry.get(name)
    return function if callable(function) else None


class ForeignComparator(NamedTuple):
    """A comparison function registered on Alembic's ``comparators``, in asyncmigrate's terms."""

    fn: Callable[..., Any]
    qualifier: str
    element: str | None
    priority: int


def alembic_comparators(target: str) -> list[ForeignComparator]:
    """Return the comparison functions third parties registered on Alembic for ``target``.

    Alembic keeps its global ``comparators`` free of its own comparisons, so
    everything in it is a plugin's. Each function is wrapped to receive
    Alembic operation objects (:func:`with_alembic_operations`).
    """
    compare = _module("alembic.autogenerate.compare")
    registry = getattr(getattr(compare, "comparators", None), "_registry", None)
    if not isinstance(registry, dict):
        return []
    found = []
    for key, entries in registry.items():
        if not isinstance(key, tuple) or not key or key[0] != target:
            continue
        qualifier = key[1] if len(key) > 1 else "default"
        priority = _PRIORITY.get(int(key[2]), 50) if len(key) > 2 else 50
        for entry in entries:
            fn, element = entry if isinstance(entry, tuple) else (entry, None)
            found.append(ForeignComparator(with_alembic_operations(fn), qualifier, element, priority))
    return found


def alembic_comparator_from(package: str, target: str = "schema") -> bool:
    """Tell whether a comparison function from ``package`` is registered on Alembic for ``target``."""
    return any(
        getattr(getattr(found.fn, "__wrapped__", None), "__module__", "").partition(".")[0] == package
        for found in alembic_comparators(target)
    )


def with_alembic_operations(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap an Alembic comparison function: operation containers go in as Alembic's, and back."""

    def call(autogen_context: Any, container: Any, *args: Any) -> Any:
        theirs = to_alembic(container)
        result = fn(autogen_context, theirs, *args)
        if theirs is not container:
            container.__dict__.update(to_own(theirs).__dict__)
        return result

    call.__name__ = getattr(fn, "__name__", "alembic_comparator")
    call.__wrapped__ = fn  # type: ignore[attr-defined]
    return call


def _convert(operation: Any, counterpart: Callable[[type[Any]], type[Any] | None]) -> Any:
    target = counterpart(type(operation))
    if target is None:
        return operation  # a plugin's own operation, or already the wanted kind
    converted = object.__new__(target)
    converted.__dict__.update(operation.__dict__)
    for name in ("ops", "_upgrade_ops", "_downgrade_ops"):
        inner = operation.__dict__.get(name)
        if isinstance(inner, list):
            converted.__dict__[name] = [_convert(item, counterpart) for item in inner]
    return converted


def to_alembic(operation: Any) -> Any:
    """Return ``operation`` (and what it contains) as the real Alembic's operation classes.

    Only asyncmigrate's own classes are converted, each to Alembic's class
    of the same name; anything else (a plugin's operation, a user's
    subclass) stays as it is, and so does everything without Alembic loaded.
    """
    alembic_ops = _alembic_ops_module()
    if alembic_ops is None:
        return operation

    def counterpart(cls: type[Any]) -> type[Any] | None:
        if not cls.__module__.startswith("asyncmigrate."):
            return None
        found = getattr(alembic_ops, cls.__name__, None)
        return found if isinstance(found, type) else None

    return _convert(operation, counterpart)


def to_own(operation: Any) -> Any:
    """Return an Alembic operation (and what it contains) as asyncmigrate's classes of the same names.

    Only instances of Alembic's own operation classes are converted; a
    plugin's operations (defined outside Alembic) stay as they are.
    """
    alembic_ops = _alembic_ops_module()
    if alembic_ops is None:
        return operation
    from ..operations import ops as own_ops

    def counterpart(cls: type[Any]) -> type[Any] | None:
        if getattr(alembic_ops, cls.__name__, None) is not cls:
            return None
        found = getattr(own_ops, cls.__name__, None)
        return found if isinstance(found, type) else None

    return _convert(operation, counterpart)
