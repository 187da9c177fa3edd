"""The target grammar: symbols, ids and prefixes, branch labels, relative steps, ranges.

Every expectation here is what Alembic's RevisionMap answers for the same
history (the differential tests check that at random; these pin it down).
"""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from asyncmigrate.exceptions import (
    AmbiguousRevisionError,
    AmbiguousWalkError,
    MultipleHeadsError,
    RangeNotAncestorError,
    RelativeRevisionError,
    RevisionError,
    UnknownBranchError,
    UnknownRevisionError,
)
from asyncmigrate.revision import BASE, Revision, RevisionGraph
from asyncmigrate.revision.graph import WalkResult

from . import histories
from .histories import graph


def ids(results: Iterable[WalkResult]) -> tuple[str | None, ...]:
    """Revisions as ids; ``"base"`` and None as they are."""
    return tuple(r.revision if isinstance(r, Revision) else r for r in results)


def one_id(result: WalkResult) -> str | None:
    return result.revision if isinstance(result, Revision) else result


@pytest.fixture
def linear() -> RevisionGraph:
    return histories.linear()


@pytest.fixture
def open_branches() -> RevisionGraph:
    return histories.open_branches()


@pytest.fixture
def two_bases() -> RevisionGraph:
    return histories.two_bases()


class TestSymbols:
    def test_head_heads_base(self, linear: RevisionGraph) -> None:
        assert ids(linear.get_revisions("head")) == ("v3.0.0.c",)
        assert ids(linear.get_revisions("heads")) == ("v3.0.0.c",)
        assert linear.get_revisions("base") == ()
        assert linear.get_revisions(None) == ()
        assert linear.get_revision("base") is None
        assert one_id(linear.get_revision("head")) == "v3.0.0.c"

    def test_head_needs_one_head(self, open_branches: RevisionGraph) -> None:
        with pytest.raises(MultipleHeadsError) as info:
            open_branches.get_revisions("head")
        assert info.value.heads == ("b2aa", "c2aa")
        assert info.value.argument == "head"
        with pytest.raises(MultipleHeadsError):
            open_branches.current_head()

    def test_get_revision_needs_one_revision(self, open_branches: RevisionGraph) -> None:
        with pytest.raises(MultipleHeadsError):
            open_branches.get_revision("heads")

    def test_heads_are_real_heads(self, two_bases: RevisionGraph) -> None:
        assert ids(two_bases.get_revisions("heads")) == ("d747a8a88796",)
        with pytest.raises(MultipleHeadsError):
            two_bases.get_revisions("head")

    def test_several_identifiers(self, linear: RevisionGraph) -> None:
        assert ids(linear.get_revisions(("kilo", "059"))) == ("kilo", "059")
        assert ids(linear.get_revisions(["heads", "base", "059"])) == ("v3.0.0.c", "059")
        assert linear.get_revisions(()) == ()

    def test_resolve_symbols(self, two_bases: RevisionGraph) -> None:
        assert two_bases.resolve_symbols("networking@head") == (("d747a8a88796",), "networking")
        assert two_bases.resolve_symbols("heads") == (("d747a8a88796",), None)
        assert two_bases.resolve_symbols("main@heads") == (("ae1027a6acf",), "main")
        assert two_bases.resolve_symbols("base") == ((), None)

    def test_non_string_identifier(self, linear: RevisionGraph) -> None:
        with pytest.raises(RevisionError, match="not a string"):
            linear.get_revision((1,))  # type: ignore[arg-type]


