"""Reflection in bulk: the number of queries does not grow with the number of tables."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from .. import backends
from .support import NAMING_CONVENTION, our_diffs, sync_connection


def many_tables(count: int) -> sa.MetaData:
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)
    parent = sa.Table("parent", metadata, sa.Column("id", sa.Integer, primary_key=True))
    for n in range(count):
        sa.Table(
            f"t{n:03d}",
            metadata,
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("code", sa.String(20), unique=True),
            sa.Column("parent_id", sa.ForeignKey(parent.c.id), index=True),
            sa.Column("amount", sa.Numeric(10, 2), sa.CheckConstraint("amount >= 0", name="pos")),
            comment=f"table {n}",
        )
    return metadata


def queries_to_compare(url: Any, metadata: sa.MetaData) -> int:
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    with sync_connection(url) as conn:
        metadata.create_all(conn)
        conn.commit()
        sa.event.listen(conn, "before_cursor_execute", count)
        assert our_diffs(conn, metadata, {"compare_server_default": True}) == []
        sa.event.remove(conn, "before_cursor_execute", count)
        metadata.drop_all(conn)
        conn.commit()
    return len(statements)


@pytest.mark.postgresql
async def test_postgresql_reflection_is_a_handful_of_queries() -> None:
    backends.require("postgresql")
    async with backends.scratch_database("postgresql") as url:
        few = queries_to_compare(url, many_tables(5))
        many = queries_to_compare(url, many_tables(150))
    assert many == few
    assert many <= 20


@pytest.mark.postgresql
async def test_postgresql_rewrites_of_predicates_and_expressions_compare_equal() -> None:
    backends.require("postgresql")
    metadata = sa.MetaData()
    t = sa.Table(
        "t", metadata,
        sa.Column("id", sa.Integer, primary_key=True), sa.Column("status", sa.String(10)),
        sa.Column("score", sa.Numeric(5, 2)), sa.Column("active", sa.Boolean),
        sa.Column("deleted", sa.DateTime), sa.Column("data", sa.JSON),
    )
    predicates = {
        "in": t.c.status.in_(["a", "b"]), "not_in": t.c.status.not_in(["a", "b"]),
        "is_null": t.c.deleted.is_(None), "flag": t.c.active, "not_flag": sa.not_(t.c.active),
        "numeric": t.c.score > 5, "both": sa.and_(t.c.status == "x", t.c.score >= 1.5),
        "text": sa.text("status <> 'z' AND deleted IS NOT NULL"), "like": t.c.status.like("a%"),
        "ilike": t.c.status.ilike("a%"), "not_like": t.c.status.not_like("b%"), "ne": t.c.status != "q",
    }
    for name, predicate in predicates.items():
        sa.Index(f"ix_{name}", t.c.id, postgresql_where=predicate)
    sa.Index("ix_lower", sa.func.lower(t.c.status))
    sa.Index("ix_math", t.c.score * 2, t.c.status.desc())
    sa.Index("ix_json", sa.text("(data->>'k')"))
    async with backends.scratch_database("postgresql") as url:
        with sync_connection(url) as conn:
            metadata.create_all(conn)
            conn.commit()
            assert our_diffs(conn, metadata, {}) == []
