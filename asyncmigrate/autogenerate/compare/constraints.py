"""Compare indexes, unique constraints, foreign keys and named CHECK constraints.

Indexes and unique constraints are matched by name (as the database will
name them: naming conventions applied, long names truncated), and unnamed
unique constraints in the models by their columns. An object present on
both sides but different (columns, expressions, uniqueness, PostgreSQL
``NULLS NOT DISTINCT`` or partial-index ``WHERE``) is dropped and created
again. Foreign keys are matched by what they connect and their
``ON DELETE``/``ON UPDATE``/deferrability, regardless of name. CHECK
constraints are matched by name only: databases rewrite their SQL text, so
it is not compared, and unnamed ones are left alone.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import CheckConstraint, ForeignKeyConstraint, Index, UniqueConstraint
from sqlalchemy.sql.elements import ClauseElement, ColumnClause, TextClause

from ...masking import get_logger
from ...operations import ops
from ...operations.schemaobj import constraint_name_or_none
from .registry import DispatchResult, comparators

if TYPE_CHECKING:
    from sqlalchemy import Table
    from sqlalchemy.engine import Dialect

    from ..context import AutogenContext

__all__ = [
    "compare_check_constraints",
    "compare_foreign_keys",
    "compare_indexes_and_uniques",
    "final_name",
    "normalized_expression",
]

log = get_logger("asyncmigrate.autogenerate")

def final_name(dialect: Dialect, constraint: Any) -> str | None:
    """Return the name the database gives ``constraint`` (conventions, truncation), or None."""
    name = constraint_name_or_none(constraint.name)
    if name is None and constraint.name is None:
        return None
    try:
        rendered = dialect.identifier_preparer.format_constraint(constraint, _alembic_quote=False)
    except Exception:  # a convention that cannot apply (e.g. needs a name)
        return str(name) if name is not None else None
    return str(rendered) if rendered is not None else None


# -- expression text ---------------------------------------------------------------------------

_CAST = re.compile(
    r"::\s*(?:\"[^\"]+\"|\w+)(?:\.(?:\"[^\"]+\"|\w+))?"
    r"(?:\s+(?:varying|precision))?(?:\s*\(\s*\d+(?:\s*,\s*\d+)?\s*\))?"
    r"(?:\s+with(?:out)?\s+time\s+zone)?(?:\s*\[\s*\d*\s*\])*",
    re.I,
)
_CAST_CALL = re.compile(r"\bcast\s*\((.*?)\s+as\s+[\w .\"]+(?:\(\s*\d+(?:\s*,\s*\d+)?\s*\))?\s*\)", re.I)
_DEFAULT_ORDER = (
    (re.compile(r" asc nulls last$"), ""),
    (re.compile(r"(?<! desc) nulls last$"), ""),
    (re.compile(r" asc$"), ""),
    (re.compile(r" asc nulls first$"), " nulls first"),
    (re.compile(r" desc nulls first$"), " desc"),
)


def _compile(element: Any, dialect: Dialect) -> str:
    if isinstance(element, str):
        return element
    if isinstance(element, TextClause):
        return element.text
    if isinstance(element, ClauseElement):
        return str(
            element.compile(
                dialect=dialect, compile_kwargs={"literal_binds": True, "include_table": False}
            )
        )
    return str(element)


def normalized_expression(element: Any, dialect: Dialect, table_name: str | None = None) -> str:
    """Return an index expression (or predicate) with what databases add or drop smoothed away.

    Lower-cased, without identifier quotes, ``::type`` and ``CAST(... AS type)``
    casts, table prefixes, default sort modifiers, redundant parentheses and spaces.
    """
    text = _compile(element, dialect).lower().replace('"', "").replace("`", "")
    if table_name:
        text = text.replace(f"{table_name.lower()}.", "")
    text = _CAST.sub("", text)
    changed = 1
    while changed:
        text, changed = _CAST_CALL.subn(r"\1", text)
    text = " ".join(text.split())
    text = _strip_parens(text)
    for pattern, replacement in _DEFAULT_ORDER:
        if pattern.search(text):
            text = pattern.sub(replacement, text)
            break
    text = _strip_parens(text)
    return text.replace(" ", "")


def _strip_parens(text: str) -> str:
    while text.startswith("(") and text.endswith(")") and _balanced(text[1:-1]):
        text = text[1:-1].strip()
    return text


def _balanced(text: str) -> bool:
    depth = 0
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth < 0:
            return False
    return depth == 0


# PostgreSQL spells some operators its own way when it stores a predicate.
_PREDICATE_SPELLINGS = (
    (re.compile(r"=any\(+array\[(.*?)\]\)+"), r"in(\1)"),
    (re.compile(r"<>all\(+array\[(.*?)\]\)+"), r"notin(\1)"),
    (re.compile(r"!~~\*"), "notilike"),
    (re.compile(r"~~\*"), "ilike"),
    (re.compile(r"!~~"), "notlike"),
    (re.compile(r"~~"), "like"),
    (re.compile(r"!="), "<>"),
    (re.compile(r"%%"), "%"),
)


def _predicate(element: Any, dialect: Dialect, table_name: str | None) -> str | None:
    """Normalize a partial index's ``WHERE`` for comparison (parentheses dropped)."""
    if element is None:
        return None
    text = normalized_expression(element, dialect, table_name)
    for pattern, replacement in _PREDICATE_SPELLINGS:
        text = pattern.sub(replacement, text)
    return re.sub(r"[()]", "", text)


