"""``lint-ignore`` markers in revision files: reading them and matching findings to them.

Two forms, both comments, both requiring a reason::

    op.create_index("ix_t_a", "t", ["a"])  # asyncmigrate: lint-ignore[AM101] reason: t has 40 rows

    # asyncmigrate: lint-ignore-revision[AM404] reason: legacy_log unused since release 4.2

A line marker covers the statement it trails (all its lines; a marker on the
first line of a ``with`` block covers the block) or, alone on its line, the
statement after it. A revision marker covers the whole file. Several ids are
separated by commas. Markers are read with :mod:`tokenize`, so ``#`` inside
strings is never taken for one.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from dataclasses import dataclass, field

__all__ = ["Suppression", "read_suppressions"]

_MARKER = re.compile(
    r"#\s*asyncmigrate\s*:\s*lint-ignore(?P<revision>-revision)?\s*"
    r"(?:\[(?P<ids>[^\]]*)\])?\s*(?P<rest>.*)$",
    re.IGNORECASE,
)
_REASON = re.compile(r"^reason\s*:\s*(?P<reason>\S.*)$", re.IGNORECASE)


@dataclass
class Suppression:
    """One marker: the rules it names, its reason, and the lines it covers (None: the revision)."""

    path: str
    line: int
    rule_ids: tuple[str, ...]
    reason: str | None
    covers: range | None
    used: bool = field(default=False, compare=False)

    def matches(self, rule_id: str, path: str | None, line: int | None) -> bool:
        """Tell whether the marker silences ``rule_id`` at ``path:line``."""
        if path != self.path or rule_id not in self.rule_ids or not self.reason:
            return False
        return self.covers is None or (line is not None and line in self.covers)


def read_suppressions(path: str, source: str) -> list[Suppression]:
    """Every marker in one revision file's ``source``."""
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, SyntaxError):
        return []
    statements = _statement_spans(source)
    found: list[Suppression] = []
    for token in tokens:
        if token.type != tokenize.COMMENT:
            continue
        match = _MARKER.search(token.string)
        if match is None:
            continue
        line = token.start[0]
        ids = tuple(i.strip().upper() for i in (match.group("ids") or "").split(",") if i.strip())
        reason_match = _REASON.match(match.group("rest").strip())
        reason = reason_match.group("reason").strip() if reason_match else None
        if match.group("revision"):
            covers = None
        else:
            alone = not token.line[: token.start[1]].strip()
            covers = _covered(statements, line, alone)
        found.append(Suppression(path, line, ids, reason, covers))
    return found


def _statement_spans(source: str) -> list[tuple[int, int]]:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    return [
        (node.lineno, node.end_lineno or node.lineno)
        for node in ast.walk(tree)
        if isinstance(node, ast.stmt) and not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                               ast.ClassDef))
    ]


def _covered(statements: list[tuple[int, int]], line: int, alone: bool) -> range:
    if alone:
        following = [span for span in statements if span[0] > line]
        if not following:
            return range(line, line + 1)
        first = min(start for start, _ in following)
        end = max(stop for start, stop in following if start == first)
        return range(first, end + 1)
    containing = [span for span in statements if span[0] <= line <= span[1]]
    if not containing:
        return range(line, line + 1)
    # The innermost statement starting on this line (a ``with`` header covers its block).
    starting = [span for span in containing if span[0] == line]
    start, end = max(starting, key=lambda s: s[1]) if starting else min(containing, key=lambda s: s[1] - s[0])
    return range(start, end + 1)
