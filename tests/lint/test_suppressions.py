"""lint-ignore markers: which lines they cover, and what a bad marker reports."""

from __future__ import annotations

from asyncmigrate.lint.suppressions import read_suppressions

SOURCE = '''\
"""doc # asyncmigrate: lint-ignore[AM101] reason: inside a string, not a marker"""
# asyncmigrate: lint-ignore-revision[AM404, am403] reason: legacy tables unused since 4.2
from alembic import op


def upgrade():
    op.create_index("ix", "t", ["a"])  # asyncmigrate: lint-ignore[AM101] reason: t has 40 rows
    # asyncmigrate: lint-ignore[AM205] reason: filled by the previous release
    op.alter_column(
        "t", "a",
        nullable=False,
    )
    with op.batch_alter_table("t") as batch:  # asyncmigrate: lint-ignore[AM403] reason: dead column
        batch.drop_column("b")
    op.drop_column("t", "c")  # asyncmigrate: lint-ignore[AM403]
    op.drop_column("t", "d")  # asyncmigrate: lint-ignore reason: no ids
'''


def test_markers_and_what_they_cover() -> None:
    revision, index, alter, batch, no_reason, no_ids = read_suppressions("r.py", SOURCE)
    assert revision.covers is None
    assert revision.rule_ids == ("AM404", "AM403")
    assert revision.reason == "legacy tables unused since 4.2"
    assert index.covers == range(7, 8)
    assert index.reason == "t has 40 rows"
    assert alter.covers == range(9, 13)  # a marker alone on its line covers the next statement
    assert batch.covers == range(13, 15)  # a marker on a with line covers the block
    assert no_reason.reason is None
    assert no_ids.rule_ids == ()


def test_matching() -> None:
    revision, index, alter, _, no_reason, _ = read_suppressions("r.py", SOURCE)
    assert index.matches("AM101", "r.py", 7)
    assert not index.matches("AM101", "r.py", 8)
    assert not index.matches("AM102", "r.py", 7)
    assert not index.matches("AM101", "other.py", 7)
    assert alter.matches("AM205", "r.py", 9)
    assert revision.matches("AM403", "r.py", None)
    assert not no_reason.matches("AM403", "r.py", 15)  # a marker without reason silences nothing
