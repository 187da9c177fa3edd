"""Turn command results into the text Alembic prints, or into JSON-ready data."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ..events import StepEvent
from ..results import CurrentState, MigrationResult
from ..revision.revision import as_tuple
from ..script import Script

if TYPE_CHECKING:
    from ..audit import AppliedRecord, ValidationReport
    from .audit import TenantOutcome

__all__ = [
    "branch_lines",
    "current_lines",
    "event_line",
    "fleet_log_lines",
    "log_entry",
    "log_lines",
    "migration_data",
    "result_lines",
    "script_data",
    "short_line",
    "validated_line",
]


def _comma(values: Iterable[str] | str | None) -> str:
    if values is None:
        return ""
    if isinstance(values, str):
        return values
    return ", ".join(values)


def _down(script: Script) -> str:
    return _comma(script.down_revisions) if script.down_revision else "<base>"


def _labels(script: Script) -> list[str]:
    return sorted(script.branch_labels)


def short_line(
    script: Script,
    *,
    include_branches: bool = False,
    include_doc: bool = False,
    include_parents: bool = False,
    tree_indicators: bool = True,
    head_indicators: bool = True,
    is_current: bool = False,
) -> str:
    """Render one revision on one line, as Alembic's non-verbose listings do."""
    text = script.revision
    if include_parents:
        if script.dependencies:
            text = f"{_down(script)} ({_comma(script.dependencies)}) -> {text}"
        else:
            text = f"{_down(script)} -> {text}"
    if include_branches and script.branch_labels:
        text += f" ({_comma(_labels(script))})"
    if head_indicators or tree_indicators:
        if script.is_real_head:
            text += " (head)"
        elif script.is_head:
            text += " (effective head)"
        if is_current:
            text += " (current)"
    if tree_indicators:
        if script.is_branch_point:
            text += " (branchpoint)"
        if script.is_merge_point:
            text += " (mergepoint)"
    if include_doc:
        text += f", {script.doc}"
    return text


def log_entry(script: Script, is_current: bool = False) -> str:
    """Render one revision in full, as ``show`` and verbose listings do."""
    flags = "".join(
        flag
        for flag, on in (
            (" (head)", script.is_head),
            (" (branchpoint)", script.is_branch_point),
            (" (mergepoint)", script.is_merge_point),
            (" (current)", is_current),
        )
        if on
    )
    lines = [f"Rev: {script.revision}{flags}"]
    lines.append(f"{'Merges' if script.is_merge_point else 'Parent'}: {_down(script)}")
    if script.dependencies:
        lines.append(f"Also depends on: {_comma(script.dependencies)}")
    if script.is_branch_point:
        lines.append(f"Branches into: {_comma(sorted(script.nextrev))}")
    if script.branch_labels:
        lines.append(f"Branch names: {_comma(_labels(script))}")
    lines.append(f"Path: {script.path}")
    body = "\n".join(f"    {para}" for para in script.longdoc.splitlines())
    return "\n".join(lines) + f"\n\n{body}\n"


def branch_lines(script: Script, children: Iterable[Script], verbose: bool) -> str:
    """Render a branch point and the revisions it branches into."""
    head = log_entry(script) if verbose else short_line(script, include_branches=True)
    pad = " " * len(script.revision)
    rows = [
        f"{pad} -> {short_line(child, include_branches=True, include_doc=verbose)}"
        for child in children
    ]
    return head + "\n" + "\n".join(rows) + "\n"


def current_lines(state: CurrentState, scripts: Iterable[Script], verbose: bool) -> list[str]:
    """Render ``current`` output."""
    lines = []
    if verbose:
        lines.append(f"Current revision(s) for {state.url}:")
    for script in scripts:
        lines.append(log_entry(script) if verbose else short_line(script))
    return lines


def script_data(script: Script, is_current: bool | None = None) -> dict[str, Any]:
    """Describe a revision as JSON-ready data: what the text listings show, as fields."""
    data: dict[str, Any] = {
        "revision": script.revision,
        "down_revisions": list(script.down_revisions),
        "depends_on": list(as_tuple(script.dependencies)),
        "resolved_dependencies": list(script.resolved_dependencies),
        "branch_labels": _labels(script),
        "is_head": script.is_real_head,
        "is_effective_head": script.is_head and not script.is_real_head,
        "is_branch_point": script.is_branch_point,
        "is_merge_point": script.is_merge_point,
        "branches_into": sorted(script.nextrev),
        "doc": script.doc,
        "longdoc": script.longdoc,
        "path": script.path,
    }
    if is_current is not None:
        data["is_current"] = is_current
    return data


