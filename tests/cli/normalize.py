"""What may legitimately differ between ``alembic`` and ``asyncmigrate`` output, removed.

Each rule names the reason. Everything else must match byte for byte.

1. **Set order.** Alembic keeps a revision's branch labels and its children
   (``nextrev``) in sets, and ``current`` collects the revisions to print in
   a set, so their order follows the interpreter's hash seed and changes from
   one run to the next. asyncmigrate prints them sorted (labels, children) or
   in history order (``current``). The rules sort: a parenthesised group made
   only of branch labels, the lists after ``Branch names:`` and ``Branches
   into:``, the ``->`` rows under each branch point in ``branches``, and the
   entries ``current`` prints.
2. **The driver in ``current -v``.** ``Current revision(s) for URL:`` shows the
   URL of the engine in use. asyncmigrate maps sync URLs to async drivers
   (``sqlite://`` -> ``sqlite+aiosqlite://``), so the driver name differs;
   it is dropped from that line.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["normalize", "normalize_current"]

_LIST_LINE = re.compile(r"^(Branch names|Branches into): (.*)$", re.M)
_PAREN_GROUP = re.compile(r"\(([^()]*)\)")
_URL_DRIVER = re.compile(r"^(Current revision\(s\) for [a-z0-9]+)\+\w+(://)", re.M)


def _sorted_list(text: str) -> str:
    return ", ".join(sorted(part.strip() for part in text.split(",")))


def normalize(text: str, labels: Iterable[str]) -> str:
    """Apply rules 1 (labels, children, branch rows) and 2 to one command's output."""
    names = set(labels)

    def sort_labels(match: re.Match[str]) -> str:
        parts = [p.strip() for p in match.group(1).split(",")]
        if len(parts) > 1 and all(p in names for p in parts):
            return f"({', '.join(sorted(parts))})"
        return match.group(0)

    text = _LIST_LINE.sub(lambda m: f"{m.group(1)}: {_sorted_list(m.group(2))}", text)
    text = _URL_DRIVER.sub(r"\1\2", text)
    lines = [_PAREN_GROUP.sub(sort_labels, line) for line in text.split("\n")]
    return "\n".join(_sort_branch_rows(lines))


def _sort_branch_rows(lines: list[str]) -> list[str]:
    """Sort each run of ``<pad> -> child`` rows that ``branches`` prints under a branch point."""
    out: list[str] = []
    run: list[str] = []
    for line in lines:
        if re.match(r"^ +-> ", line):
            run.append(line)
            continue
        out.extend(sorted(run))
        run = []
        out.append(line)
    out.extend(sorted(run))
    return out


def normalize_current(text: str, labels: Iterable[str], verbose: bool) -> str:
    """Normalize ``current`` output: rules 1 and 2, then the entries in sorted order."""
    text = normalize(text, labels)
    if not verbose:
        return "\n".join(sorted(line for line in text.split("\n") if line)) + "\n"
    head, sep, rest = text.partition("\n")
    if not head.startswith("Current revision(s) for"):
        head, sep, rest = "", "", text
    entries = [e for e in re.split(r"(?=^Rev: )", rest, flags=re.M) if e.strip()]
    return head + sep + "".join(sorted(entries))
