"""Watching operations as they run: a task-local observer, for tools that analyse migrations.

The linter (:mod:`asyncmigrate.lint`) renders revisions offline and needs to
know, for each ``op.*`` call, the operation object, the SQL written while it
ran and where in the revision file it was called. :func:`observing` installs
an :class:`OperationObserver` for the current task; :meth:`Operations.invoke`
wraps every operation in the observer's :meth:`~OperationObserver.observe`
(and a ``batch_alter_table`` block wraps each recorded operation again when
the block replays it). With no observer installed nothing happens.

The observer lives in a :class:`~contextvars.ContextVar`, set and reset by
token, so two tasks never see each other's observer.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from contextvars import ContextVar
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from .base import AbstractOperations
    from .ops import MigrateOperation

__all__ = ["OperationObserver", "observed", "observing"]


class OperationObserver(Protocol):
    """Something told about each operation a migration invokes."""

    def observe(
        self, operations: AbstractOperations, operation: MigrateOperation
    ) -> AbstractContextManager[None]:
        """Return a context manager wrapping the execution of ``operation``.

        Called when the operation is invoked (inside a ``batch_alter_table``
        block that only records it) and, for operations recorded by such a
        block, once more when the block applies it -- with the same
        operation object and the block's parent ``operations``.
        """
        ...


_observer: ContextVar[OperationObserver | None] = ContextVar(
    "asyncmigrate_operation_observer", default=None
)


@contextmanager
def observing(observer: OperationObserver) -> Iterator[OperationObserver]:
    """Install ``observer`` for the operations this task invokes inside the block."""
    token = _observer.set(observer)
    try:
        yield observer
    finally:
        _observer.reset(token)


def observed(
    operations: AbstractOperations, operation: MigrateOperation | None
) -> AbstractContextManager[None]:
    """The current observer's wrapper for ``operation`` (a no-op without observer or operation)."""
    observer = _observer.get()
    if observer is None or operation is None:
        return nullcontext()
    return observer.observe(operations, operation)
