"""The checks: walk one rendered run's changes in order and raise findings.

:class:`Analysis` reads a :class:`~asyncmigrate.lint.recording.Rendering`
into change records (PostgreSQL's parser for PostgreSQL scripts and for
``op.execute`` text, the operation objects otherwise), follows the
transactions the script opens and closes, and tracks what the analysed
range itself created -- a table created earlier in the range is new, so
locking it harms nobody. Which rule applies to which dialect, and the
texts, are the catalogue's (:mod:`asyncmigrate.lint.rules`); suppressions
and severity overrides are applied afterwards (:mod:`asyncmigrate.lint.api`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from sqlalchemy.engine import Dialect

from ..operations import ops
from .changes import (
    AddColumn,
    AddConstraint,
    AlterType,
    Change,
    CreateIndex,
    CreateTable,
    DataChange,
    DropColumn,
    DropIndex,
    DropTable,
    Relation,
    RenameColumn,
    RenameTable,
    SetNotNull,
    SqlType,
    TransactionControl,
    Unreadable,
    ValidateConstraint,
    Volatility,
)
from .opfacts import read_operation, sql_type
from .pgsql import read_sql
from .recording import RecordedOperation, Rendering
from .report import Finding
from .rules import RULES, Severity
from .typechanges import mysql_type_change, postgresql_type_change

__all__ = ["DEFAULT_PG_VERSION", "Analysis"]

#: The PostgreSQL major version assumed when none is configured (the oldest supported one).
DEFAULT_PG_VERSION = 12


@dataclass
class _Item:
    change: Change
    record: RecordedOperation | None
    #: The transaction it runs in (a counter), or None outside any transaction.
    transaction: int | None


@dataclass
class _State:
    """What the analysed range has done so far (keys are lower-cased table names)."""

    created: set[str] = field(default_factory=set)
    added_columns: set[tuple[str, str]] = field(default_factory=set)
    types: dict[tuple[str, str], SqlType | None] = field(default_factory=dict)
    indexes: dict[str, Relation] = field(default_factory=dict)
    #: Constraint name -> (transaction it was added in, whether NOT VALID, column it proves not null).
    constraints: dict[str, tuple[int | None, bool, str | None]] = field(default_factory=dict)
    proven_not_null: set[tuple[str, str]] = field(default_factory=set)


class _Report(Protocol):
    """The callback the check helpers report through."""

    def __call__(self, rule_id: str, message: str, lock: str | None = None) -> None: ...


def _key(relation: Relation | None) -> str:
    return relation.name.lower() if relation is not None else "?"


class Analysis:
    """Check the runs of one lint for one dialect (and, on PostgreSQL, one server version)."""

    def __init__(self, dialect: Dialect, pg_version: int = DEFAULT_PG_VERSION) -> None:
        self.dialect = dialect
        self.name = "mysql" if dialect.name in ("mysql", "mariadb") else dialect.name
        self.pg_version = pg_version

    # -- reading --------------------------------------------------------------------------

    def items(self, renderings: Sequence[Rendering]) -> list[_Item]:
        """The runs' changes in script order, each with its operation and transaction."""
        items: list[_Item] = []
        transactions = 0
        current: int | None = None
        for record, text in (segment for rendering in renderings for segment in rendering.segments()):
            for change in self._changes(record, text):
                if isinstance(change, TransactionControl):
                    if change.begin:
                        transactions += 1
                        current = transactions
                    else:
                        current = None
                    continue
                if record is not None:
                    items.append(_Item(change, record, current))
        return items

    def _changes(self, record: RecordedOperation | None, text: str) -> list[Change]:
        postgresql = self.name == "postgresql"
        if record is None:  # the runtime's own SQL: only its transaction control matters
            if postgresql:
                return [c for c in read_sql(text) if isinstance(c, TransactionControl)]
            return [
                TransactionControl(sql=line, begin=line.upper().startswith("BEGIN"))
                for line in (part.strip().rstrip(";").strip() for part in text.splitlines())
                if line.upper() in ("BEGIN", "COMMIT", "ROLLBACK")
            ]
        if postgresql and text.strip():
            changes = read_sql(text)
            if not any(isinstance(c, Unreadable) for c in changes) or isinstance(
                record.operation, ops.ExecuteSQLOp
            ):
                return [self._enrich(change, record.operation) for change in changes]
        return read_operation(record.operation, self.dialect)

    def _enrich(self, change: Change, operation: ops.MigrateOperation) -> Change:
        """Add what the SQL does not say but the operation does (an index's table, a column's old type)."""
        if (
            isinstance(change, DropIndex)
            and change.relation is None
            and isinstance(operation, ops.DropIndexOp)
            and operation.table_name
        ):
            return replace(change, relation=Relation(operation.table_name, operation.schema))
        if isinstance(change, AlterType) and change.old is None and isinstance(operation, ops.AlterColumnOp):
            return replace(change, old=sql_type(operation.existing_type, self.dialect))
        return change

    # -- checking -------------------------------------------------------------------------

    def check(self, renderings: Sequence[Rendering], *, each_revision: bool = False) -> list[Finding]:
        """The findings for runs in one direction (before suppressions and severity overrides).

        Several runs happen when a revision could not be rendered and the
        rest were rendered after it; what the first runs created is still new.

        :param each_revision: judge each revision as if it alone were deployed
            (only what it creates itself is new), instead of the whole range
            together.
        """
        items = self.items(renderings)
        state = _State()
        findings: list[Finding] = []
        revision: str | None = None
        for index, item in enumerate(items):
            if each_revision and item.record is not None and item.record.revision != revision:
                revision, state = item.record.revision, _State()
            findings.extend(self._check(item, state, items[index + 1:]))
        findings.extend(self._data_with_ddl(items, each_revision))
        return [f for f in findings if RULES[f.rule_id].applies_to(self.name)]

    def _check(self, item: _Item, state: _State, later: list[_Item]) -> list[Finding]:
        change = item.change
        found: list[Finding] = []

        def report(rule_id: str, message: str, lock: str | None = None) -> None:
            found.append(self._finding(rule_id, message, item, lock))

        existing = _key(getattr(change, "relation", None)) not in state.created
        if isinstance(change, CreateTable):
            state.created.add(_key(change.relation))
            for column, type_ in change.columns:
                state.types[(_key(change.relation), column)] = type_
        elif isinstance(change, CreateIndex):
            self._create_index(change, item, state, existing, report)
        elif isinstance(change, DropIndex):
            self._drop_index(change, item, state, later, report)
        elif isinstance(change, AddConstraint):
            self._add_constraint(change, item, state, existing, report)
        elif isinstance(change, ValidateConstraint):
            added = state.constraints.get(change.name)
            if added is not None:
                transaction, not_valid, proves = added
                if not_valid and transaction is not None and transaction == item.transaction:
                    report("AM204", f"constraint {change.name} on {change.relation} is validated in the "
                           "transaction that added it NOT VALID", self._lock(change))
                if proves is not None:
                    state.proven_not_null.add((_key(change.relation), proves))
        elif isinstance(change, SetNotNull):
            if existing and not (
                self.pg_version >= 12 and (_key(change.relation), change.column) in state.proven_not_null
            ):
                report("AM205", f"SET NOT NULL on {change.relation}.{change.column} scans the whole "
                       "table", self._lock(change))
        elif isinstance(change, AddColumn):
            self._add_column(change, state, existing, report)
        elif isinstance(change, AlterType):
            self._alter_type(change, state, existing, report)
        elif isinstance(change, (RenameColumn, RenameTable, DropColumn, DropTable)):
            self._expand_contract(change, item, state, existing, report)
        elif isinstance(change, Unreadable):
            severity = Severity.WARNING if self.name == "postgresql" else Severity.NOTE
            message = f"op.execute SQL could not be parsed ({change.error}); it was not checked"
            found.append(self._finding("AM005", message, item).with_severity(severity))
        return found

    def _create_index(self, change: CreateIndex, item: _Item, state: _State, existing: bool,
                      report: _Report) -> None:
        if change.index:
            state.indexes[change.index.lower()] = change.relation
        if change.concurrently and item.transaction is not None:
            report("AM103", f"CREATE INDEX CONCURRENTLY {change.index or ''} on {change.relation} runs "
                   "inside a transaction and will fail")
        elif not change.concurrently and existing:
            report("AM101", f"CREATE {'UNIQUE ' if change.unique else ''}INDEX {change.index or ''} on "
                   f"{change.relation} blocks writes while the index builds", self._lock(change))

    def _drop_index(self, change: DropIndex, item: _Item, state: _State, later: list[_Item],
                    report: _Report) -> None:
        table = change.relation or state.indexes.get(change.index.lower())
        if change.concurrently:
            if item.transaction is not None:
                report("AM103", f"DROP INDEX CONCURRENTLY {change.index} runs inside a transaction and "
                       "will fail")
            return
        if table is not None and _key(table) in state.created:
            return
        if table is not None and any(
            isinstance(other.change, DropTable) and _key(other.change.relation) == _key(table)
            and other.transaction == item.transaction
            for other in later
        ):
            return  # the table goes too, under the same lock
        where = f"{table}" if table is not None else "its table"
        report("AM102", f"DROP INDEX {change.index} takes ACCESS EXCLUSIVE on {where}",
               f"ACCESS EXCLUSIVE on {where}")

    def _add_constraint(self, change: AddConstraint, item: _Item, state: _State, existing: bool,
                        report: _Report) -> None:
        if change.name:
            state.constraints[change.name] = (item.transaction, change.not_valid, change.not_null_column)
        if change.not_null_column and not change.not_valid:
            state.proven_not_null.add((_key(change.relation), change.not_null_column))
        if not existing:
            return
        name = change.name or "(unnamed)"
        if change.kind == "foreign_key" and not change.not_valid:
            if self.name == "mysql":
                report("AM201", f"foreign key {name} on {change.relation} copies the table "
                       "(ALGORITHM=COPY) unless foreign_key_checks=0")
            else:
                report("AM201", f"foreign key {name} on {change.relation} is validated while writes to "
                       f"{change.relation} and {change.referenced} wait", self._lock(change))
        elif change.kind == "check" and not change.not_valid:
            report("AM202", f"CHECK constraint {name} on {change.relation} is validated under ACCESS "
                   "EXCLUSIVE", self._lock(change))
        elif change.kind in ("unique", "primary_key") and change.using_index is None:
            what = "UNIQUE" if change.kind == "unique" else "PRIMARY KEY"
            report("AM203", f"{what} constraint {name} on {change.relation} builds its index under "
                   "ACCESS EXCLUSIVE", self._lock(change))

    def _add_column(self, change: AddColumn, state: _State, existing: bool, report: _Report) -> None:
        state.types[(_key(change.relation), change.column)] = change.type
        if not existing:
            return
        state.added_columns.add((_key(change.relation), change.column))
        column = f"{change.relation}.{change.column}"
        default = change.default
        if change.generated:
            report("AM301", f"adding the stored generated column {column} rewrites the table",
                   self._lock(change))
        elif default is not None and default.volatility == Volatility.VOLATILE:
            report("AM301", f"adding {column} with the volatile default {default.expression} rewrites "
                   "the table", self._lock(change))
        elif default is not None and default.volatility == Volatility.UNKNOWN:
            report("AM301", f"adding {column} with the default {default.expression}: if "
                   f"{default.function or 'it'}() is volatile the table is rewritten", self._lock(change))
        elif default is not None and self.pg_version < 11:
            report("AM301", f"adding {column} with a default rewrites the table before PostgreSQL 11",
                   self._lock(change))
        if change.not_null and default is None and not change.generated:
            report("AM303", f"adding NOT NULL column {column} without a default fails once the table "
                   "has rows")

    def _alter_type(self, change: AlterType, state: _State, existing: bool, report: _Report) -> None:
        key = (_key(change.relation), change.column)
        old = change.old or state.types.get(key)
        state.types[key] = change.new
        if not existing:
            return
        if self.name == "mysql":
            verdict = mysql_type_change(old, change.new)
        else:
            verdict = postgresql_type_change(old, change.new, change.using)
        if verdict.blocking is not False:
            report("AM302", f"changing the type of {change.relation}.{change.column}: {verdict.reason}",
                   self._lock(change))

    def _expand_contract(self, change: RenameColumn | RenameTable | DropColumn | DropTable, item: _Item,
                         state: _State, existing: bool, report: _Report) -> None:
        key = _key(change.relation)
        if isinstance(change, RenameTable) and not existing:
            state.created.add(change.new_name.lower())
        if isinstance(change, DropTable):
            state.created.discard(key)
        if not existing or item.record is None or item.record.direction != "upgrade":
            return  # a downgrade undoes its own revision's expansion by design
        lock = self._lock(change)
        if isinstance(change, RenameColumn):
            report("AM401", f"renaming {change.relation}.{change.column} to {change.new_name} breaks "
                   "code still using the old name", lock)
        elif isinstance(change, RenameTable):
            report("AM402", f"renaming {change.relation} to {change.new_name} breaks code still using "
                   "the old name", lock)
        elif isinstance(change, DropColumn):
            if (key, change.column) not in state.added_columns:
                report("AM403", f"dropping {change.relation}.{change.column} breaks code still using "
                       "it", lock)
        else:
            report("AM404", f"dropping table {change.relation} breaks code still using it", lock)

    def _data_with_ddl(self, items: list[_Item], each_revision: bool) -> list[Finding]:
        """AM501: unbatched UPDATE/DELETE sharing a transaction with DDL on an existing table."""
        created: set[tuple[str | None, str]] = set()
        ddl: dict[tuple[int, str | None], _Item] = {}
        data: dict[tuple[int, str | None], list[_Item]] = {}
        for item in items:
            change = item.change
            scope = item.record.revision if each_revision and item.record is not None else None
            if isinstance(change, CreateTable):
                created.add((scope, _key(change.relation)))
            if item.transaction is None:
                continue
            group = (item.transaction, scope)
            new = {name for owner, name in created if owner == scope}
            if isinstance(change, DataChange):
                if _key(change.relation) not in new and not change.limited:
                    data.setdefault(group, []).append(item)
            elif change.is_ddl and self._blocks(change, new):
                ddl.setdefault(group, item)
        findings = []
        for group, changes in data.items():
            first = ddl.get(group)
            if first is None:
                continue
            where = f" (line {first.record.line})" if first.record and first.record.line else ""
            for item in changes:
                assert isinstance(item.change, DataChange)
                findings.append(self._finding(
                    "AM501",
                    f"{item.change.verb} on {item.change.relation} runs in the transaction of "
                    f"{_describe(first.change)}{where}, whose lock is held until commit",
                    item,
                    self._lock(first.change),
                ))
        return findings

    def _blocks(self, change: Change, created: set[str]) -> bool:
        if not any(_key(relation) not in created for relation in change.locked):
            return False
        return self.name != "postgresql" or (change.lock is not None and change.lock.blocks_writes)

    # -- findings -------------------------------------------------------------------------

    def _lock(self, change: Change) -> str | None:
        if self.name != "postgresql" or change.lock is None or not change.locked:
            return None
        return f"{change.lock.value} on {', '.join(str(r) for r in change.locked)}"

    def _finding(self, rule_id: str, message: str, item: _Item, lock: str | None = None) -> Finding:
        record = item.record
        return Finding(
            rule_id=rule_id,
            severity=RULES[rule_id].severity,
            message=message,
            revision=record.revision if record else None,
            direction=record.direction if record else None,
            path=record.path if record else None,
            line=record.line if record else None,
            statement=item.change.sql or None,
            lock=lock,
        )


def _describe(change: Change) -> str:
    sql = change.sql.split("\n")[0] if change.sql else type(change).__name__
    return sql if len(sql) <= 60 else sql[:57] + "..."
