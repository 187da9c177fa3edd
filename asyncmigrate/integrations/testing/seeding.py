"""Put rows into a test database at chosen revisions, into tables as they stand there.

A data migration that works on an empty table may fail on a filled one.
:class:`Seeder` inserts the rows :class:`MigrationTestOptions` names before
and at each revision, so ``upgrade``, ``stairway`` and the runner run every
migration over real data. Rows go into tables reflected from the database
at that moment -- the schema of that revision, not of the models.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from sqlalchemy import MetaData, Table, select
from sqlalchemy.engine import URL, Connection
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.pool import NullPool

from ...exceptions import ConfigError
from .options import MigrationTestOptions, RevisionData, Rows

__all__ = ["Seeder", "call_hook", "insert_rows", "reflect_table"]


async def call_hook(connection: AsyncConnection, hook: Callable[..., Any], *args: Any) -> None:
    """Call a user's hook with ``args`` and the connection (``AsyncConnection`` or ``Connection``)."""
    if inspect.iscoroutinefunction(hook):
        await hook(*args, connection)
        return
    result = await connection.run_sync(lambda sync: hook(*args, sync))
    if inspect.isawaitable(result):
        await result


def _split_name(table: str, schema: str | None) -> tuple[str, str | None]:
    if schema is None and "." in table:
        schema, table = table.split(".", 1)
    return table, schema


def reflect_table(connection: Connection, name: str, schema: str | None = None) -> Table:
    """Return table ``name`` (``schema.name`` works) as the database holds it now."""
    table, schema = _split_name(name, schema)
    return Table(table, MetaData(), schema=schema, autoload_with=connection)


def _rows(data: Rows) -> Iterator[Mapping[str, Any]]:
    if isinstance(data, Mapping):
        yield data
        return
    for row in data:
        if not isinstance(row, Mapping):
            raise ConfigError(f"A row to insert must be a mapping of column to value, not {row!r}")
        yield row


def _present(connection: Connection, table: Table, values: Mapping[str, Any]) -> bool:
    """True when a row with the same primary key as ``values`` is already in ``table``."""
    key = [column for column in table.primary_key.columns if column.name in values]
    if not key or len(key) != len(table.primary_key.columns):
        return False
    where = [column == values[column.name] for column in key]
    return connection.execute(select(1).select_from(table).where(*where)).first() is not None


def _insert(
    connection: Connection, data: Rows, table: str | None, schema: str | None, missing_only: bool = False
) -> int:
    tables: dict[tuple[str, str | None], Table] = {}
    count = 0
    for row in _rows(data):
        name = row.get("__tablename__", table)
        if not name:
            raise ConfigError(
                f"No table for row {dict(row)!r}: pass table=, or give the row a '__tablename__' key"
            )
        key = _split_name(str(name), schema)
        if key not in tables:
            tables[key] = reflect_table(connection, *key)
        values = {column: value for column, value in row.items() if column != "__tablename__"}
        if missing_only and _present(connection, tables[key], values):
            continue
        connection.execute(tables[key].insert().values(values))
        count += 1
    return count


async def insert_rows(
    connection: AsyncConnection,
    data: Rows,
    table: str | None = None,
    schema: str | None = None,
    *,
    missing_only: bool = False,
) -> int:
    """Insert ``data`` (one row or a list) into tables reflected now; return the row count.

    A row's ``"__tablename__"`` key (``"schema.table"`` works) overrides ``table``.

    :param missing_only: leave out rows whose primary key is already there
        (seeding again after a downgrade that kept them).
    """
    return await connection.run_sync(_insert, data, table, schema, missing_only)


class Seeder:
    """Insert the rows the options name before and at each revision.

    It owns the lookup of a revision's data and how each form is inserted;
    when it runs (which revisions, in what order) is the caller's.
    """

    def __init__(self, options: MigrationTestOptions) -> None:
        self.options = options

    def has_data(self, revision: str) -> bool:
        """True when something is inserted before or at ``revision``."""
        return any(_seed_for(spec, revision) is not None
                   for spec in (self.options.before_revision_data, self.options.at_revision_data))

    async def before(self, revision: str, url: URL, *, again: bool = False) -> None:
        """Insert what goes in before upgrading to ``revision``.

        :param again: the revision was applied before and undone: rows still
            there (by primary key) are not inserted twice.
        """
        await self._apply(self.options.before_revision_data, revision, url, again)

    async def at(self, revision: str, url: URL, *, again: bool = False) -> None:
        """Insert what goes in right after upgrading to ``revision`` (``again``: as for :meth:`before`)."""
        await self._apply(self.options.at_revision_data, revision, url, again)

    async def _apply(self, spec: RevisionData | None, revision: str, url: URL, again: bool) -> None:
        seed = _seed_for(spec, revision)
        if seed is None:
            return
        engine = create_async_engine(url, poolclass=NullPool)
        try:
            async with engine.begin() as connection:
                if callable(spec):
                    await call_hook(connection, spec, revision)
                elif callable(seed):
                    await call_hook(connection, seed)
                else:
                    await insert_rows(connection, seed, missing_only=again)
        finally:
            await engine.dispose()


def _seed_for(spec: RevisionData | None, revision: str) -> Any:
    if spec is None:
        return None
    if callable(spec):
        return spec
    if not isinstance(spec, Mapping):
        raise ConfigError(f"Revision data must be a mapping of revision to rows, or a callable: {spec!r}")
    seed = spec.get(revision)
    if seed is None or (isinstance(seed, Sequence) and not isinstance(seed, str) and not seed):
        return None
    return seed
