"""Printing lint reports for the command line: ``asyncmigrate lint`` and ``upgrade --lint``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from ..exceptions import ConfigError

if TYPE_CHECKING:
    from ..lint import LintReport

# The linter (and SQLAlchemy with it) is imported when a lint command runs: the
# command line's start-up, and read-only commands such as ``heads``, never need it.

__all__ = ["FORMATS", "render_text", "rules_text", "write_report"]

FORMATS = ("text", "json", "sarif")


def write_report(
    report: LintReport, fmt: str, output: str | None, *, show_suppressed: bool = False, explain: bool = True
) -> None:
    """Write the report in ``fmt`` to ``output`` (a file) or stdout.

    :raises ConfigError: when the file cannot be written.
    """
    from ..lint import render_json, render_sarif

    if fmt == "json":
        text = render_json(report)
    elif fmt == "sarif":
        text = render_sarif(report)
    else:
        text = render_text(report, show_suppressed=show_suppressed, explain=explain)
    if output is None or output == "-":
        click.echo(text, nl=False)
        return
    try:
        Path(output).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"Cannot write the lint report to {output}: {exc.strerror or exc}") from exc
    if fmt != "text" or not report.ok:
        click.echo(report.summary(), err=True)


def rules_text() -> str:
    """Every rule: id, default severity, dialects, name and summary (``lint --list-rules``)."""
    from ..lint import RULES

    lines = []
    for rule in RULES.values():
        dialects = ", ".join(sorted(rule.dialects)) or "all"
        lines.append(f"{rule.id}  {rule.severity.value:<7}  {dialects:<20}  {rule.name}: {rule.summary}")
    return "\n".join(lines) + "\n"


def render_text(report: LintReport, *, show_suppressed: bool = False, explain: bool = True) -> str:
    """The report as text (see :func:`asyncmigrate.lint.render_text`)."""
    from ..lint import render_text as render

    return render(report, show_suppressed=show_suppressed, explain=explain)
