"""The lock each change record claims is the lock PostgreSQL really takes (read from pg_locks)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import create_async_engine

from asyncmigrate.lint.changes import DropIndex, Relation
from asyncmigrate.lint.locks import LockMode
from asyncmigrate.lint.pgsql import read_sql

pytestmark = pytest.mark.postgresql

SETUP = """
CREATE TABLE account (id integer PRIMARY KEY, name varchar(50), email varchar(100));
CREATE TABLE orders (id integer PRIMARY KEY, account_id integer, total integer);
CREATE INDEX ix_orders_total ON orders (total);
ALTER TABLE orders ADD CONSTRAINT fk_nv FOREIGN KEY (account_id) REFERENCES account (id) NOT VALID;
"""

STATEMENTS = [
    "CREATE INDEX ix_account_name ON account (name)",
    "DROP INDEX ix_orders_total",
    "ALTER TABLE orders ADD CONSTRAINT fk FOREIGN KEY (account_id) REFERENCES account (id)",
    "ALTER TABLE account ADD CONSTRAINT ck CHECK (id > 0)",
    "ALTER TABLE account ADD CONSTRAINT uq UNIQUE (email)",
    "ALTER TABLE orders VALIDATE CONSTRAINT fk_nv",
    "ALTER TABLE account ALTER COLUMN name SET NOT NULL",
    "ALTER TABLE account ADD COLUMN token uuid DEFAULT gen_random_uuid()",
    "ALTER TABLE orders ALTER COLUMN total TYPE bigint",
    "ALTER TABLE account RENAME COLUMN name TO full_name",
    "ALTER TABLE orders RENAME TO purchase",
    "ALTER TABLE account DROP COLUMN email",
    "DROP TABLE orders",
    "UPDATE account SET name = 'x'",
    "COMMENT ON TABLE account IS 'people'",
]

#: pg_locks.mode -> LockMode, weakest first.
_MODES = {
    "AccessShareLock": None, "RowShareLock": None,
    "RowExclusiveLock": LockMode.ROW_EXCLUSIVE,
    "ShareUpdateExclusiveLock": LockMode.SHARE_UPDATE_EXCLUSIVE,
    "ShareLock": LockMode.SHARE,
    "ShareRowExclusiveLock": LockMode.SHARE_ROW_EXCLUSIVE,
    "ExclusiveLock": None,
    "AccessExclusiveLock": LockMode.ACCESS_EXCLUSIVE,
}
_ORDER = list(_MODES)

OIDS = text("SELECT relname, oid FROM pg_class WHERE relname IN ('account', 'orders') AND relkind = 'r'")
HELD = text(
    "SELECT relation, mode FROM pg_locks WHERE pid = pg_backend_pid() AND granted AND relation IS NOT NULL"
)


async def test_claimed_locks_match_postgresql(pg_db: URL) -> None:
    engine = create_async_engine(pg_db)
    try:
        async with engine.begin() as conn:
            for statement in SETUP.strip().splitlines():
                await conn.exec_driver_sql(statement)
        for statement in STATEMENTS:
            (change,) = read_sql(statement)
            if isinstance(change, DropIndex):  # the SQL does not name the table; the operation does
                change = replace(change, relation=Relation("orders"))
            async with engine.connect() as conn:
                transaction = await conn.begin()
                tables = {oid: name for name, oid in (await conn.execute(OIDS)).all()}
                await conn.exec_driver_sql(statement)
                strongest: dict[str, str] = {}
                for oid, mode in (await conn.execute(HELD)).all():
                    table = tables.get(oid)
                    if table is None:
                        continue
                    if _ORDER.index(mode) > _ORDER.index(strongest.get(table, "AccessShareLock")):
                        strongest[table] = mode
                await transaction.rollback()
            claimed = {relation.name: change.lock for relation in change.locked}
            assert claimed, statement
            actual = {table: _MODES[mode] for table, mode in strongest.items() if table in claimed}
            assert actual == claimed, statement
    finally:
        await engine.dispose()
