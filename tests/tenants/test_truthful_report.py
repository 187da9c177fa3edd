"""A tenant's record tells what committed and where it stands; names and errors stay data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ..clirunner import cli_runner
from sqlalchemy.engine import URL

from asyncmigrate.cli import cli
from asyncmigrate.tenants import Tenant, migrate_tenants, printable

from ..project import PER_MIGRATION_ENV, Rev, make_project
from .test_fanout import state_of

REVS = [
    Rev(f"r{i}", f"r{i - 1}" if i else None, f"""
        from asyncmigrate import context
        name = context.tenant.name
        if {i} == 0:
            op.execute("CREATE TABLE ran (tenant VARCHAR(40), rev VARCHAR(10))")
        op.execute(f"INSERT INTO ran VALUES ('{{name}}', 'r{i}')")
        if {i} == 2 and name.startswith("bad"):
            raise RuntimeError("broken data in " + name)
        if {i} == 2 and name.startswith("stuck"):
            op.execute("SELECT pg_sleep(30)")
    """, "pass")
    for i in range(4)
]


async def test_committed_steps_are_reported_after_a_failure(tmp_path: Path, pg_db: URL) -> None:
    config = make_project(tmp_path, REVS, env_py=PER_MIGRATION_ENV)
    shared = pg_db.render_as_string(hide_password=False)
    tenants = [
        Tenant("bad", shared, "tenant_bad"),
        Tenant("stuck", shared, "tenant_stuck"),
        Tenant("good", shared, "tenant_good"),
        Tenant("unreachable", "postgresql://app:hunter2@127.0.0.1:1/nowhere"),
    ]
    report = await migrate_tenants(config, tenants, "head", concurrency=4, timeout=3.0)
    bad, stuck, good, unreachable = report.results
    # r0 and r1 committed on their own before r2 failed: the report says so, and where it stands.
    assert (bad.status, bad.applied, bad.migrations) == ("failed", ("r0", "r1"), 2)
    assert (bad.from_heads, bad.to_heads) == ((), ("r1",))
    assert "broken data in bad" in (bad.error or "")
    assert (await state_of(shared, "tenant_bad"))[1] == ["r1"]
    # The deadline passed in r2: r0 and r1 stay committed; r2 rolled back.
    assert (stuck.status, stuck.applied) == ("failed", ("r0", "r1"))
    assert stuck.to_heads == ("r1",)
    assert (stuck.error or "").startswith(
        "timed out after 3s; committed before that: r0, r1; the step in flight was interrupted: "
        "upgrade r1 -> r2"
    ), stuck.error
    assert stuck.seconds < 3.0 + 3.0
    assert (await state_of(shared, "tenant_stuck"))[1] == ["r1"]
    assert (good.status, good.applied, good.to_heads) == ("ok", ("r0", "r1", "r2", "r3"), ("r3",))
    # A tenant that never connected is not said to have rolled anything back, nor to be at base.
    assert unreachable.status == "failed"
    assert "Cannot connect" in (unreachable.error or "") and "rolled back" not in (unreachable.error or "")
    assert (unreachable.from_heads, unreachable.to_heads, unreachable.applied) == (None, None, ())
    data = report.to_dict()["tenants"]
    assert data[3]["from"] is None and data[3]["to"] is None
    assert data[0]["applied"] == ["r0", "r1"] and data[0]["to"] == ["r1"]
    assert "hunter2" not in json.dumps(report.to_dict())


async def test_rerun_after_a_partial_failure_starts_where_it_stands(tmp_path: Path, pg_db: URL) -> None:
    config = make_project(tmp_path, REVS, env_py=PER_MIGRATION_ENV)
    shared = pg_db.render_as_string(hide_password=False)
    first = await migrate_tenants(config, [Tenant("bad", shared, "tenant_rr")], "head")
    assert first.results[0].to_heads == ("r1",)
    # The data is fixed (the tenant renamed in this test's world): the re-run applies r2, r3 only.
    again = await migrate_tenants(config, [Tenant("fixed", shared, "tenant_rr")], "head")
    assert (again.results[0].from_heads, again.results[0].applied) == (("r1",), ("r2", "r3"))


def test_printable_escapes_control_characters() -> None:
    assert printable("acme\nFAILED: other") == "acme\\nFAILED: other"
    assert printable("red\x1b[31m\r\t\x00") == "red\\x1b[31m\\r\\t\\x00"
    assert printable("plain ünïcode") == "plain ünïcode"
    # Bidirectional controls would reorder what a terminal or CI log shows of the line.
    assert printable("bidi\u202eevil\u2066x\u200f") == "bidi\\u202eevil\\u2066x\\u200f"


def test_names_with_control_characters_cannot_forge_output_lines(tmp_path: Path) -> None:
    make_project(tmp_path, [Rev("r1", None, """
        from asyncmigrate import context
        raise RuntimeError("boom\\nok: everything fine")
    """)])
    (tmp_path / "tenants.toml").write_text(
        '[[tenants]]\nname = "evil\\n[2/2] forged: ok base -> r1"\nurl = "sqlite:///evil.db"\n\n'
        '[[tenants]]\nname = "secret"\nurl = "postgresql://app:hunter2@127.0.0.1:1/x"\n',
        encoding="utf-8",
    )
    result = cli_runner().invoke(
        cli, ["-c", str(tmp_path / "alembic.ini"), "upgrade", "head",
              "--tenants", str(tmp_path / "tenants.toml"), "--no-progress"],
        catch_exceptions=False,
    )
    assert result.exit_code == 1
    for stream in (result.stdout, result.stderr):
        assert "hunter2" not in stream
        for line in stream.splitlines():
            assert not line.startswith("[2/2] forged"), stream
            assert not line.lstrip("│| ").startswith("ok: everything fine"), stream
    assert "evil\\n[2/2] forged" in result.stderr


@pytest.mark.parametrize("shards", [4])
def test_four_shards_merge_into_one_fleet_report(tmp_path: Path, shards: int) -> None:
    make_project(tmp_path, REVS)
    names = [f"co{i}" for i in range(9)] + ["bad_apple"]
    (tmp_path / "tenants.toml").write_text(
        "".join(f'[[tenants]]\nname = "{n}"\nurl = "sqlite:///{n}.db"\n\n' for n in names), encoding="utf-8"
    )
    runner = cli_runner()
    base = ["-c", str(tmp_path / "alembic.ini")]
    for index in range(shards):
        ran = runner.invoke(cli, [*base, "-q", "upgrade", "head", "--tenants", str(tmp_path / "tenants.toml"),
                                  "--shard", f"{index}/{shards}", "--report", str(tmp_path / f"shard-{index}.json")])
        assert ran.exit_code in (0, 1), ran.output
    reports = [str(tmp_path / f"shard-{i}.json") for i in range(shards)]
    merged = runner.invoke(cli, ["tenants", "report", "merge", *reports, "-o", str(tmp_path / "fleet.json")])
    assert merged.exit_code == 1  # bad_apple failed
    fleet = json.loads((tmp_path / "fleet.json").read_text())
    assert sorted(t["name"] for t in fleet["tenants"]) == sorted(names)
    assert fleet["counts"] == {"ok": 9, "unchanged": 0, "failed": 1, "skipped": 0}
    assert sorted(fleet["shards"]) == [f"{i}/{shards}" for i in range(shards)]
    assert "bad_apple" in merged.stdout and "10 tenants" in merged.stdout
    # Every shard held 2 or 3 tenants.
    sizes = sorted(len(json.loads(Path(r).read_text())["tenants"]) for r in reports)
    assert sizes == [2, 2, 3, 3]
    # A shard missing from the merge is an error: its tenants are unaccounted for.
    partial = runner.invoke(cli, ["tenants", "report", "merge", *reports[:3]])
    assert partial.exit_code == 1
    assert "shard report(s) missing: 3/4" in partial.stderr
    # The same tenant in two reports is refused.
    twice = runner.invoke(cli, ["tenants", "report", "merge", reports[0], reports[0]])
    assert twice.exit_code == 1 and "appears in reports 1 and 2" in twice.stderr


async def test_a_cancelled_run_still_records_what_committed(tmp_path: Path, pg_db: URL) -> None:
    import anyio

    config = make_project(tmp_path, REVS, env_py=PER_MIGRATION_ENV)
    shared = pg_db.render_as_string(hide_password=False)
    with anyio.move_on_after(2.0):
        await migrate_tenants(config, [Tenant("stuck", shared, "tenant_cx")], "head", report_path=tmp_path / "r.json")
    (record,) = json.loads((tmp_path / "r.json").read_text())["tenants"]
    assert record["status"] == "failed"
    assert record["applied"] == ["r0", "r1"]
    assert record["error"] == (
        "cancelled while migrating; committed before that: r0, r1; the step in flight was interrupted"
    )
    assert record["to"] == ["r1"]  # derived from what committed; read back below
    assert record["attempts"] == 1 and record["seconds"] > 0
    assert (await state_of(shared, "tenant_cx"))[1] == ["r1"]


@pytest.mark.parametrize("reaches", [True, False], ids=["commit-answer-lost", "commit-lost"])
async def test_a_commit_cut_off_before_its_answer_is_read_back_never_called_rolled_back(
    tmp_path: Path, pg_db: URL, reaches: bool
) -> None:
    # The connection is reset while the answer to r2's COMMIT is due (the COMMIT travels with
    # the version row where the driver folds them, alone otherwise).
    # Whether the server committed is then unknown to the client: the record says so, reads the
    # tenant back, and counts r2 as applied only when it did commit.
    from ..netfaults import proxy_to

    config = make_project(tmp_path, REVS, env_py=PER_MIGRATION_ENV)
    async with proxy_to(pg_db) as proxy:
        proxy.cut_at(b"COMMIT", after=b"'r2'", reaches=reaches)
        url = proxy.url(pg_db).render_as_string(hide_password=False)
        report = await migrate_tenants(config, [Tenant("cut", url, "tenant_cut")], "head")
    (record,) = report.results
    at = "r2" if reaches else "r1"
    assert (await state_of(pg_db.render_as_string(hide_password=False), "tenant_cut"))[1] == [at]
    assert record.status == "failed"
    assert record.to_heads == (at,)
    assert record.applied == (("r0", "r1", "r2") if reaches else ("r0", "r1"))
    error = record.error or ""
    assert "whether it committed is unknown" in error and "rolled back" not in error, error
    assert error.endswith(
        "read back: it committed, the tenant stands at r2" if reaches else "read back: the tenant stands at r1"
    ), error


def test_a_commit_in_doubt_is_never_called_nothing_committed() -> None:
    # One transaction for the run, cut off while committing: nothing is known to have committed,
    # and nothing may be said to have not.
    from asyncmigrate.tenants.attempt import _cancelled_message, _Steps

    said = _cancelled_message(_Steps(started=True, in_doubt=["r0", "r1"]))
    assert said == (
        "cancelled while migrating; the COMMIT of r0, r1 was cut off before the answer, so whether it "
        "committed is unknown"
    )