# -- signatures ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Sig:
    """What identifies an index or unique constraint for comparison."""

    const: Any
    kind: str  # "index" or "unique"
    name: str | None
    unique: bool
    columns: tuple[str, ...]  # unique: sorted names; index: normalized expressions
    options: tuple[Any, ...]

    @property
    def unnamed(self) -> tuple[Any, ...]:
        return (self.kind, self.unique, self.columns, self.options)


def _index_sig(index: Index, dialect: Dialect) -> _Sig:
    table_name = index.table.name if index.table is not None else None
    expressions = tuple(
        element.name if isinstance(element, ColumnClause) and not isinstance(element, TextClause)
        and getattr(element, "table", None) is not None
        else normalized_expression(element, dialect, table_name)
        for element in index.expressions
    )
    options: tuple[Any, ...] = ()
    if dialect.name == "postgresql":
        options = (
            bool(index.dialect_kwargs.get("postgresql_nulls_not_distinct")),
            _predicate(index.dialect_kwargs.get("postgresql_where"), dialect, table_name),
        )
    return _Sig(index, "index", final_name(dialect, index), bool(index.unique), expressions, options)


def _unique_sig(constraint: UniqueConstraint, dialect: Dialect) -> _Sig:
    options: tuple[Any, ...] = ()
    if dialect.name == "postgresql":
        options = (bool(constraint.dialect_kwargs.get("postgresql_nulls_not_distinct")),)
    return _Sig(
        constraint,
        "unique",
        final_name(dialect, constraint),
        True,
        tuple(sorted(col.name for col in constraint.columns)),
        options,
    )


def _has_expressions(index: Index) -> bool:
    return any(not isinstance(e, ColumnClause) or isinstance(e, TextClause) for e in index.expressions)


def _difference(metadata: _Sig, conn: _Sig) -> str | None:
    reasons = []
    if metadata.unique != conn.unique:
        reasons.append(f"unique={conn.unique} to unique={metadata.unique}")
    if metadata.columns != conn.columns:
        reasons.append(f"expressions {conn.columns} to {metadata.columns}")
    if metadata.options != conn.options:
        reasons.append(f"options {conn.options} to {metadata.options}")
    return ", ".join(reasons) or None


# -- indexes and unique constraints -------------------------------------------------------------


