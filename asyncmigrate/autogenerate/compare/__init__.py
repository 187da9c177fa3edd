"""Compare models with a database: one module per concern.

============================  =====================================================
module                        compares
============================  =====================================================
:mod:`.tables`                schemas and tables (added, removed, changed)
:mod:`.columns`               columns added/removed, nullability
:mod:`.types`                 column types
:mod:`.server_defaults`       server defaults, identity options, computed columns
:mod:`.comments`              table and column comments
:mod:`.constraints`           indexes, unique constraints, foreign keys, CHECKs
:mod:`.enums`                 PostgreSQL enum types and sequences
:mod:`.reflection`            (reads the database in bulk for the others)
:mod:`.registry`              (the registry the comparators run from)
============================  =====================================================

Importing this package registers the built-in comparators in
:data:`comparators`, in the order they run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import columns, comments, constraints, enums, server_defaults, tables, types
from .registry import Comparators, DispatchPriority, DispatchResult, comparators

if TYPE_CHECKING:
    from ...operations.ops import UpgradeOps
    from ..context import AutogenContext

__all__ = [
    "Comparators",
    "DispatchPriority",
    "DispatchResult",
    "columns",
    "comments",
    "comparators",
    "constraints",
    "enums",
    "produce_net_changes",
    "server_defaults",
    "tables",
    "types",
]


def produce_net_changes(autogen_context: AutogenContext, upgrade_ops: UpgradeOps) -> None:
    """Fill ``upgrade_ops`` with what it takes to bring the database to the models."""
    autogen_context.comparators.run(
        "autogenerate", autogen_context.dialect.name, autogen_context, upgrade_ops
    )
