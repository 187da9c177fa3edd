"""Drive Alembic's revision map and version-row logic from plain data, for comparison.

Alembic keeps some collections in sets (children, normalized dependencies),
so a few of its orders depend on the interpreter's hash seed. The reference
here pins them: children iterate in sorted order and normalized dependencies
keep their declared order, which is what asyncmigrate does. Everything else
is Alembic's own code, called as its commands call it.
"""

from __future__ import annotations

import graphlib
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from alembic.runtime.migration import HeadMaintainer
from alembic.script.base import ScriptDirectory
from alembic.script.revision import Revision as AlembicRevision
from alembic.script.revision import RevisionMap

from asyncmigrate.exceptions import AsyncMigrateError
from asyncmigrate.revision import Revision, RevisionGraph
from asyncmigrate.revision.plan import (
    MigrationStep,
    downgrade_plan,
    stamp_plan,
    upgrade_plan,
)

Ids = str | tuple[str, ...] | None


@dataclass(frozen=True)
class Spec:
    """One revision as a file declares it."""

    revision: str
    down_revision: Ids = None
    depends_on: Ids = None
    branch_labels: Ids = None


class _SortedFrozenset(frozenset[str]):
    """A frozenset that iterates in sorted order (Alembic's ``nextrev`` pinned)."""

    def __iter__(self) -> Any:
        return iter(sorted(frozenset.__iter__(self)))

    def union(self, *others: Iterable[Any]) -> _SortedFrozenset:
        return _SortedFrozenset(frozenset.union(self, *others))


_NOOP_MODULE = SimpleNamespace(upgrade=lambda **kw: None, downgrade=lambda **kw: None)


class PinnedRevision(AlembicRevision):
    """Alembic's Revision with its hash-ordered collections given a fixed order."""

    nextrev = _SortedFrozenset()
    _all_nextrev = _SortedFrozenset()
    module = _NOOP_MODULE

    @property  # type: ignore[override]
    def _normalized_resolved_dependencies(self) -> tuple[str, ...]:
        return self._pinned_normalized

    @_normalized_resolved_dependencies.setter
    def _normalized_resolved_dependencies(self, value: Iterable[str]) -> None:
        keep = set(value)
        self._pinned_normalized = tuple(dict.fromkeys(d for d in self._resolved_dependencies if d in keep))


# -- outcomes ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What a call returned, or the name of the error it raised."""

    value: Any = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def alembic_call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Outcome:
    """Call ``fn`` with Alembic's warnings turned into errors (as pytest runs them).

    A generator's items are collected inside the call, since Alembic raises
    from some of its generators only once they run.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            result = fn(*args, **kwargs)
            if isinstance(result, Iterator):
                result = list(result)
            return Outcome(value=result)
    except Exception as exc:
        return Outcome(error=f"{type(exc).__name__}: {exc}")


def our_call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Outcome:
    """Call ``fn``; asyncmigrate must only ever raise its own typed errors."""
    try:
        result = fn(*args, **kwargs)
        if isinstance(result, Iterator):
            result = list(result)
        return Outcome(value=result)
    except AsyncMigrateError as exc:
        return Outcome(error=f"{type(exc).__name__}: {exc}")


def ids_of(result: Iterable[Any]) -> tuple[Any, ...]:
    """Return revisions as their ids; ``"base"`` and None stay as they are."""
    return tuple(getattr(r, "revision", r) for r in result)


# -- building ------------------------------------------------------------------------------


def build_alembic(specs: Sequence[Spec]) -> RevisionMap:
    """Build Alembic's map from ``specs`` in order and force it to load."""
    revisions = [PinnedRevision(s.revision, s.down_revision, s.depends_on, s.branch_labels) for s in specs]
    rmap = RevisionMap(lambda: revisions)
    rmap._revision_map  # noqa: B018 - loading is what raises
    return rmap


