"""``--jobs N``: one fan-out split between N worker processes, read back as one run.

The console script in a subprocess, as a user runs it: every tenant ends
migrated (or failed, with its reason) and appears once in one report, in
the order the source listed it; the workers together stay within
``--concurrency``; what a revision prints still reaches the terminal; a
worker that dies leaves its tenants failed, never missing; SIGTERM stops
the run as it stops one process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy.engine import URL

from ..project import Rev, make_project
from .test_fanout import max_overlap, state_of

BIN = Path(sys.executable).parent
REVS = [
    Rev("j1", None, """
        import os
        from asyncmigrate import context
        op.execute("CREATE TABLE t (id INTEGER)")
        print("migrating", context.tenant.name)
        if context.tenant.name == "broken":
            raise RuntimeError("cannot migrate " + context.tenant.name)
        if context.tenant.name == "vanishing":
            os._exit(9)  # the worker process dies mid-run
        delay = float(os.environ.get("JOBS_TEST_DELAY", "0"))
        if delay:
            import time
            time.sleep(delay)
    """),
    Rev("j2", "j1", 'op.execute("CREATE TABLE u (id INTEGER)")'),
]


def cli(root: Path, *args: str, **popen: object) -> subprocess.Popen[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("ASYNCMIGRATE_")}
    environ.update(popen.pop("env", {}))  # type: ignore[call-overload]
    return subprocess.Popen(
        [str(BIN / "asyncmigrate"), *args], cwd=root, env=environ,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen,  # type: ignore[call-overload]
    )


def sqlite_fleet(root: Path, names: list[str]) -> Path:
    (root / "db").mkdir()
    (root / "tenants.toml").write_text(
        "".join(f'[[tenants]]\nname = "{n}"\nurl = "sqlite:///db/{n}.db"\n\n' for n in names),
        encoding="utf-8",
    )
    return root / "tenants.toml"


def test_a_sqlite_fleet_split_between_three_workers_is_one_run(tmp_path: Path) -> None:
    make_project(tmp_path, REVS)
    names = [f"company_{i}" for i in range(10)] + ["broken"]
    sqlite_fleet(tmp_path, names)
    run = cli(tmp_path, "upgrade", "head", "--tenants", "tenants.toml", "--jobs", "3", "--concurrency", "4",
              "--report", "fleet.json", "--no-progress")
    out, err = run.communicate(timeout=120)
    assert run.returncode == 1, err  # one tenant failed
    report = json.loads((tmp_path / "fleet.json").read_text())
    assert [t["name"] for t in report["tenants"]] == names  # the source's order, each once
    assert report["counts"] == {"ok": 10, "unchanged": 0, "failed": 1, "skipped": 0}
    assert "cannot migrate broken" in report["tenants"][-1]["error"]
    assert report["concurrency"] == 4  # the workers' shares add up to --concurrency
    assert report["target"] == "head"
    from asyncmigrate.tenants import TenantResult

    assert max_overlap([TenantResult.from_dict(t) for t in report["tenants"]]) <= 4 + 2  # clocks per worker
    # One progress: each tenant once, counted over the whole fleet.
    progress = [line for line in err.splitlines() if line.startswith("[")]
    assert sorted(line.split("]")[0] for line in progress) == sorted(f"[{i}/11" for i in range(1, 12))
    assert sum(f"] {name}:" in line for line in progress for name in names) == 11
    # What the revisions printed reaches stdout, each line whole; the summary is printed once.
    assert sorted(line for line in out.splitlines() if line.startswith("migrating")) == sorted(
        f"migrating {n}" for n in names
    )
    assert out.count("11 tenants in") == 1
    for name in names[:-1]:
        assert (tmp_path / "db" / f"{name}.db").stat().st_size > 0


async def test_every_tenant_of_a_postgresql_fleet_is_migrated_by_the_workers(
    tmp_path: Path, pg_db: URL
) -> None:
    make_project(tmp_path, REVS, ini_extra="history_table = h\nhistory_table_schema = public")
    shared = pg_db.render_as_string(hide_password=False)
    names = [f"c{i}" for i in range(9)]
    (tmp_path / "tenants.toml").write_text(
        "".join(f'[[tenants]]\nname = "{n}"\nurl = "{shared}"\nschema = "s_{n}"\n\n' for n in names),
        encoding="utf-8",
    )
    run = cli(tmp_path, "upgrade", "head", "--tenants", "tenants.toml", "--jobs", "2", "--json")
    out, err = run.communicate(timeout=120)
    assert run.returncode == 0, out + err
    report = json.loads(out[out.index("{"):])  # --json: the merged report (after what revisions printed)
    assert report["counts"]["ok"] == 9
    for name in names:
        assert (await state_of(shared, f"s_{name}"))[1] == ["j2"]
    # Two processes created the shared history table at once: one table, two rows per tenant.
    assert (await state_of(shared))[1] == []
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(shared)
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(text(
                "SELECT version_schema, count(*) FROM public.h GROUP BY version_schema"))).all()
    finally:
        await engine.dispose()
    assert sorted(rows) == sorted((f"s_{n}", 2) for n in names)


def test_a_worker_that_dies_leaves_its_tenants_failed_not_missing(tmp_path: Path) -> None:
    make_project(tmp_path, REVS)
    names = ["vanishing", "a", "b", "c", "d", "e"]
    sqlite_fleet(tmp_path, names)
    run = cli(tmp_path, "upgrade", "head", "--tenants", "tenants.toml", "--jobs", "2", "--concurrency", "2",
              "--report", "fleet.json", "--no-progress")
    _, err = run.communicate(timeout=120)
    assert run.returncode == 1, err
    report = json.loads((tmp_path / "fleet.json").read_text())
    assert sorted(t["name"] for t in report["tenants"]) == sorted(names)
    lost = [t for t in report["tenants"] if t["status"] == "failed"]
    assert "vanishing" in [t["name"] for t in lost]
    assert all("worker process exited with status 9" in t["error"] for t in lost)
    # The other worker's tenants (every second one) were not touched by the death.
    assert {t["name"] for t in report["tenants"] if t["status"] == "ok"} >= {"a", "c", "e"}


def test_sigterm_stops_every_worker_and_the_report_accounts_for_each_tenant(tmp_path: Path) -> None:
    make_project(tmp_path, REVS)
    names = [f"n{i}" for i in range(16)]
    sqlite_fleet(tmp_path, names)
    run = cli(tmp_path, "upgrade", "head", "--tenants", "tenants.toml", "--jobs", "2", "--concurrency", "2",
              "--report", "fleet.json", "--no-progress", env={"JOBS_TEST_DELAY": "0.3"})
    assert run.stderr is not None
    first = run.stderr.readline()  # the first tenant finished
    assert first.startswith("[1/16]"), first
    run.send_signal(signal.SIGTERM)
    _, err = run.communicate(timeout=120)
    assert run.returncode == 143, err
    assert err.count("SIGTERM: stopping") == 1  # said once, by the parent
    report = json.loads((tmp_path / "fleet.json").read_text())
    statuses = {t["name"]: t["status"] for t in report["tenants"]}
    assert sorted(statuses) == sorted(names)
    assert "skipped" in statuses.values()  # no new tenants started after the signal
    assert set(statuses.values()) <= {"ok", "skipped"}  # in-flight ones finished


@pytest.mark.parametrize("option", [["--canary", "2"], ["--fail-fast"], ["--max-failures", "3"]])
def test_options_that_count_failures_across_the_fleet_are_refused(tmp_path: Path, option: list[str]) -> None:
    make_project(tmp_path, REVS)
    sqlite_fleet(tmp_path, ["a", "b"])
    started = time.monotonic()
    run = cli(tmp_path, "upgrade", "head", "--tenants", "tenants.toml", "--jobs", "2", *option)
    _, err = run.communicate(timeout=60)
    assert run.returncode == 1
    assert err.strip().splitlines() == [
        f"ERROR: --jobs cannot be combined with {option[0]}: they count failures across the whole fleet "
        "in one process (run the canary without --jobs first)"
    ]
    assert not any((tmp_path / "db").iterdir())  # nothing ran
    assert time.monotonic() - started < 60


def test_log_says_it_does_not_split(tmp_path: Path) -> None:
    make_project(tmp_path, REVS)
    sqlite_fleet(tmp_path, ["a", "b"])
    run = cli(tmp_path, "log", "--tenants", "tenants.toml", "--jobs", "2")
    _, err = run.communicate(timeout=60)
    assert run.returncode == 1
    assert err.strip().splitlines() == [
        "ERROR: log reads the applied records; --jobs cannot apply to it (it takes a tenant source, "
        "--shard and --concurrency)"
    ]


def _workers_in(root: Path) -> list[int]:
    """The asyncmigrate worker processes running in ``root`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if Path(os.readlink(entry / "cwd")) == root and b"--jobs-worker" in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


@pytest.mark.skipif(not Path("/proc/self/cwd").exists(), reason="needs /proc to find the workers")
async def test_workers_of_a_killed_parent_stop_and_leave_every_tenant_consistent(tmp_path: Path) -> None:
    make_project(tmp_path, REVS)
    names = [f"n{i}" for i in range(20)]
    sqlite_fleet(tmp_path, names)
    run = cli(tmp_path, "upgrade", "head", "--tenants", "tenants.toml", "--jobs", "2", "--concurrency", "2",
              "--no-progress", env={"JOBS_TEST_DELAY": "0.3"})
    assert run.stderr is not None
    assert run.stderr.readline().startswith("[1/20]")
    run.kill()  # SIGKILL: the parent cannot tell its workers anything
    run.wait(timeout=30)
    assert _workers_in(tmp_path)  # orphaned, still running
    deadline = time.monotonic() + 30
    while _workers_in(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _workers_in(tmp_path) == []  # they noticed at their next result and stopped starting tenants
    _, err = run.communicate(timeout=30)  # the workers held the parent's stderr: what they said
    assert "Traceback" not in err and "BrokenPipe" not in err, err
    states = [(await state_of(f"sqlite+aiosqlite:///{tmp_path}/db/{n}.db"))[1] for n in names]
    assert all(state in ([], ["j2"]) for state in states), states  # each all or nothing
    assert [] in states  # the rest never started
