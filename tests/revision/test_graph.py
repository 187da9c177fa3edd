"""The shape of a revision graph: heads, bases, branches, merges, labels, dependencies, errors."""

from __future__ import annotations

import pytest

from asyncmigrate.exceptions import (
    AsyncMigrateError,
    CycleError,
    DependencyCycleError,
    DuplicateBranchLabelError,
    DuplicateRevisionError,
    InvalidRevisionIdError,
    MissingDownRevisionError,
    RevisionError,
)
from asyncmigrate.revision import Revision, RevisionGraph

from . import histories
from .histories import graph


class TestShape:
    def test_linear(self) -> None:
        g = histories.linear()
        assert g.heads == ("v3.0.0.c",)
        assert g.real_heads == ("v3.0.0.c",)
        assert g.bases == ("059",)
        assert g.real_bases == ("059",)
        assert len(g) == 3
        assert "kilo" in g
        assert [r.revision for r in g] == ["059", "kilo", "v3.0.0.c"]

    def test_empty(self) -> None:
        g = graph()
        assert g.heads == g.real_heads == g.bases == g.real_bases == ()
        assert g.current_head() is None
        assert g.get_revisions("heads") == ()
        assert g.get_revisions("head") == ()

    def test_branch_point_has_two_heads_in_file_order(self) -> None:
        g = histories.open_branches()
        assert g.heads == ("b2aa", "c2aa")
        a1 = g.get_revision("a1aa")
        assert a1 is not None
        assert a1.is_branch_point
        assert a1.is_real_branch_point
        assert a1.nextrev == {"b1aa", "c1aa"}

    def test_heads_follow_file_order_not_ids(self) -> None:
        g = graph(Revision("zzzz", None), Revision("aaaa", None))
        assert g.heads == ("zzzz", "aaaa")
        assert g.bases == ("zzzz", "aaaa")

    def test_merge_point(self) -> None:
        g = histories.branched()
        assert g.heads == ("merge1",)
        merge = g.get_revision("merge1")
        assert merge is not None
        assert merge.is_merge_point
        assert merge.down_revisions == ("b2aa", "c2aa")
        assert not merge.is_branch_point
        assert merge.is_head

    def test_depends_on_makes_a_head_that_is_not_a_real_head(self) -> None:
        g = histories.two_bases()
        assert g.heads == ("ae1027a6acf", "d747a8a88796")
        assert g.real_heads == ("d747a8a88796",)
        assert g.bases == ("1975ea83b712", "27c6a30d7c24")
        assert g.real_bases == ("1975ea83b712", "27c6a30d7c24")

    def test_a_base_with_dependencies_is_not_a_real_base(self) -> None:
        g = graph(
            Revision("aaaa", None),
            Revision("bbbb", None, dependencies="aaaa"),
        )
        assert g.bases == ("aaaa", "bbbb")
        assert g.real_bases == ("aaaa",)
        assert g.heads == ("aaaa", "bbbb")
        assert g.real_heads == ("bbbb",)
        bbbb = g.get_revision("bbbb")
        assert bbbb is not None
        assert bbbb.is_base
        assert not bbbb.is_real_base

    def test_children_with_and_without_dependencies(self) -> None:
        g = histories.two_bases()
        ae10 = g.get_revision("ae1027a6acf")
        assert ae10 is not None
        assert ae10.nextrev == frozenset()
        assert ae10.all_nextrev == {"3cac04ae8714"}
        assert ae10.is_head
        assert not ae10.is_real_head


