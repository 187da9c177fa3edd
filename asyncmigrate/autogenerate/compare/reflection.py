"""Reflect one schema in bulk and build comparable ``Table`` objects from it.

Every kind of schema information (columns, primary keys, foreign keys,
indexes, unique constraints, CHECK constraints, comments) is read with one
of SQLAlchemy's ``Inspector.get_multi_*`` calls for all the tables of a
schema at once -- one query per kind on PostgreSQL, whatever the number of
tables. The raw records stay available (the comparators need details such
as ``duplicates_constraint``), and :meth:`SchemaReflection.table` turns them
into a ``Table`` in a metadata of its own, with the dialect's quirks
smoothed (PostgreSQL ``SERIAL`` defaults dropped, SQLite expression defaults
parenthesized) so that they compare with the models and render back as
working Python.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from functools import cached_property
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    CheckConstraint,
    Column,
    Computed,
    DefaultClause,
    ForeignKeyConstraint,
    Identity,
    Index,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    UniqueConstraint,
    text,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy import types as sqltypes
from sqlalchemy.schema import BLANK_SCHEMA
from sqlalchemy.sql import expression
from sqlalchemy.sql.elements import conv

if TYPE_CHECKING:
    from ..context import AutogenContext

__all__ = ["KINDS", "SchemaReflection", "reflected_index", "reflected_unique_constraint"]

from ...masking import get_logger

log = get_logger("asyncmigrate.autogenerate")

#: The ``get_multi_<kind>`` inspector methods read for every table.
KINDS = (
    "columns",
    "pk_constraint",
    "foreign_keys",
    "indexes",
    "unique_constraints",
    "check_constraints",
    "table_comment",
)

# Above this many tables, and when they are most of the schema, ask for all of them
# rather than send a long list of names.
_FILTER_LIMIT = 100

_NEXTVAL = re.compile(r"nextval\('(?P<name>(?:[^']|'')+)'(?:::regclass)?\)", re.I)

_SORTING: dict[str, Callable[[Any], Any]] = {
    "asc": expression.asc,
    "desc": expression.desc,
    "nulls_first": expression.nulls_first,
    "nulls_last": expression.nulls_last,
}

# Sequences owned by a column through SERIAL (deptype 'a') or IDENTITY ('i').
_PG_OWNED_SEQUENCES = text(
    "SELECT seqns.nspname, seq.relname, tblns.nspname, tbl.relname, att.attname, d.deptype "
    "FROM pg_catalog.pg_class seq "
    "JOIN pg_catalog.pg_namespace seqns ON seqns.oid = seq.relnamespace "
    "JOIN pg_catalog.pg_depend d ON d.objid = seq.oid "
    "AND d.classid = 'pg_catalog.pg_class'::regclass "
    "AND d.refclassid = 'pg_catalog.pg_class'::regclass AND d.deptype IN ('a', 'i') "
    "JOIN pg_catalog.pg_class tbl ON tbl.oid = d.refobjid "
    "JOIN pg_catalog.pg_namespace tblns ON tblns.oid = tbl.relnamespace "
    "JOIN pg_catalog.pg_attribute att ON att.attrelid = tbl.oid AND att.attnum = d.refobjsubid "
    "WHERE seq.relkind = 'S'"
)


@contextmanager
def _quiet_reflection() -> Iterator[None]:
    """Keep SQLAlchemy's reflection warnings (unknown types, skipped indexes) out of warnings."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", sa_exc.SAWarning)
        yield
    for warning in caught:
        log.info("Reflection: %s", warning.message)


