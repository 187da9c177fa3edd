"""Benchmark the pytest plugin: per-test cost of a fresh migrated database, and the stairway check.

Run from the repository root (servers as in the README)::

    python benchmarks/bench_pytest_plugin.py [--revisions 50] [--tests 50] [--rounds 3]
        [--backends sqlite postgresql]

1. **Per-test cost.** An inner pytest session (a subprocess) of N tests that
   each take ``asyncmigrate_db`` (a fresh database at head), against the same
   N tests without it. The cost is the difference of the two sessions'
   run-test loops (every setup, call and teardown, the session's final drops
   included; interpreter start-up and collection are not), divided by N.
   The template is built by a warm-up session first (its time is printed):
   the figure is the steady state of a project whose history did not change.
   Seeding is on (``--no-seed`` turns it off): the inner sessions' conftest
   gives ``asyncmigrate_options`` a row at every revision, so the template is
   built one revision at a time with the rows inserted, as the checks do.
2. **Stairway.** On fresh databases: asyncmigrate's built-in stairway check
   (every revision up, down, up) against a plain ``upgrade heads`` +
   ``downgrade base``; and Alembic doing the same two jobs with its own
   commands (``upgrade rev``, ``downgrade -1``, ``upgrade rev`` per revision;
   sync drivers, a generic env.py) side by side.

Rounds are interleaved (A, B, A, B...), figures are medians with the
minimum. The benchmark checks what it measures: inner sessions must pass,
every database must end where the job says (head after the stairway, base
after up+down).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import resource
import statistics
import subprocess
import sys
import textwrap
import time
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "benchmarks" / ".work" / "pytest_plugin"
sys.path.insert(0, str(ROOT))

import anyio  # noqa: E402

from asyncmigrate import Config, command  # noqa: E402
from asyncmigrate.integrations.testing import DatabaseFactory, TemporaryDatabase  # noqa: E402
from asyncmigrate.integrations.testing.checks import stairway_in_one_run  # noqa: E402
from tests.project import Rev, make_project  # noqa: E402

PG = os.environ.get("ASYNCMIGRATE_TEST_POSTGRESQL_URL", "postgresql://postgres@127.0.0.1:5432/postgres")

ALEMBIC_ENV = '''
from alembic import context
from sqlalchemy import engine_from_config, pool

config = context.config
section = config.get_section(config.config_ini_section)
with engine_from_config(section, poolclass=pool.NullPool).connect() as connection:
    context.configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()
'''

TESTS_WITH = '''
import pytest

@pytest.mark.parametrize("n", range({n}))
def test_fresh(asyncmigrate_db, n):
    assert asyncmigrate_db.url.database
'''
# The first session also checks that the seeded rows are in the test databases.
TESTS_SEEDED = '''
from sqlalchemy import text


async def test_rows(asyncmigrate_db):
    async with asyncmigrate_db.connect() as conn:
        assert (await conn.execute(text("SELECT value FROM t001"))).scalar() == 1
'''
TESTS_WITHOUT = '''
import pytest

@pytest.mark.parametrize("n", range({n}))
def test_plain(n):
    assert n >= 0
'''


def history(count: int) -> list[Rev]:
    """A linear history: each revision creates a table with three columns and an index."""
    revs = []
    for i in range(1, count + 1):
        revs.append(Rev(
            f"r{i:03d}", f"r{i - 1:03d}" if i > 1 else None,
            f"""
            op.create_table(
                "t{i:03d}",
                sa.Column("id", sa.Integer, primary_key=True),
                sa.Column("name", sa.String(50), nullable=False),
                sa.Column("value", sa.Integer),
            )
            op.create_index("ix_t{i:03d}_value", "t{i:03d}", ["value"])
            """,
            f"""
            op.drop_index("ix_t{i:03d}_value", "t{i:03d}")
            op.drop_table("t{i:03d}")
            """,
        ))
    return revs


def make(root: Path, revisions: int) -> Config:
    """Write the project (asyncmigrate's env.py) plus an Alembic env.py over the same versions."""
    if root.exists():
        import shutil

        shutil.rmtree(root)
    config = make_project(root, history(revisions), url="sqlite:///app.db")
    env_dir = root / "alembic_env"
    env_dir.mkdir()
    (env_dir / "env.py").write_text(textwrap.dedent(ALEMBIC_ENV))
    (env_dir / "script.py.mako").write_text((root / "migrations" / "script.py.mako").read_text())
    return config


# Times the run-test loop: every test's setup, call and teardown, session fixtures' teardown included.
TIMER = '''
import time
import pytest
'''

# Data at every revision: one row into the table the revision creates.
SEEDS = '''
from asyncmigrate.integrations.testing import MigrationTestOptions


@pytest.fixture
def asyncmigrate_options():
    return MigrationTestOptions(at_revision_data={{
        f"r{{i:03d}}": {{"__tablename__": f"t{{i:03d}}", "id": 1, "name": "seed", "value": i}}
        for i in range(1, {revisions} + 1)
    }})
'''

TIMER += '''

@pytest.hookimpl(wrapper=True)
def pytest_runtestloop(session):
    started = time.perf_counter()
    try:
        return (yield)
    finally:
        with open("loop-seconds.txt", "w") as fh:
            fh.write(repr(time.perf_counter() - started))
'''


def inner_session(root: Path, url: str, body: str, ini: str = "", seeds: str = "") -> float:
    """Run one inner pytest session; return the seconds of its run-test loop."""
    (root / "test_bench.py").write_text(body)
    (root / "conftest.py").write_text(TIMER + seeds)
    (root / "pytest.ini").write_text(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
        f"asyncmigrate_url = {url}\n{ini}"
    )
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "test_bench.py"],
        cwd=root, capture_output=True, text=True,
    )
    if done.returncode != 0 or " passed" not in done.stdout:
        raise SystemExit(f"inner session failed:\n{done.stdout}\n{done.stderr}")
    return float((root / "loop-seconds.txt").read_text())


