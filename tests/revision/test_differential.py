"""Differential tests: asyncmigrate's revision graph against Alembic's RevisionMap.

Hypothesis draws revision histories (linear runs, branches, merges, several
bases, branch labels, ``depends_on`` on ids and on labels, non-hex ids that
share prefixes, and now and then a broken history), builds both graphs from
the same revisions in the same order, and checks that they agree on:

* heads, real heads, bases, real bases, children, normalized dependencies and
  the branch labels each revision carries, and whether the history loads;
* ``get_revisions``/``get_revision`` for targets in every form of the grammar,
  valid or not; relative walks, lineage filters, branch tips, the parsing of
  upgrade and downgrade targets against current heads;
* ``iterate_revisions`` up and down, with and without ``implicit_base``,
  ``inclusive`` and ``assert_relative_length``: the same revisions in the same
  order;
* sessions of upgrade, downgrade and stamp commands (several destinations for
  stamp) run one after another from an empty version table -- or, now and then,
  from any rows at all -- carrying the rows along: the same plans (steps in the
  same order; stamp steps with the same from/to/direction/branch-move), and the
  same rows after each step, Alembic's side applied by its own
  ``HeadMaintainer.update_to_step`` (``alembic_reference.RecordingHeadMaintainer``
  records the inserts, deletes and updates instead of running SQL).

Plans and rows are compared by outcome only (raised or not), since Alembic
reports them as ``CommandError`` text; graph queries also check that each error
is the typed counterpart of Alembic's (``alembic_reference.ERROR_KINDS``).

Where Alembic's answer depends on hash order (it keeps children and normalized
dependencies in sets) the reference pins the order -- children sorted, normalized
dependencies in declared order, as asyncmigrate does -- see
``alembic_reference.PinnedRevision``; with that, orders are compared exactly. Which
row of a merge is updated and which deleted also comes from a set in Alembic, so
rows are compared by the kinds of change and the heads after each step.

Alembic's warnings count as errors (pytest
runs with ``filterwarnings = error``), and asyncmigrate must raise only its own
typed errors. The one intended difference -- a duplicate revision id is an error
here and a warning in Alembic -- is covered by the warnings-as-errors rule. The
other is a history whose links go round in a circle that Alembic's check
misses (a merge naming its own descendant): asyncmigrate refuses to load it,
and the test confirms such a history really is cyclic.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, event, given, note, settings
from hypothesis import strategies as st

from . import alembic_reference as ref
from .alembic_reference import Outcome, Spec

ID_POOL = [
    "ae1027a6acf",
    "ae10",
    "ae1099",
    "27c6a30d7c24",
    "27c6",
    "3cac04ae8714",
    "kilo",
    "kilometer",
    "059",
    "0591",
    "v3.0.0.c",
    "v3.0.1",
    "1975ea83b712",
    "1975ea",
    "a",
    "b2",
    "c12",
    "d4e5f6a7",
]
LABEL_POOL = ["feature", "featurex", "lbl", "other", "shared", "kilom"]
BAD_IDS = ["bad@id", "bad-id", "x+y", "r:s"]

#: ``ASYNCMIGRATE_DIFF_EXAMPLES=5000`` explores further (and with a fresh seed each run).
_EXAMPLES = int(os.environ.get("ASYNCMIGRATE_DIFF_EXAMPLES", "0"))
#: ``ASYNCMIGRATE_DIFF_MAX_REVISIONS=16`` draws larger histories.
_MAX_REVISIONS = int(os.environ.get("ASYNCMIGRATE_DIFF_MAX_REVISIONS", "10"))
SETTINGS = settings(
    max_examples=_EXAMPLES or 300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=not _EXAMPLES,
    database=None,
)


# -- histories ----------------------------------------------------------------------------


def _ids_tuple(values: Sequence[str]) -> str | tuple[str, ...] | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return tuple(values)


@st.composite
def histories(draw: st.DrawFn, allow_broken: bool = True) -> list[Spec]:
    """Draw a revision history, usually valid, in a possibly shuffled file order."""
    n = draw(st.integers(1, min(_MAX_REVISIONS, len(ID_POOL))))
    ids = draw(st.lists(st.sampled_from(ID_POOL), min_size=n, max_size=n, unique=True))
    labels_left = list(LABEL_POOL)
    specs: list[Spec] = []
    for i, rev in enumerate(ids):
        earlier = ids[:i]
        shape = draw(st.sampled_from(["linear", "linear", "linear", "base", "merge"]))
        down: list[str] = []
        if earlier and shape == "linear":
            down = [draw(st.one_of(st.just(earlier[-1]), st.sampled_from(earlier)))]
        elif earlier and shape == "merge":
            down = draw(st.lists(st.sampled_from(earlier), min_size=1, max_size=3, unique=True))
        labels: list[str] = []
        if labels_left and draw(st.integers(0, 4)) == 0:
            labels = draw(st.lists(st.sampled_from(labels_left), min_size=1, max_size=2, unique=True))
            labels_left = [lbl for lbl in labels_left if lbl not in labels]
        deps: list[str] = []
        if earlier and draw(st.integers(0, 3)) == 0:
            earlier_labels = [lbl for s in specs for lbl in ref_tuple(s.branch_labels)]
            deps = draw(
                st.lists(st.sampled_from(earlier + earlier_labels), min_size=1, max_size=2, unique=True)
            )
        specs.append(Spec(rev, _ids_tuple(down), _ids_tuple(deps), _ids_tuple(labels)))

    if allow_broken and draw(st.integers(0, 7)) == 0:
        specs = draw(_broken(specs))
    if draw(st.booleans()):
        specs = draw(st.permutations(specs))
    return list(specs)


def ref_tuple(value: str | tuple[str, ...] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return value


@st.composite
def _broken(draw: st.DrawFn, specs: list[Spec]) -> list[Spec]:
    """Break a history in one of the ways a real one breaks."""
    kind = draw(
        st.sampled_from(
            [
                "missing_down",
                "missing_dep",
                "duplicate_id",
                "cycle",
                "dependency_cycle",
                "duplicate_label",
                "label_is_id",
                "self_loop",
                "bad_id",
            ]
        )
    )
    i = draw(st.integers(0, len(specs) - 1))
    j = draw(st.integers(i, len(specs) - 1))
    s = specs[i]
    later = specs[j].revision
    if kind == "missing_down":
        specs[i] = Spec(s.revision, "deadbeef", s.depends_on, s.branch_labels)
    elif kind == "missing_dep":
        specs[i] = Spec(s.revision, s.down_revision, "nope", s.branch_labels)
    elif kind == "duplicate_id":
        specs.append(Spec(s.revision, None))
    elif kind == "cycle":
        specs[i] = Spec(s.revision, (*ref_tuple(s.down_revision), later), s.depends_on)
    elif kind == "dependency_cycle":
        specs[i] = Spec(s.revision, s.down_revision, (*ref_tuple(s.depends_on), later))
    elif kind == "duplicate_label":
        specs[i] = Spec(s.revision, s.down_revision, s.depends_on, "dup")
        t = specs[j]
        specs[j] = Spec(t.revision, t.down_revision, t.depends_on, (*ref_tuple(t.branch_labels), "dup"))
    elif kind == "label_is_id":
        specs[i] = Spec(s.revision, s.down_revision, s.depends_on, later)
    elif kind == "self_loop":
        specs[i] = Spec(s.revision, s.revision, s.depends_on, s.branch_labels)
    else:
        specs.append(Spec(draw(st.sampled_from(BAD_IDS)), specs[-1].revision))
    return specs


# -- targets ------------------------------------------------------------------------------


def _names(specs: Sequence[Spec]) -> tuple[list[str], list[str]]:
    ids = [s.revision for s in specs]
    labels = [lbl for s in specs for lbl in ref_tuple(s.branch_labels)]
    return ids, labels


@st.composite
def targets(draw: st.DrawFn, specs: Sequence[Spec]) -> Any:
    """Draw a target in any form of the grammar, often valid, sometimes not."""
    ids, labels = _names(specs)
    rev_id = draw(st.sampled_from(ids))
    prefix = rev_id[: draw(st.integers(1, len(rev_id)))]
    symbol = draw(st.sampled_from(["head", "heads", "base"]))
    branch = draw(st.sampled_from([*labels, rev_id, prefix, "nobranch"]))
    n = draw(st.integers(0, 3))
    sign = draw(st.sampled_from(["+", "-"]))
    form = draw(st.integers(0, 13))
    if form == 0:
        return symbol
    if form == 1:
        return rev_id
    if form == 2:
        return prefix
    if form == 3:
        return draw(st.sampled_from(labels)) if labels else "nolabel"
    if form == 4:
        return f"{branch}@{symbol}"
    if form == 5:
        return f"{branch}@{draw(st.sampled_from([rev_id, prefix]))}"
    if form == 6:
        return f"{sign}{n}"
    if form == 7:
        return f"{branch}@{sign}{n}"
    if form == 8:
        return f"{draw(st.sampled_from([rev_id, prefix, symbol]))}{sign}{n}"
    if form == 9:
        return f"{branch}@{rev_id}{sign}{n}"
    if form == 10:
        return None
    if form == 11:
        return draw(st.sampled_from(["nope", "", "heads@heads", "a@b@c", "ae10+1x"]))
    return tuple(draw(st.lists(st.sampled_from(ids + labels + ["head", "heads"]), max_size=2)))


def _starting_rows(data: st.DataObject, specs: Sequence[Spec]) -> tuple[str, ...]:
    """An empty version table, or now and then any rows at all (reachable or not)."""
    ids, _ = _names(specs)
    if data.draw(st.integers(0, 3)) == 0:
        return tuple(data.draw(st.lists(st.sampled_from(ids), max_size=3, unique=True)))
    return ()


# -- comparing ------------------------------------------------------------------------------


def same(theirs: Outcome, ours: Outcome, what: str, convert: Any = None, typed: bool = True) -> None:
    """Assert both calls succeeded with equal (converted) values, or both failed.

    With ``typed``, asyncmigrate's error must also be the typed counterpart of
    Alembic's (``alembic_reference.ERROR_KINDS``).
    """
    event(f"{what.split('(')[0].split(' ')[0]}: {'ok' if theirs.ok else 'error'}")
    assert theirs.ok == ours.ok, f"{what}: alembic {theirs}, asyncmigrate {ours}"
    if theirs.ok and convert is not None:
        assert convert(theirs.value) == convert(ours.value), what
    if not theirs.ok and typed:
        assert theirs.error is not None
        assert ours.error is not None
        assert ref.error_kind_ok(theirs.error, ours.error), (
            f"{what}: alembic {theirs.error}, asyncmigrate {ours.error}"
        )


def compare(
    theirs: Callable[..., Any],
    ours: Callable[..., Any],
    *args: Any,
    convert: Callable[[Any], Any] | None = None,
    **kwargs: Any,
) -> None:
    """Call Alembic's and asyncmigrate's function with the same arguments and compare."""
    shown = ", ".join([*(repr(a) for a in args), *(f"{k}={v!r}" for k, v in kwargs.items())])
    same(
        ref.alembic_call(theirs, *args, **kwargs),
        ref.our_call(ours, *args, **kwargs),
        f"{ours.__name__}({shown})",
        convert,
    )


def _one_id(result: Any) -> Any:
    return getattr(result, "revision", result)


def _built(specs: Sequence[Spec]) -> tuple[Any, Any]:
    note(f"specs={list(specs)!r}")
    theirs = ref.alembic_call(ref.build_alembic, specs)
    ours = ref.our_call(ref.build_ours, specs)
    if theirs.ok and not ours.ok and ref.is_cyclic(specs):
        # Intended: Alembic misses a circle that hangs between a base and a
        # head (and then plans a revision before its own down revision).
        assert ours.error is not None
        assert "CycleError" in ours.error
        event("load: cycle only asyncmigrate detects")
        assume(False)
    same(theirs, ours, "load")
    assume(theirs.ok)
    return theirs.value, ours.value


def _shape(rmap: Any, graph: Any) -> None:
    assert graph.heads == rmap.heads
    assert graph.real_heads == rmap._real_heads
    assert graph.bases == rmap.bases
    assert graph.real_bases == rmap._real_bases
    for rev in graph:
        theirs = rmap.get_revision(rev.revision)
        assert rev.nextrev == set(theirs.nextrev), rev.revision
        assert rev.all_nextrev == set(theirs._all_nextrev), rev.revision
        assert rev.normalized_down_revisions == theirs._normalized_down_revisions, rev.revision
        assert rev.branch_labels == theirs.branch_labels, rev.revision


# -- the tests -------------------------------------------------------------------------------


@SETTINGS
@given(st.data())
def test_graph_shape_and_targets(data: st.DataObject) -> None:
    specs = data.draw(histories())
    rmap, graph = _built(specs)
    _shape(rmap, graph)
    for _ in range(12):
        target = data.draw(targets(specs))
        compare(rmap.get_revisions, graph.get_revisions, target, convert=ref.ids_of)
        if target is None or isinstance(target, str):
            compare(rmap.get_revision, graph.get_revision, target, convert=_one_id)


@SETTINGS
@given(st.data())
def test_walks_lineage_and_relative_targets(data: st.DataObject) -> None:
    specs = data.draw(histories(allow_broken=False))
    rmap, graph = _built(specs)
    ids, labels = _names(specs)
    branches = st.sampled_from([None, *labels, *ids, "nobranch"])
    for _ in range(4):
        start = data.draw(st.sampled_from([None, *ids]))
        steps = data.draw(st.integers(-3, 3))
        branch = data.draw(branches)
        overwalk = data.draw(st.booleans())
        compare(rmap._walk, graph.walk, start, steps, branch, overwalk, convert=_one_id)
        compare(rmap.get_current_head, graph.current_head, branch)

        names = st.sampled_from(ids) | st.sampled_from([*labels, "nope", ids[0][:2]])
        subset = tuple(data.draw(st.lists(names, max_size=3, unique=True)))
        compare(rmap._get_all_current, graph.all_current, subset, convert=lambda r: set(ref.ids_of(r)))
        against = data.draw(targets(specs))
        if against is None or isinstance(against, str):
            with_deps = data.draw(st.booleans())
            compare(rmap.filter_for_lineage, graph.filter_for_lineage, subset, against, with_deps)

        target = data.draw(targets(specs))
        compare(
            rmap._resolve_revision_number,
            graph.resolve_symbols,
            target,
            convert=lambda r: (tuple(r[0]), r[1]),
        )
        if target is None or isinstance(target, str):
            compare(
                rmap._parse_downgrade_target,
                graph.parse_downgrade_target,
                subset,
                target,
                overwalk,
                convert=lambda r: (r[0], _one_id(r[1])),
            )
        compare(
            rmap._parse_upgrade_target,
            graph.parse_upgrade_target,
            subset,
            target,
            overwalk,
            convert=ref.ids_of,
        )


@SETTINGS
@given(st.data())
def test_iterate_revisions(data: st.DataObject) -> None:
    specs = data.draw(histories(allow_broken=False))
    rmap, graph = _built(specs)
    for _ in range(6):
        compare(
            rmap.iterate_revisions,
            graph.iterate_revisions,
            data.draw(targets(specs)),
            data.draw(targets(specs)),
            implicit_base=data.draw(st.booleans()),
            inclusive=data.draw(st.booleans()),
            assert_relative_length=data.draw(st.booleans()),
            select_for_downgrade=data.draw(st.booleans()),
            convert=ref.ids_of,
        )


def _compare_rows(
    theirs: Sequence[Any], ours: Sequence[Any], heads: Sequence[str], what: str
) -> tuple[str, ...] | None:
    """Apply both plans step by step; return the rows at the end (None if a step failed)."""
    their_rows = ref.apply_alembic_steps(theirs, heads)
    our_rows = ref.apply_our_steps(ours, heads)
    assert len(their_rows) == len(our_rows), f"{what}: rows {their_rows} vs {our_rows}"
    for i, (t, o) in enumerate(zip(their_rows, our_rows, strict=True)):
        same(t, o, f"{what}: step {i}", convert=tuple, typed=False)
    if not their_rows:
        return tuple(heads)
    if not their_rows[-1].ok:
        return None
    return tuple(sorted(their_rows[-1].value[1]))


@SETTINGS
@given(st.data())
def test_command_sessions(data: st.DataObject) -> None:
    """Run upgrade, downgrade and stamp in turn, carrying the version rows along."""
    specs = data.draw(histories(allow_broken=False))
    rmap, graph = _built(specs)
    heads = _starting_rows(data, specs)
    for _ in range(8):
        command = data.draw(st.sampled_from(["upgrade", "upgrade", "downgrade", "stamp"]))
        destination = data.draw(targets(specs))
        what = f"{command} {destination!r} from {heads!r}"
        if command == "stamp":
            destination = destination if isinstance(destination, tuple) else ref_tuple(destination)
            theirs = ref.alembic_stamp(rmap, heads, destination)
            ours = ref.our_stamp(graph, heads, destination)
            same(theirs, ours, what, ref.stamp_steps, typed=False)
        else:
            if not isinstance(destination, str):
                destination = "heads" if command == "upgrade" else "base"
            if command == "upgrade":
                theirs = ref.alembic_upgrade(rmap, heads, destination)
                ours = ref.our_upgrade(graph, heads, destination)
            else:
                theirs = ref.alembic_downgrade(rmap, heads, destination)
                ours = ref.our_downgrade(graph, heads, destination)
            same(theirs, ours, what, ref.revision_steps, typed=False)
        if theirs.ok:
            rows = _compare_rows(theirs.value, ours.value, heads, what)
            if rows is not None:
                heads = rows


@pytest.mark.parametrize("seed_specs", [0])
def test_reference_pins_orders(seed_specs: int) -> None:
    """The pinned reference iterates children sorted and keeps declared dependency order."""
    specs = [
        Spec("a"),
        Spec("c12", "a"),
        Spec("b2", "a"),
        Spec("kilo", None),
        Spec("ae10", "c12", ("kilo", "b2")),
    ]
    rmap = ref.build_alembic(specs)
    assert list(rmap.get_revision("a").nextrev) == ["b2", "c12"]
    assert rmap.get_revision("ae10")._normalized_down_revisions == ("c12", "kilo", "b2")
