"""What a lint run found: findings, with where they are, and the report that holds them."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

from .rules import RULES, Rule, Severity

__all__ = ["Finding", "LintReport"]


@dataclass(frozen=True)
class Finding:
    """One risky change (or one problem with the linting itself) at a place in a revision file."""

    rule_id: str
    severity: Severity
    #: What was found, on one line, with the table and column names.
    message: str
    revision: str | None = None
    direction: Literal["upgrade", "downgrade"] | None = None
    path: str | None = None
    line: int | None = None
    #: The SQL statement (as rendered for the target dialect) the finding is about.
    statement: str | None = None
    #: The lock the statement takes, e.g. ``SHARE on account``.
    lock: str | None = None
    #: When a ``lint-ignore`` marker silenced it: the marker's reason.
    suppressed: str | None = None

    @property
    def rule(self) -> Rule:
        """The rule that raised it."""
        return RULES[self.rule_id]

    @property
    def counts(self) -> bool:
        """True when it is neither suppressed nor a note: it affects the exit status."""
        return self.suppressed is None and self.severity in (Severity.ERROR, Severity.WARNING)

    def with_severity(self, severity: Severity) -> Finding:
        """This finding at another severity (configuration overrides)."""
        return replace(self, severity=severity)

    def sort_key(self) -> tuple[str, int, str]:
        """Order by file, line, rule."""
        return (self.path or "", self.line or 0, self.rule_id)


@dataclass(frozen=True)
class LintReport:
    """The findings of one lint run and what it covered."""

    findings: tuple[Finding, ...]
    #: The revisions analysed, in the order they would run.
    revisions: tuple[str, ...]
    dialect: str
    #: The PostgreSQL major version the version-dependent rules assumed.
    pg_version: int
    #: Rules that do not apply to :attr:`dialect` (so found nothing by construction).
    not_applicable: tuple[str, ...] = ()
    #: Rules disabled by configuration.
    disabled: tuple[str, ...] = field(default_factory=tuple)

    @property
    def active(self) -> tuple[Finding, ...]:
        """Findings no marker suppressed."""
        return tuple(f for f in self.findings if f.suppressed is None)

    @property
    def errors(self) -> tuple[Finding, ...]:
        """Unsuppressed findings of severity error."""
        return tuple(f for f in self.active if f.severity == Severity.ERROR)

    @property
    def warnings(self) -> tuple[Finding, ...]:
        """Unsuppressed findings of severity warning."""
        return tuple(f for f in self.active if f.severity == Severity.WARNING)

    @property
    def ok(self) -> bool:
        """True when there is no unsuppressed error."""
        return not self.errors

    @property
    def exit_code(self) -> int:
        """The CLI's exit status: 1 with errors, else 0."""
        return 0 if self.ok else 1

    def summary(self) -> str:
        """One line: counts, revisions, dialect."""
        suppressed = len(self.findings) - len(self.active)
        notes = len(self.active) - len(self.errors) - len(self.warnings)
        parts = [f"{len(self.errors)} error(s)", f"{len(self.warnings)} warning(s)"]
        if notes:
            parts.append(f"{notes} note(s)")
        if suppressed:
            parts.append(f"{suppressed} suppressed")
        target = f"postgresql {self.pg_version}" if self.dialect == "postgresql" else self.dialect
        return f"{', '.join(parts)} in {len(self.revisions)} revision(s) ({target})"
