"""PostgreSQL: compare enum types and sequences, which live beside the tables.

Enum types the models use but the database lacks are created before the
tables that need them; a type whose labels differ is altered (labels added
in place, anything else by recreating it and converting the columns that
use it); a type only the columns being removed used is dropped after them.
Types nothing in the compared tables uses are left alone. Sequences the
models declare (``Sequence`` column defaults, or on the ``MetaData``) are
created when missing; a sequence no column owns (not ``SERIAL`` or
identity) and the models do not declare is dropped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import Enum, Sequence, text
from sqlalchemy import types as sqltypes

from ...compat import extensions
from ...masking import get_logger
from ...operations import ops
from ..ops import (
    AlterEnumTypeOp,
    CreateEnumTypeOp,
    CreateSequenceOp,
    DropEnumTypeOp,
    DropSequenceOp,
    EnumColumn,
)
from .registry import DispatchPriority, DispatchResult, comparators

if TYPE_CHECKING:
    from sqlalchemy import Table

    from ..context import AutogenContext

__all__ = ["compare_enums", "compare_sequences", "native_enum"]

log = get_logger("asyncmigrate.autogenerate")

_Key = tuple[str | None, str]


def native_enum(type_: Any) -> Enum | None:
    """Return the native, named enum type behind ``type_`` (decorators, arrays), or None."""
    seen = 0
    while type_ is not None and seen < 5:
        seen += 1
        if isinstance(type_, Enum):
            return type_ if type_.native_enum and type_.name else None
        if isinstance(type_, sqltypes.TypeDecorator):
            type_ = type_.impl_instance
        elif isinstance(type_, sqltypes.ARRAY):
            type_ = type_.item_type
        else:
            return None
    return None


def _schema(autogen_context: AutogenContext, name: str | None) -> str | None:
    return None if name == autogen_context.default_schema else name


def _included_tables(autogen_context: AutogenContext, schemas: set[str | None]) -> list[Table]:
    found = []
    for table in autogen_context.sorted_tables:
        schema = _schema(autogen_context, table.schema)
        if schema not in schemas:
            continue
        if not autogen_context.run_name_filters(table.name, "table", {"schema_name": schema}):
            continue
        if autogen_context.run_object_filters(table, table.name, "table", False, None):
            found.append(table)
    return found


def _removed_columns(upgrade_ops: ops.UpgradeOps) -> tuple[set[_Key], set[tuple[str | None, str, str]]]:
    """Return the tables dropped and the columns dropped or retyped by ``upgrade_ops``."""
    tables: set[_Key] = set()
    columns: set[tuple[str | None, str, str]] = set()
    for op in upgrade_ops.ops:
        if isinstance(op, ops.DropTableOp):
            tables.add((op.schema, op.table_name))
        elif isinstance(op, ops.ModifyTableOps):
            for inner in op.ops:
                if isinstance(inner, ops.DropColumnOp) or (
                    isinstance(inner, ops.AlterColumnOp) and inner.modify_type is not None
                ):
                    columns.add((op.schema, op.table_name, inner.column_name))
    return tables, columns


@comparators.dispatch_for("schema", "postgresql", element="enums", priority=DispatchPriority.LAST)
def compare_enums(
    autogen_context: AutogenContext, upgrade_ops: ops.UpgradeOps, schemas: set[str | None]
) -> DispatchResult:
    """Create, alter and drop PostgreSQL enum types (runs after the tables are compared).

    Steps aside where alembic-postgresql-enum is installed and registered:
    the project chose it to manage its enums, and its revisions must come
    out as they do under Alembic.
    """
    if extensions.alembic_comparator_from("alembic_postgresql_enum"):
        return DispatchResult.CONTINUE
    wanted: dict[_Key, tuple[str, ...]] = {}
    for table in _included_tables(autogen_context, schemas):
        for column in table.columns:
            enum = native_enum(column.type)
            if enum is None or not autogen_context.run_object_filters(
                column, column.name, "column", False, None
            ):
                continue
            key = (_schema(autogen_context, enum.schema), str(enum.name))
            wanted.setdefault(key, tuple(enum.enums))

    existing: dict[_Key, tuple[str, ...]] = {}
    inspector: Any = autogen_context.inspector
    for info in inspector.get_enums(schema="*"):
        schema = _schema(autogen_context, info.get("schema"))
        existing[(schema, info["name"])] = tuple(info["labels"])

    users: dict[_Key, list[EnumColumn]] = {}
    for schema in schemas:
        reflection = autogen_context.reflection(schema)
        for table_name in reflection.loaded_tables:
            for raw in reflection.raw("columns", table_name):
                enum = native_enum(raw["type"])
                if enum is None:
                    continue
                enum_schema = _schema(autogen_context, enum.schema) if enum.schema else schema
                default = raw.get("default")
                users.setdefault((enum_schema, str(enum.name)), []).append(
                    (schema, table_name, raw["name"], str(default) if default is not None else None)
                )

    front: list[ops.MigrateOperation] = []
    for key, labels in wanted.items():
        schema, name = key
        if key not in existing:
            front.append(CreateEnumTypeOp(name, labels, schema=schema))
            log.info("Detected added enum type %r", name)
        elif existing[key] != labels:
            front.append(
                AlterEnumTypeOp(
                    name, labels, existing_labels=existing[key], schema=schema,
                    columns=users.get(key, ()),
                )
            )
            log.info("Detected changed enum type %r: %s to %s", name, existing[key], labels)

    dropped_tables, dropped_columns = _removed_columns(upgrade_ops)
    back: list[ops.MigrateOperation] = []
    for key, using in sorted(users.items(), key=lambda item: (item[0][0] or "", item[0][1])):
        if key in wanted or key not in existing:
            continue
        if all(
            (schema, table) in dropped_tables or (schema, table, column) in dropped_columns
            for schema, table, column, _default in using
        ):
            back.append(DropEnumTypeOp(key[1], existing[key], schema=key[0]))
            log.info("Detected removed enum type %r", key[1])
    upgrade_ops.ops[:0] = front
    upgrade_ops.ops.extend(back)
    return DispatchResult.CONTINUE


def _sequence_options(sequence: Sequence) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for name in ("start", "increment", "minvalue", "maxvalue", "cycle", "cache"):
        value = getattr(sequence, name, None)
        if value is not None:
            options[name] = value
    return options


_PG_SEQUENCES = text(
    "SELECT schemaname, sequencename, start_value, increment_by, min_value, max_value, "
    "cycle, cache_size FROM pg_catalog.pg_sequences"
)


def _reflected_sequence_options(autogen_context: AutogenContext) -> dict[_Key, dict[str, Any]]:
    """PostgreSQL: the options of every sequence (one query), for recreating dropped ones."""
    connection = autogen_context.connection
    if connection is None:
        return {}
    found: dict[_Key, dict[str, Any]] = {}
    for row in connection.execute(_PG_SEQUENCES):
        found[(_schema(autogen_context, row[0]), row[1])] = {
            "start": row[2], "increment": row[3], "minvalue": row[4], "maxvalue": row[5],
            "cycle": bool(row[6]), "cache": row[7],
        }
    return found


@comparators.dispatch_for(
    "schema", "postgresql", element="sequences", priority=DispatchPriority.LAST
)
def compare_sequences(
    autogen_context: AutogenContext, upgrade_ops: ops.UpgradeOps, schemas: set[str | None]
) -> DispatchResult:
    """Create the sequences the models declare; drop unowned ones they no longer declare."""
    declared: dict[_Key, Sequence] = {}
    for table in _included_tables(autogen_context, schemas):
        for column in table.columns:
            if isinstance(column.default, Sequence) and not column.default.optional:
                sequence = column.default
                schema = _schema(autogen_context, sequence.schema)
                declared.setdefault((schema, str(sequence.name)), sequence)
    for metadata in autogen_context.metadatas:
        for sequence in metadata._sequences.values():
            schema = _schema(autogen_context, sequence.schema)
            if schema in schemas:
                declared.setdefault((schema, str(sequence.name)), sequence)

    present: set[_Key] = set()
    owned: set[_Key] = set()
    for schema in schemas:
        reflection = autogen_context.reflection(schema)
        owned |= {
            (_schema(autogen_context, seq_schema), seq_name)
            for seq_schema, seq_name in reflection.owned_sequences
        }
        for name in autogen_context.inspector.get_sequence_names(schema=schema):
            if autogen_context.run_name_filters(name, "sequence", {"schema_name": schema}):
                present.add((schema, name))
    present -= owned

    front: list[ops.MigrateOperation] = []
    for key, sequence in declared.items():
        if key not in present and key not in owned:
            front.append(CreateSequenceOp(key[1], schema=key[0], **_sequence_options(sequence)))
            log.info("Detected added sequence %r", key[1])
    back: list[ops.MigrateOperation] = []
    removed = sorted(present - set(declared), key=lambda k: (k[0] or "", k[1]))
    options = _reflected_sequence_options(autogen_context) if removed else {}
    for key in removed:
        back.append(DropSequenceOp(key[1], schema=key[0], **options.get(key, {})))
        log.info("Detected removed sequence %r", key[1])
    upgrade_ops.ops[:0] = front
    upgrade_ops.ops.extend(back)
    return DispatchResult.CONTINUE