class TestIdentifiers:
    def test_exact_non_hex_ids(self, linear: RevisionGraph) -> None:
        assert one_id(linear.get_revision("059")) == "059"
        assert one_id(linear.get_revision("v3.0.0.c")) == "v3.0.0.c"

    def test_unique_prefix(self, linear: RevisionGraph, two_bases: RevisionGraph) -> None:
        assert one_id(linear.get_revision("v3.0")) == "v3.0.0.c"
        assert one_id(two_bases.get_revision("1975")) == "1975ea83b712"

    def test_short_prefix_matches_when_the_id_is_longer_than_three(
        self, linear: RevisionGraph, two_bases: RevisionGraph
    ) -> None:
        # Alembic's rule: a candidate must be longer than three characters;
        # the prefix itself may be short.
        assert one_id(linear.get_revision("kil")) == "kilo"
        assert one_id(two_bases.get_revision("ae1")) == "ae1027a6acf"

    def test_ids_of_three_characters_match_only_exactly(self, linear: RevisionGraph) -> None:
        with pytest.raises(UnknownRevisionError, match="at least four characters") as info:
            linear.get_revision("05")
        assert info.value.identifier == "05"

    def test_ambiguous_prefix(self) -> None:
        g = graph(Revision("ae1027a6acf", None), Revision("ae10", "ae1027a6acf"), Revision("ae1099", "ae10"))
        assert one_id(g.get_revision("ae10")) == "ae10"
        with pytest.raises(AmbiguousRevisionError) as info:
            g.get_revision("ae1")
        assert set(info.value.candidates) == {"ae1027a6acf", "ae10", "ae1099"}
        assert isinstance(info.value, LookupError)

    def test_prefix_of_a_branch_label(self, two_bases: RevisionGraph) -> None:
        assert one_id(two_bases.get_revision("netw")) == "27c6a30d7c24"

    def test_label_names_the_revision_declaring_it(self, two_bases: RevisionGraph) -> None:
        assert one_id(two_bases.get_revision("networking")) == "27c6a30d7c24"

    @pytest.mark.parametrize("bad", ["nope", "", "kilo+1"])
    def test_unknown(self, linear: RevisionGraph, bad: str) -> None:
        with pytest.raises(UnknownRevisionError):
            linear.get_revisions(bad)


class TestBranchLabels:
    def test_label_at_head(self, open_branches: RevisionGraph) -> None:
        assert ids(open_branches.get_revisions("feature@head")) == ("b2aa",)
        assert ids(open_branches.get_revisions("feature@heads")) == ("b2aa",)
        assert open_branches.current_head("feature") == "b2aa"

    def test_label_at_base(self, open_branches: RevisionGraph) -> None:
        assert open_branches.get_revisions("feature@base") == ()

    def test_revision_as_branch_name(self, open_branches: RevisionGraph) -> None:
        assert ids(open_branches.get_revisions("c1aa@head")) == ("c2aa",)
        with pytest.raises(MultipleHeadsError) as info:
            open_branches.get_revisions("a1aa@head")
        assert info.value.argument == "a1aa@head"

    def test_label_at_revision_checks_membership(self, open_branches: RevisionGraph) -> None:
        assert ids(open_branches.get_revisions("feature@b2aa")) == ("b2aa",)
        with pytest.raises(UnknownRevisionError, match="not a member of branch 'feature'"):
            open_branches.get_revisions("feature@c2aa")

    def test_unknown_branch(self, linear: RevisionGraph) -> None:
        with pytest.raises(UnknownRevisionError):
            linear.get_revisions("feature@head")
        with pytest.raises(UnknownBranchError) as info:
            linear.get_revision("feature@kilo")
        assert info.value.label == "feature"

    def test_ambiguous_branch_name_is_unknown_branch(self, two_bases: RevisionGraph) -> None:
        g = graph(Revision("ae1027a6acf", None), Revision("ae10", "ae1027a6acf"), Revision("ae1099", "ae10"))
        with pytest.raises(UnknownBranchError):
            g.get_revision("ae1@ae10")