@comparators.dispatch_for("table", element="indexes")
def compare_indexes_and_uniques(
    autogen_context: AutogenContext,
    modify_table_ops: ops.ModifyTableOps,
    schema: str | None,
    table_name: str,
    conn_table: Table | None,
    metadata_table: Table | None,
) -> DispatchResult:
    """Detect added, removed and changed indexes and unique constraints."""
    dialect = autogen_context.dialect
    creating = conn_table is None
    dropping = metadata_table is None
    parents: dict[str, str | None] = {"table_name": table_name, "schema_name": schema}

    metadata_uniques: list[UniqueConstraint] = []
    metadata_indexes: list[Index] = []
    if metadata_table is not None:
        metadata_uniques = [c for c in metadata_table.constraints if isinstance(c, UniqueConstraint)]
        metadata_indexes = [ix for ix in metadata_table.indexes if ix.name is not None]

    conn_uniques: list[UniqueConstraint] = []
    conn_indexes: list[Index] = []
    supports_uniques = False
    if conn_table is not None:
        reflection = autogen_context.reflection(schema)
        reflection.load([table_name])
        supports_uniques = reflection.supports("unique_constraints")
        if not dropping:
            conn_uniques = [
                c
                for c in conn_table.constraints
                if isinstance(c, UniqueConstraint)
                and autogen_context.run_name_filters(
                    constraint_name_or_none(c.name), "unique_constraint", dict(parents)
                )
            ]
        conn_indexes = [
            ix
            for ix in conn_table.indexes
            if autogen_context.run_name_filters(
                constraint_name_or_none(ix.name), "index", dict(parents)
            )
        ]
        if dialect.name in ("mysql", "mariadb"):
            _drop_implicit_foreign_key_indexes(conn_table, conn_indexes, metadata_indexes)
        if any(c.info.get("duplicates_index") for c in conn_uniques):
            _dedupe_doubled(dialect, conn_uniques, conn_indexes, metadata_uniques, metadata_indexes)
        if dialect.name == "sqlite":
            # SQLite's reflection cannot read expression indexes: only those that
            # exist by name can be compared.
            conn_names = {ix.name for ix in conn_indexes}
            for index in list(metadata_indexes):
                if index.name not in conn_names and _has_expressions(index):
                    log.warning(
                        "Skipping expression index %r: SQLite cannot reflect it, so it cannot be "
                        "compared", index.name,
                    )
                    metadata_indexes.remove(index)

    metadata_sigs = [_unique_sig(c, dialect) for c in metadata_uniques] + [
        _index_sig(ix, dialect) for ix in metadata_indexes
    ]
    conn_unique_sigs = [_unique_sig(c, dialect) for c in conn_uniques]
    conn_index_sigs = [_index_sig(ix, dialect) for ix in conn_indexes]

    metadata_by_name = {sig.name: sig for sig in metadata_sigs if sig.name is not None}
    unnamed_metadata_uniques = {
        sig.unnamed: sig for sig in metadata_sigs if sig.kind == "unique" and sig.name is None
    }
    metadata_uniques_by_sig = {sig.unnamed: sig for sig in metadata_sigs if sig.kind == "unique"}
    metadata_index_sigs = {sig.unnamed for sig in metadata_sigs if sig.kind == "index"}
    conn_uniques_by_name = {sig.name: sig for sig in conn_unique_sigs if sig.name}
    conn_indexes_by_name = {sig.name: sig for sig in conn_index_sigs if sig.name}
    conn_by_name = {**conn_uniques_by_name, **conn_indexes_by_name}
    doubled = set(conn_uniques_by_name) & set(conn_indexes_by_name)
    conn_uniques_by_sig = {sig.unnamed: sig for sig in conn_unique_sigs}

    def added(sig: _Sig) -> None:
        if sig.kind == "index":
            if autogen_context.run_object_filters(sig.const, sig.name, "index", False, None):
                modify_table_ops.ops.append(ops.CreateIndexOp.from_index(sig.const))
                log.info("Detected added index %r on %r", sig.name, table_name)
            return
        if not supports_uniques or creating or dropping:
            return  # created with the table, or cannot be seen in the database
        if autogen_context.run_object_filters(sig.const, sig.name, "unique_constraint", False, None):
            modify_table_ops.ops.append(ops.AddConstraintOp.from_constraint(sig.const))
            log.info("Detected added unique constraint %r on %r", sig.name, table_name)

    def removed(sig: _Sig) -> None:
        if sig.kind == "index":
            if sig.unique and not supports_uniques:
                return  # may be the database's own index behind a unique constraint
            if autogen_context.run_object_filters(sig.const, sig.name, "index", True, None):
                modify_table_ops.ops.append(ops.DropIndexOp.from_index(sig.const))
                log.info("Detected removed index %r on %r", sig.name, table_name)
            return
        if creating or dropping:
            return
        if autogen_context.run_object_filters(sig.const, sig.name, "unique_constraint", True, None):
            modify_table_ops.ops.append(ops.DropConstraintOp.from_constraint(sig.const))
            log.info("Detected removed unique constraint %r on %r", sig.name, table_name)

    def changed(old: _Sig, new: _Sig, why: str) -> None:
        kind = "index" if new.kind == "index" else "unique_constraint"
        if not autogen_context.run_object_filters(new.const, new.name, kind, False, old.const):
            return
        log.info("Detected changed %s %r on %r: %s", kind, old.name, table_name, why)
        if new.kind == "index":
            modify_table_ops.ops.append(ops.DropIndexOp.from_index(old.const))
            modify_table_ops.ops.append(ops.CreateIndexOp.from_index(new.const))
        else:
            modify_table_ops.ops.append(ops.DropConstraintOp.from_constraint(old.const))
            modify_table_ops.ops.append(ops.AddConstraintOp.from_constraint(new.const))

    for name in sorted(set(conn_by_name) - set(metadata_by_name)):
        conn_sig = conn_by_name[name]
        if name in doubled:
            conn_uq, conn_ix = conn_uniques_by_name[name], conn_indexes_by_name[name]
            if conn_ix.unnamed not in metadata_index_sigs and conn_uq.unnamed not in metadata_uniques_by_sig:
                removed(conn_uq)
                removed(conn_ix)
        elif conn_sig.kind == "unique" and conn_sig.unnamed in unnamed_metadata_uniques:
            continue
        else:
            removed(conn_sig)

    for name in sorted(set(metadata_by_name) & set(conn_by_name)):
        metadata_sig = metadata_by_name[name]
        if name in doubled:
            doubles = conn_indexes_by_name if metadata_sig.kind == "index" else conn_uniques_by_name
            conn_sig = doubles[name]
        else:
            conn_sig = conn_by_name[name]
        if conn_sig.kind != metadata_sig.kind:
            removed(conn_sig)
            added(metadata_sig)
            continue
        why = _difference(metadata_sig, conn_sig)
        if why:
            changed(conn_sig, metadata_sig, why)

    for name in sorted(set(metadata_by_name) - set(conn_by_name)):
        added(metadata_by_name[name])

    for key, sig in unnamed_metadata_uniques.items():
        if key not in conn_uniques_by_sig:
            added(sig)
    return DispatchResult.CONTINUE


