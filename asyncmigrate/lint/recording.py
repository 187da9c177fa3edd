"""Recording what revisions do when rendered offline: operations, their SQL, their call sites.

:class:`OperationRecorder` is the :class:`~asyncmigrate.operations.observe.OperationObserver`
the linter installs while a ``--sql`` style run renders revisions. For each
top-level ``op.*`` call it keeps the operation object, where its SQL went in
the run's output buffer, and the innermost frame of a revision file on the
stack (helper modules may issue operations on a revision's behalf). It reads
nothing of the runtime but the migration context's ``output_buffer``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Literal, TextIO

if TYPE_CHECKING:
    from sqlalchemy.engine import Dialect

    from ..operations.base import AbstractOperations
    from ..operations.ops import MigrateOperation

__all__ = ["Direction", "OperationRecorder", "RecordedOperation", "Rendering"]

Direction = Literal["upgrade", "downgrade"]


@dataclass
class RecordedOperation:
    """One top-level operation of a revision and where its SQL is in the rendered script."""

    operation: MigrateOperation
    revision: str | None
    direction: Direction
    path: str | None
    line: int | None
    #: Where the output buffer stood when it was first invoked.
    position: int = 0
    #: ``[start, end)`` character ranges of the output buffer written while it ran.
    spans: list[tuple[int, int]] = field(default_factory=list)

    @property
    def order(self) -> int:
        """Its place in the script: where its SQL starts (or where it was invoked)."""
        return self.spans[0][0] if self.spans else self.position


@dataclass
class Rendering:
    """One offline run: the script it wrote and the operations recorded in it."""

    direction: Direction
    script: str | None
    operations: list[RecordedOperation]

    def segments(self) -> Iterator[tuple[RecordedOperation | None, str]]:
        """The script in order: each operation with its SQL, and the runtime's SQL between them."""
        script = self.script or ""
        gaps: list[tuple[int, RecordedOperation | None, str]] = []
        position = 0
        for start, end in sorted(span for record in self.operations for span in record.spans):
            if start > position:
                gaps.append((position, None, script[position:start]))
            position = max(position, end)
        if position < len(script):
            gaps.append((position, None, script[position:]))
        owned: list[tuple[int, RecordedOperation | None, str]] = [
            (record.order, record, "".join(script[start:end] for start, end in record.spans))
            for record in self.operations
        ]
        # At one position the runtime's SQL (e.g. a BEGIN) comes before the operation's.
        for _, record, text in sorted(gaps + owned, key=lambda item: (item[0], item[1] is not None)):
            yield record, text


class OperationRecorder:
    """Observe the operations of one offline run and remember them with their call sites.

    It owns the records of one run; which revisions to render and how to
    read the result are the caller's. ``revision_files`` maps each revision
    file's real path to its revision id.
    """

    def __init__(self, revision_files: Mapping[str, str], direction: Direction) -> None:
        self._files = dict(revision_files)
        self._direction: Direction = direction
        self._real: dict[str, str | None] = {}
        self._depth = 0
        self._records: dict[int, RecordedOperation] = {}
        self.operations: list[RecordedOperation] = []
        #: The output buffer the run wrote to (the migration context's).
        self.buffer: TextIO | None = None
        #: The dialect the run rendered for (the migration context's).
        self.dialect: Dialect | None = None

    def observe(
        self, operations: AbstractOperations, operation: MigrateOperation
    ) -> AbstractContextManager[None]:
        """Record ``operation`` (top-level calls only) and the SQL written while it runs."""
        if self._depth:
            return nullcontext()  # an operation invoked by another one: its SQL is the outer's
        record = self._records.get(id(operation))
        if record is None:
            revision, path, line = self._call_site(sys._getframe(1))
            position = _tell(operations.get_context().output_buffer) or 0
            record = RecordedOperation(operation, revision, self._direction, path, line, position)
            self._records[id(operation)] = record
            self.operations.append(record)
        return self._watch(operations, record)

    @contextmanager
    def _watch(self, operations: AbstractOperations, record: RecordedOperation) -> Iterator[None]:
        context = operations.get_context()
        buffer = context.output_buffer
        self.buffer, self.dialect = buffer, context.dialect
        start = _tell(buffer)
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
            end = _tell(buffer)
            if start is not None and end is not None and end > start:
                record.spans.append((start, end))

    def failing_revision(self, exc: BaseException) -> tuple[str | None, int | None]:
        """The revision (and line) whose code raised ``exc`` (or what it was raised from).

        The innermost revision frame of the tracebacks along the cause chain.
        """
        found: tuple[str | None, int | None] = (None, None)
        seen: set[int] = set()
        current: BaseException | None = exc
        while current is not None and id(current) not in seen:
            seen.add(id(current))
            tb: TracebackType | None = current.__traceback__
            while tb is not None:
                revision = self._revision_of(tb.tb_frame)
                if revision is not None:
                    found = (revision, tb.tb_lineno)
                tb = tb.tb_next
            current = current.__cause__ or current.__context__
        return found

    def rendering(self) -> Rendering:
        """The run's script (when the buffer can give it back) and its records."""
        getvalue = getattr(self.buffer, "getvalue", None)
        script = getvalue() if callable(getvalue) else None
        return Rendering(self._direction, script if isinstance(script, str) else None, self.operations)

    def _call_site(self, frame: FrameType | None) -> tuple[str | None, str | None, int | None]:
        while frame is not None:
            revision = self._revision_of(frame)
            if revision is not None:
                return revision, frame.f_code.co_filename, frame.f_lineno
            frame = frame.f_back
        return None, None, None

    def _revision_of(self, frame: FrameType) -> str | None:
        filename = frame.f_code.co_filename
        if filename not in self._real:
            self._real[filename] = os.path.realpath(filename) if os.path.isabs(filename) or (
                os.path.exists(filename)
            ) else None
        real = self._real[filename]
        return self._files.get(real) if real is not None else None


def _tell(buffer: TextIO) -> int | None:
    try:
        return buffer.tell()
    except (OSError, ValueError):
        return None
