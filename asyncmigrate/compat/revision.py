"""What ``alembic.script.revision`` gives revision files, env.py and extensions under asyncmigrate.

Alembic's names for the revision graph and its errors, bound to
asyncmigrate's: ``except ResolutionError`` catches what asyncmigrate raises
for an unknown or ambiguous revision, ``RevisionMap`` is the
:class:`~asyncmigrate.revision.RevisionGraph`.
"""

from __future__ import annotations

from typing import Any

from ..exceptions import (
    CycleError,
    DependencyCycleError,
    MultipleHeadsError,
    RangeNotAncestorError,
    ResolutionError,
    RevisionError,
)
from ..revision import Revision, RevisionGraph

__all__ = [
    "CycleDetected",
    "DependencyCycleDetected",
    "DependencyLoopDetected",
    "LoopDetected",
    "MultipleHeads",
    "RangeNotAncestorError",
    "ResolutionError",
    "Revision",
    "RevisionError",
    "RevisionMap",
    "is_revision",
    "tuple_rev_as_scalar",
]

RevisionMap = RevisionGraph
MultipleHeads = MultipleHeadsError
CycleDetected = CycleError
DependencyCycleDetected = DependencyCycleError
#: A revision that is its own down_revision (a cycle of one).
LoopDetected = CycleError
DependencyLoopDetected = DependencyCycleError


def is_revision(rev: Any) -> Revision:
    """Return ``rev``, asserting it is a :class:`~asyncmigrate.revision.Revision`."""
    assert isinstance(rev, Revision), f"expected a Revision, got {rev!r}"
    return rev


def tuple_rev_as_scalar(rev: tuple[str, ...] | None) -> str | tuple[str, ...] | None:
    """Return None for no revision, the id for one, the tuple for several."""
    if not rev:
        return None
    if len(rev) == 1:
        return rev[0]
    return rev
