"""`validate`, `upgrade --validate`, `log` and `history --applied`: the record, drift from it, repairs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from .clirunner import cli_runner
from sqlalchemy.engine import URL

from asyncmigrate import command
from asyncmigrate.cli import cli
from asyncmigrate.exceptions import DriftError
from asyncmigrate.script.checksum import file_checksum

from .project import Rev, make_project
from .runtime.test_differential import alembic_project
from .runtime.test_history import HISTORY, alembic, sync_url

REVS = [
    Rev("a1", None, "op.execute('CREATE TABLE t1 (id INTEGER PRIMARY KEY)')", "op.execute('DROP TABLE t1')"),
    Rev("b2", "a1", "op.execute('CREATE TABLE t2 (id INTEGER PRIMARY KEY)')", "op.execute('DROP TABLE t2')"),
    Rev("c3", "b2", "op.execute('CREATE TABLE t3 (id INTEGER PRIMARY KEY)')", "op.execute('DROP TABLE t3')"),
]
D4 = Rev("d4", "c3", "op.execute('CREATE TABLE t4 (id INTEGER PRIMARY KEY)')", "op.execute('DROP TABLE t4')")


def revision_file(root: Path, rev: str) -> Path:
    return next((root / "migrations" / "versions").glob(f"{rev}_*.py"))


def cli_run(root: Path, *args: str) -> tuple[int, str, str]:
    result = cli_runner().invoke(cli, ["-c", str(root / "alembic.ini"), *args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


async def test_edited_file_is_detected_refused_and_repaired(tmp_path: Path, any_db: URL) -> None:
    config = make_project(tmp_path, REVS, url=any_db, ini_extra=HISTORY)
    await command.upgrade(config, "head")
    assert (await command.validate(config)).ok

    path = revision_file(tmp_path, "b2")
    source = path.read_text()
    # The header and line endings are not the migration: no drift.
    path.write_bytes(source.replace("Revision ID: b2", "Revision ID: b2\nCreate Date: 2020-01-01")
                     .replace("\n", "\r\n").encode())
    assert (await command.validate(config)).ok

    recorded = file_checksum(path)
    path.write_text(source.replace("CREATE TABLE t2", "CREATE TABLE t2b"))
    report = await command.validate(config)
    assert not report.ok
    assert [(d.kind, d.revision, d.recorded, d.current) for d in report.drift] == [
        ("changed", "b2", recorded, file_checksum(path))
    ]

    from .project import write_revisions

    write_revisions(tmp_path / "migrations" / "versions", [D4])
    with pytest.raises(DriftError, match="b2: file changed"):
        await command.upgrade(config, "head", validate=True)
    assert (await command.current(config)).heads == ("c3",)  # nothing ran

    repaired = await command.validate(config, repair=True)
    assert repaired.ok and repaired.repaired == ("b2",)
    assert [r.kind for r in repaired.record.rows][-1] == "repair"
    assert (await command.validate(config)).ok
    result = await command.upgrade(config, "head", validate=True)
    assert result.to_heads == ("d4",)


async def test_missing_files_and_unknown_version_rows(tmp_path: Path, sqlite_or_pg_db: URL) -> None:
    config = make_project(tmp_path, REVS, url=sqlite_or_pg_db, ini_extra=HISTORY)
    await command.upgrade(config, "head")
    revision_file(tmp_path, "c3").unlink()
    report = await command.validate(config)
    assert [(d.kind, d.revision) for d in report.drift] == [("unknown", "c3")]
    assert report.drift[0].message == "c3: in the version table, but not a known revision"

    # Squashed: the three files replaced by one, stamped. The record still says a1..c3 ran.
    for rev in ("a1", "b2"):
        revision_file(tmp_path, rev).unlink()
    from .project import write_revisions

    write_revisions(tmp_path / "migrations" / "versions", [Rev("s1", None)])
    await command.stamp(config, "s1", purge=True)
    report = await command.validate(config)
    assert sorted((d.kind, d.revision) for d in report.drift) == [
        ("missing", "a1"), ("missing", "b2"), ("missing", "c3")
    ]
    repaired = await command.validate(config, repair=True)  # nothing a repair can fix
    assert repaired.repaired == () and len(repaired.drift) == 3


async def test_log_after_taking_over_from_alembic(tmp_path: Path, any_db: URL) -> None:
    config = make_project(tmp_path / "ours", REVS, url=any_db, ini_extra=HISTORY)
    ini = alembic_project(tmp_path / "theirs", tmp_path / "ours" / "migrations" / "versions", sync_url(any_db))
    before = await command.log(config)
    assert not before.table_exists and before.rows == () and before.before_record == ()

    await alembic(ini, "upgrade", "b2")
    untracked = await command.log(config)
    assert not untracked.table_exists and untracked.before_record == ("a1", "b2")

    await command.upgrade(config, "head")
    record = await command.log(config)
    assert record.table_exists and record.table == "asyncmigrate_history"
    assert record.heads == ("c3",)
    assert record.before_record == ("a1",)
    assert [(r.revision, r.kind) for r in record.rows] == [("b2", "baseline"), ("c3", "migration")]
    assert record.rows[1].checksum == file_checksum(revision_file(tmp_path / "ours", "c3"))
    assert (await command.validate(config)).ok


def test_cli_validate_log_and_history_applied(tmp_path: Path) -> None:
    db = tmp_path / "app.db"
    make_project(tmp_path, REVS, url=f"sqlite+aiosqlite:///{db}", ini_extra=HISTORY)
    assert cli_run(tmp_path, "upgrade", "b2")[0] == 0

    code, out, _ = cli_run(tmp_path, "validate")
    assert code == 0 and out.startswith("OK: ")

    code, out, _ = cli_run(tmp_path, "log")
    lines = out.splitlines()
    assert code == 0 and "asyncmigrate_history, 2 row(s)" in lines[0]
    assert [line.split()[2:6] for line in lines[1:3]] == [
        ["upgrade", "a1", "migration", "applied"], ["upgrade", "b2", "migration", "applied"],
    ]
    assert lines[-1].strip() == "at: b2"
    assert cli_run(tmp_path, "history", "--applied")[1] == out

    code, out, _ = cli_run(tmp_path, "log", "--json")
    data = json.loads(out)
    assert [r["revision"] for r in data["rows"]] == ["a1", "b2"]
    assert data["heads"] == ["b2"] and data["rows"][0]["outcome"] == "applied"
    assert data["rows"][0]["applied_at"].endswith("Z")

    path = revision_file(tmp_path, "a1")
    recorded = file_checksum(path)
    path.write_text(path.read_text().replace("t1 (id", "t1x (id"))
    code, out, _ = cli_run(tmp_path, "validate")
    assert code == 1
    assert out.splitlines() == [
        f"a1: file changed since it was applied (recorded {recorded[:12]}, now {file_checksum(path)[:12]})"
    ]
    code, out, err = cli_run(tmp_path, "upgrade", "head", "--validate")
    assert code == 1 and "Refusing to upgrade" in err
    code, out, _ = cli_run(tmp_path, "validate", "--json")
    assert code == 1 and json.loads(out)["drift"][0]["kind"] == "changed"
    code, out, _ = cli_run(tmp_path, "validate", "--repair")
    assert code == 0 and out.splitlines()[0] == "Repaired: recorded the current checksum of a1"
    assert cli_run(tmp_path, "upgrade", "head", "--validate")[0] == 0
    assert cli_run(tmp_path, "validate")[0] == 0


async def test_autogenerate_leaves_the_history_table_alone(tmp_path: Path, sqlite_or_pg_db: URL) -> None:
    import sqlalchemy as sa

    from .autogenerate.support import project

    metadata = sa.MetaData()
    sa.Table("account", metadata, sa.Column("id", sa.Integer, primary_key=True))
    config = project(tmp_path / "p", sqlite_or_pg_db, metadata)
    config.set_main_option("history_table", "asyncmigrate_history")
    first = await command.revision(config, "accounts", autogenerate=True)
    assert not isinstance(first, list)
    await command.upgrade(config, "head")
    assert len((await command.log(config)).rows) == 1
    await command.check(config)  # the history table is not a difference
    second = await command.revision(config, "nothing", autogenerate=True)
    assert not isinstance(second, list)
    assert "asyncmigrate_history" not in Path(second.path).read_text()


def test_cli_validate_and_log_across_tenants(tmp_path: Path) -> None:
    make_project(tmp_path, REVS, ini_extra=HISTORY)
    dbs = tmp_path / "dbs"
    dbs.mkdir()
    for name in ("t1", "t2", "t3"):
        (dbs / f"{name}.db").touch()
    glob = str(dbs / "*.db")
    assert cli_run(tmp_path, "upgrade", "b2", "--sqlite-glob", glob)[0] == 0
    assert cli_run(tmp_path, "--url", f"sqlite:///{dbs / 't2.db'}", "upgrade", "head")[0] == 0

    code, out, _ = cli_run(tmp_path, "log", "--sqlite-glob", glob, "--revision", "c3")
    assert code == 0
    lines = sorted(out.splitlines())
    assert [line.split()[:5] for line in lines] == [
        ["t1:", "c3", "not", "applied"][:5], ["t2:", "upgrade", "c3", "migration", "applied"],
        ["t3:", "c3", "not", "applied"][:5],
    ]
    # Downgraded and upgraded again: still one line for t2, its latest row, the earlier ones counted.
    t2 = f"sqlite:///{dbs / 't2.db'}"
    assert cli_run(tmp_path, "--url", t2, "downgrade", "b2")[0] == 0
    code, out, _ = cli_run(tmp_path, "log", "--sqlite-glob", glob, "--revision", "c3")
    (line,) = [line for line in out.splitlines() if line.startswith("t2:")]
    assert line.split()[1:3] == ["downgrade", "c3"] and line.endswith("(1 earlier row(s))"), line
    assert cli_run(tmp_path, "--url", t2, "upgrade", "head")[0] == 0
    code, out, _ = cli_run(tmp_path, "log", "--sqlite-glob", glob, "--json")
    data = {d["tenant"]: d for d in json.loads(out)}
    assert {k: v["heads"] for k, v in data.items()} == {"t1": ["b2"], "t2": ["c3"], "t3": ["b2"]}

    # validate runs as a fan-out: progress lines, summary, --report, --json, exit status.
    code, out, err = cli_run(tmp_path, "validate", "--sqlite-glob", glob, "--no-progress")
    assert code == 0, (out, err)
    assert out.splitlines()[-1].startswith("3 tenants in ") and out.splitlines()[-1].endswith(": 3 ok")
    assert len([line for line in err.splitlines() if line.startswith("[")]) == 3
    path = revision_file(tmp_path, "c3")
    path.write_text(path.read_text().replace("t3 (id", "t3x (id"))
    report_path = tmp_path / "validate.json"
    code, out, err = cli_run(tmp_path, "validate", "--sqlite-glob", glob, "--no-progress",
                             "--report", str(report_path))
    assert code == 1
    assert out.splitlines()[0].startswith("t2: c3: file changed since it was applied"), out
    assert out.splitlines()[-1].endswith(": 2 ok, 1 failed"), out
    assert "t2: FAILED: 1 drift(s); first: c3: file changed" in err, err
    report = json.loads(report_path.read_text())
    assert report["operation"] == "validate"
    rows = {t["name"]: t for t in report["tenants"]}
    assert {k: v["status"] for k, v in rows.items()} == {"t1": "ok", "t2": "failed", "t3": "ok"}
    assert rows["t2"]["details"][0].startswith("c3: file changed since it was applied")
    assert rows["t2"]["to"] == ["c3"]
    # --rerun-failed re-validates only the drifted tenant; --repair records the reviewed edit.
    code, out, _ = cli_run(tmp_path, "validate", "--sqlite-glob", glob, "--repair", "--json",
                           "--rerun-failed", str(report_path))
    assert code == 0, out
    (only,) = json.loads(out)["tenants"]
    assert only["name"] == "t2"
    assert only["details"] == ["repaired: recorded the current checksum of c3"]
    assert cli_run(tmp_path, "validate", "--sqlite-glob", glob)[0] == 0


async def test_validate_across_schema_tenants_is_a_fan_out(tmp_path: Path, pg_db: URL) -> None:
    from asyncmigrate.tenants import Tenant, merge_reports, migrate_tenants

    config = make_project(tmp_path, REVS, ini_extra=HISTORY)
    url = pg_db.render_as_string(hide_password=False)
    tenants = [Tenant(f"s{i}", url, f"tenant_audit{i}") for i in range(5)]
    assert (await migrate_tenants(config, tenants[:4], "head")).counts["ok"] == 4
    assert (await migrate_tenants(config, tenants[4:], "b2")).counts["ok"] == 1
    clean = await migrate_tenants(config, tenants, operation="validate", target=None)
    assert clean.counts["ok"] == 5, clean.failed
    path = revision_file(tmp_path, "c3")
    path.write_text(path.read_text().replace("t3 (id", "t3x (id"))
    shards = [await migrate_tenants(config, tenants, operation="validate", target=None, shard=(i, 2))
              for i in range(2)]
    merged = merge_reports(shards)
    assert sorted(r.name for r in merged.failed) == ["s0", "s1", "s2", "s3"]  # s4 never applied c3
    assert all(r.details[0].startswith("c3: file changed") for r in merged.failed)
    repaired = await migrate_tenants(config, tenants, operation="validate", target=None, repair=True)
    assert repaired.counts["ok"] == 5, repaired.failed
    assert sum(1 for r in repaired.results if r.details) == 4


def test_cli_log_across_tenants_takes_a_shard_and_refuses_what_cannot_apply(tmp_path: Path) -> None:
    make_project(tmp_path, REVS, ini_extra=HISTORY)
    dbs = tmp_path / "dbs"
    dbs.mkdir()
    for name in ("t1", "t2", "t3", "t4", "t5"):
        (dbs / f"{name}.db").touch()
    glob = str(dbs / "*.db")
    assert cli_run(tmp_path, "upgrade", "head", "--sqlite-glob", glob)[0] == 0
    seen = []
    for index in range(2):
        code, out, err = cli_run(tmp_path, "log", "--sqlite-glob", glob, "--shard", f"{index}/2", "--json")
        assert code == 0, err
        seen.append(sorted(d["tenant"] for d in json.loads(out)))
    assert sorted(len(names) for names in seen) == [2, 3]  # balanced
    assert sorted(seen[0] + seen[1]) == ["t1", "t2", "t3", "t4", "t5"]  # each tenant in one shard
    code, out, err = cli_run(tmp_path, "log", "--sqlite-glob", glob, "--timeout", "5", "--report", "r.json")
    assert code == 1
    assert err.strip().splitlines() == [
        "ERROR: log reads the applied records; --timeout, --report cannot apply to it "
        "(it takes a tenant source, --shard and --concurrency)"
    ]
    assert not (tmp_path / "r.json").exists()