class TestRelative:
    def test_minus_n_walks_down_from_every_head(self, open_branches: RevisionGraph) -> None:
        assert ids(open_branches.get_revisions("-1")) == ("b1aa", "c1aa")
        assert ids(open_branches.get_revisions("-2")) == ("a1aa", "a1aa")
        assert ids(open_branches.get_revisions("-3")) == (BASE, BASE)
        assert ids(open_branches.get_revisions("-4")) == (None, None)

    def test_label_minus_n(self, open_branches: RevisionGraph, linear: RevisionGraph) -> None:
        assert ids(open_branches.get_revisions("feature@-1")) == ("b1aa",)
        # Not a label here: no head carries it, so nothing is named (as in Alembic).
        assert linear.get_revisions("feature@-1") == ()

    def test_walk_down_through_a_merge_is_ambiguous(self) -> None:
        with pytest.raises(AmbiguousWalkError):
            histories.branched().get_revisions("-1")

    def test_plus_n_is_relative_only_to_current_heads(self, linear: RevisionGraph) -> None:
        with pytest.raises(UnknownRevisionError):
            linear.get_revisions("+1")
        assert ids(linear.parse_upgrade_target((), "+1")) == ("059",)
        assert ids(linear.parse_upgrade_target(("kilo",), "+1")) == ("v3.0.0.c",)
        with pytest.raises(RelativeRevisionError, match="didn't produce 2 migrations"):
            linear.parse_upgrade_target(("kilo",), "+2")

    def test_rev_plus_n_and_rev_minus_n(self, linear: RevisionGraph) -> None:
        assert ids(linear.parse_upgrade_target(("v3.0.0.c",), "059+2")) == ("v3.0.0.c",)
        assert ids(linear.parse_upgrade_target((), "kilo-1")) == ("059",)
        # ``\w`` stops at the dot, so a dotted id takes no relative step (as in Alembic).
        with pytest.raises(UnknownRevisionError):
            linear.parse_upgrade_target((), "v3.0.0.c-1")
        assert linear.parse_downgrade_target(("v3.0.0.c",), "kilo+1") == (
            None,
            linear.get_revision("v3.0.0.c"),
        )
        assert linear.parse_downgrade_target((), "kilo-1") == (None, linear.get_revision("059"))

    def test_minus_n_relative_to_current(self, linear: RevisionGraph) -> None:
        assert one_id(linear.parse_downgrade_target(("v3.0.0.c",), "-1")[1]) == "kilo"
        assert linear.parse_downgrade_target(("v3.0.0.c",), "-3")[1] == BASE
        with pytest.raises(RelativeRevisionError, match="didn't produce 4 migrations"):
            linear.parse_downgrade_target(("v3.0.0.c",), "-4")
        with pytest.raises(RelativeRevisionError):
            linear.parse_downgrade_target(("v3.0.0.c",), "+1")

    def test_minus_n_from_several_heads_is_ambiguous(self, open_branches: RevisionGraph) -> None:
        # Alembic warns ("downgrade -1 from multiple heads is ambiguous") and
        # picks the first head; with pytest's ``filterwarnings = error`` that is
        # an error there too. asyncmigrate raises.
        with pytest.raises(AmbiguousWalkError):
            open_branches.parse_downgrade_target(("b2aa", "c2aa"), "-1")

    def test_label_minus_n_picks_the_branch(self, open_branches: RevisionGraph) -> None:
        label, rev = open_branches.parse_downgrade_target(("b2aa", "c2aa"), "feature@-1")
        assert (label, one_id(rev)) == ("feature", "b1aa")
        label, rev = open_branches.parse_downgrade_target(("b2aa", "c2aa"), "c1aa@-1")
        assert (label, one_id(rev)) == ("c1aa", "c1aa")

    def test_label_plus_n(self, open_branches: RevisionGraph) -> None:
        assert ids(open_branches.parse_upgrade_target(("a1aa",), "feature@+1")) == ("b1aa",)
        assert ids(open_branches.parse_upgrade_target((), "feature@+2")) == ("b1aa",)
        # The branch has no current head: start from where it leaves the applied history.
        assert ids(open_branches.parse_upgrade_target(("c2aa",), "feature@+1")) == ("b1aa",)

    def test_plus_n_at_a_branch_point_is_ambiguous(self, open_branches: RevisionGraph) -> None:
        with pytest.raises(AmbiguousWalkError):
            open_branches.parse_upgrade_target(("a1aa",), "+1")
        with pytest.raises(AmbiguousWalkError):
            open_branches.parse_upgrade_target(("b2aa", "c2aa"), "+1")

    def test_walk(self, linear: RevisionGraph, open_branches: RevisionGraph) -> None:
        assert one_id(linear.walk(None, 2)) == "kilo"
        assert one_id(linear.walk("kilo", -2)) == BASE
        assert linear.walk("kilo", 5) is None
        assert one_id(linear.walk("kilo", 5, no_overwalk=False)) == "v3.0.0.c"
        assert one_id(open_branches.walk("a1aa", 2, branch_label="feature")) == "b2aa"
        with pytest.raises(AmbiguousWalkError):
            open_branches.walk("a1aa", 1)
        assert one_id(linear.walk(BASE, 1)) == "059"


