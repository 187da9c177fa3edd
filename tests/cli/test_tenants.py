"""The fan-out from the command line: sources, policies, report, exit codes, signals."""

from __future__ import annotations

import json
import re
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ..clirunner import cli_runner

from asyncmigrate.cli import cli

from ..project import Rev, make_project

REVS = [
    Rev("r1", None, """
        from asyncmigrate import context
        op.execute("CREATE TABLE t (id INTEGER)")
        if context.tenant.name.startswith("bad"):
            raise RuntimeError("cannot migrate " + context.tenant.name)
    """),
    Rev("r2", "r1", """
        import time
        from asyncmigrate import context
        if context.tenant.name.startswith("slow"):
            time.sleep(0.5)
        op.execute("CREATE TABLE u (id INTEGER)")
    """),
]


def project(tmp_path: Path, names: list[str]) -> tuple[Path, Path]:
    make_project(tmp_path, REVS)
    lines = []
    for name in names:
        lines += ["[[tenants]]", f'name = "{name}"', f'url = "sqlite:///{tmp_path}/{name}.db"', ""]
    tenants = tmp_path / "tenants.toml"
    tenants.write_text("\n".join(lines), encoding="utf-8")
    return tmp_path / "alembic.ini", tenants


def invoke(*args: str) -> tuple[int, str, str]:
    result = cli_runner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_upgrade_reports_every_tenant_and_exit_code(tmp_path: Path) -> None:
    ini, tenants = project(tmp_path, ["a1", "a2", "bad3"])
    code, out, err = invoke("-c", str(ini), "upgrade", "head", "--tenants", str(tenants),
                            "--report", str(tmp_path / "r.json"), "--no-progress")
    assert code == 1
    assert "3 tenants in" in out and "2 ok, 1 failed" in out
    assert "cannot migrate bad3" in out
    assert "[3/3]" in err
    report = json.loads((tmp_path / "r.json").read_text())
    assert {t["name"]: t["status"] for t in report["tenants"]} == {"a1": "ok", "a2": "ok", "bad3": "failed"}
    code, out, _ = invoke("-c", str(ini), "upgrade", "head", "--tenants", str(tenants),
                          "--rerun-failed", str(tmp_path / "r.json"), "--json")
    assert code == 1
    assert [t["name"] for t in json.loads(out)["tenants"]] == ["bad3"]


def test_quiet_fanout_still_prints_results_and_failures(tmp_path: Path) -> None:
    """``-q`` drops progress and the summary line, never a failure nor what current/check found."""
    ini, tenants = project(tmp_path, ["a1", "a2", "bad3"])
    code, out, err = invoke("-q", "-c", str(ini), "upgrade", "head", "--tenants", str(tenants))
    assert code == 1
    assert "bad3" in out and "cannot migrate bad3" in out
    assert "a1" not in out and "tenants in" not in out and err == ""
    code, out, err = invoke("-q", "-c", str(ini), "current", "--tenants", str(tenants))
    assert code == 0
    assert "r2" in out and "2" in out.split("r2")[1].splitlines()[0]  # two tenants at r2
    assert "tenants in" not in out and err == ""
    ok_ini, ok_tenants = project(tmp_path / "ok", ["c1", "c2"])
    code, out, err = invoke("-q", "-c", str(ok_ini), "upgrade", "head", "--tenants", str(ok_tenants))
    assert (code, out, err) == (0, "", "")


def test_current_histogram_and_check(tmp_path: Path) -> None:
    ini, tenants = project(tmp_path, ["a1", "a2", "a3"])
    assert invoke("-c", str(ini), "upgrade", "head", "--tenants", str(tenants))[0] == 0
    invoke("-c", str(ini), "downgrade", "-1", "--sqlite-glob", str(tmp_path / "a3.db"))
    code, out, _ = invoke("-c", str(ini), "current", "--tenants", str(tenants))
    assert code == 0
    assert "r2" in out and "r1" in out
    code, out, _ = invoke("-c", str(ini), "current", "--tenants", str(tenants), "--json")
    assert sorted(t["to"] for t in json.loads(out)["tenants"]) == [["r1"], ["r2"], ["r2"]]
    assert invoke("-c", str(ini), "check", "--tenants", str(tenants))[0] == 1
    assert invoke("-c", str(ini), "current", "--check-heads", "--tenants", str(tenants))[0] == 1


