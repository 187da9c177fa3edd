"""What the history table costs: the 10-revision apply with ``history_table`` off and on.

The 10-revision history of ``bench_runtime.py`` (a table with an index and a
foreign key per revision) applied with ``command.upgrade(config, "head")`` to
a fresh database, once with the history table off and once on (one more
``INSERT`` per step, folded into the step's commit where the driver allows,
plus, on the first run, the table's creation). Cases are interleaved round
by round, each first in turn; the ratio is the median of the per-round
ratios. Modes:

* ``pg``: PostgreSQL, one transaction for the run (the template's env.py);
* ``pg-per-migration``: PostgreSQL, ``transaction_per_migration=True`` (the
  history rows travel with each step's ``COMMIT``);
* ``sqlite``: a fresh SQLite file;
* ``pg-existing``, ``sqlite-existing``: the same, on a database that already
  has the history table (created before the clock starts, in both cases):
  the steady-state cost of a deployment, without the table's one-time creation.

The script checks that each run applied 10 steps and that the history table
holds 10 rows exactly when it is on.

Run: ``python benchmarks/bench_history.py [--rounds N] [--only MODE] [--pg URL]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from bench_runtime import history, paired  # noqa: E402

from asyncmigrate import Config, command  # noqa: E402
from asyncmigrate.urls import to_async_url  # noqa: E402
from tests.project import make_project  # noqa: E402

TEMPLATE_ENV = (HERE.parent / "templates" / "async" / "env.py").read_text()
PER_MIGRATION_ENV = TEMPLATE_ENV.replace(
    "context.configure(connection=connection, target_metadata=target_metadata)",
    "context.configure(connection=connection, target_metadata=target_metadata, "
    "transaction_per_migration=True)",
)
CASES = ("history off", "history on")


async def rows_in_history(url: str) -> int | None:
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            try:
                found = await conn.execute(text("SELECT count(*) FROM asyncmigrate_history"))
                return int(found.scalar_one())
            except Exception:  # no table: history off
                return None
    finally:
        await engine.dispose()


async def precreate(url: str) -> None:
    """Create the history table (not timed): the state of a database after its first deployment."""
    from asyncmigrate.runtime.history import HistoryTable

    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(
                lambda c: HistoryTable(c.dialect.name, "asyncmigrate_history", None).create(c)
            )
    finally:
        await engine.dispose()


async def bench(mode: str, rounds: int, server: str) -> dict[str, list[float]]:
    """Seconds per round for each case (history off / on)."""
    root = Path(tempfile.mkdtemp(prefix="bench-history-"))
    env = PER_MIGRATION_ENV if mode == "pg-per-migration" else None
    configs: dict[str, Config] = {
        case: make_project(root / case.replace(" ", "_"), history(10), env_py=env,
                           ini_extra="history_table = asyncmigrate_history" if case == "history on" else "")
        for case in CASES
    }
    times: dict[str, list[float]] = {case: [] for case in CASES}
    base = to_async_url(server)
    admin = None
    if not mode.startswith("sqlite"):
        admin = await asyncpg.connect(host=base.host, port=base.port or 5432, user=base.username,
                                      database=base.database)
    try:
        for i in range(rounds):
            order = CASES if i % 2 == 0 else CASES[::-1]
            for case in order:
                name = f"bench_history_{os.getpid()}_{CASES.index(case)}_{i}"
                if admin is not None:
                    await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
                    await admin.execute(f'CREATE DATABASE "{name}"')
                    url = base.set(database=name).render_as_string(hide_password=False)
                else:
                    url = f"sqlite+aiosqlite:///{root / (name + '.db')}"
                if mode.endswith("existing"):
                    await precreate(url)
                started = time.perf_counter()
                result = await command.upgrade(configs[case], "head", url=url)
                times[case].append(time.perf_counter() - started)
                assert len(result.steps) == 10
                recorded = await rows_in_history(url)
                expected = 10 if case == "history on" else (0 if mode.endswith("existing") else None)
                assert recorded == expected, (case, recorded)
                if admin is not None:
                    await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        if admin is not None:
            await admin.close()
        shutil.rmtree(root)
    return times


def ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:.1f} ms (min {min(values) * 1000:.1f})"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=21)
    modes = ("pg", "pg-per-migration", "sqlite", "pg-existing", "sqlite-existing")
    parser.add_argument("--only", choices=modes)
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    print(f"# machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"load {os.getloadavg()[0]:.2f}, Python {platform.python_version()}")
    for mode in modes:
        if args.only not in (None, mode):
            continue
        times = await bench(mode, args.rounds, args.pg)
        ratio, extra = paired(times["history on"], times["history off"])
        print(f"\n## apply 10 revisions, {mode} ({args.rounds} rounds)\n")
        print("| case | median |\n|---|---|")
        for case in CASES:
            print(f"| {case} | {ms(times[case])} |")
        print(f"| **on / off, per round** | **{ratio:.3f}x** ({extra:+.1f} ms) |")


if __name__ == "__main__":
    asyncio.run(main())
