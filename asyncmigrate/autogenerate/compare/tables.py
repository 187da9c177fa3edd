"""Compare the tables of the selected schemas: added, removed, and changed.

Which schemas: the default one, or with ``include_schemas=True`` every
schema the database reports (less ``information_schema`` and whatever
``include_name(name, "schema", {})`` rejects). Table names go through
``include_name`` before anything is reflected, the tables through
``include_object`` after. The version table is never compared.

Order of the operations: new tables (in dependency order, each followed by
its indexes), then changes to existing tables (by schema and name), then
removed tables (dependents first) -- so that foreign keys always point at
tables that exist.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import ForeignKeyConstraint, Table

from ...masking import get_logger
from ...operations import ops
from .columns import compare_columns
from .registry import DispatchResult, comparators

if TYPE_CHECKING:
    from ..context import AutogenContext

__all__ = ["compare_tables", "produce_net_changes", "schemas_to_compare"]

log = get_logger("asyncmigrate.autogenerate")


def schemas_to_compare(autogen_context: AutogenContext) -> list[str | None]:
    """Return the schemas this run compares (None is the default schema)."""
    schemas: set[str | None] = {None}
    if autogen_context.opts.get("include_schemas", False):
        default = autogen_context.default_schema
        for name in autogen_context.inspector.get_schema_names():
            if name in ("information_schema", default):
                continue
            schemas.add(name)
    chosen = [s for s in schemas if autogen_context.run_name_filters(s, "schema", {})]
    return sorted(chosen, key=lambda s: (s is not None, s or ""))


@comparators.dispatch_for("autogenerate")
def produce_net_changes(autogen_context: AutogenContext, upgrade_ops: ops.UpgradeOps) -> None:
    """Run the ``"schema"`` comparators over the schemas this run compares."""
    schemas = schemas_to_compare(autogen_context)
    autogen_context.comparators.run(
        "schema", autogen_context.dialect.name, autogen_context, upgrade_ops, set(schemas)
    )


def _dependency_order(tables: list[Table]) -> list[Table]:
    """Sort tables so that referred tables come before the tables referring to them."""
    by_key = {table.key: table for table in tables}
    done: set[str] = set()
    ordered: list[Table] = []

    def visit(table: Table, trail: tuple[str, ...]) -> None:
        if table.key in done or table.key in trail:
            return
        for constraint in table.constraints:
            if not isinstance(constraint, ForeignKeyConstraint) or not constraint.elements:
                continue
            target = constraint.elements[0].target_fullname.rsplit(".", 1)[0]
            if target in by_key and target != table.key:
                visit(by_key[target], (*trail, table.key))
        done.add(table.key)
        ordered.append(table)

    for table in sorted(tables, key=lambda t: t.key):
        visit(table, ())
    return ordered


@comparators.dispatch_for("schema", element="tables")
def compare_tables(
    autogen_context: AutogenContext, upgrade_ops: ops.UpgradeOps, schemas: set[str | None]
) -> DispatchResult:
    """Append table creations, changes and removals for ``schemas``."""
    migration_context = autogen_context.migration_context
    version_table = migration_context.version_table if migration_context else "alembic_version"
    version_schema = migration_context.version_table_schema if migration_context else None
    default_schema = autogen_context.default_schema
    if version_schema is not None and (
        version_schema == default_schema
        or (migration_context is not None and version_schema == migration_context.tenant_schema)
    ):
        version_schema = None  # the schema unqualified names resolve to
    dialect_name = autogen_context.dialect.name
    # asyncmigrate's own tables: the version table and, when configured, the history table.
    own = {version_table}
    history = migration_context.history if migration_context is not None else None
    if history is not None:
        own.add(history.table.name)

    conn_names: set[tuple[str | None, str]] = set()
    for schema in schemas:
        reflection = autogen_context.reflection(schema)
        names = [
            name
            for name in reflection.table_names
            if not (name in own and schema == version_schema)
            and autogen_context.run_name_filters(name, "table", {"schema_name": schema})
        ]
        reflection.load(names)
        conn_names.update((schema, name) for name in names)

    metadata_tables: dict[tuple[str | None, str], Table] = {}
    for table in autogen_context.sorted_tables:
        schema = None if table.schema == default_schema else table.schema
        if schema == version_schema and table.name in own:
            continue
        if schema not in schemas:
            continue
        metadata_tables.setdefault((schema, table.name), table)

    # new tables, in dependency order
    for key, table in metadata_tables.items():
        if key in conn_names:
            continue
        schema, name = key
        if not autogen_context.run_object_filters(table, name, "table", False, None):
            continue
        upgrade_ops.ops.append(ops.CreateTableOp.from_table(table))
        log.info("Detected added table %r", table.key)
        modify = ops.ModifyTableOps(name, [], schema=schema)
        autogen_context.comparators.run(
            "table", dialect_name, autogen_context, modify, schema, name, None, table
        )
        if not modify.is_empty():
            upgrade_ops.ops.append(modify)

    # existing tables, by schema and name
    for key in sorted(conn_names & set(metadata_tables), key=lambda k: (k[0] or "", k[1])):
        schema, name = key
        table = metadata_tables[key]
        conn_table = autogen_context.reflection(schema).table(name)
        if not autogen_context.run_object_filters(table, name, "table", False, conn_table):
            continue
        modify = ops.ModifyTableOps(name, [], schema=schema)
        with compare_columns(autogen_context, modify, schema, name, conn_table, table):
            autogen_context.comparators.run(
                "table", dialect_name, autogen_context, modify, schema, name, conn_table, table
            )
        if not modify.is_empty():
            upgrade_ops.ops.append(modify)

    # removed tables, dependents first
    removed = [
        autogen_context.reflection(schema).table(name)
        for schema, name in sorted(conn_names - set(metadata_tables), key=lambda k: (k[0] or "", k[1]))
    ]
    for conn_table in reversed(_dependency_order(removed)):
        schema, name = conn_table.schema, conn_table.name
        if not autogen_context.run_object_filters(conn_table, name, "table", True, None):
            continue
        modify = ops.ModifyTableOps(name, [], schema=schema)
        autogen_context.comparators.run(
            "table", dialect_name, autogen_context, modify, schema, name, conn_table, None
        )
        if not modify.is_empty():
            upgrade_ops.ops.append(modify)
        upgrade_ops.ops.append(ops.DropTableOp.from_table(conn_table))
        log.info("Detected removed table %r", conn_table.key)
    return DispatchResult.CONTINUE