def _drop_implicit_foreign_key_indexes(
    conn_table: Table, conn_indexes: list[Index], metadata_indexes: list[Index]
) -> None:
    """MySQL/MariaDB index foreign key columns on their own: those indexes are not compared.

    Such an index is named after its column or after the foreign key.
    """
    fk_names = {
        str(c.name) for c in conn_table.constraints if isinstance(c, ForeignKeyConstraint) and c.name
    }
    implicit = {
        str(ix.name)
        for ix in conn_indexes
        if not ix.unique and (ix.name in fk_names or ix.name in {c.name for c in ix.columns})
    }
    conn_indexes[:] = [ix for ix in conn_indexes if str(ix.name) not in implicit]
    metadata_indexes[:] = [ix for ix in metadata_indexes if str(ix.name) not in implicit]


def _dedupe_doubled(
    dialect: Dialect,
    conn_uniques: list[UniqueConstraint],
    conn_indexes: list[Index],
    metadata_uniques: Iterable[UniqueConstraint],
    metadata_indexes: Iterable[Index],
) -> None:
    """MySQL/MariaDB report a unique index as both: keep the form the models use."""
    metadata_unique_names = {final_name(dialect, c) for c in metadata_uniques} - {None}
    unnamed_unique_columns = {
        tuple(sorted(col.name for col in c.columns))
        for c in metadata_uniques
        if final_name(dialect, c) is None
    }
    metadata_unique_index_names = {final_name(dialect, ix) for ix in metadata_indexes if ix.unique}
    indexes_by_name = {ix.name: ix for ix in conn_indexes if ix.unique}
    for constraint in list(conn_uniques):
        name = constraint.info.get("duplicates_index")
        if not name:
            continue
        if name not in metadata_unique_names:
            columns = tuple(sorted(col.name for col in constraint.columns))
            if columns not in unnamed_unique_columns:
                conn_uniques.remove(constraint)
        elif name not in metadata_unique_index_names and name in indexes_by_name:
            conn_indexes.remove(indexes_by_name[name])


