"""Fan-out benchmarks: many tenants, one process, side by side in one run.

Contenders (the same 10-revision history, one transaction per revision):

* **asyncmigrate**: ``migrate_tenants(config, tenants, "head", concurrency=C)``;
* **bare asyncpg**: the SQL ``upgrade --sql`` renders for that history, run statement by
  statement over a pool of C connections (BEGIN/statements/version row/COMMIT per revision);
* **Alembic loop**: ``alembic.command.upgrade`` per tenant, one after another, with the
  usual schema-per-tenant env.py (``SET search_path``, ``version_table_schema``).

Scenarios (``python benchmarks/bench_fanout.py SCENARIO``):

* ``schemas``: 100 PostgreSQL schemas x 10 revisions, whole-process wall time;
* ``proxy``: 50 schemas x 10 revisions through a TCP proxy adding 1 ms each way;
* ``sqlite``: 200 SQLite files x 10 revisions (asyncmigrate vs Alembic loop);
* ``memory``: 10,000 SQLite tenants at concurrency 64, peak RSS and RSS per 1,000 tenants.

Each contender runs in a fresh subprocess, so "whole-process wall time" includes
interpreter start-up and imports, and RSS figures are the contender's own.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

SERVER = os.environ.get("ASYNCMIGRATE_TEST_POSTGRESQL_URL", "postgresql://postgres@127.0.0.1:5432/postgres")

ALEMBIC_ENV = '''
from logging.config import fileConfig
from sqlalchemy import engine_from_config, pool, text
from alembic import context

config = context.config
schema = config.attributes.get("schema")


def run_migrations_online():
    connectable = engine_from_config(
        config.get_section(config.config_ini_section, {}), prefix="sqlalchemy.", poolclass=pool.NullPool
    )
    with connectable.connect() as connection:
        if schema:
            connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
            connection.execute(text(f'SET search_path TO "{schema}"'))
            connection.commit()
        context.configure(
            connection=connection, version_table_schema=schema, transaction_per_migration=True
        )
        with context.begin_transaction():
            context.run_migrations()


run_migrations_online()
'''


def make_projects(root: Path) -> None:
    """Write the shared history, asyncmigrate's project and Alembic's project under ``root``."""
    from bench_runtime import history

    from tests.project import TEMPLATES, logging_sections, make_project

    # One transaction per revision online and in the script bare asyncpg runs (offline):
    # every contender commits ten times per tenant.
    env = (TEMPLATES / "async" / "env.py").read_text().replace(
        "context.configure(connection=connection, target_metadata=target_metadata)",
        "context.configure(connection=connection, target_metadata=target_metadata, "
        "transaction_per_migration=True)",
    ).replace("literal_binds=True,", "literal_binds=True, transaction_per_migration=True,")
    assert env.count("transaction_per_migration=True") == 2, "the async template's env.py changed shape"
    make_project(root / "ours", history(10), env_py=env)
    make_project(root / "ours_history", history(10), env_py=env,
                 ini_extra="history_table = asyncmigrate_history")
    # One history table for the whole database (public), each row naming its tenant's schema.
    make_project(root / "ours_shared_history", history(10), env_py=env,
                 ini_extra="history_table = asyncmigrate_history\nhistory_table_schema = public")
    # Alembic's own `generic` env.py, unchanged (one transaction per run, a sync engine).
    import alembic

    generic = (Path(alembic.__file__).parent / "templates" / "generic" / "env.py").read_text()
    make_project(root / "generic", history(10), env_py=generic, ini_extra=logging_sections())
    side = root / "alembic"
    (side / "migrations").mkdir(parents=True)
    (side / "migrations" / "env.py").write_text(ALEMBIC_ENV)
    shutil.copy(TEMPLATES / "async" / "script.py.mako", side / "migrations" / "script.py.mako")
    (side / "alembic.ini").write_text(
        f"[alembic]\nscript_location = {side}/migrations\n"
        f"version_locations = {root}/ours/migrations/versions\nsqlalchemy.url = x\n"
    )


def tenants_for(kind: str, root: Path, count: int, url: str) -> list[dict[str, str | None]]:
    if kind == "sqlite":
        return [{"name": f"t{i}", "url": f"sqlite:///{root}/db/t{i}.db", "schema": None} for i in range(count)]
    return [{"name": f"tenant_{i}", "url": url, "schema": f"tenant_{i}"} for i in range(count)]


# -- contenders (each runs in its own process) -------------------------------------------------


async def run_ours(root: Path, tenants: list[dict[str, str | None]], concurrency: int,
                   project: str = "ours") -> dict[str, object]:
    from asyncmigrate import Config
    from asyncmigrate.tenants import Tenant, migrate_tenants

    config = Config(str(root / project / "alembic.ini"))
    report = await migrate_tenants(
        config, [Tenant(t["name"] or "", t["url"] or "", t["schema"]) for t in tenants], "head",
        concurrency=concurrency,
    )
    return {"counts": report.counts, "failed": [r.error for r in report.failed[:3]]}


async def run_bare(root: Path, tenants: list[dict[str, str | None]], concurrency: int, url: str) -> dict[str, object]:
    import asyncpg

    from asyncmigrate import Config, command

    config = Config(str(root / "ours" / "alembic.ini"))
    sql = (await command.upgrade(config, "head", sql=True, url=url)).sql or ""
    statements = [
        "\n".join(line for line in chunk.splitlines() if not line.startswith("--")).strip()
        for chunk in sql.split(";\n")
    ]
    statements = [s for s in statements if s]
    dsn = url.replace("postgresql+asyncpg://", "postgresql://")
    pool = await asyncpg.create_pool(dsn, min_size=concurrency, max_size=concurrency)
    limiter = asyncio.Semaphore(concurrency)

    async def one(schema: str) -> None:
        async with limiter, pool.acquire() as conn:
            await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            await conn.execute(f'SET search_path TO "{schema}"')
            for statement in statements:  # BEGIN ... COMMIT per revision, as rendered
                await conn.execute(statement)

    await asyncio.gather(*(one(t["schema"] or "") for t in tenants))
    await pool.close()
    return {"counts": {"ok": len(tenants)}}


def run_alembic(root: Path, tenants: list[dict[str, str | None]]) -> dict[str, object]:
    from alembic import command as alembic_command
    from alembic.config import Config as AlembicConfig

    for tenant in tenants:
        cfg = AlembicConfig(str(root / "alembic" / "alembic.ini"))
        url = (tenant["url"] or "").replace("postgresql+asyncpg://", "postgresql+psycopg2://")
        url = url.replace("postgresql://", "postgresql+psycopg2://")
        cfg.set_main_option("sqlalchemy.url", url)
        cfg.attributes["schema"] = tenant["schema"]
        alembic_command.upgrade(cfg, "head")
    return {"counts": {"ok": len(tenants)}}


async def run_memory(root: Path, count: int, concurrency: int) -> dict[str, object]:
    from asyncmigrate import Config
    from asyncmigrate.tenants import Tenant, TenantEvent, migrate_tenants

    config = Config(str(root / "ours" / "alembic.ini"))
    samples: list[tuple[int, int]] = []
    finished = 0

    def rss_kb() -> int:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def on_event(event: TenantEvent) -> None:
        nonlocal finished
        if event.kind == "finished":
            finished += 1
            if finished % 1000 == 0:
                samples.append((finished, rss_kb()))

    async def tenants():  # type: ignore[no-untyped-def]
        for i in range(count):
            yield Tenant(f"t{i}", f"sqlite:///{root}/db/t{i}.db")

    report = await migrate_tenants(config, tenants(), "head", concurrency=concurrency, on_event=on_event)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"counts": report.counts, "peak_rss_mb": round(peak / 1024, 1),
            "rss_mb_per_1000": [(n, round(kb / 1024, 1)) for n, kb in samples]}


def child(args: argparse.Namespace) -> None:
    root = Path(args.root)
    tenants = json.loads(Path(args.tenants).read_text()) if args.tenants else []
    started = time.perf_counter()
    if args.child == "ours":
        result = asyncio.run(run_ours(root, tenants, args.concurrency))
    elif args.child == "ours+history":  # the same, with the history table on
        result = asyncio.run(run_ours(root, tenants, args.concurrency, "ours_history"))
    elif args.child == "ours+shared":  # the same, with one history table for the database
        result = asyncio.run(run_ours(root, tenants, args.concurrency, "ours_shared_history"))
    elif args.child == "bare":
        result = asyncio.run(run_bare(root, tenants, args.concurrency, args.url))
    elif args.child == "alembic":
        result = run_alembic(root, tenants)
    else:
        result = asyncio.run(run_memory(root, args.count, args.concurrency))
    result["seconds"] = time.perf_counter() - started
    print("RESULT " + json.dumps(result))


# -- the driver -------------------------------------------------------------------------------------


def fresh_database(name: str) -> str:
    import asyncpg

    async def create() -> None:
        conn = await asyncpg.connect(SERVER.replace("postgresql+asyncpg://", "postgresql://"))
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
        await conn.close()

    asyncio.run(create())
    base = SERVER.rsplit("/", 1)[0]
    return f"{base}/{name}"


#: Whole-process contenders that are the command line itself: (project directory, --jobs) per name.
CLI_PROJECTS = {"cli": ("ours", 1), "cli-generic": ("generic", 1),
                "cli-j2": ("ours", 2), "cli-generic-j2": ("generic", 2)}


def cli_contender(root: Path, who: str, listing: Path, concurrency: int) -> dict[str, object]:
    """``asyncmigrate upgrade head --tenants ... --report ...`` as a user runs it; counts from the report."""
    report = root / "report.json"
    project, jobs = CLI_PROJECTS[who]
    wall = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "asyncmigrate", "-q", "-c", str(root / project / "alembic.ini"),
         "upgrade", "head", "--tenants", str(listing), "--concurrency", str(concurrency),
         "--report", str(report), "--no-progress", "--jobs", str(jobs)],
        capture_output=True, text=True, cwd=root,
    )
    wall = time.perf_counter() - wall
    if done.returncode != 0:
        raise RuntimeError(f"{who} failed:\n{done.stdout[-1000:]}{done.stderr[-2000:]}")
    return {"counts": json.loads(report.read_text())["counts"], "wall": wall}


def contender(root: Path, who: str, tenants: list[dict[str, str | None]], concurrency: int = 1,
              url: str = "", count: int = 0) -> dict[str, object]:
    listing = root / "tenants.json"
    listing.write_text(json.dumps(tenants))
    if who in CLI_PROJECTS:
        return cli_contender(root, who, listing, concurrency)
    wall = time.perf_counter()
    done = subprocess.run(
        [sys.executable, __file__, "--child", who, "--root", str(root), "--tenants", str(listing),
         "--concurrency", str(concurrency), "--url", url, "--count", str(count)],
        capture_output=True, text=True, cwd=root,
    )
    wall = time.perf_counter() - wall
    line = next((l for l in done.stdout.splitlines() if l.startswith("RESULT ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"{who} failed:\n{done.stderr[-2000:]}")
    result = json.loads(line[7:])
    result["wall"] = wall
    return result


def reset_tenants(kind: str, root: Path, name: str) -> str:
    if kind == "sqlite":
        shutil.rmtree(root / "db", ignore_errors=True)
        (root / "db").mkdir()
        return ""
    return fresh_database(name)


def scenario(kind: str, count: int, concurrencies: list[int], rounds: int, proxy: bool,
             with_history: bool = False, with_cli: bool = False) -> None:
    root = Path(tempfile.mkdtemp(prefix=f"bench-fanout-{kind}-"))
    make_projects(root)
    proxy_proc = None
    if proxy:
        proxy_proc = subprocess.Popen([sys.executable, str(HERE / "delay_proxy.py"),
                                       "--listen", "127.0.0.1:6543", "--delay", "0.001"])
        time.sleep(0.5)
        from delay_proxy import check

        check(("127.0.0.1", 6543), ("127.0.0.1", 5432))
    try:
        results: dict[str, list[float]] = {}
        for round_ in range(rounds):
            ours: tuple[str, ...] = ("ours",)
            if with_history:
                ours = ("ours", "ours+history") + (("ours+shared",) if kind != "sqlite" else ())
            ours = ours[round_ % len(ours):] + ours[:round_ % len(ours)]  # each goes first in turn
            if with_cli:
                ours = (*ours, *CLI_PROJECTS)
            kinds = (*ours, "bare") if kind != "sqlite" else ours
            plan = [("alembic", 1)] + [(w, c) for c in concurrencies for w in kinds]
            for who, conc in plan:
                url = reset_tenants(kind, root, f"bench_fanout_{os.getpid()}")
                if proxy and url:
                    url = url.replace("127.0.0.1:5432", "127.0.0.1:6543")
                tenants = tenants_for(kind, root, count, url)
                result = contender(root, who, tenants, conc, url)
                counts = result.get("counts", {})
                assert counts.get("ok") == count, (who, result)
                results.setdefault(f"{who} c={conc}", []).append(float(result["wall"]))
        print(f"\n{kind}: {count} tenants x 10 revisions{' via 1 ms proxy' if proxy else ''} "
              f"(whole-process wall time, median of {rounds})")
        for name, values in results.items():
            print(f"  {name:18s} {statistics.median(values):7.2f} s")
        base = statistics.median(results["alembic c=1"])
        for conc in concurrencies:
            ours = statistics.median(results[f"ours c={conc}"])
            line = f"  c={conc}: alembic/ours = {base / ours:.2f}x"
            if f"bare c={conc}" in results:
                line += f", ours/bare = {ours / statistics.median(results[f'bare c={conc}']):.2f}x"
            for cli in CLI_PROJECTS:
                if f"{cli} c={conc}" in results:
                    mine = statistics.median(results[f"{cli} c={conc}"])
                    line += f", {cli}: alembic/it = {base / mine:.2f}x"
                    if f"bare c={conc}" in results:
                        line += f", it/bare = {mine / statistics.median(results[f'bare c={conc}']):.2f}x"
            for who, label in (("ours+history", "history on/off"), ("ours+shared", "shared history on/off")):
                if f"{who} c={conc}" in results:
                    on, off = results[f"{who} c={conc}"], results[f"ours c={conc}"]
                    paired = statistics.median(a / b for a, b in zip(on, off, strict=True))
                    line += f", {label} = {paired:.3f}x (median of per-round ratios)"
            print(line)
    finally:
        if proxy_proc is not None:
            proxy_proc.terminate()
        shutil.rmtree(root, ignore_errors=True)
        if kind != "sqlite":
            drop_database(f"bench_fanout_{os.getpid()}")


def drop_database(name: str) -> None:
    import asyncpg

    async def drop() -> None:
        conn = await asyncpg.connect(SERVER.replace("postgresql+asyncpg://", "postgresql://"))
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()

    asyncio.run(drop())


def memory(count: int, concurrency: int) -> None:
    root = Path(tempfile.mkdtemp(prefix="bench-fanout-memory-"))
    make_projects(root)
    reset_tenants("sqlite", root, "")
    result = contender(root, "memory", [], concurrency, count=count)
    print(f"\nmemory: {count} SQLite tenants x 10 revisions at concurrency {concurrency}")
    print(f"  counts {result['counts']}, {result['seconds']:.1f} s")
    print(f"  peak RSS {result['peak_rss_mb']} MB")
    print("  RSS after N tenants: " + ", ".join(f"{n}: {mb} MB" for n, mb in result["rss_mb_per_1000"]))
    shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario", nargs="?", choices=["schemas", "proxy", "sqlite", "memory"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child")
    parser.add_argument("--root")
    parser.add_argument("--tenants")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--url", default="")
    parser.add_argument("--count", type=int, default=0)
    parser.add_argument("--history", action="store_true",
                        help="add a contender with the history table on")
    parser.add_argument("--cli", action="store_true",
                        help="add the command line (--tenants, --report) with the async template's "
                        "env.py and with Alembic's unchanged generic env.py as contenders")
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    print(f"# {platform.node()}: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}, "
          f"Python {platform.python_version()}, {platform.platform()}")
    if args.scenario == "schemas":
        scenario("schemas", 100, [8], args.rounds, proxy=False, with_history=args.history, with_cli=args.cli)
    elif args.scenario == "proxy":
        scenario("proxy", 50, [1, 8, 32], args.rounds, proxy=True, with_cli=args.cli)
    elif args.scenario == "sqlite":
        scenario("sqlite", 200, [8], args.rounds, proxy=False, with_history=args.history, with_cli=args.cli)
    elif args.scenario == "memory":
        memory(10_000, 64)
    else:
        parser.error("choose a scenario")


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    main()
