"""Where applications meet asyncmigrate: ASGI start-up and the pytest plugin.

* :mod:`asyncmigrate.integrations.asgi` -- :func:`lifespan`, an async context
  manager that migrates at application start-up (FastAPI, Starlette, any
  ASGI server), with :class:`StartupStatus` for health endpoints and
  :func:`readiness` for a cheap "is the database at head" probe.
* :mod:`asyncmigrate.integrations.testing` -- the machinery behind the
  pytest plugin (migrated templates, per-test databases, the step runner,
  the built-in checks); the plugin itself is :mod:`asyncmigrate.pytest_plugin`.

Both run inside the caller's event loop and never call ``asyncio.run``.
"""

from __future__ import annotations

from .asgi import MigrationLifespan, Readiness, StartupStatus, TenantProgress, lifespan, readiness

__all__ = [
    "MigrationLifespan",
    "Readiness",
    "StartupStatus",
    "TenantProgress",
    "lifespan",
    "readiness",
]
