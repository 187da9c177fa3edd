"""Testing migrations with pytest: fresh databases, a step-by-step runner, built-in checks.

The pytest plugin (:mod:`asyncmigrate.pytest_plugin`) is a thin layer over
this package, which can also be used on its own:

* :class:`DatabaseFactory` builds migrated templates (cached across
  sessions by a hash of the revision files) and hands out per-test copies;
* :class:`MigrationRunner` upgrades and downgrades one test database step
  by step, for testing data migrations;
* :mod:`asyncmigrate.integrations.testing.checks` holds the built-in
  checks: single head, upgrade, stairway, downgrade leaves no trace,
  models match migrations.
"""

from __future__ import annotations

from .checks import CHECKS, CheckFailed, run_check, schema_snapshot
from .databases import DatabaseFactory, Template, TemporaryDatabase, template_key
from .runner import MigrationRunner

__all__ = [
    "CHECKS",
    "CheckFailed",
    "DatabaseFactory",
    "MigrationRunner",
    "Template",
    "TemporaryDatabase",
    "run_check",
    "schema_snapshot",
    "template_key",
]
