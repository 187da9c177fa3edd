"""Plans: the steps between a database's current heads and a target, and the rows they write.

A plan is a list of :class:`MigrationStep`. Each step says which revision it
runs (or, for a stamp, which rows it moves) and, given the heads recorded in
the version table before it, which rows to insert, update and delete
(:meth:`MigrationStep.advance`). The row semantics are Alembic's, so a version
table written by either tool reads the same in the other. Nothing here touches
a database: the runtime executes the :class:`VersionChange` list.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from ..exceptions import (
    MultipleHeadsError,
    RangeNotAncestorError,
    RelativeRevisionError,
    RevisionError,
    VersionTableError,
)
from .graph import BASE, RevisionGraph, RevisionIdentifiers
from .revision import Revision, as_tuple

__all__ = [
    "MigrationInfo",
    "MigrationStep",
    "RevisionStep",
    "StampStep",
    "VersionChange",
    "downgrade_plan",
    "stamp_plan",
    "upgrade_plan",
]


@dataclass(frozen=True)
class VersionChange:
    """One row change in the version table: insert ``new``, delete ``old``, or update one to the other."""

    kind: Literal["insert", "delete", "update"]
    old: str | None = None
    new: str | None = None

    def __str__(self) -> str:
        if self.kind == "insert":
            return f"insert {self.new}"
        if self.kind == "delete":
            return f"delete {self.old}"
        return f"update {self.old} -> {self.new}"


@dataclass(frozen=True)
class MigrationInfo:
    """What one applied step did, as handed to ``on_version_apply`` callbacks."""

    up_revision_ids: tuple[str, ...]
    """Revision ids on the upper side of the step."""
    down_revision_ids: tuple[str, ...]
    """Revision ids on the lower side of the step."""
    is_upgrade: bool
    """True for a step up, False for a step down."""
    is_stamp: bool
    """True when only the version table moved and no migration ran."""

    @property
    def is_migration(self) -> bool:
        """True when the step ran a revision's upgrade() or downgrade()."""
        return not self.is_stamp

    @property
    def up_revision_id(self) -> str | None:
        """The upper revision id when there is exactly one, else None."""
        return self.up_revision_ids[0] if len(self.up_revision_ids) == 1 else None

    @property
    def source_revision_ids(self) -> tuple[str, ...]:
        """The ids the step moved away from."""
        return self.down_revision_ids if self.is_upgrade else self.up_revision_ids

    @property
    def destination_revision_ids(self) -> tuple[str, ...]:
        """The ids the step moved to."""
        return self.up_revision_ids if self.is_upgrade else self.down_revision_ids


