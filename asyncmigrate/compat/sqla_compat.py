"""What ``alembic.util.sqla_compat`` gives revision files and extensions under asyncmigrate.

Alembic keeps its SQLAlchemy-version shims here; extensions and revision
files use the few helpers about constraint names and expression indexes.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import CheckConstraint, Index, Table
from sqlalchemy.sql.elements import ColumnClause, UnaryExpression, conv

from ..operations.schemaobj import constraint_name_or_none

__all__ = [
    "all_table_check_constraints",
    "constraint_name_defined",
    "constraint_name_or_none",
    "constraint_name_string",
    "is_expression",
    "is_expression_index",
]


def constraint_name_defined(name: Any) -> bool:
    """Tell whether a constraint's ``name`` was set: a string, or SQLAlchemy's "no name" marker.

    The marker (what a naming convention leaves for an unnamed constraint)
    counts as defined, None does not.
    """
    return isinstance(name, str) or type(name).__name__ == "_NoneName"


def constraint_name_string(name: Any) -> bool:
    """Tell whether ``name`` is a name given as a string (a ``conv()`` counts too)."""
    return isinstance(name, str)


def all_table_check_constraints(table: Table) -> set[CheckConstraint]:
    """Return the CHECK constraints of ``table`` and of its columns (type-bound ones included)."""
    found: set[CheckConstraint] = set()
    for owner in [table, *table.columns]:
        found.update(c for c in owner.constraints if isinstance(c, CheckConstraint))
    return found


def is_expression(expr: Any) -> bool:
    """Tell whether ``expr`` is an expression rather than a plain column (``desc()`` unwrapped)."""
    while isinstance(expr, UnaryExpression):
        expr = expr.element
    return not isinstance(expr, ColumnClause) or bool(expr.is_literal)


def is_expression_index(index: Index) -> bool:
    """Tell whether ``index`` has an expression among its elements (a functional index)."""
    return any(is_expression(expr) for expr in index.expressions)


# Keep ``conv`` importable from here too (Alembic's module exposes it to revision files).
conv = conv
