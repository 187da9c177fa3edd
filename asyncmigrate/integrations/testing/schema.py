"""Reflect a database's schema into comparable data, and say in words how two differ.

The ``downgrade_clean`` check snapshots the schema before an upgrade and
after its downgrade; any difference is named down to the object that moved
("table account: column email: left behind", "table account: index
ix_name: columns ('name',) -> ('name', 'email')").
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import inspect
from sqlalchemy.engine import Connection, Inspector

__all__ = ["describe_difference", "differences", "schema_snapshot"]

_SYSTEM_SCHEMAS = frozenset({"information_schema", "pg_catalog", "pg_toast"})


def _schemas(connection: Connection, inspector: Inspector) -> list[str | None]:
    """The default schema, plus (PostgreSQL) every user schema: migrations may create some."""
    if connection.dialect.name != "postgresql":
        return [None]
    default = inspector.default_schema_name
    others = sorted(
        s for s in inspector.get_schema_names()
        if s != default and s not in _SYSTEM_SCHEMAS and not s.startswith("pg_")
    )
    return [None, *others]


def _tables(inspector: Inspector, names: list[str], schema: str | None) -> dict[str, dict[str, Any]]:
    """Reflect ``names`` with one query per kind of information (``get_multi_*``)."""
    kw: dict[str, Any] = {"schema": schema, "filter_names": names}
    columns = inspector.get_multi_columns(**kw)
    pks = inspector.get_multi_pk_constraint(**kw)
    fks = inspector.get_multi_foreign_keys(**kw)
    indexes = inspector.get_multi_indexes(**kw)
    uniques = inspector.get_multi_unique_constraints(**kw)
    try:
        checks = inspector.get_multi_check_constraints(**kw)
    except NotImplementedError:
        checks = {}
    tables: dict[str, dict[str, Any]] = {}
    for key in columns:
        parts: dict[str, Any] = {}
        for column in columns[key]:
            parts[f"column {column['name']}"] = {
                "type": str(column["type"]),
                "nullable": column["nullable"],
                "default": str(column.get("default")),
            }
        pk: dict[str, Any] = dict(pks.get(key) or {})
        if pk.get("constrained_columns"):
            parts["primary key"] = tuple(pk["constrained_columns"])
        for fk in fks.get(key, []):
            referred = ".".join(p for p in (fk.get("referred_schema"), fk["referred_table"]) if p)
            parts[f"foreign key {fk.get('name') or tuple(fk['constrained_columns'])}"] = {
                "columns": tuple(fk["constrained_columns"]),
                "references": f"{referred}{tuple(fk['referred_columns'])}",
                "on delete": (fk.get("options") or {}).get("ondelete"),
            }
        for index in indexes.get(key, []):
            parts[f"index {index['name']}"] = {
                "columns": tuple(str(c) for c in index["column_names"]),
                "unique": bool(index["unique"]),
            }
        for unique in uniques.get(key, []):
            name = unique.get("name") or tuple(unique["column_names"])
            parts[f"unique constraint {name}"] = tuple(unique["column_names"])
        for check in checks.get(key, []):
            parts[f"check constraint {check.get('name')}"] = str(check.get("sqltext"))
        tables[key[1]] = parts
    return tables


def schema_snapshot(connection: Connection, exclude: frozenset[str] = frozenset()) -> dict[str, Any]:
    """Reflect tables (columns, keys, indexes, constraints), views, sequences and enum types.

    PostgreSQL: every user schema (and the schemas themselves); elsewhere the
    default schema.

    :param exclude: table names to leave out, in any schema (the version and history
        tables), with the sequences their serial columns own (``<table>_<column>_seq``).
    """
    inspector = inspect(connection)
    snapshot: dict[str, Any] = {}
    for schema in _schemas(connection, inspector):
        prefix = f"{schema}." if schema else ""
        if schema:
            snapshot[f"schema {schema}"] = True
        names = [n for n in inspector.get_table_names(schema=schema) if n not in exclude]
        if names:
            for name, parts in sorted(_tables(inspector, names, schema).items()):
                snapshot[f"table {prefix}{name}"] = parts
        for view in sorted(inspector.get_view_names(schema=schema)):
            snapshot[f"view {prefix}{view}"] = True
        try:
            for sequence in sorted(inspector.get_sequence_names(schema=schema)):
                if not any(sequence.startswith(f"{t}_") and sequence.endswith("_seq") for t in exclude):
                    snapshot[f"sequence {prefix}{sequence}"] = True
        except NotImplementedError:
            pass
        get_enums = getattr(inspector, "get_enums", None)
        if get_enums is not None:
            for enum in get_enums(schema=schema or None):
                snapshot[f"enum type {prefix}{enum['name']}"] = tuple(enum["labels"])
    return snapshot


def differences(before: Any, after: Any, path: tuple[str, ...] = ()) -> Iterator[str]:
    """Yield one line per object that differs, named by its path ("table t: column c: type ...")."""
    where = ": ".join(path)
    if isinstance(before, dict) and isinstance(after, dict):
        for name in sorted(set(before) | set(after), key=str):
            if name not in before:
                yield f"{where + ': ' if where else ''}{name}: left behind"
            elif name not in after:
                yield f"{where + ': ' if where else ''}{name}: missing"
            else:
                yield from differences(before[name], after[name], (*path, str(name)))
    elif before != after:
        yield f"{where}: {before!r} -> {after!r}"


def describe_difference(before: dict[str, Any], after: dict[str, Any]) -> str:
    """Say in words how ``after`` differs from ``before`` (one clause per object, ``; ``-joined)."""
    return "; ".join(differences(before, after))
