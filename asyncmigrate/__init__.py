"""asyncmigrate: asyncio-native, Alembic-compatible schema migrations for SQLAlchemy.

Every command is a coroutine that runs in the caller's event loop::

    from asyncmigrate import Config, command

    config = Config("alembic.ini")
    await command.upgrade(config, "head")

Revision files keep ``from alembic import op``; inside asyncmigrate that
``op`` (and env.py's ``context``) is task-local, so many databases can be
migrated concurrently in one process.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import exceptions
from .config import Config
from .events import StepEvent
from .exceptions import AsyncMigrateError
from .results import CurrentState, MigrationResult
from .runtime.local import context, op

if TYPE_CHECKING:
    __version__: str
    from .integrations.asgi import lifespan
    from .tenants import FanoutReport, Tenant, TenantEvent, TenantResult, migrate_tenants

# Imported on first use, so `import asyncmigrate` (and the command line) stays light.
_LAZY = {
    "lifespan": "asyncmigrate.integrations.asgi",
    "FanoutReport": "asyncmigrate.tenants",
    "Tenant": "asyncmigrate.tenants",
    "TenantEvent": "asyncmigrate.tenants",
    "TenantResult": "asyncmigrate.tenants",
    "migrate_tenants": "asyncmigrate.tenants",
}


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("asyncmigrate")
    except PackageNotFoundError:  # pragma: no cover - running from a bare source tree
        return "0.0.0"


def __getattr__(name: str) -> Any:
    if name == "__version__":
        value = globals()["__version__"] = _version()
        return value
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "AsyncMigrateError",
    "Config",
    "CurrentState",
    "FanoutReport",
    "MigrationResult",
    "StepEvent",
    "Tenant",
    "TenantEvent",
    "TenantResult",
    "__version__",
    "context",
    "exceptions",
    "lifespan",
    "migrate_tenants",
    "op",
]
