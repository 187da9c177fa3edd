"""Events the core reports while it works; only the CLI turns them into output."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, TypeAlias

__all__ = ["StepEvent", "StepEventHandler"]


@dataclass(frozen=True)
class StepEvent:
    """One migration step on one database: started, finished, committed -- or retrying, failed, rolled back.

    A step is *finished* when the database ran it and *committed* when the
    transaction holding it committed; only a committed step is applied. A
    step that timed out waiting for a lock reports *retrying* before it is
    tried again (see ``step_retries``); a step of a transaction that rolled
    back reports *rolled_back*. A step whose transaction was interrupted
    (cancelled, or its connection lost) while its ``COMMIT`` was on the way
    reports *in_doubt*: the database may or may not have committed it, and
    only reading the version table tells.
    """

    kind: Literal["started", "finished", "committed", "retrying", "failed", "rolled_back", "in_doubt"]
    """Where the step is."""
    direction: Literal["upgrade", "downgrade"]
    """Which way the step moves."""
    revision: str | None
    """The revision the step runs (a stamp's destination, None for base)."""
    description: str
    """A human description, e.g. ``upgrade ae10 -> 27c6, add account table``."""
    is_stamp: bool = False
    """True when only the version table moves."""
    duration: float | None = None
    """Seconds the step took (finished and failed events)."""
    error: str | None = None
    """The one-line error of a failed step."""
    target: str | None = None
    """The database (masked URL) or tenant the step ran on, when known."""
    attempt: int = 1
    """The attempt this event belongs to (a retrying event: the attempt that timed out)."""


#: A callable that receives every :class:`StepEvent`.
StepEventHandler: TypeAlias = Callable[[StepEvent], None]