class SchemaReflection:
    """Hold the bulk reflection of one schema and build ``Table`` objects from it.

    It owns the raw inspector records (read once, for the tables asked for
    with :meth:`load`) and the tables built from them; deciding what differs
    is left to the comparators.
    """

    def __init__(self, autogen_context: AutogenContext, schema: str | None) -> None:
        self.autogen_context = autogen_context
        self.schema = schema
        self.metadata = MetaData()
        self._raw: dict[str, dict[str, Any]] = {}
        self._unsupported: set[str] = set()
        self._loaded: set[str] = set()
        self._tables: dict[str, Table] = {}

    @property
    def dialect_name(self) -> str:
        """The dialect's name."""
        return self.autogen_context.dialect.name

    @cached_property
    def table_names(self) -> list[str]:
        """Every table in the schema (one query)."""
        with _quiet_reflection():
            return list(self.autogen_context.inspector.get_table_names(schema=self.schema))

    def load(self, names: Iterable[str]) -> None:
        """Read every kind of information for the tables ``names`` (one query per kind)."""
        wanted = sorted(set(names) - self._loaded)
        if not wanted:
            return
        inspector = self.autogen_context.inspector
        everything = len(wanted) > _FILTER_LIMIT and len(wanted) * 2 > len(self.table_names)
        for kind in KINDS:
            if kind in self._unsupported:
                continue
            method = getattr(inspector, f"get_multi_{kind}")
            try:
                with _quiet_reflection():
                    found = method(schema=self.schema, filter_names=None if everything else wanted)
            except NotImplementedError:
                self._unsupported.add(kind)
                continue
            bucket = self._raw.setdefault(kind, {})
            for (_schema, table_name), value in found.items():
                bucket[table_name] = value
        self._loaded.update(wanted)

    @property
    def loaded_tables(self) -> list[str]:
        """The tables read so far, sorted."""
        return sorted(self._loaded)

    def supports(self, kind: str) -> bool:
        """Tell whether the dialect can reflect ``kind`` (after :meth:`load`)."""
        return kind not in self._unsupported

    def raw(self, kind: str, table_name: str) -> Any:
        """Return the inspector's record(s) of ``kind`` for one table (loading it if needed)."""
        self.load([table_name])
        empty: Any = {} if kind in ("pk_constraint", "table_comment") else []
        return self._raw.get(kind, {}).get(table_name, empty)

    # -- PostgreSQL sequences ----------------------------------------------------------------

    @cached_property
    def owned_sequences(self) -> dict[tuple[str, str], tuple[str, str, str, str]]:
        """PostgreSQL: ``(sequence schema, sequence name) -> (table schema, table, column, deptype)``.

        Sequences a ``SERIAL`` (``deptype`` ``a``) or an identity column
        (``i``) owns; empty on other dialects. One query for the database.
        """
        if self.dialect_name != "postgresql" or self.autogen_context.connection is None:
            return {}
        rows = self.autogen_context.connection.execute(_PG_OWNED_SEQUENCES).all()
        return {(r[0], r[1]): (r[2], r[3], r[4], r[5]) for r in rows}

    def _is_serial_default(self, table_name: str, column: Mapping[str, Any]) -> bool:
        default = column.get("default")
        if not default or not isinstance(column["type"], sqltypes.Integer):
            return False
        match = _NEXTVAL.fullmatch(str(default).strip())
        if match is None:
            return False
        parts = [part.strip('"') for part in match.group("name").replace("''", "'").split(".")]
        sequence_name = parts[-1]
        table_schema = self.schema or self.autogen_context.default_schema
        sequence_schema = parts[-2] if len(parts) > 1 else table_schema
        owner = self.owned_sequences.get((str(sequence_schema), sequence_name))
        if owner is None:
            return False
        return owner[0] == table_schema and owner[1] == table_name and owner[2] == column["name"]

    # -- building tables ---------------------------------------------------------------------

    def table(self, table_name: str) -> Table:
        """Return the reflected table ``table_name`` (built once, with all its constraints)."""
        found = self._tables.get(table_name)
        if found is not None:
            return found
        self.load([table_name])
        key = f"{self.schema}.{table_name}" if self.schema else table_name
        existing = self.metadata.tables.get(key)
        if existing is not None and existing.info.get("asyncmigrate_placeholder"):
            self.metadata.remove(existing)
        comment = self.raw("table_comment", table_name).get("text")
        table = Table(
            table_name,
            self.metadata,
            *[self._column(table_name, raw) for raw in self.raw("columns", table_name)],
            schema=self.schema,
            comment=comment,
        )
        pk = self.raw("pk_constraint", table_name)
        pk_columns = [name for name in pk.get("constrained_columns") or () if name in table.c]
        if pk_columns:
            table.append_constraint(
                PrimaryKeyConstraint(*pk_columns, name=_conv(pk.get("name")))
            )
        for raw in self.raw("foreign_keys", table_name):
            self._foreign_key(table, raw)
        for raw in self.raw("unique_constraints", table_name):
            if all(name in table.c for name in raw["column_names"]):
                reflected_unique_constraint(table, raw)
        for raw in self.raw("check_constraints", table_name):
            table.append_constraint(
                CheckConstraint(text(raw["sqltext"]), name=_conv(raw.get("name")))
            )
        for raw in self.raw("indexes", table_name):
            if raw.get("duplicates_constraint"):
                continue
            reflected_index(table, raw)
        self._tables[table_name] = table
        return table

    def _column(self, table_name: str, raw: Mapping[str, Any]) -> Column[Any]:
        args: list[Any] = []
        computed = raw.get("computed")
        identity = raw.get("identity")
        default = raw.get("default")
        if computed:
            args.append(Computed(computed["sqltext"], persisted=computed.get("persisted")))
        elif identity:
            args.append(Identity(**identity))
        elif default is not None and not self._is_serial_default(table_name, raw):
            default = str(default)
            if self.dialect_name == "sqlite" and _unparenthesized_expression(default):
                default = f"({default})"
            args.append(DefaultClause(text(default)))
        kw: dict[str, Any] = {"nullable": bool(raw.get("nullable", True))}
        if raw.get("comment") is not None:
            kw["comment"] = raw["comment"]
        if "autoincrement" in raw:
            kw["autoincrement"] = raw["autoincrement"]
        column_type = raw["type"]
        return Column(raw["name"], column_type, *args, **kw)

    def _foreign_key(self, table: Table, raw: Mapping[str, Any]) -> ForeignKeyConstraint | None:
        local = list(raw["constrained_columns"])
        if not all(name in table.c for name in local):
            return None
        referred_schema = raw.get("referred_schema")
        referred_table = raw["referred_table"]
        prefix = f"{referred_schema}.{referred_table}" if referred_schema else referred_table
        options = raw.get("options") or {}
        constraint = ForeignKeyConstraint(
            local,
            [f"{prefix}.{name}" for name in raw["referred_columns"]],
            name=_conv(raw.get("name")),
            onupdate=options.get("onupdate"),
            ondelete=options.get("ondelete"),
            deferrable=options.get("deferrable"),
            initially=options.get("initially"),
            match=options.get("match"),
        )
        self._placeholder(referred_schema, referred_table, table, local, raw["referred_columns"])
        table.append_constraint(constraint)
        return constraint

    def _placeholder(
        self,
        schema: str | None,
        name: str,
        source: Table,
        local: list[str],
        remote: list[str],
    ) -> None:
        """Make sure the referred table exists in the reflection metadata (so keys resolve)."""
        key = f"{schema}.{name}" if schema else name
        target = self.metadata.tables.get(key)
        if target is None:
            target = Table(
                name,
                self.metadata,
                schema=schema if schema is not None else BLANK_SCHEMA,
                info={"asyncmigrate_placeholder": True},
            )
        if not target.info.get("asyncmigrate_placeholder"):
            return
        for local_name, remote_name in zip(local, remote, strict=False):
            if remote_name not in target.c:
                target.append_column(Column(remote_name, source.c[local_name].type))