class TestRanges:
    """``a:b`` ranges, as ``history -r a:b`` asks for them: ``iterate_revisions(b, a)``."""

    def test_linear_range(self, linear: RevisionGraph) -> None:
        assert ids(linear.iterate_revisions("v3.0.0.c", "059")) == ("v3.0.0.c", "kilo")
        assert ids(linear.iterate_revisions("v3.0.0.c", "059", inclusive=True)) == (
            "v3.0.0.c",
            "kilo",
            "059",
        )
        assert ids(linear.iterate_revisions("heads", "base")) == ("v3.0.0.c", "kilo", "059")
        assert linear.iterate_revisions("kilo", "kilo") == []

    def test_relative_ends(self, linear: RevisionGraph) -> None:
        assert ids(linear.iterate_revisions("+1", "059")) == ("kilo",)
        assert ids(linear.iterate_revisions("+2", "059")) == ("v3.0.0.c", "kilo")
        assert ids(linear.iterate_revisions("heads", "-1")) == ("v3.0.0.c",)
        assert ids(linear.iterate_revisions("heads", "-2", inclusive=True)) == (
            "v3.0.0.c",
            "kilo",
            "059",
        )
        with pytest.raises(RelativeRevisionError):
            linear.iterate_revisions("+3", "059")

    def test_reversed_range(self, linear: RevisionGraph) -> None:
        with pytest.raises(RangeNotAncestorError):
            linear.iterate_revisions("059", "v3.0.0.c")

    def test_range_across_branches(self, open_branches: RevisionGraph) -> None:
        with pytest.raises(RangeNotAncestorError):
            open_branches.iterate_revisions("b2aa", "c1aa")

    def test_branches_are_followed_one_at_a_time(self, open_branches: RevisionGraph) -> None:
        assert ids(open_branches.iterate_revisions("heads", "base")) == (
            "b2aa",
            "b1aa",
            "c2aa",
            "c1aa",
            "a1aa",
        )
        assert ids(open_branches.iterate_revisions("feature@head", "base")) == ("b2aa", "b1aa", "a1aa")
        assert ids(open_branches.iterate_revisions("heads", "feature@base")) == ("b2aa", "b1aa", "a1aa")

    def test_merge_comes_first(self) -> None:
        assert ids(histories.branched().iterate_revisions("heads", "base")) == (
            "merge1",
            "b2aa",
            "b1aa",
            "c2aa",
            "c1aa",
            "a1aa",
        )

    def test_dependencies_are_included_before_what_needs_them(self, two_bases: RevisionGraph) -> None:
        assert ids(two_bases.iterate_revisions("networking@head", "base")) == (
            "d747a8a88796",
            "3cac04ae8714",
            "27c6a30d7c24",
            "ae1027a6acf",
            "1975ea83b712",
        )
        assert ids(two_bases.iterate_revisions("main@head", "base")) == ("ae1027a6acf", "1975ea83b712")