class MigrationStep:
    """One step of a plan: it owns the row logic, the runtime owns execution."""

    is_upgrade: bool

    @property
    def is_downgrade(self) -> bool:
        """True for a step down."""
        return not self.is_upgrade

    @property
    def from_revisions(self) -> tuple[str, ...]:
        """Ids the version table holds for this step before it runs."""
        raise NotImplementedError

    @property
    def to_revisions(self) -> tuple[str, ...]:
        """Ids the version table holds for this step after it runs."""
        raise NotImplementedError

    @property
    def info(self) -> MigrationInfo:
        """A description of the step for callbacks and reports."""
        raise NotImplementedError

    def _should_delete_branch(self, heads: set[str]) -> bool:
        raise NotImplementedError

    def _should_create_branch(self, heads: set[str]) -> bool:
        raise NotImplementedError

    def _should_merge(self, heads: set[str]) -> bool:
        raise NotImplementedError

    def _should_unmerge(self, heads: set[str]) -> bool:
        raise NotImplementedError

    def _merge_idents(self, heads: set[str]) -> tuple[list[str], str, str]:
        raise NotImplementedError

    def _unmerge_idents(self, heads: set[str]) -> tuple[str, str, list[str]]:
        raise NotImplementedError

    def _update_idents(self, heads: set[str]) -> tuple[str, str]:
        raise NotImplementedError

    def _deleted_id(self) -> str:
        raise NotImplementedError

    def _inserted_id(self) -> str:
        raise NotImplementedError

    def advance(self, heads: set[str]) -> list[VersionChange]:
        """Return the row changes this step makes and apply them to ``heads``.

        :param heads: the revision ids in the version table; updated in place.
        :raises VersionTableError: when ``heads`` cannot hold what the step expects.
        """
        changes: list[VersionChange] = []

        def insert(rev: str) -> None:
            if rev in heads:
                raise VersionTableError(f"Version table already holds {rev}; cannot insert it")
            heads.add(rev)
            changes.append(VersionChange("insert", new=rev))

        def delete(rev: str) -> None:
            if rev not in heads:
                raise VersionTableError(f"Version table does not hold {rev}; cannot delete it")
            heads.remove(rev)
            changes.append(VersionChange("delete", old=rev))

        def update(old: str, new: str) -> None:
            if new in heads or old not in heads:
                raise VersionTableError(
                    f"Cannot move version row {old} to {new}: table holds {sorted(heads)}"
                )
            heads.remove(old)
            heads.add(new)
            changes.append(VersionChange("update", old=old, new=new))

        if self._should_delete_branch(heads):
            delete(self._deleted_id())
        elif self._should_create_branch(heads):
            insert(self._inserted_id())
        elif self._should_merge(heads):
            deletes, old, new = self._merge_idents(heads)
            for rev in deletes:
                delete(rev)
            update(old, new)
        elif self._should_unmerge(heads):
            old, new, inserts = self._unmerge_idents(heads)
            for rev in inserts:
                insert(rev)
            update(old, new)
        else:
            update(*self._update_idents(heads))
        return changes


class RevisionStep(MigrationStep):
    """Run one revision's ``upgrade()`` or ``downgrade()``."""

    def __init__(self, graph: RevisionGraph, revision: Revision, is_upgrade: bool) -> None:
        self.graph = graph
        self.revision = revision
        self.is_upgrade = is_upgrade

    def __repr__(self) -> str:
        return f"RevisionStep({self.revision.revision!r}, is_upgrade={self.is_upgrade!r})"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, RevisionStep)
            and other.revision is self.revision
            and other.is_upgrade == self.is_upgrade
        )

    def __hash__(self) -> int:
        return hash((self.revision.revision, self.is_upgrade))

    @property
    def from_revisions(self) -> tuple[str, ...]:
        if self.is_upgrade:
            return self.revision.normalized_down_revisions
        return (self.revision.revision,)

    @property
    def to_revisions(self) -> tuple[str, ...]:
        if self.is_upgrade:
            return (self.revision.revision,)
        return self.revision.normalized_down_revisions

    @property
    def info(self) -> MigrationInfo:
        return MigrationInfo(
            up_revision_ids=(self.revision.revision,),
            down_revision_ids=self.revision.normalized_down_revisions,
            is_upgrade=self.is_upgrade,
            is_stamp=False,
        )

    def __str__(self) -> str:
        downs = ", ".join(self.revision.normalized_down_revisions) or "<base>"
        arrow = f"{downs} -> {self.revision.revision}"
        if not self.is_upgrade:
            arrow = f"{self.revision.revision} -> {downs}"
        return f"{'upgrade' if self.is_upgrade else 'downgrade'} {arrow}"

    def _unmerge_targets(self, heads: set[str]) -> list[str]:
        """The down revisions that need a row of their own once this revision is gone.

        A down revision at or below another recorded head is implied by that
        head; with no other heads, one below another down revision is implied
        by it.
        """
        others = heads - {self.revision.revision}
        targets = self.to_revisions
        if others:
            return [t for t in targets if not self.graph.is_at_or_below(t, others)]
        return [t for t in targets if not any(self.graph.is_at_or_below(t, [o]) for o in targets if o != t)]

    def _should_delete_branch(self, heads: set[str]) -> bool:
        if self.is_upgrade or self.revision.revision not in heads:
            return False
        if not self.revision.normalized_down_revisions:
            return True
        return not self._unmerge_targets(heads)

    def _should_create_branch(self, heads: set[str]) -> bool:
        if not self.is_upgrade:
            return False
        downs = self.revision.normalized_down_revisions
        return not downs or not heads.intersection(downs)

    def _should_merge(self, heads: set[str]) -> bool:
        downs = self.revision.normalized_down_revisions
        return self.is_upgrade and len(downs) > 1 and len(heads.intersection(downs)) > 1

    def _should_unmerge(self, heads: set[str]) -> bool:
        return (
            not self.is_upgrade
            and self.revision.revision in heads
            and len(self.revision.normalized_down_revisions) > 1
        )

    def _merge_idents(self, heads: set[str]) -> tuple[list[str], str, str]:
        sources = list(self.from_revisions)
        others = heads - set(sources)
        if others:
            sources = [s for s in sources if not self.graph.is_at_or_below(s, others)]
        if not sources:
            raise VersionTableError(
                f"Can't merge into {self.revision.revision}: every down revision is implied by "
                f"another recorded head ({', '.join(sorted(heads))})"
            )
        return sources[:-1], sources[-1], self.to_revisions[0]

    def _unmerge_idents(self, heads: set[str]) -> tuple[str, str, list[str]]:
        targets = self._unmerge_targets(heads)
        return self.from_revisions[0], targets[-1], targets[:-1]

    def _update_idents(self, heads: set[str]) -> tuple[str, str]:
        downs = self.revision.normalized_down_revisions
        if len(downs) == 1:
            down = downs[0]
        else:
            present = [d for d in downs if d in heads]
            if len(present) != 1:
                raise VersionTableError(
                    f"Can't move the version row for {self.revision.revision}: its down "
                    f"revisions {', '.join(downs)} are ambiguous against {sorted(heads)}"
                )
            down = present[0]
        if self.is_upgrade:
            return down, self.revision.revision
        return self.revision.revision, down

    def _deleted_id(self) -> str:
        return self.revision.revision

    def _inserted_id(self) -> str:
        return self.revision.revision


