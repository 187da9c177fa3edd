"""What a migration statement changes, as the lint rules see it.

Two readers produce these records: :mod:`asyncmigrate.lint.pgsql` from SQL
(PostgreSQL's own parser, for everything rendered for PostgreSQL and for
``op.execute`` text) and :mod:`asyncmigrate.lint.opfacts` from operation
objects (for dialects whose SQL the parser cannot read). The rules in
:mod:`asyncmigrate.lint.analysis` only ever look at these records, so both
readers feed the same checks. Each record also says which PostgreSQL lock
the statement takes on which table (:attr:`Change.lock`, :attr:`Change.locked`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Literal

from .locks import LockMode

__all__ = [
    "AddColumn",
    "AddConstraint",
    "AlterType",
    "Change",
    "ConstraintKind",
    "CreateIndex",
    "CreateTable",
    "DataChange",
    "Default",
    "DropColumn",
    "DropIndex",
    "DropTable",
    "OtherStatement",
    "Relation",
    "RenameColumn",
    "RenameTable",
    "SetNotNull",
    "SqlType",
    "TransactionControl",
    "Unreadable",
    "ValidateConstraint",
    "Volatility",
]

ConstraintKind = Literal["foreign_key", "check", "unique", "primary_key", "exclude", "other"]


@dataclass(frozen=True)
class Relation:
    """A table, by name and (when the SQL names one) schema."""

    name: str
    schema: str | None = None

    def __str__(self) -> str:
        return f"{self.schema}.{self.name}" if self.schema else self.name


@dataclass(frozen=True)
class SqlType:
    """A column type in PostgreSQL's canonical spelling (``int4``, ``varchar``...) with its modifiers."""

    name: str
    modifiers: tuple[int, ...] = ()
    array: bool = False

    def __str__(self) -> str:
        mods = f"({', '.join(str(m) for m in self.modifiers)})" if self.modifiers else ""
        return f"{self.name}{mods}{'[]' if self.array else ''}"


class Volatility(str, Enum):
    """How a default expression behaves, in PostgreSQL's terms (``pg_proc.provolatile``)."""

    CONSTANT = "constant"
    STABLE = "stable"
    VOLATILE = "volatile"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Default:
    """A column default: its SQL, its volatility and the function deciding it, if any."""

    expression: str
    volatility: Volatility
    function: str | None = None


@dataclass(frozen=True, kw_only=True)
class Change:
    """One statement's effect; subclasses carry what their rules need."""

    #: The statement as rendered (one statement, without the terminator).
    sql: str = ""

    @property
    def lock(self) -> LockMode | None:
        """The PostgreSQL lock mode the statement takes (None: no table lock worth naming)."""
        return None

    @property
    def locked(self) -> tuple[Relation, ...]:
        """The tables :attr:`lock` is taken on."""
        relation = getattr(self, "relation", None)
        return (relation,) if isinstance(relation, Relation) else ()

    @property
    def is_ddl(self) -> bool:
        """True for schema changes (not data changes or transaction control)."""
        return True


@dataclass(frozen=True, kw_only=True)
class _AccessExclusive(Change):
    """A statement that takes ACCESS EXCLUSIVE on its table (most of ``ALTER TABLE``)."""

    @property
    def lock(self) -> LockMode:
        return LockMode.ACCESS_EXCLUSIVE


@dataclass(frozen=True, kw_only=True)
class CreateTable(Change):
    """``CREATE TABLE``: a new, empty table (no lock on anything existing)."""

    relation: Relation
    #: Column names with their types, where the statement gives them.
    columns: tuple[tuple[str, SqlType | None], ...] = ()

    @property
    def locked(self) -> tuple[Relation, ...]:
        return ()


@dataclass(frozen=True, kw_only=True)
class CreateIndex(Change):
    """``CREATE [UNIQUE] INDEX [CONCURRENTLY]``."""

    relation: Relation
    index: str | None
    concurrently: bool = False
    unique: bool = False

    @property
    def lock(self) -> LockMode:
        return LockMode.SHARE_UPDATE_EXCLUSIVE if self.concurrently else LockMode.SHARE


@dataclass(frozen=True, kw_only=True)
class DropIndex(Change):
    """``DROP INDEX [CONCURRENTLY]``; the table is known when the index was created in range."""

    index: str
    relation: Relation | None = None
    concurrently: bool = False

    @property
    def lock(self) -> LockMode:
        return LockMode.SHARE_UPDATE_EXCLUSIVE if self.concurrently else LockMode.ACCESS_EXCLUSIVE


