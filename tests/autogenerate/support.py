"""Helpers for the autogenerate tests: projects whose env.py takes its models from the config,
Alembic's comparison as the reference, diffs in a comparable form, schema snapshots."""

from __future__ import annotations

import textwrap
import warnings
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection

from asyncmigrate import Config

from ..histories.schema_snapshot import snapshot
from ..project import make_project

#: env.py for the tests: models and options come from ``config.attributes``.
ENV_PY = '''
from asyncmigrate import context

config = context.config
target_metadata = config.attributes.get("target_metadata")
options = dict(config.attributes.get("autogen_options", {}))


def do_run_migrations(connection):
    context.configure(connection=connection, target_metadata=target_metadata, **options)
    with context.begin_transaction():
        context.run_migrations()


async def run_migrations_online():
    async with context.connect() as connection:
        await connection.run_sync(do_run_migrations)


if context.is_offline_mode():
    context.configure(url=context.url, target_metadata=target_metadata, **options)
    with context.begin_transaction():
        context.run_migrations()
else:
    context.run_async(run_migrations_online)
'''

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: What Alembic needs to compare named CHECK constraints (an opt-in plugin there).
ALEMBIC_PLUGINS = ["alembic.autogenerate.*", "alembic.ext.checkconstraint_byname"]


def project(root: Path, url: URL | str, metadata: Any = None, **options: Any) -> Config:
    """Create a project at ``root`` whose env.py compares ``metadata`` with ``options``."""
    config = make_project(root, url=url, env_py=textwrap.dedent(ENV_PY))
    config.attributes["target_metadata"] = metadata
    config.attributes["autogen_options"] = options
    return config


def sync_url(url: URL) -> URL:
    """The synchronous-driver URL of an async test URL (for Alembic and snapshots)."""
    if url.get_backend_name() == "sqlite":
        return url.set(drivername="sqlite")
    if url.get_backend_name() == "postgresql":
        return url.set(drivername="postgresql+psycopg2")
    return url.set(drivername="mysql+pymysql")


@contextmanager
def sync_connection(url: URL) -> Iterator[Connection]:
    """A synchronous connection to the database behind an async test URL."""
    engine = sa.create_engine(sync_url(url), poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            yield conn
    finally:
        engine.dispose()


def alembic_diffs(conn: Connection, metadata: Any, options: Mapping[str, Any]) -> list[Any]:
    """Alembic's ``compare_metadata`` on ``conn`` (the reference), with the same options."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    opts = {"autogenerate_plugins": ALEMBIC_PLUGINS, "target_metadata": metadata, **options}
    context = MigrationContext.configure(conn, opts=opts)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return list(compare_metadata(context, metadata))


def our_diffs(conn: Connection, metadata: Any, options: Mapping[str, Any]) -> list[Any]:
    """asyncmigrate's ``compare_metadata`` on a synchronous connection."""
    from asyncmigrate.autogenerate import compare_metadata
    from asyncmigrate.runtime.migration import MigrationContext

    context = MigrationContext.configure(conn, opts={"target_metadata": metadata, **options})
    return compare_metadata(context, metadata)


def _schema(value: Any, default: str | None) -> str | None:
    return None if value in (None, default) else str(value)


def diff_keys(diffs: Iterable[Any], default_schema: str | None = None) -> set[tuple[Any, ...]]:
    """Reduce diff tuples (either tool's) to comparable keys, e.g. ``("add_column", None, "t", "c")``."""
    keys: set[tuple[Any, ...]] = set()
    for diff in diffs:
        if isinstance(diff, list):
            keys |= diff_keys(diff, default_schema)
            continue
        kind = diff[0]
        if kind in ("add_table", "remove_table"):
            table = diff[1]
            keys.add((kind, _schema(table.schema, default_schema), table.name))
        elif kind in ("add_column", "remove_column"):
            keys.add((kind, _schema(diff[1], default_schema), diff[2], diff[3].name))
        elif kind.startswith("modify_") and kind not in ("modify_enum",):
            keys.add((kind, _schema(diff[1], default_schema), diff[2], diff[3]))
        elif kind in ("add_index", "remove_index"):
            index = diff[1]
            keys.add((kind, index.table.name, str(index.name)))
        elif kind in ("add_constraint", "remove_constraint"):
            constraint = diff[1]
            keys.add((kind, type(constraint).__name__, constraint.table.name, str(constraint.name)))
        elif kind in ("add_fk", "remove_fk"):
            fk = diff[1]
            columns = tuple(element.parent.name for element in fk.elements)
            keys.add((kind, fk.table.name, columns))
        elif kind in ("add_table_comment", "remove_table_comment"):
            keys.add((kind, diff[1].name))
        elif kind in ("add_enum", "remove_enum", "modify_enum", "add_sequence", "remove_sequence"):
            keys.add((kind, _schema(diff[1], default_schema), diff[2]))
        else:
            keys.add((kind, repr(diff[1:])))
    return keys


def schema_picture(conn: Connection, schemas: Iterable[str | None] = (None,)) -> dict[str, Any]:
    """A snapshot of the schemas (version table left out, columns by name) for round trips."""
    picture: dict[str, Any] = {}
    for schema in schemas:
        snap = snapshot(conn, schema=schema, row_counts=False)
        snap.pop("version", None)
        tables = snap["tables"]
        tables.pop("alembic_version", None)
        for table in tables.values():
            table["columns"] = sorted(table["columns"], key=lambda col: col["name"])
        picture[str(schema)] = snap
    conn.rollback()
    return picture


@contextmanager
def shared_postgresql_database() -> Iterator[URL]:
    """One scratch PostgreSQL database for many tests (see :func:`reset_postgresql`).

    Creating and dropping a database forces a checkpoint on the server; resetting
    schemas between tests costs a fraction of that.
    """
    from .. import backends

    name = backends.scratch_name("amag")
    admin = sync_url(backends.server_url("postgresql"))
    engine = sa.create_engine(admin, poolclass=sa.pool.NullPool, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        try:
            yield backends.server_url("postgresql").set(database=name)
        finally:
            with engine.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        engine.dispose()


def reset_postgresql(url: URL) -> None:
    """Empty a PostgreSQL database: drop every user schema and recreate ``public``."""
    with sync_connection(url) as conn:
        schemas = conn.exec_driver_sql(
            "SELECT nspname FROM pg_namespace WHERE nspname !~ '^pg_' "
            "AND nspname <> 'information_schema'"
        ).scalars().all()
        for schema in schemas:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        conn.exec_driver_sql("CREATE SCHEMA public")
        conn.commit()
