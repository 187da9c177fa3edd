"""Revision files using ``from alembic import op`` run the directives through the runtime.

Upgrade, downgrade and upgrade again through ``command`` on each backend,
with a batch migration among the revisions: rows written before it survive
it and its downgrade.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import URL

from asyncmigrate import command

from ..project import Rev, make_project
from .support import backend_of, execute, rows, snapshot

REVISIONS = [
    Rev(
        "r1",
        None,
        """
        op.create_table(
            "author",
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("name", sa.String(40), nullable=False),
        )
        op.create_table(
            "book",
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("author_id", sa.Integer, sa.ForeignKey("author.id"), nullable=False),
            sa.Column("title", sa.String(80)),
        )
        op.create_index("ix_book_title", "book", ["title"])
        """,
        """
        op.drop_index("ix_book_title", table_name="book")
        op.drop_table("book")
        op.drop_table("author")
        """,
    ),
    Rev(
        "r2",
        "r1",
        """
        with op.batch_alter_table("book") as batch_op:
            batch_op.add_column(sa.Column("pages", sa.Integer, nullable=False, server_default="0"))
            batch_op.alter_column("title", new_column_name="heading", existing_type=sa.String(80),
                                  type_=sa.String(120))
            batch_op.create_unique_constraint("uq_book_heading", ["heading"])
        op.create_table_comment("author", "writers") if op.get_bind().dialect.name != "sqlite" else None
        """,
        """
        if op.get_bind().dialect.name != "sqlite":
            op.drop_table_comment("author")
        with op.batch_alter_table("book") as batch_op:
            batch_op.drop_constraint("uq_book_heading", type_="unique")
            batch_op.alter_column("heading", new_column_name="title", existing_type=sa.String(120),
                                  type_=sa.String(80))
            batch_op.drop_column("pages")
        """,
    ),
]


async def test_upgrade_downgrade_upgrade_keeps_rows(any_db: URL, tmp_path: Path) -> None:
    config = make_project(tmp_path, REVISIONS, url=any_db)
    await command.upgrade(config, "r1")
    await execute(
        any_db,
        "INSERT INTO author (id, name) VALUES (1, 'A')",
        "INSERT INTO book (id, author_id, title) VALUES (1, 1, 'One'), (2, 1, 'Two')",
    )
    at_r1 = await snapshot(any_db)
    await command.upgrade(config, "head")
    schema = await snapshot(any_db)
    assert [c["name"] for c in schema["book"]["columns"]] == ["id", "author_id", "heading", "pages"]
    assert ("uq_book_heading", ("heading",)) in schema["book"]["uniques"]
    if backend_of(any_db) != "sqlite":
        assert schema["author"]["comment"] == "writers"
    assert await rows(any_db, "SELECT id, heading, pages FROM book ORDER BY id") == [
        (1, "One", 0),
        (2, "Two", 0),
    ]
    await command.downgrade(config, "r1")
    back = await snapshot(any_db)
    if backend_of(any_db) == "sqlite":
        assert back == at_r1
    else:
        assert back["book"]["columns"] == at_r1["book"]["columns"]
    assert await rows(any_db, "SELECT id, title FROM book ORDER BY id") == [(1, "One"), (2, "Two")]
    await command.upgrade(config, "head")
    await command.downgrade(config, "base")
    assert await snapshot(any_db) == {}
