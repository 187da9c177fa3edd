"""What ``alembic.runtime.migration`` (and the older ``alembic.migration``) gives env.py and scripts.

The migration context is asyncmigrate's :class:`~asyncmigrate.runtime.MigrationContext`;
the step and info classes are those of :mod:`asyncmigrate.revision`.
"""

from __future__ import annotations

from ..revision import MigrationStep, RevisionStep, StampStep
from ..revision.plan import MigrationInfo
from ..runtime.migration import MigrationContext

__all__ = ["MigrationContext", "MigrationInfo", "MigrationStep", "RevisionStep", "StampStep"]
