"""Autogenerate: compare models with a database, and write the migration that makes them match.

``asyncmigrate revision --autogenerate -m "..."`` compares env.py's
``target_metadata`` with the database and writes a revision whose
``upgrade()``/``downgrade()`` bring one to the other; ``asyncmigrate
check`` fails while they differ. Env.py files keep importing these names
from ``alembic.autogenerate`` (routed here): :func:`compare_metadata`,
:func:`produce_migrations`, :func:`render_python_code`, :data:`comparators`,
:data:`renderers`, :class:`Rewriter` and the :mod:`rewriter` module.

Modules: :mod:`.api` (entry points), :mod:`.context` (the run's state),
:mod:`.compare` (one module per kind of difference), :mod:`.render`
(operations to Python), :mod:`.rewriter` (``process_revision_directives``
helpers), :mod:`.ops` (PostgreSQL enum type and sequence operations).
"""

from __future__ import annotations

from . import compare, ops, render, rewriter
from .api import (
    RevisionContext,
    check_models,
    compare_metadata,
    describe_differences,
    produce_migrations,
    render_python_code,
    revision_with_autogenerate,
)
from .compare import DispatchPriority, DispatchResult, comparators
from .context import AutogenContext
from .render import render_op_text, renderers
from .rewriter import Rewriter

__all__ = [
    "AutogenContext",
    "DispatchPriority",
    "DispatchResult",
    "RevisionContext",
    "Rewriter",
    "check_models",
    "comparators",
    "compare",
    "compare_metadata",
    "describe_differences",
    "ops",
    "produce_migrations",
    "render",
    "render_op_text",
    "render_python_code",
    "renderers",
    "revision_with_autogenerate",
    "rewriter",
]