class TestDependencies:
    def test_label_resolves_to_the_revision_that_declares_it(self) -> None:
        g = histories.two_bases()
        d747 = g.get_revision("d747a8a88796")
        assert d747 is not None
        assert d747.dependencies == "main"
        assert d747.resolved_dependencies == ("1975ea83b712",)

    def test_normalized_down_revisions_add_dependencies(self) -> None:
        g = histories.two_bases()
        cac = g.get_revision("3cac04ae8714")
        assert cac is not None
        assert cac.all_down_revisions == ("27c6a30d7c24", "ae1027a6acf")
        assert cac.normalized_down_revisions == ("27c6a30d7c24", "ae1027a6acf")

    def test_dependency_an_ancestor_declares_is_dropped(self) -> None:
        g = graph(
            Revision("aaaa", None),
            Revision("bbbb", None),
            Revision("bbb2", "bbbb", dependencies="aaaa"),
            Revision("bbb3", "bbb2", dependencies=("aaaa", "bbbb")),
        )
        bbb3 = g.get_revision("bbb3")
        assert bbb3 is not None
        assert bbb3.resolved_dependencies == ("aaaa", "bbbb")
        # ``aaaa`` comes with bbb2; ``bbbb`` is not a dependency any ancestor declares.
        assert bbb3.normalized_dependencies == ("bbbb",)
        assert bbb3.normalized_down_revisions == ("bbb2", "bbbb")

    def test_same_dependency_by_id_and_label_counts_once(self) -> None:
        g = graph(
            Revision("aaaa", None, branch_labels="lib"),
            Revision("bbbb", None, dependencies=("lib", "aaaa")),
        )
        bbbb = g.get_revision("bbbb")
        assert bbbb is not None
        assert bbbb.resolved_dependencies == ("aaaa",)
        assert bbbb.normalized_down_revisions == ("aaaa",)

    def test_dependencies_keep_declared_order(self) -> None:
        g = graph(
            Revision("cccc", None),
            Revision("aaaa", None),
            Revision("bbbb", None),
            Revision("dddd", None, dependencies=("bbbb", "cccc", "aaaa")),
        )
        dddd = g.get_revision("dddd")
        assert dddd is not None
        assert dddd.normalized_down_revisions == ("bbbb", "cccc", "aaaa")


class TestBranchLabels:
    def test_label_covers_descendants(self) -> None:
        g = histories.branched()
        labelled = {r.revision for r in g if "feature" in r.branch_labels}
        assert labelled == {"b1aa", "b2aa", "merge1"}
        assert g.branch_labels == {"feature": "b1aa"}

    def test_label_reaches_down_to_the_branch_point(self) -> None:
        g = graph(
            Revision("aaaa", None),
            Revision("bbbb", "aaaa"),
            Revision("cccc", "bbbb"),
            Revision("dddd", "cccc", branch_labels="tip"),
        )
        assert all("tip" in r.branch_labels for r in g)

    def test_label_stops_at_a_branch_point_below(self) -> None:
        g = graph(
            Revision("aaaa", None),
            Revision("bbbb", "aaaa"),
            Revision("cccc", "aaaa"),
            Revision("dddd", "bbbb", branch_labels="tip"),
        )
        assert {r.revision for r in g if "tip" in r.branch_labels} == {"bbbb", "dddd"}

    def test_a_dependency_counts_as_a_branch_point(self) -> None:
        g = graph(
            Revision("aaaa", None),
            Revision("bbbb", "aaaa"),
            Revision("xxxx", None, dependencies="aaaa"),
            Revision("cccc", "bbbb", branch_labels="tip"),
        )
        assert {r.revision for r in g if "tip" in r.branch_labels} == {"bbbb", "cccc"}

    def test_own_labels_stay_separate(self) -> None:
        g = histories.branched()
        merge = g.get_revision("merge1")
        assert merge is not None
        assert merge.own_branch_labels == ()
        assert merge.branch_labels == {"feature"}

    def test_labels_of_two_revisions_on_one_line_merge(self) -> None:
        g = graph(
            Revision("aaaa", None, branch_labels="low"),
            Revision("bbbb", "aaaa", branch_labels="high"),
        )
        for rev in g:
            assert rev.branch_labels == {"low", "high"}


