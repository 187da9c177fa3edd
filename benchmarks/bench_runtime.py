"""Runtime benchmarks, side by side in one run.

1. ``noop``: a 500-revision history already at head; in-process ``upgrade head``
   repeated, asyncmigrate's ``await command.upgrade`` vs Alembic's
   ``command.upgrade`` (SQLite file; both tools read every revision each call).
2. ``apply``: a 10-revision history applied to a fresh PostgreSQL database,
   asyncmigrate's ``command.upgrade`` vs bare asyncpg executing the same SQL
   (the script ``upgrade --sql`` renders, version-table statements included,
   in one transaction on a fresh connection).

Run: ``python benchmarks/bench_runtime.py [--rounds N] [--pg URL]``.
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


async def bench_apply(rounds: int, server: str) -> dict[str, float]:
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
    ours, bare, each = [], [], []
    try:
        for i in range(rounds):
            for kind in ("ours", "bare", "each"):
                name = f"bench_apply_{os.getpid()}_{kind}_{i}"
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
                await admin.execute(f'CREATE DATABASE "{name}"')
                url = base.set(database=name)
                t = time.perf_counter()
                if kind == "ours":
                    result = await command.upgrade(
                        config, "head", url=url.render_as_string(hide_password=False)
                    )
                    assert len(result.steps) == 10
                    ours.append(time.perf_counter() - t)
                elif kind == "bare":
                    conn = await asyncpg.connect(
                        host=url.host, port=url.port or 5432, user=url.username, database=name
                    )
                    await conn.execute(sql)  # one simple-protocol batch: BEGIN ... COMMIT
                    await conn.close()
                    bare.append(time.perf_counter() - t)
                else:
                    conn = await asyncpg.connect(
                        host=url.host, port=url.port or 5432, user=url.username, database=name
                    )
                    async with conn.transaction():  # the same statements, one at a time
                        for statement in statements:
                            await conn.execute(statement)
                    await conn.close()
                    each.append(time.perf_counter() - t)
                await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        await admin.close()
        shutil.rmtree(root)
    return {
        "asyncmigrate": statistics.median(ours),
        "bare asyncpg": statistics.median(bare),
        "bare asyncpg, one statement at a time": statistics.median(each),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument(
        "--pg", default=os.environ.get("ASYNCMIGRATE_TEST_POSTGRESQL_URL", "postgresql://postgres@127.0.0.1/postgres")
    )
    args = parser.parse_args()
    print(f"# {platform.node()}: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}, "
          f"Python {platform.python_version()}, {platform.platform()}")
    noop = await bench_noop(args.rounds)
    print(f"noop upgrade head, 500 revisions (median of {args.rounds}):")
    for name, seconds in noop.items():
        print(f"  {name:14s} {seconds * 1000:8.1f} ms")
    print(f"  ratio: alembic / asyncmigrate = {noop['alembic'] / noop['asyncmigrate']:.1f}x")
    apply = await bench_apply(args.rounds, args.pg)
    print(f"apply 10 revisions to a fresh PostgreSQL database (median of {args.rounds}):")
    for name, seconds in apply.items():
        print(f"  {name:38s} {seconds * 1000:8.1f} ms")
    print(f"  ratio: asyncmigrate / bare asyncpg (one batch) = {apply['asyncmigrate'] / apply['bare asyncpg']:.2f}x")
    each = apply["bare asyncpg, one statement at a time"]
    print(f"  ratio: asyncmigrate / bare asyncpg (one statement at a time) = {apply['asyncmigrate'] / each:.2f}x")


if __name__ == "__main__":
    asyncio.run(main())
