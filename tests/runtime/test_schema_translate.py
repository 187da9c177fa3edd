"""``schema_translate_map`` on env.py's connection: every statement lands where Alembic puts it.

A multi-tenant idiom: revisions name a placeholder schema (``schema="tenant"``)
and env.py maps it to the real one with
``connection.execution_options(schema_translate_map=...)``. SQLAlchemy
applies the map when it executes a statement, so Alembic's tables, indexes
and version rows all land in the mapped schema. Statements asyncmigrate
sends itself must honour it just the same, and so must what it reads back
(the version rows, whether a table exists), where Alembic itself does not.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from asyncmigrate import Config

from ..project import Rev, write_revisions
from .test_differential import alembic_project, run_alembic, run_ours, twin_databases

REVS = [
    Rev(
        "a1", None,
        "op.create_table('t', sa.Column('id', sa.Integer, primary_key=True),\n"
        "                sa.Column('name', sa.String(20), server_default='x'), schema='tenant')\n"
        "op.create_index('ix_t_name', 't', ['name'], schema='tenant')",
        "op.drop_index('ix_t_name', table_name='t', schema='tenant')\n"
        "op.drop_table('t', schema='tenant')",
    ),
    Rev(
        "b2", "a1",
        "op.create_table('u', sa.Column('id', sa.Integer, primary_key=True),\n"
        "                sa.Column('t_id', sa.Integer, sa.ForeignKey('tenant.t.id')), schema='tenant')",
        "op.drop_table('u', schema='tenant')",
    ),
]
# Not here: add_column, alter_column and the like. Alembic renders those with its own
# constructs, which ignore the map (ALTER TABLE tenant.t ... fails), so there is no
# reference behaviour to match.


def translating(env_py: Path, history: bool) -> None:
    """Make Alembic's generic env.py map schema ``tenant`` to ``real_s`` (version table included)."""
    source = env_py.read_text()
    extra = "history_table='asyncmigrate_history'" if history else ""
    source = source.replace(
        "        context.configure(\n            connection=connection, target_metadata=target_metadata\n        )",
        "        connection = connection.execution_options(schema_translate_map={'tenant': 'real_s'})\n"
        "        context.configure(\n            connection=connection, target_metadata=target_metadata,\n"
        f"            version_table_schema='tenant', {extra}\n"
        "        )",
    )
    assert "schema_translate_map" in source, "Alembic's generic env.py changed shape"
    env_py.write_text(source)


