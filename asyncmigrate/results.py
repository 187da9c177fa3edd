"""What commands return: frozen records the CLI renders and callers inspect."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

__all__ = [
    "AppliedStep",
    "CurrentState",
    "HistoryEntry",
    "MigrationResult",
    "TemplateInfo",
]


@dataclass(frozen=True)
class AppliedStep:
    """One step a run applied."""

    direction: Literal["upgrade", "downgrade"]
    up_revisions: tuple[str, ...]
    """Ids on the upper side of the step."""
    down_revisions: tuple[str, ...]
    """Ids on the lower side of the step (empty for base)."""
    is_stamp: bool
    seconds: float


@dataclass(frozen=True)
class MigrationResult:
    """The outcome of ``upgrade``/``downgrade``/``stamp`` on one database."""

    from_heads: tuple[str, ...]
    """The version table before the run."""
    to_heads: tuple[str, ...]
    """The version table after the run."""
    steps: tuple[AppliedStep, ...] = ()
    seconds: float = 0.0
    """Wall time of the whole command, connection and env.py included."""
    waited_for_lock: float = 0.0
    """Seconds spent waiting for another process's migration lock."""
    sql: str | None = None
    """The rendered script in offline (``--sql``) mode."""
    url: str | None = None
    """The database URL, password masked."""

    @property
    def changed(self) -> bool:
        """True when the run applied at least one step."""
        return bool(self.steps)


@dataclass(frozen=True)
class CurrentState:
    """The revisions a database's version table holds."""

    heads: tuple[str, ...]
    """The rows of the version table."""
    at_head: bool
    """True when nothing is left to upgrade to ``heads``."""
    pending: tuple[str, ...] = ()
    """Revision ids an ``upgrade heads`` would apply, in order."""
    url: str | None = None


@dataclass(frozen=True)
class HistoryEntry:
    """One revision in ``history`` output."""

    revision: str
    is_current: bool = False


@dataclass(frozen=True)
class TemplateInfo:
    """An ``init`` template."""

    name: str
    description: str
    path: Path = field(compare=False)