def is_cyclic(specs: Sequence[Spec]) -> bool:
    """True when down revisions and dependencies (ids or labels) go round in a circle."""
    by_label = {lbl: s.revision for s in specs for lbl in _as_tuple(s.branch_labels)}
    links = {
        s.revision: [by_label.get(d, d) for d in (*_as_tuple(s.down_revision), *_as_tuple(s.depends_on))]
        for s in specs
    }
    try:
        tuple(graphlib.TopologicalSorter(links).static_order())
    except graphlib.CycleError:
        return True
    return False


def _as_tuple(value: Ids) -> tuple[str, ...]:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


def build_ours(specs: Sequence[Spec]) -> RevisionGraph:
    """Build asyncmigrate's graph from ``specs`` in order."""
    return RevisionGraph(Revision(s.revision, s.down_revision, s.depends_on, s.branch_labels) for s in specs)


def script_directory(rmap: RevisionMap) -> ScriptDirectory:
    """A ScriptDirectory with no files, only ``rmap``: enough for its plan methods."""
    sd = object.__new__(ScriptDirectory)
    sd.revision_map = rmap
    return sd


# -- version rows ----------------------------------------------------------------------------


class RecordingHeadMaintainer(HeadMaintainer):
    """Alembic's HeadMaintainer with the three row writes recorded instead of executed.

    ``update_to_step`` (the choice between insert, delete, merge, unmerge and
    update) is Alembic's; only the SQL is replaced by bookkeeping, keeping
    Alembic's own assertions.
    """

    def __init__(self, heads: Iterable[str]) -> None:
        self.heads = set(heads)
        self.kinds: list[str] = []

    def _insert_version(self, version: str) -> None:
        assert version not in self.heads
        self.heads.add(version)
        self.kinds.append("insert")

    def _delete_version(self, version: str) -> None:
        self.heads.remove(version)
        self.kinds.append("delete")

    def _update_version(self, from_: str, to_: str) -> None:
        assert to_ not in self.heads
        self.heads.remove(from_)
        self.heads.add(to_)
        self.kinds.append("update")


def apply_alembic_steps(steps: Sequence[Any], heads: Iterable[str]) -> list[Outcome]:
    """Apply Alembic steps one by one; each outcome is (kinds, heads after) or the error."""
    maintainer = RecordingHeadMaintainer(heads)
    outcomes = []
    for step in steps:
        outcome = alembic_call(_advance_alembic, maintainer, step)
        outcomes.append(outcome)
        if not outcome.ok:
            break
    return outcomes


def _advance_alembic(
    maintainer: RecordingHeadMaintainer, step: Any
) -> tuple[tuple[str, ...], frozenset[str]]:
    maintainer.kinds = []
    maintainer.update_to_step(step)
    return tuple(maintainer.kinds), frozenset(maintainer.heads)


def apply_our_steps(steps: Sequence[MigrationStep], heads: Iterable[str]) -> list[Outcome]:
    """Apply asyncmigrate steps one by one, as :func:`apply_alembic_steps` does."""
    current = set(heads)
    outcomes = []
    for step in steps:
        outcome = our_call(_advance_ours, step, current)
        outcomes.append(outcome)
        if not outcome.ok:
            break
    return outcomes


def _advance_ours(step: MigrationStep, heads: set[str]) -> tuple[tuple[str, ...], frozenset[str]]:
    changes = step.advance(heads)
    return tuple(c.kind for c in changes), frozenset(heads)


# -- plans -------------------------------------------------------------------------------------


def alembic_upgrade(rmap: RevisionMap, heads: Sequence[str], destination: str) -> Outcome:
    """Alembic's ``upgrade`` plan, as ``command.upgrade`` asks for it."""
    return alembic_call(script_directory(rmap)._upgrade_revs, destination, tuple(heads))


def alembic_downgrade(rmap: RevisionMap, heads: Sequence[str], destination: str) -> Outcome:
    """Alembic's ``downgrade`` plan, as ``command.downgrade`` asks for it."""
    return alembic_call(script_directory(rmap)._downgrade_revs, destination, tuple(heads))


