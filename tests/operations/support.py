"""Run operations against real databases (asyncmigrate's and Alembic's) and snapshot schemas.

Both tools run through the same async engines: the sync core gets the
``Connection`` that ``AsyncConnection.run_sync`` hands over.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from asyncmigrate.operations import Operations
from asyncmigrate.runtime.migration import MigrationContext

OpsFn = Callable[[Any], Any]


def backend_of(url: URL) -> str:
    """Return ``sqlite``, ``postgresql`` or ``mysql`` for a test database URL."""
    name = url.get_backend_name()
    return "mysql" if name in ("mysql", "mariadb") else name


#: URL query key (stripped before connecting) naming the PostgreSQL schema to work in.
SEARCH_PATH = "test_search_path"


def engine_for(url: URL) -> AsyncEngine:
    """Return an engine for a test URL (honouring :data:`SEARCH_PATH`)."""
    schema = url.query.get(SEARCH_PATH)
    if schema is None:
        return create_async_engine(url, poolclass=NullPool)
    return create_async_engine(
        url.difference_update_query([SEARCH_PATH]),
        poolclass=NullPool,
        connect_args={"server_settings": {"search_path": str(schema)}},
    )


async def run_sync(url: URL, work: Callable[[Connection], Any]) -> Any:
    """Run ``work(sync_connection)`` on ``url`` and commit."""
    engine = engine_for(url)
    try:
        async with engine.connect() as conn:
            result = await conn.run_sync(work)
            await conn.commit()
            return result
    finally:
        await engine.dispose()


def _opts(target_metadata: sa.MetaData | None, extra: dict[str, Any] | None) -> dict[str, Any]:
    opts: dict[str, Any] = dict(extra or {})
    if target_metadata is not None:
        opts["target_metadata"] = target_metadata
    return opts


async def run_ops(
    url: URL,
    fn: OpsFn,
    *,
    target_metadata: sa.MetaData | None = None,
    opts: dict[str, Any] | None = None,
) -> Any:
    """Run ``fn(op)`` with asyncmigrate's Operations on ``url`` (one transaction where possible)."""

    def work(conn: Connection) -> Any:
        ctx = MigrationContext.configure(connection=conn, opts=_opts(target_metadata, opts))
        return fn(Operations(ctx))

    return await run_sync(url, work)


async def run_alembic_ops(
    url: URL, fn: OpsFn, *, target_metadata: sa.MetaData | None = None
) -> Any:
    """Run ``fn(op)`` with Alembic's Operations on ``url`` (the behavioural reference)."""
    from alembic.operations import Operations as AlembicOperations
    from alembic.runtime.migration import MigrationContext as AlembicContext

    def work(conn: Connection) -> Any:
        ctx = AlembicContext.configure(connection=conn, opts=_opts(target_metadata, None))
        return fn(AlembicOperations(ctx))

    return await run_sync(url, work)


def offline_sql(
    dialect_name: str,
    fn: OpsFn,
    *,
    target_metadata: sa.MetaData | None = None,
    opts: dict[str, Any] | None = None,
) -> str:
    """Return the SQL ``fn(op)`` renders offline for ``dialect_name``."""
    buffer = io.StringIO()
    options = _opts(target_metadata, opts)
    options.update(as_sql=True, output_buffer=buffer)
    ctx = MigrationContext.configure(dialect_name=dialect_name, opts=options)
    fn(Operations(ctx))
    return buffer.getvalue()


def alembic_offline_sql(
    dialect_name: str, fn: OpsFn, *, target_metadata: sa.MetaData | None = None
) -> str:
    """Return the SQL ``fn(op)`` renders offline with Alembic."""
    from alembic.operations import Operations as AlembicOperations
    from alembic.runtime.migration import MigrationContext as AlembicContext

    buffer = io.StringIO()
    options = _opts(target_metadata, None)
    options.update(as_sql=True, output_buffer=buffer)
    ctx = AlembicContext.configure(dialect_name=dialect_name, opts=options)
    fn(AlembicOperations(ctx))
    return buffer.getvalue()