class TestLoadErrors:
    def test_every_error_has_one_root(self) -> None:
        assert issubclass(DuplicateRevisionError, RevisionError)
        assert issubclass(RevisionError, AsyncMigrateError)
        assert issubclass(DependencyCycleError, CycleError)
        assert issubclass(InvalidRevisionIdError, ValueError)

    def test_duplicate_revision_is_an_error(self) -> None:
        # Alembic only warns; asyncmigrate refuses (intended).
        with pytest.raises(DuplicateRevisionError) as info:
            graph(Revision("aaaa", None), Revision("aaaa", None))
        assert info.value.revision == "aaaa"

    def test_missing_down_revision(self) -> None:
        with pytest.raises(MissingDownRevisionError) as info:
            graph(Revision("aaaa", None), Revision("bbbb", "nope"))
        assert (info.value.missing, info.value.referenced_from, info.value.kind) == (
            "nope",
            "bbbb",
            "down_revision",
        )

    def test_missing_dependency(self) -> None:
        with pytest.raises(MissingDownRevisionError) as info:
            graph(Revision("aaaa", None), Revision("bbbb", "aaaa", dependencies="nolabel"))
        assert (info.value.missing, info.value.kind) == ("nolabel", "depends_on")

    def test_duplicate_branch_label(self) -> None:
        with pytest.raises(DuplicateBranchLabelError) as info:
            graph(
                Revision("aaaa", None, branch_labels="x"),
                Revision("bbbb", "aaaa", branch_labels="x"),
            )
        assert info.value.label == "x"

    def test_branch_label_equal_to_a_revision_id(self) -> None:
        with pytest.raises(DuplicateBranchLabelError):
            graph(Revision("aaaa", None, branch_labels="bbbb"), Revision("bbbb", "aaaa"))

    def test_self_loop(self) -> None:
        with pytest.raises(CycleError) as info:
            Revision("aaaa", "aaaa")
        assert not isinstance(info.value, DependencyCycleError)
        with pytest.raises(DependencyCycleError):
            Revision("aaaa", None, dependencies="aaaa")

    def test_cycle_without_a_base(self) -> None:
        with pytest.raises(CycleError) as info:
            graph(Revision("aaaa", "bbbb"), Revision("bbbb", "aaaa"))
        assert set(info.value.revisions) == {"aaaa", "bbbb"}

    def test_cycle_hanging_between_base_and_head(self) -> None:
        # Alembic's check misses this one (its plans then run cccc before bbbb).
        with pytest.raises(CycleError) as info:
            graph(
                Revision("aaaa", None),
                Revision("bbbb", ("aaaa", "cccc")),
                Revision("cccc", "bbbb"),
                Revision("dddd", "cccc"),
            )
        assert info.value.revisions == ("bbbb", "cccc")

    def test_dependency_cycle(self) -> None:
        with pytest.raises(DependencyCycleError):
            graph(
                Revision("aaaa", None, dependencies="cccc"),
                Revision("bbbb", "aaaa"),
                Revision("cccc", "bbbb"),
            )

    def test_dependency_cycle_through_a_label(self) -> None:
        with pytest.raises(DependencyCycleError):
            graph(
                Revision("aaaa", None, dependencies="app"),
                Revision("cccc", None, dependencies="aaaa", branch_labels="app"),
            )

    @pytest.mark.parametrize("bad", ["a@b", "a-b", "a+b", "a:b"])
    def test_reserved_characters_in_ids(self, bad: str) -> None:
        with pytest.raises(InvalidRevisionIdError) as info:
            Revision(bad, None)
        assert info.value.revision == bad


def test_graph_is_rebuilt_from_revisions_not_shared_state() -> None:
    first = histories.linear()
    again = RevisionGraph(first)
    assert again.heads == first.heads
    kilo = again.get_revision("kilo")
    assert kilo is not None
    assert kilo.nextrev == {"v3.0.0.c"}


class TestQueries:
    def test_all_current_lists_branch_tips_and_what_they_depend_on(self) -> None:
        g = histories.two_bases()
        assert [r.revision for r in g.all_current(["d747a8a88796"])] == ["ae1027a6acf", "d747a8a88796"]
        assert [r.revision for r in g.all_current(["3cac04ae8714"])] == ["ae1027a6acf", "3cac04ae8714"]
        assert g.all_current([]) == []

    def test_is_at_or_below(self) -> None:
        g = histories.two_bases()
        assert g.is_at_or_below("d747a8a88796", ["d747a8a88796"])
        assert g.is_at_or_below("1975ea83b712", ["3cac04ae8714"])  # through a dependency
        assert not g.is_at_or_below("3cac04ae8714", ["ae1027a6acf"])
        assert not g.is_at_or_below("27c6a30d7c24", [])

    def test_filter_for_lineage(self) -> None:
        g = histories.open_branches()
        assert g.filter_for_lineage(["b2aa", "c2aa", "a1aa"], "feature") == ("b2aa", "a1aa")
        revs = [r for r in g if r.revision in ("b2aa", "c2aa")]
        assert [r.revision for r in g.filter_for_lineage(revs, "c1aa")] == ["c2aa"]
        assert g.filter_for_lineage(["b2aa", "c2aa"], None) == ("b2aa", "c2aa")
        assert g.filter_for_lineage([], "nope") == ()

    def test_lineage_with_dependencies(self) -> None:
        g = histories.two_bases()
        candidates = ["ae1027a6acf", "d747a8a88796"]
        assert g.filter_for_lineage(candidates, "3cac04ae8714") == ("d747a8a88796",)
        # ae1027a6acf leads to 3cac04ae8714 only through its dependency.
        assert g.filter_for_lineage(candidates, "3cac04ae8714", include_dependencies=True) == (
            "ae1027a6acf",
            "d747a8a88796",
        )
