"""Testing migrations with pytest: fresh databases, a step-by-step runner, built-in checks.

The pytest plugin (:mod:`asyncmigrate.pytest_plugin`) is a thin layer over
this package, which can also be used on its own:

* :class:`DatabaseFactory` builds migrated templates (cached across
  sessions by a hash of the revision files and the set-up) and hands out
  per-test copies; :mod:`.housekeeping` drops what ended sessions left;
* :class:`MigrationRunner` moves one test database through the history,
  one revision at a time, inserting data at revisions (pytest-alembic's
  runner methods);
* :class:`MigrationTestOptions` holds data at revisions, the downgrade
  policy, the set-up hook and the checks' allowances;
* :mod:`.checks` holds the built-in checks and their registry.
"""

from __future__ import annotations

from .checks import CHECKS, REGISTRY, Check, CheckFailed, CheckOutcome, CheckRun, run_check
from .databases import DatabaseFactory, Template, TemporaryDatabase, template_key
from .history import LinearHistory
from .options import MigrationTestOptions
from .runner import MigrationRunner
from .schema import describe_difference, schema_snapshot
from .seeding import insert_rows

__all__ = [
    "CHECKS",
    "REGISTRY",
    "Check",
    "CheckFailed",
    "CheckOutcome",
    "CheckRun",
    "DatabaseFactory",
    "LinearHistory",
    "MigrationRunner",
    "MigrationTestOptions",
    "Template",
    "TemporaryDatabase",
    "describe_difference",
    "insert_rows",
    "run_check",
    "schema_snapshot",
    "template_key",
]
