"""The history as tests walk it: every revision in one order, parents before children.

Checks and the runner step through a history one revision at a time. A
history with branches is a graph; :class:`LinearHistory` lays it out as one
list (Alembic's walk order, oldest first), so "the revision before this one"
and "every revision up to that one" have one answer. ``base`` stands before
the first revision and ``heads`` (or ``head``) after the last.
"""

from __future__ import annotations

from collections.abc import Sequence

from ...config import Config
from ...exceptions import UnknownRevisionError
from ...script import Script, ScriptDirectory

__all__ = ["BASE", "HEADS", "LinearHistory", "load_script", "undo_target"]

BASE = "base"
HEADS = "heads"


async def load_script(config: Config) -> ScriptDirectory:
    """Read the script directory's headers in a worker thread (nothing is imported)."""
    from ...command import _script_directory  # what every command opens, the same way

    return await _script_directory(config)


def undo_target(script: Script) -> str:
    """Return the downgrade target that undoes exactly ``script`` (its descendants must be undone)."""
    down = script.down_revision
    if isinstance(down, (tuple, list)) and len(down) > 1:
        return str(down[0])  # a merge: unmerge back to one of its parents
    return f"{script.revision}@-1"


class LinearHistory:
    """Every revision of a script directory in walk order, with positions to step between.

    It owns the order and answers questions about positions; it runs nothing.
    """

    def __init__(self, script: ScriptDirectory) -> None:
        self.script = script
        scripts = list(reversed(list(script.walk_revisions())))
        self.scripts: dict[str, Script] = {s.revision: s for s in scripts}
        #: The revision ids, oldest first.
        self.revisions: tuple[str, ...] = tuple(s.revision for s in scripts)
        self._index = {rev: i for i, rev in enumerate(self.revisions)}

    def __len__(self) -> int:
        return len(self.revisions)

    def resolve(self, revision: str | None) -> str:
        """Return ``revision`` as an id of this history, ``base`` or ``heads``.

        Accepts ``None``/``base``, ``head``/``heads``, full ids and unique id prefixes.

        :raises UnknownRevisionError: when it names no revision.
        """
        if revision is None or revision == BASE:
            return BASE
        if revision in ("head", HEADS):
            return HEADS
        if revision in self._index:
            return revision
        matches = [rev for rev in self.revisions if rev.startswith(revision)]
        if len(matches) == 1:
            return matches[0]
        raise UnknownRevisionError(f"No revision {revision!r} in this history")

    def position(self, revision: str | None) -> int:
        """Return where ``revision`` stands: -1 for base, ``len(self)`` for heads."""
        resolved = self.resolve(revision)
        if resolved == BASE:
            return -1
        if resolved == HEADS:
            return len(self.revisions)
        return self._index[resolved]

    def position_of_heads(self, heads: Sequence[str]) -> int:
        """Return the position of a database at ``heads`` (its furthest version row)."""
        return max((self.position(head) for head in heads), default=-1)

    def previous(self, revision: str) -> str:
        """Return the revision before ``revision`` (``base`` before the first)."""
        index = min(self.position(revision), len(self.revisions)) - 1
        return self.revisions[index] if index >= 0 else BASE

    def next(self, revision: str) -> str | None:
        """Return the revision after ``revision``, or None after the last."""
        index = self.position(revision) + 1
        return self.revisions[index] if index < len(self.revisions) else None

    def between(self, after: int, up_to: int) -> list[str]:
        """Return the revisions after position ``after`` up to position ``up_to`` (included)."""
        return list(self.revisions[max(after + 1, 0) : min(up_to, len(self.revisions) - 1) + 1])
