"""The lint rules: ids, names, default severities, where they apply, why, and what to do instead.

This module is the catalogue only (data); the checks that raise findings
live in :mod:`asyncmigrate.lint.analysis`. Ids are stable: ``AM0xx`` are
about the linting itself (suppressions, revisions that could not be read),
``AM1xx`` indexes, ``AM2xx`` constraints, ``AM3xx`` columns and types,
``AM4xx`` expand/contract (renames and drops the running application may
still use), ``AM5xx`` data changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from types import MappingProxyType

from ..exceptions import ConfigError

__all__ = ["RULES", "Rule", "Severity", "get_rule", "parse_severities"]


class Severity(str, Enum):
    """How much a finding matters: errors fail ``lint`` (exit 1) and ``upgrade --lint``."""

    ERROR = "error"
    WARNING = "warning"
    NOTE = "note"


@dataclass(frozen=True)
class Rule:
    """One lint rule, as the reports and the documentation describe it."""

    id: str
    name: str
    severity: Severity
    #: Dialect names the rule applies to; empty: every dialect.
    dialects: frozenset[str]
    summary: str
    why: str
    instead: str
    #: squawk's rules covering the same risk (for the comparison in the documentation).
    squawk: tuple[str, ...] = ()
    #: Whether a ``lint-ignore`` marker may silence it.
    suppressible: bool = True

    def applies_to(self, dialect: str) -> bool:
        """Tell whether the rule checks migrations rendered for ``dialect``."""
        return not self.dialects or _family(dialect) in self.dialects


def _family(dialect: str) -> str:
    return "mysql" if dialect in ("mysql", "mariadb") else dialect


_PG = frozenset({"postgresql"})
_ALL: frozenset[str] = frozenset()

_CATALOGUE = (
    Rule(
        "AM001", "unknown-rule-in-suppression", Severity.ERROR, _ALL,
        "A lint-ignore marker names a rule that does not exist.",
        "A typo in a suppression silently suppresses nothing.",
        "Name rules by their ids (asyncmigrate lint --list-rules).",
        suppressible=False,
    ),
    Rule(
        "AM002", "suppression-without-reason", Severity.ERROR, _ALL,
        "A lint-ignore marker gives no reason.",
        "A suppression is a decision a reviewer must be able to check; without the reason it is "
        "ignored.",
        "Add ``reason: <why this is safe here>`` after the rule ids.",
        suppressible=False,
    ),
    Rule(
        "AM003", "unused-suppression", Severity.WARNING, _ALL,
        "A lint-ignore marker matches no finding.",
        "Stale suppressions hide the next real problem on that line.",
        "Remove the marker.",
        suppressible=False,
    ),
    Rule(
        "AM004", "revision-not-analysable", Severity.WARNING, _ALL,
        "The revision could not be rendered offline, so some of its operations were not checked.",
        "Revisions that read the database (op.get_bind().execute(...).fetchall()) or need a live "
        "connection cannot be rendered as SQL; the operations before the failure are still checked.",
        "Make the revision work in offline (--sql) mode, or suppress for the revision with a reason.",
    ),
    Rule(
        "AM005", "sql-not-parsed", Severity.WARNING, _ALL,
        "SQL given to op.execute could not be parsed, so it was not checked.",
        "The linter reads op.execute text with PostgreSQL's own parser; what it cannot read it "
        "cannot judge.",
        "Check the statement by hand, or suppress the line with a reason.",
    ),
    Rule(
        "AM006", "revision-not-importable", Severity.ERROR, _ALL,
        "The revision file cannot be imported (a syntax error, a failing import), so nothing in it "
        "was checked.",
        "A file Python cannot import cannot be linted, and upgrade, downgrade and every command that "
        "runs it will fail on it the same way.",
        "Fix the error the message names: the file must import before it can be checked or run.",
        suppressible=False,
    ),
    Rule(
        "AM101", "create-index-non-concurrently", Severity.ERROR, _PG,
        "CREATE INDEX without CONCURRENTLY on an existing table.",
        "It takes a SHARE lock on the table for the whole index build: every INSERT, UPDATE and "
        "DELETE waits until the index is built, which on a large table is minutes.",
        "Build it concurrently, outside the migration's transaction: "
        "``with op.get_context().autocommit_block(): op.create_index(..., "
        "postgresql_concurrently=True)``.",
        squawk=("require-concurrent-index-creation",),
    ),
    Rule(
        "AM102", "drop-index-non-concurrently", Severity.WARNING, _PG,
        "DROP INDEX without CONCURRENTLY.",
        "It takes an ACCESS EXCLUSIVE lock on the index's table: while it waits for running "
        "queries, every later query on the table queues behind it.",
        "``with op.get_context().autocommit_block(): op.drop_index(..., "
        "postgresql_concurrently=True)``.",
        squawk=("require-concurrent-index-deletion",),
    ),
    Rule(
        "AM103", "concurrently-in-transaction", Severity.ERROR, _PG,
        "CREATE/DROP INDEX CONCURRENTLY inside the migration's transaction.",
        "PostgreSQL refuses CONCURRENTLY inside a transaction block, so the migration fails "
        "(\"cannot run inside a transaction block\").",
        "Wrap the operation in ``with op.get_context().autocommit_block():``.",
        squawk=("ban-concurrent-index-creation-in-transaction",),
    ),
    Rule(
        "AM201", "foreign-key-without-not-valid", Severity.ERROR, frozenset({"postgresql", "mysql"}),
        "Adding a foreign key to an existing table validates every row while holding locks.",
        "PostgreSQL takes SHARE ROW EXCLUSIVE on both tables and scans the table to validate the "
        "key: writes to both tables wait for the scan. MySQL/MariaDB copy the table "
        "(ALGORITHM=COPY) unless foreign_key_checks is off.",
        "PostgreSQL: add it NOT VALID (``postgresql_not_valid=True``), then ``ALTER TABLE ... "
        "VALIDATE CONSTRAINT`` in a later transaction (SHARE UPDATE EXCLUSIVE, writes go on).",
        squawk=("adding-foreign-key-constraint", "constraint-missing-not-valid"),
    ),
    Rule(
        "AM202", "check-constraint-without-not-valid", Severity.ERROR, _PG,
        "Adding a CHECK constraint to an existing table scans it under ACCESS EXCLUSIVE.",
        "Every row is checked while reads and writes on the table wait.",
        "Add it NOT VALID (``postgresql_not_valid=True``), then VALIDATE CONSTRAINT in a later "
        "transaction.",
        squawk=("constraint-missing-not-valid",),
    ),
    Rule(
        "AM203", "unique-constraint-without-index", Severity.ERROR, _PG,
        "Adding a UNIQUE or PRIMARY KEY constraint builds its index under ACCESS EXCLUSIVE.",
        "The index is built while every read and write on the table waits.",
        "Build a unique index concurrently first, then attach it: ``ALTER TABLE t ADD CONSTRAINT "
        "c UNIQUE USING INDEX ix`` (or ``PRIMARY KEY USING INDEX``), which is instant.",
        squawk=("disallowed-unique-constraint", "adding-serial-primary-key-field"),
    ),
    Rule(
        "AM204", "validate-in-same-transaction", Severity.WARNING, _PG,
        "A constraint added NOT VALID is validated in the same transaction.",
        "The lock the ADD CONSTRAINT took is held until commit, so the validation scan runs "
        "under it and NOT VALID gains nothing.",
        "Validate in a later revision, or commit in between (``autocommit_block()``).",
        squawk=("constraint-missing-not-valid",),
    ),
    Rule(
        "AM205", "set-not-null", Severity.ERROR, _PG,
        "SET NOT NULL on an existing column scans the table under ACCESS EXCLUSIVE.",
        "Every row is checked for NULLs while reads and writes on the table wait.",
        "On PostgreSQL 12+: add ``CHECK (col IS NOT NULL) NOT VALID``, VALIDATE it in a later "
        "transaction, then SET NOT NULL (the valid check proves it without a scan) and drop the "
        "check.",
        squawk=("adding-not-nullable-field",),
    ),
    Rule(
        "AM301", "add-column-volatile-default", Severity.ERROR, _PG,
        "Adding a column whose default must be computed per row rewrites the table.",
        "A volatile default (random(), gen_random_uuid(), clock_timestamp(), a serial or identity "
        "column) -- or any default before PostgreSQL 11 -- fills every existing row while the "
        "table is ACCESS EXCLUSIVE locked.",
        "Add the column without the default (or with a constant one), set the default for new "
        "rows, and backfill existing rows in batches.",
        squawk=("adding-field-with-default",),
    ),
    Rule(
        "AM302", "column-type-rewrite", Severity.ERROR, frozenset({"postgresql", "mysql"}),
        "Changing a column's type rewrites the table (and its indexes).",
        "PostgreSQL holds ACCESS EXCLUSIVE for the rewrite (varchar widening, varchar to text and "
        "numeric widening are exempt); MySQL/MariaDB copy the table (ALGORITHM=COPY), blocking "
        "writes.",
        "Add a new column of the new type, backfill it in batches, switch the application to "
        "it, then drop the old column.",
        squawk=("changing-column-type",),
    ),
    Rule(
        "AM303", "add-not-null-column-without-default", Severity.ERROR, _ALL,
        "Adding a NOT NULL column without a default to an existing table.",
        "The statement fails as soon as the table has a row; application code not yet writing "
        "the column fails too.",
        "Add it nullable (or with a default), backfill, then make it NOT NULL.",
        squawk=("adding-required-field",),
    ),
    Rule(
        "AM401", "rename-column", Severity.ERROR, _ALL,
        "Renaming a column the running application may still use.",
        "Instances still running the previous release query the old name and fail from the "
        "moment the migration commits.",
        "Expand/contract: add the new column, write both, backfill, move reads, then drop the "
        "old column in a later release.",
        squawk=("renaming-column",),
    ),
    Rule(
        "AM402", "rename-table", Severity.ERROR, _ALL,
        "Renaming a table the running application may still use.",
        "Instances still running the previous release query the old name and fail.",
        "Expand/contract: create the new table (or a view under the old name), move the "
        "application, then drop the old name later.",
        squawk=("renaming-table",),
    ),
    Rule(
        "AM403", "drop-column", Severity.ERROR, _ALL,
        "Dropping a column the running application may still use.",
        "Instances still running the previous release (and ORMs that select every mapped column) "
        "fail once it is gone.",
        "First release code that no longer reads or writes it; drop it in a later release and "
        "suppress with that reason.",
        squawk=("ban-drop-column",),
    ),
    Rule(
        "AM404", "drop-table", Severity.ERROR, _ALL,
        "Dropping a table the running application may still use.",
        "Instances still running the previous release fail, and the data is gone.",
        "First release code that no longer uses it; drop it in a later release and suppress with "
        "that reason.",
        squawk=("ban-drop-table",),
    ),
    Rule(
        "AM501", "data-change-with-ddl", Severity.WARNING, frozenset({"postgresql", "sqlite"}),
        "An UPDATE/DELETE runs in the same transaction as DDL on an existing table.",
        "The DDL's lock (often ACCESS EXCLUSIVE) is held until commit, so the table stays "
        "blocked for as long as the whole data change takes, and the changed rows stay locked.",
        "Move the data change to its own revision (or an ``autocommit_block()``) and batch it "
        "(UPDATE ... WHERE id IN (SELECT id ... LIMIT n), repeated).",
    ),
)

#: Every rule by id.
RULES: Mapping[str, Rule] = MappingProxyType({rule.id: rule for rule in _CATALOGUE})


def get_rule(rule_id: str) -> Rule:
    """Return the rule with id ``rule_id`` (case-insensitive).

    :raises ConfigError: for an unknown id.
    """
    rule = RULES.get(rule_id.strip().upper())
    if rule is None:
        raise ConfigError(f"Unknown lint rule {rule_id!r}; known: {', '.join(RULES)}")
    return rule


def parse_severities(text: str | None) -> dict[str, Severity | None]:
    """Read ``AM404=warning, AM102=off`` (config ``lint_rules``, CLI ``--rule``) into overrides.

    ``off`` disables a rule (None in the result).

    :raises ConfigError: for an unknown rule or severity.
    """
    overrides: dict[str, Severity | None] = {}
    for item in (text or "").replace(";", ",").replace("\n", ",").split(","):
        item = item.strip()
        if not item:
            continue
        rule_id, sep, level = item.partition("=")
        if not sep:
            rule_id, sep, level = item.partition(":")
        rule = get_rule(rule_id)
        level = level.strip().lower()
        if level == "off":
            overrides[rule.id] = None
            continue
        try:
            overrides[rule.id] = Severity(level)
        except ValueError:
            raise ConfigError(
                f"Lint rule {rule.id}: severity must be error, warning, note or off, not {level!r}"
            ) from None
    return overrides
