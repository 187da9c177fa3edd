"""The ``op`` API: Alembic's directive set, as immutable operation objects executed per dialect."""

from __future__ import annotations

from . import ops, toimpl
from .base import AbstractOperations, BatchOperations, Operations
from .ops import MigrateOperation

__all__ = ["AbstractOperations", "BatchOperations", "MigrateOperation", "Operations", "ops", "toimpl"]