# -- foreign keys -----------------------------------------------------------------------------------


def _fk_signature(
    fk: ForeignKeyConstraint, default_schema: str | None, with_options: bool
) -> tuple[Any, ...]:
    def schema_of(name: str | None) -> str | None:
        return None if name == default_schema else name

    source = fk.table
    target_parts = fk.elements[0].target_fullname.split(".")
    target_table = target_parts[-2]
    target_schema = ".".join(target_parts[:-2]) or None
    key: tuple[Any, ...] = (
        schema_of(source.schema),
        source.name,
        tuple(element.parent.name for element in fk.elements),
        schema_of(target_schema),
        target_table,
        tuple(element.target_fullname.split(".")[-1] for element in fk.elements),
    )
    if not with_options:
        return key

    def action(value: str | None) -> str | None:
        return None if not value or value.lower() == "no action" else value.lower()

    if fk.initially and fk.initially.lower() == "deferred":
        deferral = "initially_deferred"
    else:
        deferral = "deferrable" if fk.deferrable else "not deferrable"
    return (*key, action(fk.onupdate), action(fk.ondelete), deferral)


@comparators.dispatch_for("table", element="foreignkeys")
def compare_foreign_keys(
    autogen_context: AutogenContext,
    modify_table_ops: ops.ModifyTableOps,
    schema: str | None,
    table_name: str,
    conn_table: Table | None,
    metadata_table: Table | None,
) -> DispatchResult:
    """Detect added and removed foreign keys (a changed one is removed and added)."""
    if conn_table is None or metadata_table is None:
        return DispatchResult.CONTINUE  # created or dropped with the table
    parents: dict[str, str | None] = {"table_name": table_name, "schema_name": schema}
    metadata_fks = [c for c in metadata_table.constraints if isinstance(c, ForeignKeyConstraint)]
    conn_fks = [
        c
        for c in conn_table.constraints
        if isinstance(c, ForeignKeyConstraint)
        and autogen_context.run_name_filters(
            constraint_name_or_none(c.name), "foreign_key_constraint", dict(parents)
        )
    ]
    raw = autogen_context.reflection(schema).raw("foreign_keys", table_name)
    with_options = bool(raw) and "options" in raw[0]
    default_schema = autogen_context.default_schema
    metadata_by_sig = {_fk_signature(fk, default_schema, with_options): fk for fk in metadata_fks}
    conn_by_sig = {_fk_signature(fk, default_schema, with_options): fk for fk in conn_fks}
    metadata_by_name = {fk.name: fk for fk in metadata_fks if constraint_name_or_none(fk.name)}
    conn_by_name = {fk.name: fk for fk in conn_fks if constraint_name_or_none(fk.name)}

    for sig, fk in conn_by_sig.items():
        if sig in metadata_by_sig:
            continue
        compare_to = metadata_by_name.get(fk.name) if fk.name else None
        if autogen_context.run_object_filters(
            fk, constraint_name_or_none(fk.name), "foreign_key_constraint", True, compare_to
        ):
            modify_table_ops.ops.append(ops.DropConstraintOp.from_constraint(fk))
            log.info("Detected removed foreign key %r on %r", fk.name, table_name)
    for sig, fk in metadata_by_sig.items():
        if sig in conn_by_sig:
            continue
        compare_to = conn_by_name.get(fk.name) if fk.name else None
        if autogen_context.run_object_filters(
            fk, constraint_name_or_none(fk.name), "foreign_key_constraint", False, compare_to
        ):
            modify_table_ops.ops.append(ops.CreateForeignKeyOp.from_constraint(fk))
            log.info("Detected added foreign key %r on %r", fk.name, table_name)
    return DispatchResult.CONTINUE


