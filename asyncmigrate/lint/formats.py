"""Lint reports as text (people), JSON (scripts) and SARIF 2.1.0 (code review annotations)."""

from __future__ import annotations

import json
import os
from importlib.metadata import PackageNotFoundError, version
from typing import Any
from urllib.parse import quote

from .locks import LockMode
from .report import Finding, LintReport
from .rules import RULES, Severity

__all__ = ["render_json", "render_sarif", "render_text"]

_SARIF_LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.NOTE: "note"}


def _path(path: str | None) -> str | None:
    """``path`` relative to the working directory when it is inside it."""
    if path is None:
        return None
    try:
        relative = os.path.relpath(path)
    except ValueError:  # pragma: no cover - another drive on Windows
        return path
    return path if relative.startswith("..") else relative


def _blocks(lock: str) -> str:
    for mode in sorted(LockMode, key=lambda m: -len(m.value)):
        if lock.startswith(mode.value + " "):
            return mode.blocks
    return ""


def render_text(report: LintReport, *, show_suppressed: bool = False, explain: bool = True) -> str:
    """The report for a terminal: one block per finding, then a summary line."""
    lines: list[str] = []
    for finding in report.findings:
        if finding.suppressed is not None and not show_suppressed:
            continue
        rule = finding.rule
        where = f"{_path(finding.path)}:{finding.line}" if finding.path else "<no file>"
        if finding.path and finding.line is None:
            where = _path(finding.path) or where
        tag = f"{finding.severity.value}[{rule.id} {rule.name}]"
        lines.append(f"{where}: {tag} {finding.message}")
        if finding.revision:
            direction = f" ({finding.direction})" if finding.direction else ""
            lines.append(f"    revision {finding.revision}{direction}")
        if finding.suppressed is not None:
            lines.append(f"    suppressed: {finding.suppressed}")
        if finding.lock:
            blocks = _blocks(finding.lock)
            lines.append(f"    lock: {finding.lock}" + (f" -- blocks {blocks}" if blocks else ""))
        if finding.statement:
            statement = " ".join(finding.statement.split())
            lines.append(f"    sql: {statement if len(statement) <= 200 else statement[:197] + '...'}")
        if explain:
            lines.append(f"    why: {rule.why}")
            lines.append(f"    instead: {rule.instead}")
        lines.append("")
    lines.append(report.summary())
    if report.not_applicable:
        lines.append(
            f"Rules that do not apply to {report.dialect}: {', '.join(report.not_applicable)} "
            "(see asyncmigrate lint --list-rules)"
        )
    return "\n".join(lines) + "\n"


def _finding_data(finding: Finding) -> dict[str, Any]:
    rule = finding.rule
    return {
        "rule": rule.id,
        "name": rule.name,
        "severity": finding.severity.value,
        "message": finding.message,
        "revision": finding.revision,
        "direction": finding.direction,
        "path": _path(finding.path),
        "line": finding.line,
        "lock": finding.lock,
        "statement": finding.statement,
        "why": rule.why,
        "instead": rule.instead,
        "suppressed": finding.suppressed,
    }


def render_json(report: LintReport) -> str:
    """The report as a JSON document (every finding, suppressed ones marked)."""
    data = {
        "dialect": report.dialect,
        "pg_version": report.pg_version if report.dialect == "postgresql" else None,
        "revisions": list(report.revisions),
        "summary": {
            "errors": len(report.errors),
            "warnings": len(report.warnings),
            "suppressed": len(report.findings) - len(report.active),
            "ok": report.ok,
        },
        "not_applicable": list(report.not_applicable),
        "disabled": list(report.disabled),
        "findings": [_finding_data(f) for f in report.findings],
    }
    return json.dumps(data, indent=2) + "\n"


def _uri(path: str) -> str:
    return quote(path.replace(os.sep, "/"), safe="/:")


def render_sarif(report: LintReport) -> str:
    """The report as a SARIF 2.1.0 log (one run; rules in ``tool.driver.rules``)."""
    rule_ids = list(RULES)
    rules = [
        {
            "id": rule.id,
            "name": rule.name,
            "shortDescription": {"text": rule.summary},
            "fullDescription": {"text": rule.why},
            "help": {"text": f"{rule.why} Instead: {rule.instead}"},
            "defaultConfiguration": {"level": _SARIF_LEVEL[rule.severity]},
            "properties": {"dialects": sorted(rule.dialects) or ["all"]},
        }
        for rule in RULES.values()
    ]
    results = []
    for finding in report.findings:
        result: dict[str, Any] = {
            "ruleId": finding.rule_id,
            "ruleIndex": rule_ids.index(finding.rule_id),
            "level": _SARIF_LEVEL[finding.severity],
            "message": {"text": finding.message + (
                f" ({finding.lock})" if finding.lock and str(finding.lock) not in finding.message else ""
            )},
        }
        path = _path(finding.path)
        if path is not None:
            location: dict[str, Any] = {"artifactLocation": {"uri": _uri(path)}}
            if finding.line:
                location["region"] = {"startLine": finding.line}
            result["locations"] = [{"physicalLocation": location}]
        if finding.suppressed is not None:
            result["suppressions"] = [{"kind": "inSource", "justification": finding.suppressed}]
        result["properties"] = {
            key: value
            for key, value in (
                ("revision", finding.revision),
                ("direction", finding.direction),
                ("lock", finding.lock),
                ("statement", finding.statement),
            )
            if value is not None
        }
        results.append(result)
    try:
        tool_version = version("asyncmigrate")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        tool_version = "0"
    log = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {
                "tool": {"driver": {"name": "asyncmigrate", "version": tool_version, "rules": rules}},
                "results": results,
            }
        ],
    }
    return json.dumps(log, indent=2) + "\n"
