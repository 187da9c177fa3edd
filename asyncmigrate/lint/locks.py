"""PostgreSQL's table lock modes, and what each one blocks while a migration holds it.

The facts are PostgreSQL's documented lock levels ("Explicit Locking",
table-level locks, and each ``ALTER TABLE`` sub-command's note on the lock it
takes); the rules name the mode a statement takes and on which table, so a
report says what the application would wait for.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

__all__ = ["Lock", "LockMode"]


class LockMode(str, Enum):
    """A PostgreSQL table lock mode, strongest last."""

    ROW_EXCLUSIVE = "ROW EXCLUSIVE"
    SHARE_UPDATE_EXCLUSIVE = "SHARE UPDATE EXCLUSIVE"
    SHARE = "SHARE"
    SHARE_ROW_EXCLUSIVE = "SHARE ROW EXCLUSIVE"
    ACCESS_EXCLUSIVE = "ACCESS EXCLUSIVE"

    @property
    def blocks(self) -> str:
        """What other sessions cannot do on the table while the lock is held."""
        return _BLOCKS[self]

    @property
    def blocks_writes(self) -> bool:
        """True when INSERT/UPDATE/DELETE on the table wait for this lock."""
        return self in (LockMode.SHARE, LockMode.SHARE_ROW_EXCLUSIVE, LockMode.ACCESS_EXCLUSIVE)


_BLOCKS = {
    LockMode.ROW_EXCLUSIVE: "schema changes and index builds without CONCURRENTLY (rows it changes stay "
    "locked until commit)",
    LockMode.SHARE_UPDATE_EXCLUSIVE: "other schema changes and VACUUM, not reads or writes",
    LockMode.SHARE: "writes (INSERT, UPDATE, DELETE) and schema changes; reads go on",
    LockMode.SHARE_ROW_EXCLUSIVE: "writes (INSERT, UPDATE, DELETE) and schema changes; reads go on",
    LockMode.ACCESS_EXCLUSIVE: "every read and write, and every query queued behind it",
}


@dataclass(frozen=True)
class Lock:
    """A lock a statement takes: its mode and the table it is taken on."""

    mode: LockMode
    table: str

    def __str__(self) -> str:
        return f"{self.mode.value} on {self.table}"