class StampStep(MigrationStep):
    """Move version rows without running any migration."""

    def __init__(
        self,
        from_: str | Sequence[str] | None,
        to_: str | Sequence[str] | None,
        is_upgrade: bool,
        branch_move: bool,
    ) -> None:
        self.from_: tuple[str, ...] = as_tuple(from_)
        self.to_: tuple[str, ...] = as_tuple(to_)
        self.is_upgrade = is_upgrade
        self.branch_move = branch_move

    def __repr__(self) -> str:
        return (
            f"StampStep({self.from_!r}, {self.to_!r}, is_upgrade={self.is_upgrade!r}, "
            f"branch_move={self.branch_move!r})"
        )

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, StampStep)
            and other.from_ == self.from_
            and other.to_ == self.to_
            and other.branch_move == self.branch_move
            and other.is_upgrade == self.is_upgrade
        )

    def __hash__(self) -> int:
        return hash((self.from_, self.to_, self.is_upgrade, self.branch_move))

    def __str__(self) -> str:
        return f"stamp {', '.join(self.from_) or '<base>'} -> {', '.join(self.to_) or '<base>'}"

    @property
    def from_revisions(self) -> tuple[str, ...]:
        return self.from_

    @property
    def to_revisions(self) -> tuple[str, ...]:
        return self.to_

    @property
    def info(self) -> MigrationInfo:
        up, down = (self.to_, self.from_) if self.is_upgrade else (self.from_, self.to_)
        return MigrationInfo(
            up_revision_ids=up, down_revision_ids=down, is_upgrade=self.is_upgrade, is_stamp=True
        )

    def _should_delete_branch(self, heads: set[str]) -> bool:
        return not self.is_upgrade and self.branch_move

    def _should_create_branch(self, heads: set[str]) -> bool:
        return (
            self.is_upgrade
            and (self.branch_move or bool(set(self.from_) - heads))
            and bool(set(self.to_) - heads)
        )

    def _should_merge(self, heads: set[str]) -> bool:
        return len(self.from_) > 1

    def _should_unmerge(self, heads: set[str]) -> bool:
        return len(self.to_) > 1

    def _merge_idents(self, heads: set[str]) -> tuple[list[str], str, str]:
        return list(self.from_[:-1]), self.from_[-1], self.to_[0]

    def _unmerge_idents(self, heads: set[str]) -> tuple[str, str, list[str]]:
        return self.from_[0], self.to_[-1], list(self.to_[:-1])

    def _single(self, ids: tuple[str, ...]) -> str:
        if len(ids) != 1:
            raise VersionTableError(f"Stamp step {self} needs exactly one revision on each side")
        return ids[0]

    def _update_idents(self, heads: set[str]) -> tuple[str, str]:
        return self._single(self.from_), self._single(self.to_)

    def _deleted_id(self) -> str:
        return self._single(self.from_)

    def _inserted_id(self) -> str:
        return self._single(self.to_)