# -- schema snapshots ---------------------------------------------------------------------------


def _type(conn: Connection, type_: Any) -> str:
    try:
        return str(type_.compile(dialect=conn.dialect))
    except Exception:  # unknown reflected types
        return repr(type_)


def _default(value: Any) -> Any:
    if value is None:
        return None
    text = str(value).strip()
    while text.startswith("(") and text.endswith(")"):
        text = text[1:-1].strip()
    return text.lower()


def snapshot_connection(conn: Connection, tables: list[str] | None = None) -> dict[str, Any]:
    """Describe every table's reflected schema as plain, comparable data."""
    with warnings.catch_warnings():
        # SQLite expression indexes: reflected as far as SQLAlchemy can.
        warnings.filterwarnings("ignore", message="Skipped unsupported reflection")
        return _snapshot(conn, tables)


def _snapshot(conn: Connection, tables: list[str] | None) -> dict[str, Any]:
    inspector = sa.inspect(conn)
    names = sorted(tables if tables is not None else inspector.get_table_names())
    result: dict[str, Any] = {}
    for name in names:
        if name == "alembic_version":
            continue
        columns = [
            {
                "name": col["name"],
                "type": _type(conn, col["type"]),
                "nullable": col["nullable"],
                "default": _default(col.get("default")),
                "comment": col.get("comment"),
            }
            for col in inspector.get_columns(name)
        ]
        pk = inspector.get_pk_constraint(name)
        fks = sorted(
            (
                fk.get("name") or "",
                tuple(fk["constrained_columns"]),
                fk["referred_table"],
                tuple(fk["referred_columns"]),
                tuple(sorted((k, str(v).upper()) for k, v in (fk.get("options") or {}).items())),
            )
            for fk in inspector.get_foreign_keys(name)
        )
        uniques = sorted(
            (uq.get("name") or "", tuple(uq["column_names"]))
            for uq in inspector.get_unique_constraints(name)
        )
        reflected_indexes = inspector.get_indexes(name)
        indexes = sorted(
            (
                ix.get("name") or "",
                tuple(str(c) for c in (ix.get("column_names") or ())),
                tuple(str(e) for e in (ix.get("expressions") or ())),
                bool(ix.get("unique")),
            )
            for ix in reflected_indexes
        )
        try:
            checks = sorted(
                (ck.get("name") or "", " ".join(str(ck["sqltext"]).lower().split()))
                for ck in inspector.get_check_constraints(name)
            )
        except NotImplementedError:  # pragma: no cover
            checks = []
        try:
            comment = inspector.get_table_comment(name).get("text")
        except NotImplementedError:
            comment = None
        result[name] = {
            "columns": columns,
            "pk": (pk.get("name") if conn.dialect.name == "postgresql" else None,
                   tuple(pk.get("constrained_columns") or ())),
            "fks": fks,
            "uniques": uniques,
            "indexes": indexes,
            "checks": checks,
            "comment": comment,
        }
    return result


def plain_default(value: str | None) -> str | None:
    """Strip quotes and PostgreSQL casts from a reflected default: ``'7'::integer`` -> ``7``."""
    if value is None:
        return None
    text = value.split("::")[0].strip()
    if len(text) >= 2 and text[0] == text[-1] == "'":
        text = text[1:-1]
    return text


async def snapshot(url: URL, tables: list[str] | None = None) -> dict[str, Any]:
    """Return :func:`snapshot_connection` for the database at ``url``."""
    return await run_sync(url, lambda conn: snapshot_connection(conn, tables))


async def rows(url: URL, sql: str) -> list[tuple[Any, ...]]:
    """Return the rows of a query."""
    return await run_sync(url, lambda conn: [tuple(r) for r in conn.exec_driver_sql(sql)])


async def execute(url: URL, *statements: str) -> None:
    """Execute SQL statements and commit."""

    def work(conn: Connection) -> None:
        for statement in statements:
            conn.exec_driver_sql(statement)

    await run_sync(url, work)