def _empty(value: Any) -> bool:
    """Tell whether an option value means "not set" (None, False, an empty collection)."""
    if value is None or value is False:
        return True
    return isinstance(value, (list, tuple, dict, set)) and not value


def _conv(name: Any) -> Any:
    """Mark a reflected name as final (naming conventions must not rewrite it)."""
    if name is None or isinstance(name, conv):
        return name
    return conv(name)


def _unparenthesized_expression(default: str) -> bool:
    """SQLite: tell whether a reflected default is an expression DDL needs in parentheses."""
    if re.fullmatch(r"-?[0-9.]+", default):
        return False
    if re.fullmatch(r"'.*'", default, re.S):
        return False
    return not re.fullmatch(r"\(.*\)", default, re.S)


def reflected_unique_constraint(table: Table, raw: Mapping[str, Any]) -> UniqueConstraint:
    """Attach a unique constraint built from an inspector record to ``table``."""
    options = {
        key: value
        for key, value in (raw.get("dialect_options") or {}).items()
        if not _empty(value)
    }
    constraint = UniqueConstraint(
        *[table.c[name] for name in raw["column_names"]], name=_conv(raw.get("name")), **options
    )
    if raw.get("duplicates_index"):
        constraint.info["duplicates_index"] = raw["duplicates_index"]
    table.append_constraint(constraint)
    return constraint


def reflected_index(table: Table, raw: Mapping[str, Any]) -> Index | None:
    """Attach an index built from an inspector record to ``table`` (None if it cannot be)."""
    expressions = raw.get("expressions") or []
    sorting = raw.get("column_sorting") or {}
    elements: list[Any] = []
    for position, name in enumerate(raw["column_names"]):
        element: Any
        if name is None:
            if position >= len(expressions):
                return None
            key = expressions[position]
            element = text(key)
        elif name in table.c:
            key = name
            element = table.c[name]
        else:
            return None
        for modifier in sorting.get(key, ()):
            if modifier in _SORTING:
                element = _SORTING[modifier](element)
        elements.append(element)
    options = {
        key: value
        for key, value in (raw.get("dialect_options") or {}).items()
        if not _empty(value)
    }
    if "postgresql_where" in options and isinstance(options["postgresql_where"], str):
        options["postgresql_where"] = text(options["postgresql_where"])
    index = Index(
        _conv(raw["name"]), *elements, unique=bool(raw.get("unique")), _table=table, **options
    )
    if raw.get("duplicates_constraint"):
        index.info["duplicates_constraint"] = raw["duplicates_constraint"]
    return index
