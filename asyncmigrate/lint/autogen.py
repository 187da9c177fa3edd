"""Lint findings as comments for a revision autogenerate is writing.

Autogenerate produces operation objects, not SQL, so they are read with
:mod:`asyncmigrate.lint.opfacts` and checked by the same rules; each finding
becomes a ``# asyncmigrate lint: ...`` comment at the top of the generated
function body, where whoever reviews the new file sees it.
"""

from __future__ import annotations

import textwrap

from sqlalchemy.engine import Dialect

from ..operations import ops
from .analysis import DEFAULT_PG_VERSION, Analysis
from .recording import Direction, RecordedOperation, Rendering

__all__ = ["lint_comments"]

_WIDTH = 99


def _flatten(container: ops.OpContainer) -> list[ops.MigrateOperation]:
    flat: list[ops.MigrateOperation] = []
    for operation in container.ops:
        if isinstance(operation, ops.OpContainer):
            flat.extend(_flatten(operation))
        else:
            flat.append(operation)
    return flat


def lint_comments(container: ops.OpContainer, dialect: Dialect, direction: Direction) -> list[str]:
    """Comment lines describing what the lint rules find in ``container``'s operations."""
    records = [RecordedOperation(op, None, direction, None, None) for op in _flatten(container)]
    if not records:
        return []
    version = dialect.server_version_info if dialect.name == "postgresql" else None
    pg_version = int(version[0]) if version else DEFAULT_PG_VERSION
    findings = Analysis(dialect, pg_version).check([Rendering(direction, None, records)])
    lines: list[str] = []
    for finding in findings:
        rule = finding.rule
        head = f"asyncmigrate lint: {finding.severity.value} {rule.id} {rule.name}: {finding.message}"
        if finding.lock and str(finding.lock) not in finding.message:
            head += f" ({finding.lock})"
        lines += textwrap.wrap(head, _WIDTH - 2, initial_indent="# ", subsequent_indent="#   ")
        lines += textwrap.wrap(f"instead: {rule.instead}", _WIDTH - 2, initial_indent="#   ",
                               subsequent_indent="#   ")
    return lines
