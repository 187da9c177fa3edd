"""Upgrade, downgrade and stamp plans, and the version rows each step writes.

The expectations are Alembic's (``ScriptDirectory._upgrade_revs`` and friends,
rows by ``HeadMaintainer``). Where Alembic picks a row from a set -- which of
a merge's rows is updated and which deleted -- asyncmigrate always takes the
down revisions in declared order: it deletes all but the last, and updates the
last; an unmerge inserts all but the last and updates to the last.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pytest

from asyncmigrate.exceptions import (
    AmbiguousWalkError,
    MultipleHeadsError,
    RangeNotAncestorError,
    RelativeRevisionError,
    RevisionError,
    VersionTableError,
)
from asyncmigrate.revision import MigrationStep, RevisionStep, StampStep, VersionChange
from asyncmigrate.revision.plan import MigrationInfo, downgrade_plan, stamp_plan, upgrade_plan

from . import histories


def run(steps: Sequence[MigrationStep], heads: Iterable[str] = ()) -> list[tuple[str, list[str], list[str]]]:
    """Apply ``steps`` to a version table holding ``heads``.

    :return: per step, its description, its row changes and the rows after it.
    """
    rows = set(heads)
    out = []
    for step in steps:
        changes = step.advance(rows)
        out.append((_describe(step), [str(c) for c in changes], sorted(rows)))
    return out


def _describe(step: MigrationStep) -> str:
    if isinstance(step, RevisionStep):
        return f"{'up' if step.is_upgrade else 'down'} {step.revision.revision}"
    assert isinstance(step, StampStep)
    return f"stamp {step.from_} -> {step.to_}"


def order(steps: Sequence[RevisionStep]) -> list[str]:
    return [s.revision.revision for s in steps]


class TestUpgrade:
    def test_linear_from_empty(self) -> None:
        g = histories.linear()
        assert run(upgrade_plan(g, (), "heads")) == [
            ("up 059", ["insert 059"], ["059"]),
            ("up kilo", ["update 059 -> kilo"], ["kilo"]),
            ("up v3.0.0.c", ["update kilo -> v3.0.0.c"], ["v3.0.0.c"]),
        ]

    def test_relative(self) -> None:
        g = histories.linear()
        assert run(upgrade_plan(g, ("059",), "+1"), ("059",)) == [
            ("up kilo", ["update 059 -> kilo"], ["kilo"]),
        ]

    def test_nothing_to_do(self) -> None:
        g = histories.linear()
        assert upgrade_plan(g, ("v3.0.0.c",), "heads") == []
        # An older destination is not an upgrade; Alembic plans nothing either.
        assert upgrade_plan(g, ("kilo",), "059") == []

    def test_branches_then_merge(self) -> None:
        g = histories.branched()
        assert run(upgrade_plan(g, (), "heads")) == [
            ("up a1aa", ["insert a1aa"], ["a1aa"]),
            ("up c1aa", ["update a1aa -> c1aa"], ["c1aa"]),
            ("up c2aa", ["update c1aa -> c2aa"], ["c2aa"]),
            ("up b1aa", ["insert b1aa"], ["b1aa", "c2aa"]),
            ("up b2aa", ["update b1aa -> b2aa"], ["b2aa", "c2aa"]),
            ("up merge1", ["delete b2aa", "update c2aa -> merge1"], ["merge1"]),
        ]

    def test_second_branch_gets_its_own_row(self) -> None:
        g = histories.branched()
        heads = ("b2aa",)
        assert run(upgrade_plan(g, heads, "c2aa"), heads) == [
            ("up c1aa", ["insert c1aa"], ["b2aa", "c1aa"]),
            ("up c2aa", ["update c1aa -> c2aa"], ["b2aa", "c2aa"]),
        ]

    def test_dependency_on_another_base(self) -> None:
        g = histories.two_bases()
        assert run(upgrade_plan(g, (), "heads")) == [
            ("up 1975ea83b712", ["insert 1975ea83b712"], ["1975ea83b712"]),
            ("up ae1027a6acf", ["update 1975ea83b712 -> ae1027a6acf"], ["ae1027a6acf"]),
            ("up 27c6a30d7c24", ["insert 27c6a30d7c24"], ["27c6a30d7c24", "ae1027a6acf"]),
            (
                "up 3cac04ae8714",
                ["delete 27c6a30d7c24", "update ae1027a6acf -> 3cac04ae8714"],
                ["3cac04ae8714"],
            ),
            ("up d747a8a88796", ["update 3cac04ae8714 -> d747a8a88796"], ["d747a8a88796"]),
        ]

    def test_branch_label_head(self) -> None:
        g = histories.two_bases()
        assert order(upgrade_plan(g, (), "main@head")) == ["1975ea83b712", "ae1027a6acf"]
        heads = ("ae1027a6acf",)
        assert order(upgrade_plan(g, heads, "networking@head")) == [
            "27c6a30d7c24",
            "3cac04ae8714",
            "d747a8a88796",
        ]

    def test_head_with_several_heads(self) -> None:
        with pytest.raises(MultipleHeadsError):
            upgrade_plan(histories.open_branches(), (), "head")

    def test_relative_too_far(self) -> None:
        with pytest.raises(RelativeRevisionError):
            upgrade_plan(histories.linear(), ("kilo",), "+2")

    def test_relative_from_several_heads(self) -> None:
        with pytest.raises(AmbiguousWalkError):
            upgrade_plan(histories.open_branches(), ("b2aa", "c2aa"), "+1")


class TestDowngrade:
    def test_linear_to_base(self) -> None:
        g = histories.linear()
        heads = ("v3.0.0.c",)
        assert run(downgrade_plan(g, heads, "base"), heads) == [
            ("down v3.0.0.c", ["update v3.0.0.c -> kilo"], ["kilo"]),
            ("down kilo", ["update kilo -> 059"], ["059"]),
            ("down 059", ["delete 059"], []),
        ]

    def test_relative(self) -> None:
        g = histories.linear()
        assert order(downgrade_plan(g, ("v3.0.0.c",), "-1")) == ["v3.0.0.c"]

    def test_destination_above_current(self) -> None:
        with pytest.raises(RangeNotAncestorError, match="not a valid downgrade target"):
            downgrade_plan(histories.linear(), ("059",), "kilo")

    def test_unmerge(self) -> None:
        g = histories.branched()
        heads = ("merge1",)
        assert run(downgrade_plan(g, heads, "b2aa"), heads) == [
            ("down merge1", ["insert b2aa", "update merge1 -> c2aa"], ["b2aa", "c2aa"]),
        ]

    def test_merge_to_base(self) -> None:
        g = histories.branched()
        heads = ("merge1",)
        assert run(downgrade_plan(g, heads, "base"), heads) == [
            ("down merge1", ["insert b2aa", "update merge1 -> c2aa"], ["b2aa", "c2aa"]),
            ("down b2aa", ["update b2aa -> b1aa"], ["b1aa", "c2aa"]),
            ("down b1aa", ["delete b1aa"], ["c2aa"]),
            ("down c2aa", ["update c2aa -> c1aa"], ["c1aa"]),
            ("down c1aa", ["update c1aa -> a1aa"], ["a1aa"]),
            ("down a1aa", ["delete a1aa"], []),
        ]

    def test_one_branch_by_label(self) -> None:
        g = histories.open_branches()
        heads = ("b2aa", "c2aa")
        assert run(downgrade_plan(g, heads, "feature@-1"), heads) == [
            ("down b2aa", ["update b2aa -> b1aa"], ["b1aa", "c2aa"]),
        ]

    def test_minus_one_from_several_heads(self) -> None:
        with pytest.raises(AmbiguousWalkError):
            downgrade_plan(histories.open_branches(), ("b2aa", "c2aa"), "-1")

    def test_minus_one_through_a_merge(self) -> None:
        with pytest.raises(AmbiguousWalkError):
            downgrade_plan(histories.branched(), ("merge1",), "-1")

    def test_label_base_takes_dependents_along(self) -> None:
        g = histories.two_bases()
        heads = ("d747a8a88796",)
        assert run(downgrade_plan(g, heads, "main@base"), heads) == [
            ("down d747a8a88796", ["update d747a8a88796 -> 3cac04ae8714"], ["3cac04ae8714"]),
            (
                "down 3cac04ae8714",
                ["insert 27c6a30d7c24", "update 3cac04ae8714 -> ae1027a6acf"],
                ["27c6a30d7c24", "ae1027a6acf"],
            ),
            ("down ae1027a6acf", ["update ae1027a6acf -> 1975ea83b712"], ["1975ea83b712", "27c6a30d7c24"]),
            ("down 1975ea83b712", ["delete 1975ea83b712"], ["27c6a30d7c24"]),
        ]

    def test_label_base_keeps_what_it_depends_on(self) -> None:
        g = histories.two_bases()
        heads = ("d747a8a88796",)
        assert run(downgrade_plan(g, heads, "networking@base"), heads)[-1] == (
            "down 27c6a30d7c24",
            ["delete 27c6a30d7c24"],
            ["ae1027a6acf"],
        )

    def test_dependency_still_needed(self) -> None:
        with pytest.raises(RangeNotAncestorError):
            downgrade_plan(histories.two_bases(), ("d747a8a88796",), "ae1027a6acf")


class TestStamp:
    def test_heads_from_empty(self) -> None:
        g = histories.open_branches()
        steps = stamp_plan(g, "heads", ())
        assert steps == [
            StampStep((), "b2aa", is_upgrade=True, branch_move=True),
            StampStep((), "c2aa", is_upgrade=True, branch_move=True),
        ]
        assert run(steps)[-1][2] == ["b2aa", "c2aa"]

    def test_base(self) -> None:
        g = histories.open_branches()
        heads = ("b2aa", "c2aa")
        assert run(stamp_plan(g, "base", heads), heads) == [
            ("stamp ('b2aa',) -> ()", ["delete b2aa"], ["c2aa"]),
            ("stamp ('c2aa',) -> ()", ["delete c2aa"], []),
        ]
        assert stamp_plan(g, None, heads) == stamp_plan(g, "base", heads)

    def test_label_base_deletes_only_that_branch(self) -> None:
        g = histories.open_branches()
        heads = ("b2aa", "c2aa")
        assert run(stamp_plan(g, "feature@base", heads), heads) == [
            ("stamp ('b2aa',) -> ()", ["delete b2aa"], ["c2aa"]),
        ]

    def test_down_one_branch(self) -> None:
        g = histories.open_branches()
        heads = ("b2aa", "c2aa")
        assert run(stamp_plan(g, "b1aa", heads), heads) == [
            ("stamp ('b2aa',) -> ('b1aa',)", ["update b2aa -> b1aa"], ["b1aa", "c2aa"]),
        ]

    def test_down_below_a_branch_point_merges_rows(self) -> None:
        g = histories.open_branches()
        heads = ("b2aa", "c2aa")
        assert run(stamp_plan(g, "a1aa", heads), heads) == [
            ("stamp ('b2aa', 'c2aa') -> ('a1aa',)", ["delete b2aa", "update c2aa -> a1aa"], ["a1aa"]),
        ]

    def test_up(self) -> None:
        g = histories.open_branches()
        steps = stamp_plan(g, "b2aa", ("a1aa",))
        assert steps == [StampStep("a1aa", "b2aa", is_upgrade=True, branch_move=False)]
        assert run(steps, ("a1aa",))[-1][2] == ["b2aa"]

    def test_to_a_merge(self) -> None:
        g = histories.branched()
        heads = ("b2aa", "c2aa")
        assert run(stamp_plan(g, "merge1", heads), heads) == [
            ("stamp ('b2aa', 'c2aa') -> ('merge1',)", ["delete b2aa", "update c2aa -> merge1"], ["merge1"]),
        ]

    def test_several_destinations(self) -> None:
        g = histories.open_branches()
        assert run(stamp_plan(g, ("b2aa", "c1aa"), ())) == [
            ("stamp () -> ('b2aa',)", ["insert b2aa"], ["b2aa"]),
            ("stamp () -> ('c1aa',)", ["insert c1aa"], ["b2aa", "c1aa"]),
        ]

    def test_new_branch_next_to_recorded_one(self) -> None:
        g = histories.open_branches()
        heads = ("c2aa",)
        assert run(stamp_plan(g, "feature@head", heads), heads) == [
            ("stamp () -> ('b2aa',)", ["insert b2aa"], ["b2aa", "c2aa"]),
        ]

    def test_already_there(self) -> None:
        assert stamp_plan(histories.open_branches(), "b1aa", ("b1aa",)) == []

    def test_heads_with_dependencies(self) -> None:
        g = histories.two_bases()
        assert stamp_plan(g, "heads", ()) == [StampStep((), "d747a8a88796", True, True)]
        assert stamp_plan(g, "heads", ("ae1027a6acf",)) == [
            StampStep(("ae1027a6acf",), "d747a8a88796", True, False)
        ]

    def test_head_needs_one_head(self) -> None:
        with pytest.raises(MultipleHeadsError, match="please specify a single target revision"):
            stamp_plan(histories.open_branches(), "head", ())

    def test_several_destinations_below_one_row(self) -> None:
        # Alembic plans two moves of the one row and fails on the second; so do we.
        g = histories.branched()
        steps = stamp_plan(g, ("b2aa", "c2aa"), ("merge1",))
        assert len(steps) == 2
        with pytest.raises(VersionTableError):
            run(steps, ("merge1",))

    def test_relative_walk_to_base_is_refused(self) -> None:
        with pytest.raises(RelativeRevisionError):
            stamp_plan(histories.linear(), "-3", ())


class TestRows:
    def test_version_change_text(self) -> None:
        assert str(VersionChange("insert", new="a")) == "insert a"
        assert str(VersionChange("delete", old="a")) == "delete a"
        assert str(VersionChange("update", old="a", new="b")) == "update a -> b"

    def test_step_against_rows_it_does_not_expect(self) -> None:
        g = histories.linear()
        (step,) = downgrade_plan(g, ("kilo",), "059")
        with pytest.raises(VersionTableError):
            step.advance({"v3.0.0.c"})
        (up,) = upgrade_plan(g, ("059",), "kilo")
        with pytest.raises(VersionTableError):
            up.advance({"059", "kilo"})

    def test_advance_updates_the_set_in_place(self) -> None:
        g = histories.linear()
        rows = {"059"}
        (step,) = upgrade_plan(g, ("059",), "kilo")
        assert step.advance(rows) == [VersionChange("update", old="059", new="kilo")]
        assert rows == {"kilo"}

    def test_stamp_update_needs_one_revision_each_side(self) -> None:
        with pytest.raises(VersionTableError):
            StampStep("a", (), True, False).advance({"a", "x"})


class TestSteps:
    def test_revision_step(self) -> None:
        g = histories.two_bases()
        (step,) = [s for s in upgrade_plan(g, (), "heads") if s.revision.revision == "3cac04ae8714"]
        assert step.from_revisions == ("27c6a30d7c24", "ae1027a6acf")
        assert step.to_revisions == ("3cac04ae8714",)
        assert str(step) == "upgrade 27c6a30d7c24, ae1027a6acf -> 3cac04ae8714"
        assert step == RevisionStep(g, step.revision, True)
        assert step != RevisionStep(g, step.revision, False)
        assert step.info == MigrationInfo(
            up_revision_ids=("3cac04ae8714",),
            down_revision_ids=("27c6a30d7c24", "ae1027a6acf"),
            is_upgrade=True,
            is_stamp=False,
        )
        assert step.info.is_migration
        assert step.info.source_revision_ids == ("27c6a30d7c24", "ae1027a6acf")
        assert step.info.destination_revision_ids == ("3cac04ae8714",)
        assert step.info.up_revision_id == "3cac04ae8714"

    def test_downgrade_step(self) -> None:
        g = histories.linear()
        (step,) = downgrade_plan(g, ("kilo",), "059")
        assert step.is_downgrade
        assert step.from_revisions == ("kilo",)
        assert step.to_revisions == ("059",)
        assert str(step) == "downgrade kilo -> 059"

    def test_stamp_step(self) -> None:
        step = StampStep(("b2aa", "c2aa"), "a1aa", is_upgrade=False, branch_move=False)
        assert step.from_revisions == ("b2aa", "c2aa")
        assert step.to_revisions == ("a1aa",)
        assert str(step) == "stamp b2aa, c2aa -> a1aa"
        assert step.info.is_stamp
        assert step.info.up_revision_ids == ("b2aa", "c2aa")
        assert step.info.source_revision_ids == ("b2aa", "c2aa")
        assert hash(step) == hash(StampStep(("b2aa", "c2aa"), "a1aa", False, False))

    def test_stamp_between_recorded_heads(self) -> None:
        # Alembic asserts; asyncmigrate raises a typed error.
        g = histories.linear()
        with pytest.raises(RevisionError):
            stamp_plan(g, "kilo", ("059", "v3.0.0.c"))
