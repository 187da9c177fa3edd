"""Read revision headers statically (no import) and describe a history's graph.

Used to check the catalog against the downloaded artifacts. Headers that are not
literals (computed at import time) are reported as ``("<expr>", source)`` and
ignored for the graph statistics.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Header", "graph_stats", "read_headers"]

_HEX12 = re.compile(r"[0-9a-f]{12}")
_FIELDS = ("revision", "down_revision", "branch_labels", "depends_on")


@dataclass(frozen=True)
class Header:
    path: Path
    revision: str
    down_revisions: tuple[str, ...]
    branch_labels: tuple[str, ...]
    depends_on: tuple[str, ...]
    annotated: bool
    #: Header fields that are not literals: name -> source text.
    computed: Mapping[str, str] = field(default_factory=dict)


def _tuple(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(value)


def read_headers(directories: Iterable[Path]) -> dict[str, Header]:
    """Return the headers of the revision files directly in ``directories``, by id."""
    headers: dict[str, Header] = {}
    for directory in directories:
        for path in sorted(Path(directory).glob("*.py")):
            if path.name in ("__init__.py", "env.py"):
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
            values: dict[str, Any] = {}
            computed: dict[str, str] = {}
            annotated = False
            for node in tree.body:
                if isinstance(node, ast.Assign) and len(node.targets) == 1:
                    target, value = node.targets[0], node.value
                elif isinstance(node, ast.AnnAssign) and node.value is not None:
                    target, value = node.target, node.value
                else:
                    continue
                if not isinstance(target, ast.Name) or target.id not in _FIELDS:
                    continue
                if target.id == "revision" and isinstance(node, ast.AnnAssign):
                    annotated = True
                try:
                    values[target.id] = ast.literal_eval(value)
                    computed.pop(target.id, None)
                except ValueError:
                    computed[target.id] = ast.unparse(value)
            if not isinstance(values.get("revision"), str):
                continue
            headers[values["revision"]] = Header(
                path=path,
                revision=values["revision"],
                down_revisions=_tuple(values.get("down_revision")),
                branch_labels=_tuple(values.get("branch_labels")),
                depends_on=_tuple(values.get("depends_on")),
                annotated=annotated,
                computed=computed,
            )
    return headers


def graph_stats(headers: Mapping[str, Header]) -> dict[str, Any]:
    """Return counts and ids describing the graph of ``headers``."""
    children: dict[str, list[str]] = {rev: [] for rev in headers}
    for header in headers.values():
        for down in header.down_revisions:
            children.setdefault(down, []).append(header.revision)
    return {
        "count": len(headers),
        "heads": sorted(r for r in headers if not children[r]),
        "bases": sorted(r for r, h in headers.items() if not h.down_revisions),
        "merges": sorted(r for r, h in headers.items() if len(h.down_revisions) > 1),
        "branchpoints": sorted(r for r in headers if len(children[r]) > 1),
        "branch_labels": {r: list(h.branch_labels) for r, h in headers.items() if h.branch_labels},
        "depends_on": {r: list(h.depends_on) for r, h in headers.items() if h.depends_on},
        "non_hex_ids": sorted(r for r in headers if not _HEX12.fullmatch(r)),
        "annotated": sum(h.annotated for h in headers.values()),
        "computed": {r: dict(h.computed) for r, h in headers.items() if h.computed},
        "missing_down_revisions": sorted(
            {d for h in headers.values() for d in h.down_revisions} - set(headers)
        ),
    }