@dataclass(frozen=True, kw_only=True)
class AddConstraint(Change):
    """``ALTER TABLE ... ADD CONSTRAINT`` (a constraint on an existing table)."""

    relation: Relation
    name: str | None
    kind: ConstraintKind
    not_valid: bool = False
    #: ``ADD CONSTRAINT ... UNIQUE/PRIMARY KEY USING INDEX name``.
    using_index: str | None = None
    #: The referenced table of a foreign key.
    referenced: Relation | None = None
    #: For ``CHECK (col IS NOT NULL)``: the column it proves not null.
    not_null_column: str | None = None

    @property
    def lock(self) -> LockMode:
        # A foreign key takes SHARE ROW EXCLUSIVE on both tables; other constraints
        # take ACCESS EXCLUSIVE (PostgreSQL's ALTER TABLE reference, ADD table_constraint).
        return LockMode.SHARE_ROW_EXCLUSIVE if self.kind == "foreign_key" else LockMode.ACCESS_EXCLUSIVE

    @property
    def locked(self) -> tuple[Relation, ...]:
        return (self.relation,) + ((self.referenced,) if self.referenced is not None else ())


@dataclass(frozen=True, kw_only=True)
class ValidateConstraint(Change):
    """``ALTER TABLE ... VALIDATE CONSTRAINT``: scans the table without blocking writes."""

    relation: Relation
    name: str

    @property
    def lock(self) -> LockMode:
        return LockMode.SHARE_UPDATE_EXCLUSIVE


@dataclass(frozen=True, kw_only=True)
class SetNotNull(_AccessExclusive):
    """``ALTER COLUMN ... SET NOT NULL``."""

    relation: Relation
    column: str


@dataclass(frozen=True, kw_only=True)
class AddColumn(_AccessExclusive):
    """``ADD COLUMN``."""

    relation: Relation
    column: str
    type: SqlType | None = None
    default: Default | None = None
    not_null: bool = False
    #: ``GENERATED ALWAYS AS (...) STORED``: computed for every row at once.
    generated: bool = False


@dataclass(frozen=True, kw_only=True)
class AlterType(_AccessExclusive):
    """``ALTER COLUMN ... TYPE``; ``old`` is known from the operation or an earlier CREATE TABLE."""

    relation: Relation
    column: str
    new: SqlType | None
    old: SqlType | None = None
    using: bool = False


@dataclass(frozen=True, kw_only=True)
class RenameColumn(_AccessExclusive):
    """``RENAME COLUMN``."""

    relation: Relation
    column: str
    new_name: str


@dataclass(frozen=True, kw_only=True)
class RenameTable(_AccessExclusive):
    """``ALTER TABLE ... RENAME TO``."""

    relation: Relation
    new_name: str


@dataclass(frozen=True, kw_only=True)
class DropColumn(_AccessExclusive):
    """``DROP COLUMN``."""

    relation: Relation
    column: str


@dataclass(frozen=True, kw_only=True)
class DropTable(_AccessExclusive):
    """``DROP TABLE``."""

    relation: Relation


@dataclass(frozen=True, kw_only=True)
class DataChange(Change):
    """``UPDATE`` or ``DELETE`` of existing rows."""

    relation: Relation
    verb: Literal["UPDATE", "DELETE"]
    #: Whether a WHERE clause restricts the rows.
    where: bool = False
    #: Whether the rows come from a LIMITed subquery (one batch of a batched backfill).
    limited: bool = False

    @property
    def lock(self) -> LockMode:
        return LockMode.ROW_EXCLUSIVE

    @property
    def is_ddl(self) -> bool:
        return False


@dataclass(frozen=True, kw_only=True)
class TransactionControl(Change):
    """``BEGIN`` (``begin=True``) or ``COMMIT``/``ROLLBACK`` (``begin=False``)."""

    begin: bool

    @property
    def is_ddl(self) -> bool:
        return False


@dataclass(frozen=True, kw_only=True)
class OtherStatement(Change):
    """Any other statement: only its lock matters (e.g. for DDL sharing a transaction with data)."""

    relation: Relation | None = None
    mode: LockMode | None = None
    ddl: bool = True

    @property
    def lock(self) -> LockMode | None:
        return self.mode

    @property
    def is_ddl(self) -> bool:
        return self.ddl


@dataclass(frozen=True, kw_only=True)
class Unreadable(Change):
    """SQL the parser could not read: reported, not analysed."""

    error: str

    @property
    def is_ddl(self) -> bool:
        return False
