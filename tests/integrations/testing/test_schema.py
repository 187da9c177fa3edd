"""Schema snapshots and their differences, named down to the object (SQLite, a real database)."""

from __future__ import annotations

import sqlalchemy as sa

from asyncmigrate.integrations.testing.schema import describe_difference, schema_snapshot


def test_differences_name_tables_columns_indexes() -> None:
    engine = sa.create_engine("sqlite://")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE account (id INTEGER PRIMARY KEY, name VARCHAR(50))")
        conn.exec_driver_sql("CREATE TABLE alembic_version (version_num VARCHAR(32))")
        before = schema_snapshot(conn, frozenset({"alembic_version"}))
        conn.exec_driver_sql("ALTER TABLE account ADD COLUMN email VARCHAR(200)")
        conn.exec_driver_sql("CREATE INDEX ix_account_name ON account (name)")
        conn.exec_driver_sql("CREATE TABLE extra (id INTEGER PRIMARY KEY)")
        after = schema_snapshot(conn, frozenset({"alembic_version"}))
    assert "table alembic_version" not in before
    assert describe_difference(before, after).split("; ") == [
        "table account: column email: left behind",
        "table account: index ix_account_name: left behind",
        "table extra: left behind",
    ]
    assert describe_difference(after, before).startswith("table account: column email: missing")
    changed = {**after, "table account": {**after["table account"],
                                          "column email": {**after["table account"]["column email"],
                                                           "type": "TEXT"}}}
    expected = "table account: column email: type: 'VARCHAR(200)' -> 'TEXT'"
    assert describe_difference(after, changed) == expected
    assert describe_difference(before, before) == ""
