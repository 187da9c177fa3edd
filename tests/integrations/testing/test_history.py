"""LinearHistory: one walk order over a history with branches, positions and steps between them."""

from __future__ import annotations

from pathlib import Path

import pytest

from asyncmigrate.exceptions import UnknownRevisionError
from asyncmigrate.integrations.testing.history import BASE, HEADS, LinearHistory, undo_target
from asyncmigrate.script import ScriptDirectory

from ...project import Rev, make_project


@pytest.fixture
def history(tmp_path: Path) -> LinearHistory:
    config = make_project(tmp_path, [
        Rev("a1", None), Rev("b2", "a1"), Rev("c3", "a1"), Rev("d4", ("b2", "c3")), Rev("e5", "d4"),
    ])
    return LinearHistory(ScriptDirectory.from_config(config))


def test_parents_come_before_children(history: LinearHistory) -> None:
    order = history.revisions
    assert order[0] == "a1"
    assert order[-1] == "e5"
    assert set(order) == {"a1", "b2", "c3", "d4", "e5"}
    for rev in order:
        for parent in history.scripts[rev].down_revisions:
            assert order.index(parent) < order.index(rev)


def test_positions_and_neighbours(history: LinearHistory) -> None:
    assert history.position(None) == history.position(BASE) == -1
    assert history.position("head") == history.position(HEADS) == 5
    assert history.previous("a1") == BASE
    assert history.next("e5") is None
    assert history.previous(HEADS) == "e5"
    assert history.resolve("e") == "e5"  # a unique prefix
    assert history.position_of_heads(("b2", "c3")) == max(history.position("b2"), history.position("c3"))
    assert history.between(-1, history.position("d4"))[-1] == "d4"
    assert history.between(3, 10) == ["e5"]
    with pytest.raises(UnknownRevisionError):
        history.resolve("zz")


def test_undo_target_of_a_merge_is_a_parent(history: LinearHistory) -> None:
    assert undo_target(history.scripts["d4"]) == "b2"
    assert undo_target(history.scripts["e5"]) == "e5@-1"