# -- plans --------------------------------------------------------------------------------


def upgrade_plan(graph: RevisionGraph, current_heads: Sequence[str], destination: str) -> list[RevisionStep]:
    """Return the steps that take a database at ``current_heads`` up to ``destination``.

    :raises RevisionError: when the destination cannot be reached by upgrading.
    """
    try:
        revs = graph.iterate_revisions(destination, tuple(current_heads), implicit_base=True)
    except RangeNotAncestorError as exc:
        raise RangeNotAncestorError(
            exc.lower,
            destination,
            f"Destination {destination} is not a valid upgrade target from current head(s)",
        ) from exc
    return [RevisionStep(graph, rev, True) for rev in reversed(revs)]


def downgrade_plan(
    graph: RevisionGraph, current_heads: Sequence[str], destination: str | None
) -> list[RevisionStep]:
    """Return the steps that take a database at ``current_heads`` down to ``destination``.

    :raises RevisionError: when the destination cannot be reached by downgrading.
    """
    try:
        revs = graph.iterate_revisions(tuple(current_heads), destination, select_for_downgrade=True)
    except RangeNotAncestorError as exc:
        raise RangeNotAncestorError(
            destination,
            exc.upper,
            f"Destination {destination} is not a valid downgrade target from current head(s)",
        ) from exc
    return [RevisionStep(graph, rev, False) for rev in revs]


def stamp_plan(
    graph: RevisionGraph, destination: RevisionIdentifiers, current_heads: Sequence[str]
) -> list[StampStep]:
    """Return the row moves that make the version table say ``destination``.

    Branches that share lineage with a destination move to it (up or down);
    a destination on a branch not yet recorded becomes a new row.
    """
    try:
        recorded = [r for r in graph.get_revisions(tuple(current_heads)) if isinstance(r, Revision)]
        destinations = destination if destination else BASE
        on_lineage: list[Revision] = []
        for target in as_tuple(destinations):
            if target:
                on_lineage.extend(
                    rev
                    for rev in graph.filter_for_lineage(recorded, target, include_dependencies=True)
                    if rev not in on_lineage
                )
        resolved = graph.get_revisions(destinations) or (None,)
    except MultipleHeadsError as exc:
        raise MultipleHeadsError(
            exc.heads,
            exc.argument,
            "Multiple heads are present; please specify a single target revision",
        ) from exc
    steps: list[StampStep] = []
    for dest in resolved:
        if dest == BASE:
            raise RelativeRevisionError(
                f"Stamp target {', '.join(as_tuple(destination))} walks down to base on a branch; "
                f"name the revisions to stamp"
            )
        if dest is None:
            steps.extend(StampStep(h.revision, None, False, True) for h in on_lineage)
            continue
        if dest in on_lineage:
            continue
        above = set(graph.descendants([dest]))
        below = set(graph.ancestors([dest]))
        ids = [h.revision for h in on_lineage]
        if above.intersection(on_lineage):
            if below.intersection(on_lineage):
                raise RevisionError(
                    f"Stamp target {dest.revision} lies between recorded heads {', '.join(ids)}"
                )
            steps.append(StampStep(ids, dest.revision, False, False))
        elif below.intersection(on_lineage):
            steps.append(StampStep(ids, dest.revision, True, False))
        else:
            steps.append(StampStep((), dest.revision, True, True))
    return steps
