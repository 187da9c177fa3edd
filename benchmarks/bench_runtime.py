"""Runtime benchmarks, side by side in one run.

1. ``noop``: a 500-revision history already at head; in-process ``upgrade head``
   repeated, asyncmigrate's ``await command.upgrade`` vs Alembic's
   ``command.upgrade`` (SQLite file; both tools read every revision each call).
2. ``apply``: a 10-revision history applied to a fresh PostgreSQL database,
   asyncmigrate's ``command.upgrade`` vs bare asyncpg executing the same SQL
   (the script ``upgrade --sql`` renders, version-table statements included,
   in one transaction on a fresh connection).

Contenders run interleaved, round by round, each one first in turn; the
apply ratio is given per round (the median of each round's ratio, which a
drifting server speed does not skew) and of the medians.

Run: ``python benchmarks/bench_runtime.py [--rounds N] [--only noop|apply] [--pg URL]``.
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

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from asyncmigrate import Config, command  # noqa: E402
from asyncmigrate.urls import to_async_url  # noqa: E402
from tests.project import Rev, make_project  # noqa: E402


def history(count: int) -> list[Rev]:
    """A linear history of realistic revisions: each creates a table with an index and an FK."""
    revs = []
    for i in range(count):
        fk = f', sa.Column("prev_id", sa.Integer, sa.ForeignKey("t{i - 1}.id"))' if i else ""
        revs.append(Rev(
            f"{i:04d}abcdef", f"{i - 1:04d}abcdef" if i else None,
            f"""
            op.create_table("t{i}", sa.Column("id", sa.Integer, primary_key=True),
                            sa.Column("name", sa.String(80), nullable=False),
                            sa.Column("created", sa.DateTime, server_default=sa.func.now()){fk})
            op.create_index("ix_t{i}_name", "t{i}", ["name"])
            """,
            f'op.drop_index("ix_t{i}_name", table_name="t{i}")\nop.drop_table("t{i}")',
            message=f"create table t{i}",
        ))
    return revs


def alembic_config(root: Path, versions: Path, url: str) -> object:
    """An Alembic project made by ``alembic init -t generic``, reading the same version files."""
    import subprocess

    from alembic.config import Config as AlembicConfig

    side = root / "alembic_side"
    side.mkdir()
    subprocess.run(
        [sys.executable, "-m", "alembic", "init", "-t", "generic", "migrations"],
        cwd=side, check=True, capture_output=True,
    )
    ini = side / "alembic.ini"
    text = ini.read_text().replace("driver://user:pass@localhost/dbname", url)
    text = text.replace("[alembic]", f"[alembic]\nversion_locations = {versions}", 1)
    text = text.replace("level = INFO", "level = WARNING")
    ini.write_text(text)
    return AlembicConfig(str(ini))


async def bench_noop(rounds: int) -> dict[str, float]:
    from alembic import command as alembic_command

    root = Path(tempfile.mkdtemp(prefix="bench-noop-"))
    db = root / "app.db"
    config = make_project(root, history(500), url=f"sqlite:///{db}")
    await command.upgrade(config, "head")
    cfg = alembic_config(root, root / "migrations" / "versions", f"sqlite:///{db}")
    ours, theirs = [], []
    for _ in range(rounds):
        t = time.perf_counter()
        result = await command.upgrade(config, "head")
        ours.append(time.perf_counter() - t)
        assert not result.changed
        t = time.perf_counter()
        await asyncio.to_thread(alembic_command.upgrade, cfg, "head")
        theirs.append(time.perf_counter() - t)
    shutil.rmtree(root)
    return {"asyncmigrate": statistics.median(ours), "alembic": statistics.median(theirs)}


async def bench_apply(rounds: int, server: str) -> dict[str, list[float]]:
    """Seconds per round for each contender; the order of contenders turns every round."""
    root = Path(tempfile.mkdtemp(prefix="bench-apply-"))
    config = make_project(root, history(10), url=server)
    sql = (await command.upgrade(config, "head", sql=True)).sql or ""
    base = to_async_url(server)
    admin = await asyncpg.connect(
        host=base.host, port=base.port or 5432, user=base.username, database=base.database
    )
    statements = [
        "\n".join(line for line in chunk.splitlines() if not line.startswith("--")).strip()
        for chunk in sql.split(";\n")
    ]
    statements = [s for s in statements if s and s not in ("BEGIN", "COMMIT")]
    kinds = ["asyncmigrate", "bare asyncpg", "bare asyncpg, one statement at a time"]
    times: dict[str, list[float]] = {kind: [] for kind in kinds}
    try:
        for i in range(rounds):
            order = kinds[i % 3:] + kinds[:i % 3]  # each contender goes first, second, third in turn
            for kind in order:
                name = f"bench_apply_{os.getpid()}_{kinds.index(kind)}_{i}"
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
                await admin.execute(f'CREATE DATABASE "{name}"')
                url = base.set(database=name)
                t = time.perf_counter()
                if kind == "asyncmigrate":
                    result = await command.upgrade(
                        config, "head", url=url.render_as_string(hide_password=False)
                    )
                    elapsed = time.perf_counter() - t
                    assert len(result.steps) == 10
                elif kind == "bare asyncpg":
                    conn = await asyncpg.connect(
                        host=url.host, port=url.port or 5432, user=url.username, database=name
                    )
                    await conn.execute(sql)  # one simple-protocol batch: BEGIN ... COMMIT
                    await conn.close()
                    elapsed = time.perf_counter() - t
                else:
                    conn = await asyncpg.connect(
                        host=url.host, port=url.port or 5432, user=url.username, database=name
                    )
                    async with conn.transaction():  # the same statements, one at a time
                        for statement in statements:
                            await conn.execute(statement)
                    await conn.close()
                    elapsed = time.perf_counter() - t
                times[kind].append(elapsed)
                check = await asyncpg.connect(
                    host=url.host, port=url.port or 5432, user=url.username, database=name
                )
                try:  # every contender left the same database behind
                    assert await check.fetchval("SELECT version_num FROM alembic_version") == "0009abcdef"
                finally:
                    await check.close()
                await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        await admin.close()
        shutil.rmtree(root)
    return times


def paired(ours: list[float], theirs: list[float]) -> tuple[float, float]:
    """The median of the per-round ratios, and of the per-round differences (ms)."""
    return (
        statistics.median(o / t for o, t in zip(ours, theirs, strict=True)),
        statistics.median((o - t) * 1000 for o, t in zip(ours, theirs, strict=True)),
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--only", choices=("noop", "apply"), help="run one of the two benchmarks")
    parser.add_argument(
        "--pg", default=os.environ.get("ASYNCMIGRATE_TEST_POSTGRESQL_URL", "postgresql://postgres@127.0.0.1/postgres")
    )
    args = parser.parse_args()
    print(f"# {platform.node()}: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}, "
          f"Python {platform.python_version()}, {platform.platform()}")
    if args.only in (None, "noop"):
        noop = await bench_noop(args.rounds)
        print(f"noop upgrade head, 500 revisions (median of {args.rounds}):")
        for name, seconds in noop.items():
            print(f"  {name:14s} {seconds * 1000:8.1f} ms")
        print(f"  ratio: alembic / asyncmigrate = {noop['alembic'] / noop['asyncmigrate']:.1f}x")
    if args.only in (None, "apply"):
        times = await bench_apply(args.rounds, args.pg)
        print(f"apply 10 revisions to a fresh PostgreSQL database ({args.rounds} rounds):")
        print(f"  {'':38s} {'median':>8s} {'min':>8s}")
        for name, values in times.items():
            print(f"  {name:38s} {statistics.median(values) * 1000:8.1f} {min(values) * 1000:8.1f} ms")
        ours = times["asyncmigrate"]
        for name in ("bare asyncpg", "bare asyncpg, one statement at a time"):
            ratio, extra = paired(ours, times[name])
            medians = statistics.median(ours) / statistics.median(times[name])
            print(f"  asyncmigrate / {name}: {ratio:.2f}x per round (median; {extra:+.1f} ms), "
                  f"{medians:.2f}x of medians")


if __name__ == "__main__":
    asyncio.run(main())
