"""A normalized, comparable picture of a database: version rows and reflected schema.

:func:`snapshot` takes a synchronous SQLAlchemy ``Connection`` (an Alembic run's, or
the one inside ``AsyncConnection.run_sync`` on the asyncmigrate side) and returns
plain JSON-able data: equal databases give equal dicts, so two runs compare with
``==`` and :func:`diff` says where they differ.

It uses only SQLAlchemy's inspector (the batched ``get_multi_*`` calls, one query per
kind on PostgreSQL) and ``SELECT count(*)`` per table. It imports neither Alembic nor
asyncmigrate.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.engine.reflection import Inspector

__all__ = ["diff", "snapshot", "summary"]

_SPACE = re.compile(r"\s+")


def _text(value: Any) -> str | None:
    """Normalize SQL text (defaults, check expressions): collapse whitespace."""
    if value is None:
        return None
    return _SPACE.sub(" ", str(value)).strip()


def _type(type_: Any, dialect: sa.Dialect) -> str:
    try:
        return str(type_.compile(dialect=dialect))
    except Exception:
        return repr(type_)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, sa.sql.ClauseElement):
        return _text(value)
    return _text(value)


def _sort_key(item: Mapping[str, Any]) -> str:
    return repr((item.get("name") or "", item.get("columns") or [], item))


def _columns(raw: Iterable[Mapping[str, Any]], dialect: sa.Dialect) -> list[dict[str, Any]]:
    out = []
    for col in raw:
        entry: dict[str, Any] = {
            "name": col["name"],
            "type": _type(col["type"], dialect),
            "nullable": bool(col.get("nullable", True)),
            "default": _text(col.get("default")),
        }
        if col.get("comment") is not None:
            entry["comment"] = col["comment"]
        autoincrement = col.get("autoincrement")
        if autoincrement is not None and autoincrement != "auto":
            entry["autoincrement"] = autoincrement
        if col.get("identity"):
            entry["identity"] = _jsonable(col["identity"])
        if col.get("computed"):
            entry["computed"] = _jsonable(col["computed"])
        out.append(entry)
    return out


def _indexes(raw: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for ix in raw:
        entry: dict[str, Any] = {
            "name": ix.get("name"),
            "columns": list(ix.get("column_names") or []),
            "unique": bool(ix.get("unique")),
        }
        expressions = ix.get("expressions")
        if expressions and any(c is None for c in ix.get("column_names") or []):
            entry["expressions"] = [_text(e) for e in expressions]
        if ix.get("include_columns"):
            entry["include"] = list(ix["include_columns"])
        options = dict((ix.get("dialect_options") or {}).items())
        if options:
            entry["options"] = _jsonable(options)
        if ix.get("duplicates_constraint"):
            entry["duplicates_constraint"] = ix["duplicates_constraint"]
        column_sorting = ix.get("column_sorting")
        if column_sorting:
            entry["sorting"] = _jsonable(column_sorting)
        out.append(entry)
    return sorted(out, key=_sort_key)


def _foreign_keys(raw: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for fk in raw:
        entry: dict[str, Any] = {
            "name": fk.get("name"),
            "columns": list(fk.get("constrained_columns") or []),
            "referred_table": fk.get("referred_table"),
            "referred_columns": list(fk.get("referred_columns") or []),
        }
        if fk.get("referred_schema") is not None:
            entry["referred_schema"] = fk["referred_schema"]
        options = {k: v for k, v in (fk.get("options") or {}).items() if v is not None}
        if options:
            entry["options"] = _jsonable(options)
        out.append(entry)
    return sorted(out, key=_sort_key)


def _uniques(raw: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    out = [
        {"name": uq.get("name"), "columns": list(uq.get("column_names") or [])}
        for uq in raw
    ]
    return sorted(out, key=_sort_key)


def _checks(raw: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    out = [{"name": ck.get("name"), "sqltext": _text(ck.get("sqltext"))} for ck in raw]
    return sorted(out, key=_sort_key)


def _pk(raw: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not raw or not raw.get("constrained_columns"):
        return None
    return {"name": raw.get("name"), "columns": list(raw["constrained_columns"])}


def _multi(insp: Inspector, method: str, schema: str | None) -> dict[str, Any]:
    """Call ``insp.get_multi_<method>`` for plain tables; key the result by table name."""
    try:
        result = getattr(insp, f"get_multi_{method}")(schema=schema)
    except NotImplementedError:
        return {}
    return {table: value for (_schema, table), value in result.items()}


def _quote(conn: Connection, name: str, schema: str | None) -> str:
    prep = conn.dialect.identifier_preparer
    quoted = prep.quote(name)
    return f"{prep.quote_schema(schema)}.{quoted}" if schema else quoted


def snapshot(
    conn: Connection,
    *,
    version_table: str = "alembic_version",
    version_table_schema: str | None = None,
    schema: str | None = None,
    row_counts: bool = True,
    rows_of: Iterable[str] = (),
) -> dict[str, Any]:
    """Return a normalized picture of the database behind ``conn``.

    :param version_table: the version table's name; its rows are reported under
        ``"version"`` (sorted), or None when the table does not exist.
    :param schema: the schema to reflect (None: the connection's default).
    :param row_counts: add ``"rows"`` (row count) to each table.
    :param rows_of: tables whose full contents (sorted rows, values as text) are added
        under ``"data"`` (for small reference tables that data migrations fill).

    The result has the keys ``dialect``, ``version``, ``tables`` (by name: ``columns``
    in table order, ``pk``, ``indexes``, ``uniques``, ``foreign_keys``, ``checks``,
    ``comment``, ``options`` (MySQL table options), ``rows``), ``views``, ``sequences``
    and (PostgreSQL) ``enums``.
    Runs no DDL; it may leave a read transaction open on ``conn`` (the caller's).
    """
    dialect = conn.dialect
    with warnings.catch_warnings():
        # Reflection warns about types it does not know (SQLite affinity names...);
        # the snapshot records what it sees instead.
        warnings.simplefilter("ignore", sa.exc.SAWarning)
        insp = sa.inspect(conn)
        table_names = sorted(insp.get_table_names(schema=schema))
        tables: dict[str, Any] = {name: {} for name in table_names}
        if table_names:
            columns = _multi(insp, "columns", schema)
            pks = _multi(insp, "pk_constraint", schema)
            indexes = _multi(insp, "indexes", schema)
            fks = _multi(insp, "foreign_keys", schema)
            uniques = _multi(insp, "unique_constraints", schema)
            checks = _multi(insp, "check_constraints", schema)
            comments = _multi(insp, "table_comment", schema) if dialect.supports_comments else {}
            table_options = _multi(insp, "table_options", schema)
            for name in table_names:
                entry = tables[name]
                entry["columns"] = _columns(columns.get(name, []), dialect)
                entry["pk"] = _pk(pks.get(name))
                entry["indexes"] = _indexes(indexes.get(name, []))
                entry["uniques"] = _uniques(uniques.get(name, []))
                entry["foreign_keys"] = _foreign_keys(fks.get(name, []))
                entry["checks"] = _checks(checks.get(name, []))
                comment = (comments.get(name) or {}).get("text")
                if comment is not None:
                    entry["comment"] = comment
                options = table_options.get(name)
                if options:  # MySQL/MariaDB: engine, charset, collation...
                    entry["options"] = _jsonable(options)
        views = sorted(insp.get_view_names(schema=schema))
        try:
            sequences = sorted(insp.get_sequence_names(schema=schema))
        except NotImplementedError:
            sequences = []
        enums = None
        if dialect.name == "postgresql":
            enums = sorted(
                (
                    {"name": e["name"], "labels": list(e["labels"])}
                    for e in insp.get_enums(schema=schema or "*")  # type: ignore[attr-defined]
                    if e.get("visible", True)
                ),
                key=lambda e: e["name"],
            )
    if row_counts:
        # One statement per 100 tables (SQLite allows 500 compound terms), not one per table.
        for start in range(0, len(table_names), 100):
            chunk = table_names[start:start + 100]
            query = " UNION ALL ".join(
                f"SELECT {i} AS n, count(*) AS c FROM {_quote(conn, name, schema)}"
                for i, name in enumerate(chunk)
            )
            for i, count in conn.execute(sa.text(query)):
                tables[chunk[i]]["rows"] = count
    for name in rows_of:
        if name in tables:
            result = conn.execute(sa.text(f"SELECT * FROM {_quote(conn, name, schema)}"))
            tables[name]["data"] = sorted(
                [None if v is None else str(v) for v in row] for row in result
            )
    version_schema = version_table_schema if version_table_schema is not None else schema
    version: list[str] | None
    if version_table_schema is None and version_table in tables:
        exists = True
    else:
        exists = sa.inspect(conn).has_table(version_table, schema=version_schema)
    if exists:
        version = sorted(
            str(v)
            for v in conn.execute(
                sa.text(f"SELECT version_num FROM {_quote(conn, version_table, version_schema)}")
            ).scalars()
        )
    else:
        version = None
    result: dict[str, Any] = {
        "dialect": dialect.name,
        "version": version,
        "tables": tables,
        "views": views,
        "sequences": sequences,
    }
    if enums is not None:
        result["enums"] = enums
    return result


def summary(snap: Mapping[str, Any]) -> str:
    """Return a one-line description: version rows, number of tables, columns, indexes."""
    tables = snap.get("tables", {})
    ncols = sum(len(t.get("columns", [])) for t in tables.values())
    nix = sum(len(t.get("indexes", [])) for t in tables.values())
    return f"version={snap.get('version')} tables={len(tables)} columns={ncols} indexes={nix}"


def diff(left: Any, right: Any, path: str = "", limit: int = 50) -> list[str]:
    """Return human-readable differences between two snapshots (empty when equal)."""
    out: list[str] = []

    def walk(a: Any, b: Any, where: str) -> None:
        if len(out) >= limit or a == b:
            return
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            for key in sorted(set(a) | set(b), key=str):
                if key not in a:
                    out.append(f"{where}/{key}: only on the right: {b[key]!r}")
                elif key not in b:
                    out.append(f"{where}/{key}: only on the left: {a[key]!r}")
                else:
                    walk(a[key], b[key], f"{where}/{key}")
                if len(out) >= limit:
                    return
            return
        if (
            isinstance(a, list) and isinstance(b, list) and len(a) == len(b)
            and all(isinstance(x, Mapping) for x in a + b)
        ):
            for i, (x, y) in enumerate(zip(a, b, strict=False)):
                walk(x, y, f"{where}[{x.get('name', i)}]")
            return
        out.append(f"{where}: {a!r} != {b!r}")

    walk(left, right, path)
    return out