def test_policies_from_the_command_line(tmp_path: Path) -> None:
    ini, tenants = project(tmp_path, ["bad1", "a2", "a3", "a4"])
    code, out, _ = invoke("-c", str(ini), "upgrade", "head", "--tenants", str(tenants), "--concurrency", "1",
                          "--fail-fast", "--json")
    assert code == 1
    assert [t["status"] for t in json.loads(out)["tenants"]] == ["failed", "skipped", "skipped", "skipped"]
    code, out, _ = invoke("-c", str(ini), "upgrade", "head", "--tenants", str(tenants), "--concurrency", "1",
                          "--max-failures", "25%", "--json")
    assert json.loads(out)["stopped"]
    seen = []
    for index in range(2):
        code, out, _ = invoke("-c", str(ini), "current", "--tenants", str(tenants), "--shard", f"{index}/2", "--json")
        seen += [t["name"] for t in json.loads(out)["tenants"]]
    assert sorted(seen) == ["a2", "a3", "a4", "bad1"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--shard", "3/2"], "--shard"),
        (["--max-failures", "0"], "--max-failures"),
        (["--sql"], "cannot be combined with tenants"),
        (["--schemas", "x_%"], "one tenant source"),
    ],
)
def test_bad_fanout_options_are_one_line_errors(tmp_path: Path, args: list[str], message: str) -> None:
    ini, tenants = project(tmp_path, ["a1"])
    code, _, err = invoke("-c", str(ini), "upgrade", "head", "--tenants", str(tenants), *args)
    assert code == 1
    assert message in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_stops_starting_tenants_and_still_reports(tmp_path: Path, sig: signal.Signals) -> None:
    names = [f"slow{i}" for i in range(8)]
    ini, tenants = project(tmp_path, names)
    proc = subprocess.Popen(
        [sys.executable, "-m", "asyncmigrate", "-c", str(ini), "upgrade", "head", "--tenants", str(tenants),
         "--concurrency", "1", "--report", str(tmp_path / "r.json"), "--no-progress"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    deadline = time.monotonic() + 30
    assert proc.stderr is not None
    seen = []
    while time.monotonic() < deadline:
        seen.append(proc.stderr.readline())
        if seen[-1].startswith("[1/8]"):
            break
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    err = "".join(seen) + err
    assert seen[-1].startswith("[1/8]"), err
    assert proc.returncode == 128 + sig, (out, err)  # 130 for SIGINT, 143 for SIGTERM, as on one database
    assert [line for line in err.splitlines() if sig.name in line] == [
        f"{sig.name}: stopping; no new tenants start, in-flight ones finish (send it again to cancel them)."
    ]
    report = json.loads((tmp_path / "r.json").read_text())
    statuses = [t["status"] for t in report["tenants"]]
    assert statuses.count("ok") >= 1
    assert "skipped" in statuses
    assert "failed" not in statuses  # in-flight tenants were allowed to finish


AUTOGEN_ENV = (Path(__file__).parents[2] / "templates" / "async" / "env.py").read_text().replace(
    "target_metadata = None",
    "import sqlalchemy as sa\n"
    "target_metadata = sa.MetaData()\n"
    "sa.Table('x', target_metadata, sa.Column('id', sa.Integer, primary_key=True))\n"
    "sa.Table('y', target_metadata, sa.Column('id', sa.Integer, primary_key=True))",
)


def test_autogenerate_against_a_reference_tenant(tmp_path: Path) -> None:
    import sqlite3

    make_project(tmp_path, [], env_py=AUTOGEN_ENV)
    ini = tmp_path / "alembic.ini"
    sqlite3.connect(tmp_path / "a.db").execute("CREATE TABLE x (id INTEGER PRIMARY KEY)").connection.commit()
    sqlite3.connect(tmp_path / "b.db").close()
    tenants = tmp_path / "tenants.toml"
    tenants.write_text(
        f'[[tenants]]\nname = "a"\nurl = "sqlite:///{tmp_path}/a.db"\n'
        f'[[tenants]]\nname = "b"\nurl = "sqlite:///{tmp_path}/b.db"\n',
        encoding="utf-8",
    )
    code, _, err = invoke("-c", str(ini), "revision", "--autogenerate", "-m", "from a", "--rev-id", "aaa1",
                          "--tenants", str(tenants), "--reference-tenant", "a")
    assert code == 0, err
    text = next((tmp_path / "migrations" / "versions").glob("aaa1_*.py")).read_text()
    assert "'y'" in text or '"y"' in text
    assert "create_table('x'" not in text and 'create_table("x"' not in text
    code, _, err = invoke("-c", str(ini), "revision", "--autogenerate", "--tenants", str(tenants),
                          "--reference-tenant", "nobody")
    assert code == 1
    assert "No tenant named 'nobody'" in err
    code, _, err = invoke("-c", str(ini), "revision", "-m", "plain", "--tenants", str(tenants))
    assert code == 1
    assert "go with --autogenerate" in err


ONE = [
    Rev("o1", None, 'op.execute("CREATE TABLE t1 (id INTEGER)")'),
    Rev("o2", "o1", 'op.execute("CREATE TABLE t2 (id INTEGER)")'),
]


def test_fan_out_options_on_one_database_make_a_fleet_of_one(tmp_path: Path) -> None:
    """``--timeout``/``--retries``/``--report``/``--fail-fast`` without a tenant source are not ignored."""
    make_project(tmp_path, ONE, url=f"sqlite:///{tmp_path}/app.db")
    ini = str(tmp_path / "alembic.ini")
    report = tmp_path / "r.json"
    code, out, err = invoke("-c", ini, "upgrade", "head", "--timeout", "5", "--retries", "3",
                            "--report", str(report), "--fail-fast", "--no-progress")
    assert code == 0, (out, err)
    data = json.loads(report.read_text())
    (only,) = data["tenants"]
    assert (only["name"], only["status"], only["to"]) == ("app.db", "ok", ["o2"])
    assert "1 tenant in" in out, out
    assert ": 1 ok" in out, out
    # A failure is reported and exits 1, with the database still where it was.
    make_project(tmp_path, [*ONE, Rev("o3", "o2", "raise RuntimeError('boom')")],
                 url=f"sqlite:///{tmp_path}/app.db")
    code, out, _ = invoke("-c", ini, "upgrade", "head", "--report", str(report), "--no-progress")
    assert code == 1
    (only,) = json.loads(report.read_text())["tenants"]
    assert only["status"] == "failed" and "boom" in only["error"]
    assert only["to"] == ["o2"]
    # What cannot apply is refused with one line, never silently ignored.
    code, _, err = invoke("-c", ini, "upgrade", "head", "--sql", "--timeout", "5")
    assert code == 1
    assert "--sql renders one script for one database; it cannot be combined with --timeout" in err
    code, _, err = invoke("-c", ini, "upgrade", "head", "--lint", "--report", str(report))
    assert code == 1
    assert "--lint checks one database's pending revisions before a plain run" in err


@pytest.mark.parametrize("value", ["-1", "0", "nan", "inf", "soon"])
def test_timeout_must_be_a_finite_positive_number(tmp_path: Path, value: str) -> None:
    ini, tenants = project(tmp_path, ["a1"])
    code, _, err = invoke("-c", str(ini), "upgrade", "head", "--tenants", str(tenants), "--timeout", value)
    assert code == 2
    assert "Invalid value for '--timeout'" in err
    assert "Traceback" not in err
    assert not (tmp_path / "a1.db").exists()


SLOW_SECOND = [
    Rev("s1", None, """
        op.execute("CREATE TABLE t (id INTEGER)")
    """),
    Rev("s2", "s1", """
        import os, time
        from pathlib import Path
        from asyncmigrate import context
        Path(os.environ["MARKS"], context.tenant.name).touch()
        for _ in range(600):  # a minute of short statements: a cancellation lands between them
            op.execute("SELECT 1")
            time.sleep(0.1)
    """),
]


@pytest.mark.slow
@pytest.mark.parametrize("jobs", [None, 2])
def test_a_second_signal_cancels_and_the_report_still_says_where_each_tenant_stands(
    tmp_path: Path, jobs: int | None
) -> None:
    from ..project import PER_MIGRATION_ENV

    make_project(tmp_path, SLOW_SECOND, env_py=PER_MIGRATION_ENV)
    names = ["c0", "c1"]
    (tmp_path / "tenants.toml").write_text(
        "".join(f'[[tenants]]\nname = "{n}"\nurl = "sqlite:///{tmp_path}/{n}.db"\n\n' for n in names),
        encoding="utf-8",
    )
    marks = tmp_path / "marks"
    marks.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-m", "asyncmigrate", "-c", str(tmp_path / "alembic.ini"), "upgrade", "head",
         "--tenants", str(tmp_path / "tenants.toml"), "--concurrency", "2", "--report", str(tmp_path / "r.json"),
         "--no-progress", *(["--jobs", str(jobs)] if jobs else [])],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "MARKS": str(marks)},
    )
    deadline = time.monotonic() + 30
    while len(list(marks.iterdir())) < len(names) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(list(marks.iterdir())) == len(names), "the tenants never reached their second revision"
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "Traceback" not in err, err
    # Each cancelled tenant gets its line in the log, as a failed one does; the summary is one line
    # however long (stdout is not a terminal: nothing wraps).
    for name in names:
        assert re.search(rf"^\[\d/2\] {name}: FAILED: cancelled while migrating; committed before that: s1",
                         err, re.M), err
    assert out.strip().splitlines()[-1] == (
        "2 tenants in " + out.strip().splitlines()[-1].split(" in ")[1].split("s:")[0]
        + "s: 2 failed; stopped early: stopped on request, then cancelled"
    ), out
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["stopped"] == "stopped on request, then cancelled"
    for record in report["tenants"]:
        assert record["status"] == "failed", record
        assert record["applied"] == ["s1"], record
        assert record["to"] == ["s1"], record  # where it stands: s1 committed by itself
        assert record["attempts"] == 1, record
        assert 0 < record["seconds"] < 60, record
        assert record["error"].startswith("cancelled while migrating; committed before that: s1"), record


@pytest.mark.parametrize("source", [["--sqlite-glob", "nodata/*.db"], ["--tenants", "empty.toml"]])
def test_a_tenant_source_naming_no_tenant_says_so(
    tmp_path: Path, source: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    ini, _ = project(tmp_path, [])
    (tmp_path / "empty.toml").write_text("tenants = []\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    code, out, err = invoke("-c", str(ini), "current", *source)
    assert code == 0, err
    assert f"warning: {source[0]} '{source[1]}' names no tenant" in err
