"""The revision graph: heads, bases, branches, labels, dependencies and the target grammar.

The graph is pure data. It knows nothing of files or databases: the script
layer builds it from revision headers, the runtime asks it for plans. Its
answers follow Alembic's revision map, so a history behaves the same under
both tools: the same heads, the same resolution of ``label@head`` or
``ae10+2``, the same order of steps across branches, merges and dependencies.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Literal, TypeAlias, TypeVar

from ..exceptions import (
    AmbiguousRevisionError,
    AmbiguousWalkError,
    CycleError,
    DependencyCycleError,
    DuplicateBranchLabelError,
    DuplicateRevisionError,
    MissingDownRevisionError,
    MultipleHeadsError,
    RangeNotAncestorError,
    RecordedRevisionMissingError,
    RelativeRevisionError,
    RevisionError,
    UnknownBranchError,
    UnknownRevisionError,
)
from .revision import Revision, as_tuple

__all__ = ["BASE", "RevisionGraph", "RevisionIdentifiers", "WalkResult", "recorded_heads"]

#: The marker a downward walk returns when it steps below the first revision.
BASE: Literal["base"] = "base"

WalkResult: TypeAlias = Revision | Literal["base"] | None
#: One identifier or symbol, several of them, or None for "base".
RevisionIdentifiers: TypeAlias = str | Iterable[str] | None

_Target = TypeVar("_Target", str, Revision)

# ``[label@][symbol](+|-)N`` -- matched at the start of the text, as Alembic does.
_RELATIVE = re.compile(r"(?:(.+?)@)?(\w+)?((?:\+|-)\d+)")


class RevisionGraph:
    """Hold a set of revisions and answer every question about their shape.

    The graph owns the links between revisions (children, resolved
    dependencies, inherited branch labels), the symbolic names (``head``,
    ``heads``, ``base``, branch labels, id prefixes, relative steps) and the
    ordering of upgrade and downgrade plans. It leaves reading files to
    :class:`~asyncmigrate.script.ScriptDirectory` and writing version rows to
    the runtime.

    :param revisions: the revisions, in the order their files were found; the
        order breaks ties when branches are ordered for a plan.
    :raises RevisionError: for duplicate ids or labels, a missing down revision
        or dependency, or a cycle.
    """

    def __init__(self, revisions: Iterable[Revision]) -> None:
        self._revisions: dict[str, Revision] = {}
        for rev in revisions:
            if rev.revision in self._revisions:
                first = self._revisions[rev.revision]
                raise DuplicateRevisionError(
                    rev.revision,
                    [p for p in (getattr(first, "path", None), getattr(rev, "path", None)) if p],
                )
            self._revisions[rev.revision] = rev
        self._order = {rev_id: i for i, rev_id in enumerate(self._revisions)}
        self._labels: dict[str, Revision] = {}
        self._masks: dict[str, int] | None = None
        self._link_order: list[Revision] = []
        self._normalized_children: dict[str, tuple[str, ...]] = {}
        self._build()

    # -- construction -----------------------------------------------------------------

    def _build(self) -> None:
        for rev in self._revisions.values():
            rev.branch_labels = set(rev.own_branch_labels)
        self._map_labels()
        self._link(self._resolve_dependencies())
        revs = self._revisions
        self.heads: tuple[str, ...] = tuple(r for r, rev in revs.items() if rev.is_head)
        """Versioned heads: revisions no other revision names as down_revision."""
        self.real_heads: tuple[str, ...] = tuple(r for r, rev in revs.items() if rev.is_real_head)
        """Heads once dependencies count: what ``heads`` resolves to."""
        self.bases: tuple[str, ...] = tuple(r for r, rev in revs.items() if rev.is_base)
        """Revisions without a down_revision."""
        self.real_bases: tuple[str, ...] = tuple(r for r, rev in revs.items() if rev.is_real_base)
        """Revisions with neither a down_revision nor dependencies."""
        # Every revision reaches a base going down and a head going up unless
        # the links go round in a circle; finding an order proves they do not.
        versioned_order = self._bottom_up(_versioned_downs, CycleError)
        self._link_order = self._bottom_up(_all_downs, DependencyCycleError)
        self._normalize_dependencies(versioned_order)
        self._inherit_branch_labels()

    def _map_labels(self) -> None:
        for rev in self._revisions.values():
            for label in rev.own_branch_labels:
                holder = self._labels.get(label) or self._revisions.get(label)
                if holder is not None:
                    raise DuplicateBranchLabelError(label, rev.revision, holder.revision)
                self._labels[label] = rev

    def _resolve_dependencies(self) -> dict[str, tuple[str, ...]]:
        """Map each revision id to its ``depends_on`` as revision ids (labels replaced)."""
        resolved: dict[str, tuple[str, ...]] = {}
        for rev in self._revisions.values():
            deps = []
            for dep in as_tuple(rev.dependencies):
                target = self._revisions.get(dep) or self._labels.get(dep)
                if target is None:
                    raise MissingDownRevisionError(dep, rev.revision, kind="depends_on")
                deps.append(target.revision)
            resolved[rev.revision] = tuple(dict.fromkeys(deps))
        return resolved

    def _link(self, resolved: dict[str, tuple[str, ...]]) -> None:
        """Give every revision its children and resolved dependencies."""
        revs = self._revisions
        nextrev: dict[str, set[str]] = {rev_id: set() for rev_id in revs}
        all_nextrev: dict[str, set[str]] = {rev_id: set() for rev_id in revs}
        for rev in revs.values():
            for down in rev.down_revisions:
                if down not in revs:
                    raise MissingDownRevisionError(down, rev.revision)
                nextrev[down].add(rev.revision)
                all_nextrev[down].add(rev.revision)
            for down in resolved[rev.revision]:
                all_nextrev[down].add(rev.revision)
        for rev_id, rev in revs.items():
            rev._link(frozenset(nextrev[rev_id]), frozenset(all_nextrev[rev_id]), resolved[rev_id])

    def _normalize_dependencies(self, versioned_order: Iterable[Revision]) -> None:
        # A dependency that a versioned ancestor already declares adds no edge
        # of its own. Going up from the bases, each revision hands its children
        # the dependencies declared at or below it, so each revision is visited
        # once instead of walking all of its ancestors.
        handed_up: dict[str, frozenset[str]] = {}
        nothing: frozenset[str] = frozenset()
        children: dict[str, list[str]] = {rev_id: [] for rev_id in self._revisions}
        for rev in versioned_order:
            carried = nothing
            for down in rev.down_revisions:
                carried = carried | handed_up[down] if carried else handed_up[down]
            deps = rev.resolved_dependencies
            rev._normalize(tuple(d for d in deps if d not in carried))
            handed_up[rev.revision] = carried.union(deps) if deps else carried
            for down in rev.normalized_down_revisions:
                children[down].append(rev.revision)
        self._normalized_children = {rev_id: tuple(ids) for rev_id, ids in children.items()}

    def _bottom_up(
        self,
        links: Callable[[Revision], Iterable[str]],
        error: type[CycleError] = CycleError,
    ) -> list[Revision]:
        """Return every revision, each after all the revisions ``links`` lead to from it.

        :raises CycleError: (of class ``error``) when ``links`` go round in a circle.
        """
        finished: set[str] = set()
        order: list[Revision] = []
        for root in self._revisions.values():
            if root.revision in finished:
                continue
            path = [root.revision]
            on_path = {root.revision}
            stack = [iter(links(root))]
            while stack:
                for rev_id in stack[-1]:
                    if rev_id in on_path:
                        raise error(sorted(path[path.index(rev_id) :]))
                    if rev_id not in finished:
                        path.append(rev_id)
                        on_path.add(rev_id)
                        stack.append(iter(links(self._revisions[rev_id])))
                        break
                else:
                    stack.pop()
                    done = path.pop()
                    on_path.discard(done)
                    finished.add(done)
                    order.append(self._revisions[done])
        return order

    def _inherit_branch_labels(self) -> None:
        # As Alembic's revision map does: a label covers its revision and every
        # versioned descendant; then, from the last revision that visit reached,
        # it reaches down the line to the nearest branch point (dependencies
        # count) or merge point. Alembic visits children in hash order; here
        # they go in sorted order, so the last revision reached is stable.
        for rev in self._revisions.values():
            if not rev.own_branch_labels:
                continue
            labels = rev.branch_labels
            last = rev
            for node in self._related([rev], lambda r: sorted(r.nextrev)):
                node.branch_labels.update(labels)
                last = node
            parent: Revision | None = last
            while parent is not None and not parent.is_real_branch_point and not parent.is_merge_point:
                parent.branch_labels.update(labels)
                down = parent.down_revision
                parent = self._revisions[down] if isinstance(down, str) else None

    # -- plain access -----------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._revisions)

    def __iter__(self) -> Iterator[Revision]:
        return iter(self._revisions.values())

    def __contains__(self, revision_id: object) -> bool:
        return revision_id in self._revisions

    @property
    def branch_labels(self) -> dict[str, str]:
        """Every declared branch label, mapped to the revision that declares it."""
        return {label: rev.revision for label, rev in self._labels.items()}

    def current_head(self, branch_label: str | None = None) -> str | None:
        """Return the single head (of ``branch_label`` when given), or None if there is none.

        :raises MultipleHeadsError: when more than one head qualifies.
        """
        heads: Sequence[str] = self.heads
        if branch_label:
            heads = self.filter_for_lineage(heads, branch_label)
        if len(heads) > 1:
            raise MultipleHeadsError(heads, f"{branch_label}@head" if branch_label else "head")
        return heads[0] if heads else None

    # -- resolving identifiers --------------------------------------------------------


    def get_current_head(self, branch_label: str | None = None) -> str | None:
        """Return :meth:`current_head` (Alembic's ``RevisionMap`` name for it)."""
        return self.current_head(branch_label)
    def resolve_symbols(self, id_: RevisionIdentifiers) -> tuple[tuple[str, ...], str | None]:
        """Split off a ``label@`` prefix and expand ``head``/``heads``/``base``.

        :return: the ids (or unresolved identifiers) and the branch label, if any.
        """
        branch_label: str | None = None
        if isinstance(id_, str) and "@" in id_:
            branch_label, id_ = id_.split("@", 1)
        elif id_ is not None and not isinstance(id_, str):
            id_ = tuple(id_)
            if any(not isinstance(part, str) for part in id_):
                raise RevisionError(
                    f"revision identifier {id_!r} is not a string; ensure database "
                    f"driver settings are correct"
                )
        if id_ == "heads":
            if branch_label:
                return self.filter_for_lineage(self.heads, branch_label), branch_label
            return self.real_heads, branch_label
        if id_ == "head":
            head = self.current_head(branch_label)
            return ((head,) if head else ()), branch_label
        if id_ == "base" or id_ is None:
            return (), branch_label
        return as_tuple(id_), branch_label

    def get_revisions(self, id_: RevisionIdentifiers) -> tuple[WalkResult, ...]:
        """Return the revisions an identifier, symbol or collection of them names.

        ``base`` gives ``()``; ``label@-N`` walks down from that branch's heads.
        """
        if id_ is not None and not isinstance(id_, str):
            return tuple(r for part in id_ for r in self.get_revisions(part))
        resolved, branch_label = self.resolve_symbols(id_)
        if len(resolved) == 1:
            try:
                steps = int(resolved[0])
            except ValueError:
                steps = 0
            if steps < 0:
                heads = [r for r in self.get_revisions("heads") if isinstance(r, Revision)]
                if branch_label is not None:
                    heads = [h for h in heads if branch_label in h.branch_labels]
                return tuple(self.walk(head, steps) for head in heads)
        return tuple(self._revision_for_ident(rev_id, branch_label) for rev_id in resolved)

    def get_revision(self, id_: str | None) -> Revision | None:
        """Return the one revision ``id_`` names, or None for ``base``.

        :raises MultipleHeadsError: when the identifier names several revisions.
        :raises UnknownRevisionError: when nothing matches.
        """
        resolved, branch_label = self.resolve_symbols(id_)
        if len(resolved) > 1:
            raise MultipleHeadsError(resolved, id_)
        if not resolved:
            if branch_label:
                self._resolve_branch(branch_label)
            return None
        return self._revision_for_ident(resolved[0], branch_label)

    def _resolve_branch(self, label: str) -> Revision:
        holder = self._labels.get(label)
        if holder is not None:
            return holder
        try:
            return self._revision_for_ident(label)
        except (UnknownRevisionError, AmbiguousRevisionError) as exc:
            raise UnknownBranchError(label) from exc

    def _revision_for_ident(self, ident: str, branch_label: str | None = None) -> Revision:
        branch_rev = self._resolve_branch(branch_label) if branch_label else None
        if not ident:
            raise UnknownRevisionError(ident, "An empty revision identifier names no revision")
        rev = self._revisions.get(ident) or self._labels.get(ident)
        if rev is None:
            keys = [*self._revisions, *self._labels]
            candidates: Sequence[str] = [k for k in keys if len(k) > 3 and k.startswith(ident)]
            if branch_label:
                candidates = self.filter_for_lineage(candidates, branch_label)
            if not candidates:
                hint = (
                    "; please ensure at least four characters are present for partial "
                    "revision identifier matches"
                    if len(ident) < 4
                    else ""
                )
                raise UnknownRevisionError(ident, f"Can't locate revision identified by '{ident}'{hint}")
            if len(candidates) > 1:
                raise AmbiguousRevisionError(ident, candidates)
            key = candidates[0]
            rev = self._revisions.get(key) or self._labels[key]
        if branch_rev is not None and rev not in self._lineage([branch_rev], False):
            raise UnknownRevisionError(
                ident, f"Revision {rev.revision} is not a member of branch '{branch_label}'"
            )
        return rev

    def filter_for_lineage(
        self,
        targets: Iterable[_Target],
        check_against: str | None,
        include_dependencies: bool = False,
    ) -> tuple[_Target, ...]:
        """Keep the revisions (or ids) in ``targets`` on a line of descent through ``check_against``.

        A target is kept when it is an ancestor or a descendant of the branch
        or revision(s) ``check_against`` names (``label@rev`` checks both).
        """
        ids, branch_label = self.resolve_symbols(check_against)
        shares = ([branch_label] if branch_label else []) + list(ids)
        if not shares:
            return tuple(targets)
        lineage: set[Revision] | None = None
        kept = []
        for target in targets:
            rev = target if isinstance(target, Revision) else self._revision_for_ident(target)
            if lineage is None:
                against = [self._revision_for_ident(s) for s in shares]
                lineage = self._lineage(against, include_dependencies)
            if rev in lineage:
                kept.append(target)
        return tuple(kept)

    def _lineage(self, against: Sequence[Revision], include_dependencies: bool) -> set[Revision]:
        """Return every revision that is an ancestor or a descendant of one of ``against``.

        Computed once from ``against`` rather than from each candidate: X is
        above A exactly when A is below X along the reversed links. With
        dependencies, "above" follows every dependency and "below" only the
        normalized ones (as Alembic's lineage test does), so the reversed
        links are all down revisions and the normalized children.
        """
        up: Callable[[Revision], Iterable[str]] = _versioned_ups
        down: Callable[[Revision], Iterable[str]] = _versioned_downs
        if include_dependencies:
            up, down = self._normalized_ups, _all_downs
        return set(self._related(against, down)).union(self._related(against, up))

    def _normalized_ups(self, rev: Revision) -> tuple[str, ...]:
        return self._normalized_children[rev.revision]

    def is_at_or_below(self, revision_id: str, tops: Iterable[str]) -> bool:
        """Return True when ``revision_id`` is one of ``tops`` or an ancestor of one.

        Ancestry counts dependencies (the normalized ones). A bit test per top,
        where walking each top's ancestors would make a long downgrade quadratic.

        :raises UnknownRevisionError: when a top names no revision.
        """
        masks = self._ancestor_masks()
        bit = 1 << self._order[revision_id]
        return any(
            masks[top.revision] & bit for top in self.get_revisions(tuple(tops)) if isinstance(top, Revision)
        )

    # -- traversal --------------------------------------------------------------------

    def _related(
        self,
        targets: Iterable[Revision],
        links: Callable[[Revision], Iterable[str]],
        check: bool = False,
    ) -> Iterator[Revision]:
        """Walk depth-first from ``targets`` along ``links``, each revision once.

        With ``check``, a target reached from another target is an error.
        """
        targets = list(targets)
        seen: set[Revision] = set()
        for target in targets:
            stack = [target]
            reached: set[Revision] = set()
            while stack:
                rev = stack.pop()
                reached.add(rev)
                if rev in seen:
                    continue
                seen.add(rev)
                stack.extend(self._revisions[i] for i in links(rev))
                yield rev
            if check:
                overlaps = reached.intersection(targets) - {target}
                if overlaps:
                    raise RevisionError(
                        f"Requested revision {target.revision} overlaps with other requested "
                        f"revisions {', '.join(sorted(r.revision for r in overlaps))}"
                    )

    def ancestors(
        self,
        targets: Iterable[Revision],
        include_dependencies: bool = True,
        check: bool = False,
    ) -> Iterator[Revision]:
        """Yield ``targets`` and everything below them."""
        links = _normalized_downs if include_dependencies else _versioned_downs
        return self._related(targets, links, check=check)

    def descendants(
        self,
        targets: Iterable[Revision],
        include_dependencies: bool = True,
        check: bool = False,
        omit_immediate_dependencies: bool = False,
    ) -> Iterator[Revision]:
        """Yield ``targets`` and everything above them."""
        targets = list(targets)
        links: Callable[[Revision], Iterable[str]]
        if omit_immediate_dependencies:
            first = set(targets)

            def links(r: Revision) -> Iterable[str]:
                return sorted(r.nextrev if r in first else r.all_nextrev)

        elif include_dependencies:
            links = _all_ups
        else:
            links = _versioned_ups
        return self._related(targets, links, check=check)

    def walk(
        self,
        start: str | Revision | None,
        steps: int,
        branch_label: str | None = None,
        no_overwalk: bool = True,
    ) -> WalkResult:
        """Walk ``steps`` revisions up (positive) or down (negative) from ``start``.

        ``None`` as start means "below the bases" going up and "the heads"
        going down. Walking past either end returns None when ``no_overwalk``
        (else stops where it is); walking down below the bases returns ``BASE``.

        :raises AmbiguousWalkError: when a step must choose between branches.
        """
        current: WalkResult = self.get_revision(start) if isinstance(start, str) else start
        for _ in range(abs(steps)):
            options: Sequence[WalkResult]
            if steps > 0:
                if current == BASE:
                    raise RelativeRevisionError("Cannot walk up from 'base'")
                above = self.get_revisions(self.bases if current is None else sorted(current.nextrev))
                if branch_label:
                    above = tuple(
                        self.filter_for_lineage([r for r in above if isinstance(r, Revision)], branch_label)
                    )
                options = above
            elif current == BASE:
                options = ()
            else:
                options = self.get_revisions(self.heads if current is None else current.down_revisions) or (
                    BASE,
                )
            if not options:
                return None if no_overwalk else current
            if len(options) > 1:
                raise AmbiguousWalkError()
            current = options[0]
        return current

    # -- targets relative to a database's current heads --------------------------------

    def parse_downgrade_target(
        self,
        current: RevisionIdentifiers,
        target: str | None,
        assert_relative_length: bool = True,
    ) -> tuple[str | None, WalkResult]:
        """Resolve a downgrade destination against the current heads.

        :return: the branch label named in the target (if any) and the
            destination revision (None or ``BASE`` for base).
        """
        if target is None:
            return None, None
        match = _RELATIVE.match(target)
        if match:
            branch_label, symbol, relative = match.groups()
            steps = int(relative)
            if steps >= 0:
                if symbol is None:
                    raise RelativeRevisionError(
                        f"Relative revision {relative} didn't produce {abs(steps)} migrations"
                    )
                rev = self.walk(symbol, steps, branch_label, no_overwalk=assert_relative_length)
                if rev is None:
                    raise RelativeRevisionError("Walked too far")
                return branch_label, rev
            relative_to_current = symbol is None
            if relative_to_current:
                if branch_label:
                    current_ids = as_tuple(current)
                    on_branch: Sequence[str] = self.filter_for_lineage(current_ids, branch_label)
                    if not on_branch:
                        all_current = self.all_current(current_ids)
                        on_branch = [r.revision for r in self.filter_for_lineage(all_current, branch_label)]
                    if len(on_branch) != 1:
                        raise AmbiguousWalkError(
                            f"Relative revision {target} is ambiguous: branch "
                            f"'{branch_label}' has {len(on_branch)} current heads"
                        )
                    symbol = on_branch[0]
                else:
                    current_ids = as_tuple(current)
                    if not current_ids:
                        raise RelativeRevisionError(
                            f"Relative revision {relative} didn't produce {abs(steps)} migrations"
                        )
                    if len(set(current_ids)) > 1:
                        raise AmbiguousWalkError(
                            f"downgrade {relative} from multiple heads is ambiguous; name the "
                            f"branch to walk, e.g. '{current_ids[0]}@{relative}'"
                        )
                    symbol = current_ids[0]
                    branch_label = symbol
            start = self.get_revision(symbol if branch_label is None else f"{branch_label}@{symbol}")
            rev = self.walk(start, steps, no_overwalk=assert_relative_length)
            if rev is None:
                if relative_to_current:
                    raise RelativeRevisionError(
                        f"Relative revision {relative} didn't produce {abs(steps)} migrations: fewer "
                        f"than {abs(steps)} revision(s) lie below {symbol}, where the database is"
                    )
                raise RelativeRevisionError("Walked too far")
            return branch_label, rev
        branch, _, symbol = target.rpartition("@")
        return (branch or None), self.get_revision(symbol)

    def parse_upgrade_target(
        self,
        current: RevisionIdentifiers,
        target: RevisionIdentifiers,
        assert_relative_length: bool = True,
    ) -> tuple[WalkResult, ...]:
        """Resolve an upgrade destination (absolute or ``+N``) against the current heads."""
        match = _RELATIVE.match(target) if isinstance(target, str) else None
        if not match:
            return self.get_revisions(target)
        branch_label, symbol, relative_str = match.groups()
        steps = int(relative_str)
        if steps <= 0:
            if symbol is None:
                raise RelativeRevisionError(
                    f"Relative revision {steps} didn't produce {abs(steps)} migrations"
                )
            start = self.get_revision(symbol if branch_label is None else f"{branch_label}@{symbol}")
            return (self.walk(start, steps, no_overwalk=assert_relative_length),)
        if symbol is not None:
            return (
                self.walk(
                    self.get_revision(symbol),
                    steps,
                    branch_label=branch_label,
                    no_overwalk=assert_relative_length,
                ),
            )
        current_ids: tuple[str | None, ...] = as_tuple(current) or (None,)
        starts: Sequence[str | None] = current_ids
        if branch_label:
            current_revs = [
                r for r in self.get_revisions([c for c in current_ids if c]) if isinstance(r, Revision)
            ]
            starts = [r.revision for r in self.filter_for_lineage(current_revs, branch_label)]
            if not starts:
                # The branch has no current head: start from its newest applied revision.
                active = self.filter_for_lineage(self.ancestors(current_revs), branch_label)
                below = {d for r in active for d in r.normalized_down_revisions}
                starts = [r.revision for r in active if r.revision not in below] or [None]
        if len(starts) > 1:
            raise AmbiguousWalkError("Ambiguous upgrade from multiple current revisions")
        rev = self.walk(starts[0], steps, branch_label=branch_label, no_overwalk=assert_relative_length)
        if rev is None:
            where = starts[0] or "base"
            raise RelativeRevisionError(
                f"Relative revision {relative_str} didn't produce {abs(steps)} migrations: fewer than "
                f"{abs(steps)} revision(s) lie past {where}, where the database is, on the way to head"
            )
        return (rev,)

    def all_current(self, ids: Iterable[str]) -> list[Revision]:
        """Return the branch tips among ``ids`` and everything they depend on, in file order."""
        named = [r for r in self.get_revisions(tuple(ids)) if isinstance(r, Revision)]
        applied = set(self.ancestors(named))
        # ``applied`` holds the down revisions of all its members, so a revision
        # is a tip exactly when none of its children is applied: no need to walk
        # everything above each one, as Alembic does.
        return [
            rev
            for rev in self._revisions.values()
            if rev in applied and not any(self._revisions[c] in applied for c in rev.nextrev)
        ]

    # -- collecting what a plan touches ---------------------------------------------

    def _collect_downgrade(
        self,
        upper: RevisionIdentifiers,
        lower: str | None,
        inclusive: bool,
        implicit_base: bool,
        assert_relative_length: bool,
    ) -> tuple[set[Revision], tuple[WalkResult, ...]]:
        branch_label, target = self.parse_downgrade_target(upper, lower, assert_relative_length)
        destination = target if isinstance(target, Revision) else None
        # Alembic counts a base once for its id and once for each label it
        # declares, so ``label@base`` filters (and checks its label) as soon as
        # the bases go by more than one name.
        names_for_roots: int
        if destination is None:
            roots = [r for r in self._revisions.values() if r.down_revision is None]
            names_for_roots = sum(1 + len(r.own_branch_labels) for r in roots)
        elif inclusive:
            roots = [destination]
        else:
            roots = [r for r in self.get_revisions(sorted(destination.nextrev)) if isinstance(r, Revision)]
        if destination is not None:
            names_for_roots = len(roots)
        if branch_label and names_for_roots > 1:
            on_branch = set(self.ancestors([self._resolve_branch(branch_label)], include_dependencies=False))
            roots = [r for r in roots if r in on_branch]
            if not roots:
                raise RangeNotAncestorError(None, None, "Not a valid downgrade target from current heads")
        heads = self.get_revisions(upper)
        head_revs = _require_revisions(heads, upper)
        drop = set(self.descendants(roots, include_dependencies=True))
        active = set(self.ancestors(head_revs, include_dependencies=True))
        drop &= active
        if implicit_base:
            drop.update(active - set(self.ancestors(roots)))
        if destination is not None and not drop and destination not in heads:
            raise RangeNotAncestorError(None, None, "Nothing to drop")
        return drop, heads

    def _collect_upgrade(
        self,
        upper: RevisionIdentifiers,
        lower: RevisionIdentifiers,
        inclusive: bool,
        implicit_base: bool,
        assert_relative_length: bool,
    ) -> tuple[set[Revision], tuple[WalkResult, ...]]:
        targets: Collection[Revision] = [
            _require_revision(r) for r in self.parse_upgrade_target(lower, upper, assert_relative_length)
        ]
        if isinstance(lower, str) and "@" in lower:
            branch = lower.partition("@")[0]
            branch_rev = self.get_revision(branch)
            if branch_rev is not None and branch_rev.revision == branch:
                if len(branch_rev.branch_labels) != 1:
                    raise RevisionError(
                        f"Revision {branch} used as a branch name must carry exactly one "
                        f"branch label; it has {len(branch_rev.branch_labels)}"
                    )
                branch = next(iter(branch_rev.branch_labels))
            targets = [t for t in targets if branch in t.branch_labels]
        required = set(self.ancestors(targets, check=True)).union(targets)
        current: tuple[WalkResult, ...] = self.get_revisions(lower)
        if not implicit_base and any(c is not None and c not in required for c in current):
            raise RangeNotAncestorError(_text(lower), _text(upper))
        if current and current[0] is None:
            # ``lower`` was relative (``-2:``): resolve it against ``upper``.
            _, rev = self.parse_downgrade_target(upper, _text(lower), assert_relative_length)
            if rev == BASE or rev is None:
                current, lower = (), None
            else:
                current, lower = (rev,), rev.revision
        current_revs = _require_revisions(current, lower)
        needs = required - set(self.ancestors(current_revs, check=True)).union(current_revs)
        if inclusive:
            needs.update(_require_revisions(self.get_revisions(lower), lower))
        if current_revs and not implicit_base:
            needs &= set(self.descendants(current_revs, check=True, include_dependencies=False))
        return needs, tuple(targets)

    def iterate_revisions(
        self,
        upper: RevisionIdentifiers,
        lower: RevisionIdentifiers,
        implicit_base: bool = False,
        inclusive: bool = False,
        assert_relative_length: bool = True,
        select_for_downgrade: bool = False,
    ) -> list[Revision]:
        """Return the revisions between ``lower`` and ``upper``, newest first.

        Revisions always come before their down revisions and dependencies;
        among branches, a branch is followed down to where it meets another,
        the order Alembic uses for its plans and history.
        """
        if select_for_downgrade:
            if lower is not None and not isinstance(lower, str):
                raise RevisionError("Expected downgrade target in string form")
            revs, heads = self._collect_downgrade(
                upper, lower, inclusive, implicit_base, assert_relative_length
            )
        else:
            revs, heads = self._collect_upgrade(
                upper, lower, inclusive, implicit_base, assert_relative_length
            )
        return [self._revisions[i] for i in self._topological_order(revs, heads)]

    def _topological_order(self, revisions: Collection[Revision], heads: Iterable[WalkResult]) -> list[str]:
        """Order ``revisions`` newest first, the way Alembic orders its plans.

        Each of ``heads`` (in file order) starts a line. The current line is
        followed down until it reaches a revision that another line still has
        below its tip; that line is then followed first. A merge point or a
        dependency splits a line, one new line per further down revision.
        """
        todo = {r.revision for r in revisions}
        position = self._order
        below = self._ancestor_masks()
        lines = sorted(
            {h.revision for h in heads if isinstance(h, Revision) and h.revision in todo},
            key=position.__getitem__,
        )
        output: list[str] = []
        i = 0
        while lines:
            candidate = lines[i]
            bit = 1 << position[candidate]
            blocker = next((j for j, tip in enumerate(lines) if j != i and below[tip] & bit), None)
            if blocker is not None:
                i = blocker
                continue
            output.append(candidate)
            todo.discard(candidate)
            downs = [
                d
                for d in self._revisions[candidate].normalized_down_revisions
                if d in todo and d not in lines
            ]
            if downs:
                lines[i] = downs[0]
                lines.extend(downs[1:])
            else:
                del lines[i]
                i = max(i - 1, 0)
        if todo:
            raise RevisionError(f"Revisions {', '.join(sorted(todo))} cannot be ordered from the given heads")
        return output

    def _ancestor_masks(self) -> dict[str, int]:
        """Map each id to a bit set of itself and its ancestors (bit = file position).

        Built once, on first use: it turns "is this an ancestor of that line's
        tip" into one bit test where Alembic recomputes ancestor sets at every
        merge point and dependency.
        """
        if self._masks is None:
            masks: dict[str, int] = {}
            for rev in self._link_order:
                mask = 1 << self._order[rev.revision]
                for down in rev.normalized_down_revisions:
                    mask |= masks[down]
                masks[rev.revision] = mask
            self._masks = masks
        return self._masks


# -- link functions ---------------------------------------------------------------------


def _versioned_downs(rev: Revision) -> tuple[str, ...]:
    return rev.down_revisions


def _normalized_downs(rev: Revision) -> tuple[str, ...]:
    return rev.normalized_down_revisions


def _all_downs(rev: Revision) -> tuple[str, ...]:
    return rev.all_down_revisions


def _versioned_ups(rev: Revision) -> list[str]:
    return sorted(rev.nextrev)


def _all_ups(rev: Revision) -> list[str]:
    return sorted(rev.all_nextrev)


def _require_revision(rev: WalkResult) -> Revision:
    if not isinstance(rev, Revision):
        raise RelativeRevisionError("Walked too far")
    return rev


def _require_revisions(revs: Iterable[WalkResult], named_by: RevisionIdentifiers) -> list[Revision]:
    """Return ``revs`` as revisions; a relative walk that ended at or below base is an error."""
    result = []
    for rev in revs:
        if not isinstance(rev, Revision):
            raise RelativeRevisionError(
                f"{_text(named_by)} does not name revisions on every branch: "
                f"a relative walk ended {'at base' if rev == BASE else 'below base'}"
            )
        result.append(rev)
    return result


def _text(ids: RevisionIdentifiers) -> str | None:
    if ids is None or isinstance(ids, str):
        return ids
    return ", ".join(ids) or None


@contextmanager
def recorded_heads(heads: Collection[str]) -> Iterator[None]:
    """Resolve revisions against what a database records: a recorded one no file defines says so.

    An unknown revision among ``heads`` (read from a version table) is not
    the user's typo but a missing revision file:
    :class:`~asyncmigrate.exceptions.RecordedRevisionMissingError`.
    """
    try:
        yield
    except UnknownRevisionError as exc:
        if exc.identifier not in heads or isinstance(exc, RecordedRevisionMissingError):
            raise
        raise RecordedRevisionMissingError(exc.identifier) from exc
