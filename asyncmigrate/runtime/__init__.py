"""The runtime: migration context, environment, task-local proxies, locks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .local import context, op

if TYPE_CHECKING:
    from .environment import EnvironmentContext
    from .migration import MigrationContext

__all__ = ["EnvironmentContext", "MigrationContext", "context", "op"]


def __getattr__(name: str) -> Any:
    # Imported on first use: ``asyncmigrate.op`` must not pull in SQLAlchemy.
    if name == "EnvironmentContext":
        from .environment import EnvironmentContext

        return EnvironmentContext
    if name == "MigrationContext":
        from .migration import MigrationContext

        return MigrationContext
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
