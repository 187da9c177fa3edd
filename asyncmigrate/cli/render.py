"""Turn command results into the text Alembic prints, or into JSON-ready data."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..events import StepEvent
from ..results import CurrentState, MigrationResult
from ..revision.revision import as_tuple
from ..script import Script

__all__ = [
    "branch_lines",
    "current_lines",
    "event_line",
    "log_entry",
    "migration_data",
    "result_lines",
    "script_data",
    "short_line",
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
    """Render a finished or failed step as one progress line (None for others)."""
    if event.kind == "finished":
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
