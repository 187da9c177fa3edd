"""A run's steps as they happen: started, finished, committed -- or failed, rolled back.

A step *finishes* when the database has run its statements and its version
rows moved; it is *committed* when the transaction holding it commits (at
once with a transaction per migration or without transactional DDL; at
the end of the run with one transaction for the run). Only committed steps
count as applied: they are what a run's result lists, and what the CLI
announces. When a transaction rolls back, its finished steps are reported
rolled back, and the ledger knows the revisions the database is still at.
When the run is cut off while its ``COMMIT`` is on the way (cancelled, or
the connection lost before the answer), its steps are reported in doubt:
the database may have committed them, and no claim is made either way.

:class:`StepLedger` owns this bookkeeping and the events it reports; it
leaves running steps and transactions to the migration context.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any, Literal

from sqlalchemy.exc import DBAPIError

from ..events import StepEvent
from ..exceptions import MigrationError
from ..lines import one_line
from ..revision.plan import MigrationInfo, MigrationStep, RevisionStep

__all__ = ["RunRecord", "StepLedger", "StepRecord"]


class RunRecord:
    """What one ``run_migrations`` call found and did."""

    def __init__(self) -> None:
        self.starting_heads: tuple[str, ...] = ()
        self.final_heads: tuple[str, ...] = ()
        self.steps: list[MigrationInfo] = []
        """The steps committed, in order."""
        self.durations: list[float] = []
        self.waited_for_lock: float = 0.0
        self.ran = False


class StepRecord:
    """One step being run: what its events say about it."""

    __slots__ = ("description", "direction", "duration", "info", "revision", "started")

    def __init__(self, step: MigrationStep) -> None:
        self.info: MigrationInfo = step.info
        self.direction: Literal["upgrade", "downgrade"] = "upgrade" if step.is_upgrade else "downgrade"
        if isinstance(step, RevisionStep):
            self.revision: str | None = step.revision.revision
        else:
            destinations = self.info.destination_revision_ids
            self.revision = destinations[0] if destinations else None
        self.description = describe(step)
        self.started = time.perf_counter()
        self.duration: float | None = None

    def event(self, kind: Any, error: str | None = None, attempt: int = 1) -> StepEvent:
        return StepEvent(
            kind, self.direction, self.revision, self.description, self.info.is_stamp, self.duration, error,
            attempt=attempt,
        )


class StepLedger:
    """Track a run's steps from start to commit (or rollback) and report each change as an event.

    :param on_step: receives every :class:`StepEvent`.
    :param record: the run's record; committed steps are added to it.
    :param heads: the revisions the database is at when the run starts.
    """

    def __init__(
        self, on_step: Callable[[StepEvent], None] | None, record: RunRecord, heads: Iterable[str]
    ) -> None:
        self._on_step = on_step
        self._record = record
        self._pending: list[StepRecord] = []
        self.database_at: tuple[str, ...] = tuple(sorted(heads))
        """The revisions the database holds as of the last commit."""

    def start(self, step: MigrationStep) -> StepRecord:
        """A step begins: report it started."""
        record = StepRecord(step)
        self._emit(record.event("started"))
        return record

    def finish(self, record: StepRecord) -> None:
        """The database ran the step (statements and version rows); it awaits its commit."""
        record.duration = time.perf_counter() - record.started
        self._pending.append(record)
        self._emit(record.event("finished"))

    def fail(self, record: StepRecord, exc: BaseException, note: str = "") -> MigrationError:
        """The step failed with ``exc``: report it, and return the error to raise.

        :param note: what else the user must know (e.g. statements already committed).
        """
        record.duration = time.perf_counter() - record.started
        message = f"{record.description} failed: {type(exc).__name__}: {first_line(exc)}{note}"
        self._emit(record.event("failed", message))
        if isinstance(exc, MigrationError) and exc.revision is not None:
            return exc
        kind = type(exc) if isinstance(exc, MigrationError) else MigrationError
        error = kind(message, revision=record.revision, direction=record.direction)
        error.__cause__ = exc
        return error

    def retrying(
        self, record: StepRecord, exc: BaseException, attempt: int, attempts: int, pause: float
    ) -> None:
        """Attempt ``attempt`` of ``attempts`` timed out waiting for a lock; it runs again after ``pause``."""
        record.duration = time.perf_counter() - record.started
        message = (
            f"{record.description}: attempt {attempt} of {attempts} timed out waiting for a lock "
            f"({first_line(exc)}); rolled back, trying again in {pause:.1f}s"
        )
        self._emit(record.event("retrying", message, attempt))

    def committed(self, heads: Iterable[str]) -> None:
        """The transaction holding the pending steps committed; the database is at ``heads``."""
        self.database_at = tuple(sorted(heads))
        pending, self._pending = self._pending, []
        for record in pending:
            self._record.steps.append(record.info)
            self._record.durations.append(record.duration or 0.0)
            self._emit(record.event("committed"))

    def rolled_back(self) -> None:
        """The transaction holding the pending steps rolled back: none of them stays."""
        pending, self._pending = self._pending, []
        for record in pending:
            self._emit(record.event("rolled_back"))

    def doubt(self, record: StepRecord, exc: BaseException | None = None) -> MigrationError:
        """The step's own transaction was cut off while committing (by ``exc``, else an interruption).

        Reports it in doubt and returns the error to raise: it says the step
        may have committed, never that it rolled back.
        """
        record.duration = time.perf_counter() - record.started
        message = _in_doubt(record)
        if exc is not None:
            message += f" ({type(exc).__name__}: {first_line(exc)})"
        self._emit(record.event("in_doubt", message))
        error = MigrationError(message, revision=record.revision, direction=record.direction)
        error.__cause__ = exc
        return error

    def in_doubt(self) -> None:
        """The transaction holding the pending steps was cut off while committing: they may have committed."""
        pending, self._pending = self._pending, []
        for record in pending:
            self._emit(record.event("in_doubt", _in_doubt(record)))

    @property
    def pending(self) -> bool:
        """Whether finished steps await a commit."""
        return bool(self._pending)

    def _emit(self, event: StepEvent) -> None:
        if self._on_step is not None:
            self._on_step(event)


def _in_doubt(record: StepRecord) -> str:
    """What a step in doubt is: its transaction's COMMIT left without an answer."""
    return (
        f"{record.description}: its transaction's COMMIT was cut off before the answer, "
        "so whether it committed is unknown"
    )


def describe(step: MigrationStep) -> str:
    """One line naming a step, e.g. ``upgrade a1 -> b2, add email``."""
    if isinstance(step, RevisionStep):
        # The message's first paragraph may span lines; events and errors are one line.
        doc = " ".join(getattr(step.revision, "doc", "").split())
        return f"{step}{', ' + doc if doc else ''}"
    return str(step)


def first_line(exc: BaseException) -> str:
    """One line describing ``exc``; for a database error, the statement that failed too."""
    text = str(exc).strip()
    statement = None
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        text = str(exc.orig).strip()
        statement = " ".join((exc.statement or "").split())
    line = one_line(text) if text else type(exc).__name__
    if statement:
        shown = statement if len(statement) <= 120 else statement[:117] + "..."
        line += f" [SQL: {shown}]"
    return line
