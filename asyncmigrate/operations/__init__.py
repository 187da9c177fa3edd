"""The ``op`` API: Alembic's directive set, as operation objects executed per dialect."""

from __future__ import annotations

from . import ops, toimpl
from .base import AbstractOperations, BatchOperations, Operations
from .ops import MigrateOperation, MigrationScript

__all__ = [
    "AbstractOperations",
    "BatchOperations",
    "MigrateOperation",
    "MigrationScript",
    "Operations",
    "ops",
    "toimpl",
]