# -- CHECK constraints ------------------------------------------------------------------------------


class _RuleTarget:
    """What a type-generated constraint's create rule inspects (the dialect)."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect


def _metadata_checks(table: Table, dialect: Dialect) -> list[CheckConstraint]:
    found: dict[int, CheckConstraint] = {}
    candidates = [*table.constraints, *(c for col in table.columns for c in col.constraints)]
    for constraint in candidates:
        if not isinstance(constraint, CheckConstraint):
            continue
        rule = constraint._create_rule
        if rule is not None and not rule(_RuleTarget(dialect)):
            continue
        found[id(constraint)] = constraint
    return list(found.values())


@comparators.dispatch_for("table", element="checkconstraints")
def compare_check_constraints(
    autogen_context: AutogenContext,
    modify_table_ops: ops.ModifyTableOps,
    schema: str | None,
    table_name: str,
    conn_table: Table | None,
    metadata_table: Table | None,
) -> DispatchResult:
    """Detect named CHECK constraints added or removed (by name; text is not compared)."""
    if conn_table is None or metadata_table is None:
        return DispatchResult.CONTINUE
    dialect = autogen_context.dialect
    reflection = autogen_context.reflection(schema)
    reflection.load([table_name])
    if not reflection.supports("check_constraints"):
        return DispatchResult.CONTINUE
    parents: dict[str, str | None] = {"table_name": table_name, "schema_name": schema}
    conn_by_name = {
        str(c.name): c
        for c in conn_table.constraints
        if isinstance(c, CheckConstraint)
        and constraint_name_or_none(c.name)
        and autogen_context.run_name_filters(str(c.name), "check_constraint", dict(parents))
    }
    metadata_by_name: dict[str, CheckConstraint] = {}
    for constraint in _metadata_checks(metadata_table, dialect):
        name = final_name(dialect, constraint)
        if name:
            metadata_by_name[name] = constraint
    for name in sorted(set(conn_by_name) - set(metadata_by_name)):
        constraint = conn_by_name[name]
        if autogen_context.run_object_filters(constraint, name, "check_constraint", True, None):
            modify_table_ops.ops.append(ops.DropConstraintOp.from_constraint(constraint))
            log.info("Detected removed check constraint %r on %r", name, table_name)
    for name in sorted(set(metadata_by_name) - set(conn_by_name)):
        constraint = metadata_by_name[name]
        if autogen_context.run_object_filters(constraint, name, "check_constraint", False, None):
            modify_table_ops.ops.append(ops.AddConstraintOp.from_constraint(constraint))
            log.info("Detected added check constraint %r on %r", name, table_name)
    return DispatchResult.CONTINUE
