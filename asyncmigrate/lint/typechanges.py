"""Which column type changes rewrite (PostgreSQL) or copy (MySQL/MariaDB) the table.

PostgreSQL rewrites the table and its indexes on ``ALTER COLUMN ... TYPE``
unless the old type is binary coercible to the new one and no ``USING``
changes the contents: widening ``varchar``, ``varchar`` to ``text``, dropping
a length limit, widening ``numeric`` precision at the same scale (PostgreSQL
9.2+). Shortening a limit scans every row under the same ACCESS EXCLUSIVE
lock, so it counts as blocking too. MySQL/MariaDB change a type in place only
when a ``VARCHAR`` grows within the same number of length bytes (up to 255
bytes, or beyond); everything else uses ``ALGORITHM=COPY``. MySQL's byte count
assumes ``utf8mb4`` (4 bytes a character), the conservative choice.
"""

from __future__ import annotations

from dataclasses import dataclass

from .changes import SqlType

__all__ = ["Verdict", "mysql_type_change", "postgresql_type_change"]

_UNBOUNDED_TEXT = frozenset({"text", "varchar"})
#: Pairs PostgreSQL converts without touching the stored values (binary coercible).
_COERCIBLE = frozenset({("cidr", "inet"), ("varchar", "text"), ("text", "varchar")})


@dataclass(frozen=True)
class Verdict:
    """Whether a type change blocks the table for its duration (None: cannot tell) and why."""

    blocking: bool | None
    reason: str


def postgresql_type_change(old: SqlType | None, new: SqlType | None, using: bool) -> Verdict:
    """Judge ``ALTER COLUMN ... TYPE new`` on PostgreSQL for a column of type ``old``."""
    if new is None:
        return Verdict(None, "the new type could not be read")
    if old is None:
        return Verdict(None, f"the column's current type is unknown (pass existing_type=); a change to {new} "
                       "rewrites the table unless it only widens varchar/numeric")
    if using:
        return Verdict(True, f"{old} -> {new} with USING rewrites every row")
    if old.array != new.array:
        return Verdict(True, f"{old} -> {new} rewrites every row")
    if old == new:
        return Verdict(False, "the type does not change")
    if (old.name, new.name) in _COERCIBLE and not new.modifiers:
        return Verdict(False, f"{old} -> {new} is binary coercible: no rewrite")
    if old.name in _UNBOUNDED_TEXT and new.name == "varchar":
        if old.name == "varchar" and old.modifiers and new.modifiers and new.modifiers[0] >= old.modifiers[0]:
            return Verdict(False, f"{old} -> {new} widens the limit: no rewrite")
        if not new.modifiers:
            return Verdict(False, f"{old} -> {new} drops the limit: no rewrite")
        return Verdict(True, f"{old} -> {new} narrows the limit: every row is checked under the lock")
    if old.name == new.name == "numeric":
        if not new.modifiers:
            return Verdict(False, f"{old} -> {new} drops the precision limit: no rewrite")
        if len(old.modifiers) >= 1 and len(new.modifiers) >= 1:
            old_scale = old.modifiers[1] if len(old.modifiers) > 1 else 0
            new_scale = new.modifiers[1] if len(new.modifiers) > 1 else 0
            if old_scale == new_scale and new.modifiers[0] >= old.modifiers[0]:
                return Verdict(False, f"{old} -> {new} widens the precision at the same scale: no rewrite")
    if (
        old.name == new.name == "varbit"
        and old.modifiers
        and new.modifiers
        and new.modifiers[0] >= old.modifiers[0]
    ):
        return Verdict(False, f"{old} -> {new} widens the limit: no rewrite")
    if (old.name, new.name) == ("timestamp", "timestamptz"):
        return Verdict(True, f"{old} -> {new} rewrites the table (PostgreSQL 12+ skips it only when the "
                       "session TimeZone is UTC)")
    return Verdict(True, f"{old} -> {new} rewrites the table and rebuilds its indexes")


def mysql_type_change(old: SqlType | None, new: SqlType | None) -> Verdict:
    """Judge a MySQL/MariaDB column type change (``MODIFY``/``CHANGE``)."""
    if new is None:
        return Verdict(None, "the new type could not be read")
    if old is None:
        return Verdict(None, f"the column's current type is unknown (pass existing_type=); a change to {new} "
                       "copies the table unless it only widens a VARCHAR")
    if old == new:
        return Verdict(False, "the type does not change")
    if old.name == new.name == "varchar" and old.modifiers and new.modifiers:
        before, after = old.modifiers[0], new.modifiers[0]
        if after >= before and (before * 4 <= 255) == (after * 4 <= 255):
            return Verdict(False, f"{old} -> {new} widens a VARCHAR within the same length bytes: in place")
        if after >= before:
            return Verdict(True, f"{old} -> {new} needs more length bytes (utf8mb4): ALGORITHM=COPY")
    return Verdict(True, f"{old} -> {new} copies the table (ALGORITHM=COPY), blocking writes")