def placed(url: str) -> dict[str, object]:
    """Where the tables and the index are, and the version rows of each schema."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            tables = sorted(conn.execute(text(
                "SELECT schemaname || '.' || tablename FROM pg_tables "
                "WHERE schemaname IN ('public', 'tenant', 'real_s')")).scalars())
            indexes = sorted(conn.execute(text(
                "SELECT schemaname || '.' || indexname FROM pg_indexes WHERE indexname = 'ix_t_name'")).scalars())
            columns = sorted(conn.execute(text(
                "SELECT table_name || '.' || column_name FROM information_schema.columns "
                "WHERE table_schema = 'real_s' AND table_name IN ('t', 'u')")).scalars())
            keys = sorted(conn.execute(text(
                "SELECT conrelid::regclass::text || ' -> ' || confrelid::regclass::text FROM pg_constraint "
                "WHERE contype = 'f'")).scalars())
            versions = sorted(conn.execute(text("SELECT version_num FROM real_s.alembic_version")).scalars())
    finally:
        engine.dispose()
    return {"tables": tables, "indexes": indexes, "columns": columns, "keys": keys, "versions": versions}


@pytest.mark.parametrize("target", ["head", "a1"])
async def test_schema_translate_map_matches_alembic(tmp_path: Path, target: str) -> None:
    with twin_databases("postgresql", tmp_path) as (theirs, ours):
        for url in (theirs, ours):
            engine = create_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
            with engine.connect() as conn:
                conn.execute(text("CREATE SCHEMA real_s"))
            engine.dispose()
        versions = tmp_path / "versions"
        write_revisions(versions, REVS)
        # The same files on both sides; only the URL in each alembic.ini differs.
        ini = alembic_project(tmp_path / "alembic_side", versions, theirs)
        our_ini = alembic_project(tmp_path / "our_side", versions, ours)
        for side in (ini, our_ini):
            translating(side.parent / "migrations" / "env.py", history=False)

        assert run_alembic(ini, "upgrade", target) is None
        assert await run_ours(Config(str(our_ini)), "upgrade", target, ours) is None
        expected = placed(theirs)
        assert "real_s.t" in expected["tables"]  # the idiom works at all
        assert placed(ours) == expected

        # Going back, Alembic is no reference: it looks for its version table under the
        # untranslated name, finds none, takes the database for empty and does nothing.
        assert await run_ours(Config(str(our_ini)), "downgrade", "base", ours) is None
        assert placed(ours) == {
            "tables": ["real_s.alembic_version"], "indexes": [], "columns": [], "keys": [], "versions": []
        }


async def test_history_table_follows_the_map(tmp_path: Path) -> None:
    with twin_databases("postgresql", tmp_path) as (_, ours):
        engine = create_engine(ours, poolclass=NullPool, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text("CREATE SCHEMA real_s"))
        engine.dispose()
        versions = tmp_path / "versions"
        write_revisions(versions, REVS)
        ini = alembic_project(tmp_path / "project", versions, ours)
        translating(tmp_path / "project" / "migrations" / "env.py", history=True)

        assert await run_ours(Config(str(ini)), "upgrade", "a1", ours) is None
        assert await run_ours(Config(str(ini)), "upgrade", "head", ours) is None
        engine = create_engine(ours, poolclass=NullPool)
        with engine.connect() as conn:
            rows = conn.execute(text(
                "SELECT revision, kind FROM real_s.asyncmigrate_history ORDER BY id")).all()
        engine.dispose()
        assert [tuple(r) for r in rows] == [("a1", "migration"), ("b2", "migration")]


ALTERS = [
    *REVS,
    Rev(
        "c3", "b2",
        "op.add_column('t', sa.Column('extra', sa.Integer), schema='tenant')\n"
        "op.alter_column('t', 'name', nullable=False, schema='tenant')\n"
        "op.create_unique_constraint('uq_t_extra', 't', ['extra'], schema='tenant')\n"
        "op.rename_table('u', 'u2', schema='tenant')",
        "op.rename_table('u2', 'u', schema='tenant')\n"
        "op.drop_constraint('uq_t_extra', 't', schema='tenant')\n"
        "op.alter_column('t', 'name', nullable=True, schema='tenant')\n"
        "op.drop_column('t', 'extra', schema='tenant')",
    ),
]


async def test_alter_operations_follow_the_map_too(tmp_path: Path) -> None:
    """Beyond Alembic: its ALTER-style operations ignore the map (``ALTER TABLE tenant.t``)."""
    with twin_databases("postgresql", tmp_path) as (_, ours):
        engine = create_engine(ours, poolclass=NullPool, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text("CREATE SCHEMA real_s"))
        engine.dispose()
        versions = tmp_path / "versions"
        write_revisions(versions, ALTERS)
        ini = alembic_project(tmp_path / "project", versions, ours)
        translating(tmp_path / "project" / "migrations" / "env.py", history=False)

        assert await run_ours(Config(str(ini)), "upgrade", "head", ours) is None
        state = placed(ours)
        assert state["tables"] == ["real_s.alembic_version", "real_s.t", "real_s.u2"]
        assert "t.extra" in state["columns"] and state["versions"] == ["c3"]
        engine = create_engine(ours, poolclass=NullPool)
        with engine.connect() as conn:
            nullable = conn.execute(text(
                "SELECT is_nullable FROM information_schema.columns "
                "WHERE table_schema = 'real_s' AND table_name = 't' AND column_name = 'name'")).scalar()
            unique = conn.execute(text(
                "SELECT count(*) FROM pg_constraint WHERE conname = 'uq_t_extra' "
                "AND connamespace = 'real_s'::regnamespace")).scalar()
        engine.dispose()
        assert (nullable, unique) == ("NO", 1)

        assert await run_ours(Config(str(ini)), "downgrade", "b2", ours) is None
        state = placed(ours)
        assert state["tables"] == ["real_s.alembic_version", "real_s.t", "real_s.u"]
        assert "t.extra" not in state["columns"] and state["versions"] == ["b2"]
