"""Reports as text, JSON and SARIF 2.1.0."""

from __future__ import annotations

import json
from typing import Any

import jsonschema

from asyncmigrate.lint import RULES, Finding, LintReport, Severity, render_json, render_sarif, render_text

#: The parts of SARIF 2.1.0 this output uses, with the constraints the standard puts on them
#: (required properties, enumerations, formats). The official schema is not vendored.
_MESSAGE = {"type": "object", "required": ["text"], "properties": {"text": {"type": "string"}}}
SARIF_SUBSET: dict[str, Any] = {
    "type": "object",
    "required": ["version", "runs"],
    "properties": {
        "version": {"const": "2.1.0"},
        "$schema": {"type": "string", "format": "uri"},
        "runs": {"type": "array", "minItems": 1, "items": {
            "type": "object",
            "required": ["tool"],
            "properties": {
                "tool": {"type": "object", "required": ["driver"], "properties": {"driver": {
                    "type": "object", "required": ["name"],
                    "properties": {
                        "name": {"type": "string"}, "version": {"type": "string"},
                        "rules": {"type": "array", "items": {
                            "type": "object", "required": ["id"],
                            "properties": {
                                "id": {"type": "string"}, "name": {"type": "string"},
                                "shortDescription": _MESSAGE, "fullDescription": _MESSAGE, "help": _MESSAGE,
                                "defaultConfiguration": {"type": "object", "properties": {
                                    "level": {"enum": ["none", "note", "warning", "error"]}}},
                            },
                        }},
                    },
                }}},
                "results": {"type": "array", "items": {
                    "type": "object", "required": ["message"],
                    "properties": {
                        "ruleId": {"type": "string"},
                        "ruleIndex": {"type": "integer", "minimum": -1},
                        "level": {"enum": ["none", "note", "warning", "error"]},
                        "message": _MESSAGE,
                        "locations": {"type": "array", "items": {"type": "object", "properties": {
                            "physicalLocation": {"type": "object", "properties": {
                                "artifactLocation": {"type": "object", "properties": {
                                    "uri": {"type": "string", "format": "uri-reference"}}},
                                "region": {"type": "object", "properties": {
                                    "startLine": {"type": "integer", "minimum": 1}}},
                            }},
                        }}},
                        "suppressions": {"type": "array", "items": {
                            "type": "object", "required": ["kind"],
                            "properties": {"kind": {"enum": ["inSource", "external"]},
                                           "justification": {"type": "string"}},
                        }},
                        "properties": {"type": "object"},
                    },
                }},
            },
        }},
    },
}

REPORT = LintReport(
    findings=(
        Finding("AM101", Severity.ERROR, "CREATE INDEX ix on account blocks writes", "0002", "upgrade",
                "migrations/versions/0002 add email.py", 14, "CREATE INDEX ix ON account (email)",
                "SHARE on account"),
        Finding("AM404", Severity.ERROR, "dropping table legacy", "0002", "upgrade",
                "migrations/versions/0002 add email.py", 15, suppressed="unused since 4.2"),
        Finding("AM004", Severity.WARNING, "upgrade() could not be rendered offline", "0003", "upgrade"),
    ),
    revisions=("0002", "0003"),
    dialect="postgresql",
    pg_version=15,
)


def test_sarif_follows_the_standard() -> None:
    log = json.loads(render_sarif(REPORT))
    jsonschema.validate(log, SARIF_SUBSET, format_checker=jsonschema.FormatChecker())
    run = log["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    assert [r["id"] for r in rules] == list(RULES)
    first, suppressed, nowhere = run["results"]
    assert rules[first["ruleIndex"]]["id"] == "AM101"
    assert first["level"] == "error"
    location = first["locations"][0]["physicalLocation"]
    assert location == {"artifactLocation": {"uri": "migrations/versions/0002%20add%20email.py"},
                        "region": {"startLine": 14}}
    assert suppressed["suppressions"] == [{"kind": "inSource", "justification": "unused since 4.2"}]
    assert "locations" not in nowhere
    assert nowhere["level"] == "warning"


def test_json_lists_every_finding_with_its_explanation() -> None:
    data = json.loads(render_json(REPORT))
    assert data["summary"] == {"errors": 1, "warnings": 1, "suppressed": 1, "ok": False}
    first = data["findings"][0]
    assert first["rule"] == "AM101"
    assert first["name"] == "create-index-non-concurrently"
    assert first["lock"] == "SHARE on account"
    assert first["why"] == RULES["AM101"].why
    assert data["pg_version"] == 15


def test_text_shows_lock_sql_and_advice_and_hides_suppressed() -> None:
    text = render_text(REPORT)
    assert "0002 add email.py:14: error[AM101 create-index-non-concurrently]" in text
    assert "lock: SHARE on account -- blocks writes (INSERT, UPDATE, DELETE)" in text
    assert "sql: CREATE INDEX ix ON account (email)" in text
    assert "instead: Build it concurrently" in text
    assert "AM404" not in text
    assert "AM404" in render_text(REPORT, show_suppressed=True)
    assert text.rstrip().endswith("1 error(s), 1 warning(s), 1 suppressed in 2 revision(s) (postgresql 15)")
