"""One revision as data: its id, what it revises, what it depends on, its labels."""

from __future__ import annotations

import re
from collections.abc import Iterable

from ..exceptions import CycleError, DependencyCycleError, InvalidRevisionIdError

__all__ = ["RESERVED_CHARACTERS", "Revision", "as_scalar", "as_tuple"]

#: Characters the target grammar gives a meaning (``label@rev``, ``rev+2``, ``a:b``).
RESERVED_CHARACTERS = frozenset("@-+:")
_RESERVED = re.compile("[" + re.escape("".join(sorted(RESERVED_CHARACTERS))) + "]")


def as_tuple(value: str | Iterable[str] | None) -> tuple[str, ...]:
    """Return ``value`` as a tuple of ids: ``None`` -> ``()``, ``"a"`` -> ``("a",)``."""
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(value)


def as_scalar(value: tuple[str, ...]) -> str | tuple[str, ...] | None:
    """Return a tuple of ids the way revision files write it: None, one string, or a tuple."""
    if not value:
        return None
    if len(value) == 1:
        return value[0]
    return value


def _dedupe(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(values))


class Revision:
    """A node of the revision graph.

    A revision owns what its file declares (``revision``, ``down_revision``,
    ``depends_on``, ``branch_labels``). The :class:`~asyncmigrate.revision.RevisionGraph`
    that holds it fills in what only the whole graph knows: its children, its
    dependencies resolved to ids, and the branch labels it inherits. A revision
    belongs to one graph.
    """

    __slots__ = (
        "_all_down_revisions",
        "_all_nextrev",
        "_down_revisions",
        "_nextrev",
        "_normalized_dependencies",
        "_normalized_down_revisions",
        "_resolved_dependencies",
        "branch_labels",
        "dependencies",
        "down_revision",
        "own_branch_labels",
        "revision",
    )

    def __init__(
        self,
        revision: str,
        down_revision: str | Iterable[str] | None,
        dependencies: str | Iterable[str] | None = None,
        branch_labels: str | Iterable[str] | None = None,
    ) -> None:
        downs = as_tuple(down_revision)
        deps = as_tuple(dependencies)
        if revision in downs:
            raise CycleError([revision])
        if revision in deps:
            raise DependencyCycleError([revision])
        self.verify_id(revision)
        self.revision: str = revision
        #: The declared down revision(s): None, one id, or a tuple of ids (a merge).
        self.down_revision: str | tuple[str, ...] | None = as_scalar(downs)
        #: The declared ``depends_on`` entries (ids or branch labels).
        self.dependencies: str | tuple[str, ...] | None = as_scalar(deps)
        #: The labels this revision's file declares.
        self.own_branch_labels: tuple[str, ...] = as_tuple(branch_labels)
        #: Its own labels plus those inherited along its branch (filled by the graph).
        self.branch_labels: set[str] = set(self.own_branch_labels)
        self._down_revisions: tuple[str, ...] = downs
        self._nextrev: frozenset[str] = frozenset()
        self._all_nextrev: frozenset[str] = frozenset()
        self._resolved_dependencies: tuple[str, ...] = ()
        self._normalized_dependencies: tuple[str, ...] = ()
        self._all_down_revisions: tuple[str, ...] = downs
        self._normalized_down_revisions: tuple[str, ...] = downs

    @staticmethod
    def verify_id(revision: str) -> None:
        """Raise :class:`InvalidRevisionIdError` if ``revision`` uses a reserved character."""
        if _RESERVED.search(revision):
            raise InvalidRevisionIdError(revision, sorted(RESERVED_CHARACTERS.intersection(revision)))

    def __repr__(self) -> str:
        parts = [repr(self.revision), repr(self.down_revision)]
        if self.dependencies:
            parts.append(f"dependencies={self.dependencies!r}")
        if self.own_branch_labels:
            parts.append(f"branch_labels={self.own_branch_labels!r}")
        return f"{type(self).__name__}({', '.join(parts)})"

    # -- links (filled in by the graph) --------------------------------------------

    def _link(
        self,
        nextrev: frozenset[str],
        all_nextrev: frozenset[str],
        resolved_dependencies: tuple[str, ...],
    ) -> None:
        """Record what the graph found around this revision (called while it builds)."""
        self._nextrev = nextrev
        self._all_nextrev = all_nextrev
        self._resolved_dependencies = resolved_dependencies
        self._all_down_revisions = self._with_downs(resolved_dependencies)
        self._normalize(resolved_dependencies)

    def _normalize(self, dependencies: tuple[str, ...]) -> None:
        """Record the dependencies no ancestor already carries (called by the graph)."""
        self._normalized_dependencies = dependencies
        self._normalized_down_revisions = self._with_downs(dependencies)

    def _with_downs(self, dependencies: tuple[str, ...]) -> tuple[str, ...]:
        if not dependencies:
            return self._down_revisions
        return _dedupe(self._down_revisions + dependencies)

    @property
    def down_revisions(self) -> tuple[str, ...]:
        """The down revisions as a tuple (versioned parents, no dependencies)."""
        return self._down_revisions

    @property
    def nextrev(self) -> frozenset[str]:
        """Ids of the revisions whose ``down_revision`` names this one."""
        return self._nextrev

    @property
    def all_nextrev(self) -> frozenset[str]:
        """Ids of the revisions that name this one as down_revision or dependency."""
        return self._all_nextrev

    @property
    def resolved_dependencies(self) -> tuple[str, ...]:
        """``depends_on`` resolved to revision ids (branch labels replaced)."""
        return self._resolved_dependencies

    @property
    def normalized_dependencies(self) -> tuple[str, ...]:
        """Resolved dependencies minus those an ancestor already depends on."""
        return self._normalized_dependencies

    @property
    def all_down_revisions(self) -> tuple[str, ...]:
        """Down revisions plus resolved dependencies."""
        return self._all_down_revisions

    @property
    def normalized_down_revisions(self) -> tuple[str, ...]:
        """Down revisions plus the dependencies no ancestor already carries."""
        return self._normalized_down_revisions

    # -- shape ------------------------------------------------------------------------

    @property
    def is_head(self) -> bool:
        """True when no revision names this one as its down_revision."""
        return not self._nextrev

    @property
    def is_real_head(self) -> bool:
        """True when no revision names this one as down_revision or dependency."""
        return not self._all_nextrev

    @property
    def is_base(self) -> bool:
        """True when the revision has no down_revision."""
        return self.down_revision is None

    @property
    def is_real_base(self) -> bool:
        """True when the revision has neither a down_revision nor dependencies."""
        return self.down_revision is None and self.dependencies is None

    @property
    def is_branch_point(self) -> bool:
        """True when more than one revision names this one as down_revision."""
        return len(self._nextrev) > 1

    @property
    def is_real_branch_point(self) -> bool:
        """True when more than one revision descends from or depends on this one."""
        return len(self._all_nextrev) > 1

    @property
    def is_merge_point(self) -> bool:
        """True when the revision has more than one down_revision."""
        return len(self._down_revisions) > 1