async def fresh(factory: DatabaseFactory, config: Config, url: str) -> TemporaryDatabase:
    return await factory.create(await factory.template(config, url, None), config)


async def am_plain(config: Config, db: TemporaryDatabase) -> None:
    engine = db.engine(poolclass=None)
    try:
        await command.upgrade(db.config, "heads", engine=engine)
        await command.downgrade(db.config, "base", engine=engine)
    finally:
        await engine.dispose()
    state = await command.current(db.config, url=db.url)
    assert state.heads == (), state


async def am_stairway(config: Config, db: TemporaryDatabase, last: str) -> None:
    await stairway_in_one_run(db)
    state = await command.current(db.config, url=db.url)
    assert state.heads == (last,), state


def alembic_config(root: Path, db: TemporaryDatabase) -> object:
    from alembic.config import Config as AlembicConfig

    driver = {"postgresql": "postgresql+psycopg2", "sqlite": "sqlite"}[db.url.get_backend_name()]
    sync = db.url.set(drivername=driver).render_as_string(hide_password=False)
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(root / "alembic_env"))
    cfg.set_main_option("version_locations", str(root / "migrations" / "versions"))
    cfg.set_main_option("sqlalchemy.url", sync.replace("%", "%%"))
    return cfg


def alembic_heads(cfg: object) -> tuple[str, ...]:
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy import create_engine

    engine = create_engine(cfg.get_main_option("sqlalchemy.url"))  # type: ignore[attr-defined]
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_heads()
    finally:
        engine.dispose()


def alembic_plain(cfg: object) -> None:
    from alembic import command as alembic_command

    alembic_command.upgrade(cfg, "head")  # type: ignore[arg-type]
    alembic_command.downgrade(cfg, "base")  # type: ignore[arg-type]
    assert alembic_heads(cfg) == ()


def alembic_stairway(cfg: object, revisions: int) -> None:
    from alembic import command as alembic_command

    for i in range(1, revisions + 1):
        alembic_command.upgrade(cfg, f"r{i:03d}")  # type: ignore[arg-type]
        alembic_command.downgrade(cfg, "-1")  # type: ignore[arg-type]
        alembic_command.upgrade(cfg, f"r{i:03d}")  # type: ignore[arg-type]
    assert alembic_heads(cfg) == (f"r{revisions:03d}",)


async def stairway_round(root: Path, config: Config, url: str, revisions: int) -> dict[str, float]:
    """Time the four jobs once each, every one on a fresh database."""
    times: dict[str, float] = {}
    last = f"r{revisions:03d}"
    work = WORK / "dbs"
    work.mkdir(parents=True, exist_ok=True)
    async with DatabaseFactory(WORK / "cache", work, prefetch=0) as factory:
        jobs = {
            "asyncmigrate plain": lambda db: am_plain(config, db),
            "asyncmigrate stairway": lambda db: am_stairway(config, db, last),
            "alembic plain": lambda db: anyio.to_thread.run_sync(alembic_plain, alembic_config(root, db)),
            "alembic stairway": lambda db: anyio.to_thread.run_sync(
                alembic_stairway, alembic_config(root, db), revisions
            ),
        }
        for name, job in jobs.items():
            db = await fresh(factory, config, url)
            try:
                started = time.perf_counter()
                await job(db)
                times[name] = time.perf_counter() - started
            finally:
                await factory.discard(db)
    return times


