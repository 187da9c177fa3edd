"""Large histories stay fast: nothing in loading or planning grows with the square of the size.

Alembic's revision map is quadratic in a few places (normalizing dependencies,
finding branch tips for ``current``, the version rows of a long downgrade);
these would take many seconds at this size if any of them came back. The
bounds are loose on purpose: they catch a change of growth, not a slow machine.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

import pytest

from asyncmigrate.revision import Revision, RevisionGraph
from asyncmigrate.revision.plan import downgrade_plan, upgrade_plan

T = TypeVar("T")

SIZE = 5000


def feature_branches(size: int, seed: int = 7) -> list[Revision]:
    """A trunk with short-lived branches merged back and a few ``depends_on``."""
    rnd = random.Random(seed)
    revisions = [Revision("r00000", None)]
    trunk, branches = "r00000", []
    for i in range(1, size):
        rev_id = f"r{i:05d}"
        roll = rnd.random()
        if roll < 0.1 and len(branches) < 5:
            branches.append(rev_id)
            revisions.append(Revision(rev_id, trunk))
        elif roll < 0.3 and branches:
            j = rnd.randrange(len(branches))
            revisions.append(Revision(rev_id, branches[j]))
            branches[j] = rev_id
        elif roll < 0.38 and branches:
            branch = branches.pop(rnd.randrange(len(branches)))
            revisions.append(Revision(rev_id, (trunk, branch)))
            trunk = rev_id
        else:
            dependency = rnd.choice(revisions[:-1]).revision if roll > 0.97 else None
            revisions.append(Revision(rev_id, trunk, dependencies=dependency))
            trunk = rev_id
    return revisions


def timed(fn: Callable[[], T], budget: float) -> T:
    started = time.perf_counter()
    result = fn()
    elapsed = time.perf_counter() - started
    assert elapsed < budget, f"took {elapsed:.2f}s (budget {budget}s)"
    return result


@pytest.mark.parametrize(
    "history",
    [
        lambda: [Revision(f"{i:012x}", f"{i - 1:012x}" if i else None) for i in range(SIZE)],
        lambda: feature_branches(SIZE),
    ],
    ids=["linear", "feature-branches"],
)
def test_large_history(history: Callable[[], list[Revision]]) -> None:
    graph = timed(lambda: RevisionGraph(history()), 5)
    heads = graph.real_heads
    timed(lambda: graph.get_revisions("heads"), 1)
    steps = timed(lambda: upgrade_plan(graph, (), "heads"), 5)
    assert len(steps) == SIZE
    rows: set[str] = set()

    def apply_upgrade() -> None:
        for step in steps:
            step.advance(rows)

    timed(apply_upgrade, 5)
    assert rows == set(heads)
    tips = timed(lambda: graph.all_current(heads), 2)
    assert {r.revision for r in tips} >= set(heads)
    down = timed(lambda: downgrade_plan(graph, heads, "base"), 5)

    def apply_downgrade() -> None:
        for step in down:
            step.advance(rows)

    timed(apply_downgrade, 5)
    assert rows == set()
