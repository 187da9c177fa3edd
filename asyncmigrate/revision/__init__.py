"""The revision graph: revisions as data, heads and bases, targets and plans."""

from __future__ import annotations

from .graph import BASE, RevisionGraph
from .plan import MigrationStep, RevisionStep, StampStep, VersionChange
from .revision import Revision

__all__ = [
    "BASE",
    "MigrationStep",
    "Revision",
    "RevisionGraph",
    "RevisionStep",
    "StampStep",
    "VersionChange",
]