def facts() -> str:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    cpu = platform.processor() or platform.machine()
    try:
        model = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith("model name"))
    except (OSError, StopIteration):
        model = cpu
    pg = ""
    try:
        import psycopg2

        conn = psycopg2.connect(PG.replace("+asyncpg", ""))
        with conn.cursor() as cur:
            cur.execute("SHOW server_version")
            pg = f", PostgreSQL {cur.fetchone()[0]}"  # type: ignore[index]
        conn.close()
    except Exception:
        pass
    return (
        f"{model}, {os.cpu_count()} cores, load average {load}; {platform.system()} "
        f"{platform.release()}; Python {platform.python_version()}; SQLAlchemy {version('sqlalchemy')}, "
        f"Alembic {version('alembic')}, pytest {version('pytest')}{pg}; commit {commit}"
    )


def median_min(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} (min {min(values):.3f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--revisions", type=int, default=50)
    parser.add_argument("--tests", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--backends", nargs="+", default=["sqlite", "postgresql"])
    parser.add_argument("--prefetch", type=int, help="asyncmigrate_prefetch for the inner sessions")
    parser.add_argument("--drop-batch", type=int, help="asyncmigrate_drop_batch for the inner sessions")
    parser.add_argument("--no-stairway", action="store_true", help="skip the stairway comparison")
    parser.add_argument("--no-seed", action="store_true", help="no data at revisions in the inner sessions")
    args = parser.parse_args()
    knobs = (("asyncmigrate_prefetch", args.prefetch), ("asyncmigrate_drop_batch", args.drop_batch))
    ini = "".join(f"{name} = {value}\n" for name, value in knobs if value is not None)
    import logging

    logging.getLogger("alembic").setLevel(logging.WARNING)
    print(f"Machine: {facts()}\n")
    for backend in args.backends:
        url = "sqlite:///bench.db" if backend == "sqlite" else PG
        root = WORK / f"project-{backend}-{args.revisions}"
        config = make(root, args.revisions)
        cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        seeds = "" if args.no_seed else SEEDS.format(revisions=args.revisions)
        build = inner_session(root, url, TESTS_SEEDED if seeds else TESTS_WITH.format(n=1), seeds=seeds)
        with_db: list[float] = []
        without: list[float] = []
        for _ in range(args.rounds):  # interleaved
            with_db.append(inner_session(root, url, TESTS_WITH.format(n=args.tests), ini, seeds))
            without.append(inner_session(root, url, TESTS_WITHOUT.format(n=args.tests), ini, seeds))
        cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
        per_test = [(w - o) / args.tests * 1000 for w, o in zip(with_db, without, strict=True)]
        rounds = [] if args.no_stairway else [
            asyncio.run(stairway_round(root, config, url, args.revisions)) for _ in range(args.rounds)
        ]
        times = {name: [r[name] for r in rounds] for name in rounds[0]} if rounds else {}
        cpu = (cpu_after.ru_utime + cpu_after.ru_stime - cpu_before.ru_utime - cpu_before.ru_stime)
        settings = f", {ini.strip().replace(chr(10), ', ')}" if ini else ""
        seeding = "no seeding" if args.no_seed else "a seeded row at every revision"
        print(f"### {backend}: {args.revisions} revisions ({seeding}), {args.tests} tests, "
              f"{args.rounds} rounds{settings}\n")
        print("| measure | median (min) |")
        print("|---|---|")
        print(f"| first session: template build + 1 test (s) | {build:.3f} |")
        print(f"| per-test cost of a fresh migrated database (ms) | {median_min(per_test)} |")
        print(f"| inner sessions' CPU, all rounds (s, user+system) | {cpu:.2f} |")
        for name, values in times.items():
            print(f"| {name} (s) | {median_min(values)} |")
        for tool in ("asyncmigrate", "alembic") if times else ():
            ratios = [s / p for s, p in zip(times[f"{tool} stairway"], times[f"{tool} plain"], strict=True)]
            print(f"| {tool}: stairway / (upgrade + downgrade) | {median_min(ratios)} |")
        print()


if __name__ == "__main__":
    main()
