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
from typing import Any

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
        "        context.configure(\n"
        "            connection=connection, target_metadata=target_metadata\n        )",
        "        connection = connection.execution_options(schema_translate_map={'tenant': 'real_s'})\n"
        "        context.configure(\n            connection=connection, target_metadata=target_metadata,\n"
        f"            version_table_schema='tenant', {extra}\n"
        "        )",
    )
    assert "schema_translate_map" in source, "Alembic's generic env.py changed shape"
    env_py.write_text(source)


def run_sql(url: str, statement: str) -> list[Any]:
    """Run one statement on ``url`` (committed) and return its rows."""
    engine = create_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            result = conn.execute(text(statement))
            return [tuple(row) for row in result] if result.returns_rows else []
    finally:
        engine.dispose()


def translated_project(root: Path, url: str, revisions: list[Rev], history: bool = False) -> Path:
    """An Alembic ``generic`` project on ``url`` whose env.py maps ``tenant`` to ``real_s``; its ini."""
    run_sql(url, "CREATE SCHEMA IF NOT EXISTS real_s")
    versions = root / "versions"
    if not versions.exists():
        write_revisions(versions, revisions)
    ini = alembic_project(root / f"project_{len(list(root.glob('project_*')))}", versions, url)
    translating(ini.parent / "migrations" / "env.py", history=history)
    return ini


def placed(url: str) -> dict[str, object]:
    """Where the tables, the index and the foreign key are, the columns, and the version rows."""

    def names(statement: str) -> list[Any]:
        return sorted(row[0] for row in run_sql(url, statement))

    return {
        "tables": names("SELECT schemaname || '.' || tablename FROM pg_tables "
                        "WHERE schemaname IN ('public', 'tenant', 'real_s')"),
        "indexes": names("SELECT schemaname || '.' || indexname FROM pg_indexes "
                         "WHERE indexname = 'ix_t_name'"),
        "columns": names("SELECT table_name || '.' || column_name FROM information_schema.columns "
                         "WHERE table_schema = 'real_s' AND table_name IN ('t', 'u')"),
        "keys": names("SELECT conrelid::regclass::text || ' -> ' || confrelid::regclass::text "
                      "FROM pg_constraint WHERE contype = 'f'"),
        "versions": names("SELECT version_num FROM real_s.alembic_version"),
    }


@pytest.mark.parametrize("target", ["head", "a1"])
async def test_schema_translate_map_matches_alembic(tmp_path: Path, target: str) -> None:
    with twin_databases("postgresql", tmp_path) as (theirs, ours):
        # The same files on both sides; only the URL in each alembic.ini differs.
        ini = translated_project(tmp_path, theirs, REVS)
        our_ini = translated_project(tmp_path, ours, REVS)

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
        config = Config(str(translated_project(tmp_path, ours, REVS, history=True)))
        assert await run_ours(config, "upgrade", "a1", ours) is None
        assert await run_ours(config, "upgrade", "head", ours) is None
        rows = run_sql(ours, "SELECT revision, kind FROM real_s.asyncmigrate_history ORDER BY id")
        assert rows == [("a1", "migration"), ("b2", "migration")]


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
        config = Config(str(translated_project(tmp_path, ours, ALTERS)))

        assert await run_ours(config, "upgrade", "head", ours) is None
        state = placed(ours)
        assert state["tables"] == ["real_s.alembic_version", "real_s.t", "real_s.u2"]
        assert "t.extra" in state["columns"]
        assert state["versions"] == ["c3"]
        assert run_sql(ours, "SELECT is_nullable FROM information_schema.columns WHERE table_schema = "
                             "'real_s' AND table_name = 't' AND column_name = 'name'") == [("NO",)]
        assert run_sql(ours, "SELECT count(*) FROM pg_constraint WHERE conname = 'uq_t_extra' "
                             "AND connamespace = 'real_s'::regnamespace") == [(1,)]

        assert await run_ours(config, "downgrade", "b2", ours) is None
        state = placed(ours)
        assert state["tables"] == ["real_s.alembic_version", "real_s.t", "real_s.u"]
        assert "t.extra" not in state["columns"]
        assert state["versions"] == ["b2"]


async def test_each_tenant_its_own_map_concurrently(tmp_path: Path) -> None:
    """A fan-out whose env.py maps the placeholder to each tenant's schema: nothing crosses over.

    Four tenants on one database, all at once: each gets its tables, index and
    version row in its own schema (asyncmigrate sends nothing untranslated,
    and the lock and the version read follow each tenant's map).
    """
    from asyncmigrate.tenants import Tenant, migrate_tenants

    from ..project import TEMPLATES, make_project

    env = (TEMPLATES / "async" / "env.py").read_text().replace(
        "    context.configure(connection=connection, target_metadata=target_metadata)",
        "    connection = connection.execution_options(\n"
        "        schema_translate_map={'tenant': 'real_' + context.tenant.name})\n"
        "    context.configure(connection=connection, target_metadata=target_metadata,\n"
        "                      version_table_schema='tenant')",
    )
    assert "schema_translate_map" in env
    with twin_databases("postgresql", tmp_path) as (_, url):
        names = [f"t{i}" for i in range(4)]
        for name in names:
            run_sql(url, f"CREATE SCHEMA real_{name}")
        config = make_project(tmp_path / "project", REVS, env_py=env)
        tenants = [Tenant(name, url) for name in names]
        report = await migrate_tenants(config, tenants, "head", concurrency=4)
        assert report.counts["ok"] == 4, report.failed
        for name in names:
            rows = run_sql(url, f"SELECT version_num FROM real_{name}.alembic_version")
            assert rows == [("b2",)], name
            tables = run_sql(url, f"SELECT tablename FROM pg_tables WHERE schemaname = 'real_{name}' "
                                  "ORDER BY tablename")
            assert tables == [("alembic_version",), ("t",), ("u",)], name
        stray = run_sql(url, "SELECT count(*) FROM pg_tables WHERE schemaname IN ('public', 'tenant')")
        assert stray == [(0,)]
