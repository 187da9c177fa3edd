"""``asyncmigrate lint``: find migration changes that lock or break a live database before they run.

Revisions are rendered offline for the target dialect while a recorder
watches every ``op.*`` call; the rendered SQL (PostgreSQL's own parser reads
it, ``op.execute`` text included) or the operation objects are checked
against the rules in :data:`RULES`: indexes built without ``CONCURRENTLY``,
constraints validated under lock, ``SET NOT NULL`` scans, table rewrites,
renames and drops the running application may still use, data changes
sharing a transaction with DDL. Findings carry the revision file and line,
the lock taken, why it matters and the safe alternative; ``lint-ignore``
markers with a reason silence them (:mod:`asyncmigrate.lint.suppressions`).

    from asyncmigrate import Config
    from asyncmigrate.lint import lint

    report = await lint(Config("alembic.ini"))          # the pending revisions
    for finding in report.findings:
        print(finding.path, finding.line, finding.rule_id, finding.message)
"""

from __future__ import annotations

from .api import lint
from .formats import render_json, render_sarif, render_text
from .report import Finding, LintReport
from .rules import RULES, Rule, Severity

__all__ = [
    "RULES",
    "Finding",
    "LintReport",
    "Rule",
    "Severity",
    "lint",
    "render_json",
    "render_sarif",
    "render_text",
]