def migration_data(result: MigrationResult) -> dict[str, Any]:
    """Describe a migration run as JSON-ready data."""
    return {
        "url": result.url,
        "from": list(result.from_heads),
        "to": list(result.to_heads),
        "changed": result.changed,
        "seconds": round(result.seconds, 6),
        "waited_for_lock": round(result.waited_for_lock, 6),
        "steps": [
            {
                "direction": step.direction,
                "up": list(step.up_revisions),
                "down": list(step.down_revisions),
                "stamp": step.is_stamp,
                "seconds": round(step.seconds, 6),
            }
            for step in result.steps
        ],
    }


def event_line(event: StepEvent) -> str | None:
    """Render a finished, committed, retrying or failed step as one progress line (None for others)."""
    if event.kind == "retrying":
        return f"  {event.error}"
    if event.kind in ("finished", "committed"):
        return f"  {event.description} ({_ms(event.duration)})"
    if event.kind == "failed":
        return f"  {event.description} FAILED after {_ms(event.duration)}"
    return None


def result_lines(result: MigrationResult) -> list[str]:
    """Summarize a migration run."""
    where = f" on {result.url}" if result.url else ""
    if not result.changed:
        return [f"Nothing to do{where}: at {_comma(result.to_heads) or 'base'}."]
    moved = f"{_comma(result.from_heads) or 'base'} -> {_comma(result.to_heads) or 'base'}"
    plural = "s" if len(result.steps) != 1 else ""
    wait = f", waited {result.waited_for_lock:.2f}s for the lock" if result.waited_for_lock > 0.5 else ""
    return [f"Applied {len(result.steps)} step{plural}{where} ({moved}) in {result.seconds:.2f}s{wait}."]


def _ms(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    return f"{seconds * 1000:.0f} ms" if seconds < 10 else f"{seconds:.1f} s"


def log_lines(record: AppliedRecord) -> list[str]:
    """The applied record as text: one line per step, oldest first."""
    where = f" of {record.url}" if record.url else ""
    if not record.table_exists:
        lines = [f"No history table {record.table!r}{where}: nothing recorded yet."]
    else:
        lines = [f"Applied record{where} ({record.table}, {len(record.rows)} row(s)):"]
    if record.before_record:
        lines.append(f"  before the record: {_comma(record.before_record)}")
    for row in record.rows:
        who = f"{row.applied_by or '?'}@{row.host or '?'} pid {row.pid if row.pid is not None else '?'}"
        checksum = row.checksum[:12] if row.checksum else "-"
        took = _ms(row.duration) if row.duration is not None else "-"
        lines.append(
            f"  {row.applied_at:%Y-%m-%d %H:%M:%S}  {row.direction:<9} {row.revision or 'base':<14} "
            f"{row.kind:<9} {row.outcome:<11} {took:>8}  {who}  {checksum}  "
            f"asyncmigrate {row.tool_version or '?'}"
        )
    lines.append(f"  at: {_comma(record.heads) or 'base'}")
    return lines


def validated_line(report: ValidationReport) -> str:
    """The line ``validate`` prints when nothing drifted."""
    record = report.record
    where = f"{record.url}: " if record.url else ""
    before = f" ({len(record.before_record)} before the record)" if record.before_record else ""
    return f"OK: {where}applied revisions match their files{before}."


def fleet_log_lines(outcomes: Iterable[TenantOutcome[AppliedRecord]], revision: str | None) -> list[str]:
    """The applied records of many tenants: with ``revision``, which tenants have it, when, by whom."""
    lines: list[str] = []
    for outcome in outcomes:
        name, record = outcome.tenant.name, outcome.result
        if record is None:
            lines.append(f"{name}: ERROR {outcome.error}")
            continue
        if revision is None:
            last = record.rows[-1] if record.rows else None
            tail = (
                f"; last: {last.direction} {last.revision or 'base'} {last.outcome} "
                f"{last.applied_at:%Y-%m-%d %H:%M:%S} by {last.applied_by or '?'}@{last.host or '?'}"
                if last is not None else ""
            )
            lines.append(f"{name}: at {_comma(record.heads) or 'base'}, {len(record.rows)} row(s){tail}")
            continue
        rows = [r for r in record.rows if r.revision == revision]
        if not rows:
            where = "before the record" if revision in record.before_record else "not applied"
            lines.append(f"{name}: {revision} {where}")
        if rows:  # one line a tenant: the latest row says whether it has the revision now
            row = rows[-1]
            earlier = f" ({len(rows) - 1} earlier row(s))" if len(rows) > 1 else ""
            lines.append(
                f"{name}: {row.direction} {revision} {row.kind} {row.outcome} "
                f"{row.applied_at:%Y-%m-%d %H:%M:%S} by {row.applied_by or '?'}@{row.host or '?'} "
                f"pid {row.pid if row.pid is not None else '?'}{earlier}"
            )
    return lines