def alembic_stamp(rmap: RevisionMap, heads: Sequence[str], destination: Any) -> Outcome:
    """Alembic's ``stamp`` plan, as ``command.stamp`` asks for it."""
    return alembic_call(script_directory(rmap)._stamp_revs, destination, tuple(heads))


def our_upgrade(graph: RevisionGraph, heads: Sequence[str], destination: str) -> Outcome:
    return our_call(upgrade_plan, graph, tuple(heads), destination)


def our_downgrade(graph: RevisionGraph, heads: Sequence[str], destination: str) -> Outcome:
    return our_call(downgrade_plan, graph, tuple(heads), destination)


def our_stamp(graph: RevisionGraph, heads: Sequence[str], destination: Any) -> Outcome:
    return our_call(stamp_plan, graph, destination, tuple(heads))


def revision_steps(steps: Iterable[Any]) -> list[tuple[str, bool]]:
    """Describe revision steps (either tool's) as ``(revision id, is_upgrade)``."""
    return [(s.revision.revision, s.is_upgrade) for s in steps]


def stamp_steps(steps: Iterable[Any]) -> list[tuple[Any, ...]]:
    """Describe stamp steps (either tool's) as ``(from, to, is_upgrade, branch_move)``."""
    return [(tuple(s.from_), tuple(s.to_), s.is_upgrade, s.branch_move) for s in steps]


# -- error kinds ---------------------------------------------------------------------------------

#: (Alembic error class, start of its message) -> the asyncmigrate errors that answer it.
#: Alembic raises ResolutionError, plain RevisionError, warnings and assertions for
#: what asyncmigrate splits into typed errors; the first matching rule wins.
ERROR_KINDS: list[tuple[str, str, tuple[str, ...]]] = [
    ("UserWarning", "Revision ", ("DuplicateRevisionError", "MissingDownRevisionError")),
    ("KeyError", "", ("MissingDownRevisionError",)),
    ("DependencyLoopDetected", "", ("DependencyCycleError",)),
    ("LoopDetected", "", ("CycleError",)),
    # A history with both kinds of circle: Alembic may see only the dependency one.
    ("DependencyCycleDetected", "", ("DependencyCycleError", "CycleError")),
    ("CycleDetected", "", ("CycleError",)),
    ("RevisionError", "Branch name", ("DuplicateBranchLabelError",)),
    ("RevisionError", "Character(s)", ("InvalidRevisionIdError",)),
    ("RevisionError", "Ambiguous walk", ("AmbiguousWalkError",)),
    ("RevisionError", "Ambiguous upgrade", ("AmbiguousWalkError",)),
    ("RevisionError", "Relative revision", ("RelativeRevisionError",)),
    ("RevisionError", "Walked too far", ("RelativeRevisionError",)),
    # Alembic checks overlapping targets while it walks them, so with a relative
    # walk that also fell off the graph its error depends on which came first.
    ("RevisionError", "Requested revision", ("RevisionError", "RelativeRevisionError")),
    ("RevisionError", "Not a valid downgrade target", ("RangeNotAncestorError",)),
    ("ResolutionError", "Multiple revisions start", ("AmbiguousRevisionError",)),
    ("ResolutionError", "No such branch", ("UnknownBranchError",)),
    ("ResolutionError", "", ("UnknownRevisionError", "UnknownBranchError")),
    ("MultipleHeads", "", ("MultipleHeadsError",)),
    ("RangeNotAncestorError", "", ("RangeNotAncestorError",)),
    ("UserWarning", "downgrade -1 from multiple heads", ("AmbiguousWalkError",)),
]


def error_kind_ok(theirs: str, ours: str) -> bool:
    """True when asyncmigrate's error is the typed counterpart of Alembic's."""
    their_type, _, their_message = theirs.partition(": ")
    our_type = ours.partition(": ")[0]
    for name, message, answers in ERROR_KINDS:
        if their_type == name and their_message.startswith(message):
            return our_type in answers
    return True  # an assertion or a KeyError deep inside Alembic: any typed error will do
