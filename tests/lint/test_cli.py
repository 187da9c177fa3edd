"""``asyncmigrate lint`` and ``upgrade --lint`` on the command line: output, files, exit status."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy.engine import URL

from ..cli.harness import run_asyncmigrate
from ..project import Rev, make_project

HISTORY = [
    Rev("0001", None, 'op.create_table("account", sa.Column("id", sa.Integer, primary_key=True), '
        'sa.Column("name", sa.String(50)))', 'op.drop_table("account")'),
    Rev("0002", "0001", 'op.create_index("ix_account_name", "account", ["name"])',
        'op.drop_index("ix_account_name", "account")'),
]


def test_exit_status_formats_and_output_file(tmp_path: Path) -> None:
    make_project(tmp_path, HISTORY, url="postgresql://app:s3cret@db/app")
    text = run_asyncmigrate(tmp_path, "lint --all")
    assert text.code == 1
    assert "0002_rev.py:" in text.stdout
    assert "error[AM101 create-index-non-concurrently]" in text.stdout
    assert "s3cret" not in text.stdout + text.stderr
    clean = run_asyncmigrate(tmp_path, "lint --all --rule AM101=warning --no-downgrades")
    assert clean.code == 0, clean.stderr
    assert "0 error(s), 1 warning(s)" in clean.stdout
    out = tmp_path / "lint.sarif"
    sarif = run_asyncmigrate(tmp_path, f"lint --all --format sarif -o {out}")
    assert sarif.code == 1
    assert json.loads(out.read_text())["runs"][0]["results"][0]["ruleId"] == "AM101"
    assert "error(s)" in sarif.stderr  # the summary still reaches the terminal
    listing = run_asyncmigrate(tmp_path, "lint --list-rules")
    assert listing.code == 0
    assert listing.stdout.startswith("AM001")


@pytest.mark.parametrize(("args", "message"), [
    ("lint --from nope", "ERROR: Can't locate revision identified by 'nope'"),
    ("lint --all --rule AM9=off", "ERROR: Unknown lint rule 'AM9'"),
    ("lint --all 0002", "ERROR: give revisions, --all or --from, not several"),
    ("lint --all --format sarif -o /no/such/dir/x.sarif", "ERROR: Cannot write the lint report to"),
])
def test_bad_input_is_one_line(tmp_path: Path, args: str, message: str) -> None:
    make_project(tmp_path, HISTORY, url="postgresql://app@db/app")
    outcome = run_asyncmigrate(tmp_path, args)
    assert outcome.code == 1
    assert outcome.stderr.startswith(message)
    assert outcome.stderr.count("\n") == 1


@pytest.mark.postgresql
def test_upgrade_lint_refuses_then_runs_once_suppressed(pg_db: URL, tmp_path: Path) -> None:
    make_project(tmp_path, HISTORY, url=pg_db)
    assert run_asyncmigrate(tmp_path, "upgrade 0001").code == 0
    refused = run_asyncmigrate(tmp_path, "upgrade head --lint")
    assert refused.code == 1
    assert "error[AM101" in refused.stderr
    assert "ERROR: Refusing to upgrade: lint found 1 error(s)" in refused.stderr
    assert "0001" in run_asyncmigrate(tmp_path, "current").stdout
    revision = tmp_path / "migrations" / "versions" / "0002_rev.py"
    revision.write_text(revision.read_text().replace(
        '["name"])', '["name"])  # asyncmigrate: lint-ignore[AM101] reason: account is tiny'
    ))
    done = run_asyncmigrate(tmp_path, "upgrade head --lint")
    assert done.code == 0, done.stderr
    assert "0002 (head)" in run_asyncmigrate(tmp_path, "current").stdout
