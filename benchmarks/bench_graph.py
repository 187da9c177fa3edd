"""Benchmark: load a 1,000-revision directory and resolve its heads, asyncmigrate beside Alembic.

Run from the repository root (Alembic must be installed, as it is with ``.[test]``)::

    python benchmarks/bench_graph.py                 # 1,000 revisions, 15 runs each
    python benchmarks/bench_graph.py --runs 31 --profile
    python benchmarks/bench_graph.py --revisions 5000 --no-cli

It generates (once, under ``benchmarks/.work/``) a script directory that looks
like a real project's: a main line with feature branches that fork and merge
back, branch labels, a few ``depends_on``, a second independent branch, and
file bodies with the imports and ``op`` calls autogenerate writes. Then, in one
run, interleaving the tools round by round so that load on the machine hits
both alike, it measures:

a. asyncmigrate in process: ``ScriptDirectory.from_config(cfg).get_heads()``
   and ``await command.heads(cfg)``, each from a fresh ``Config``;
b. Alembic in process: ``alembic.script.ScriptDirectory.from_config(cfg).get_heads()``
   (warm: bytecode cached in ``__pycache__``; plus one cold load without it);
c. both command lines end to end, ``asyncmigrate -c alembic.ini heads`` vs
   ``alembic -c alembic.ini heads`` (and ``--version`` of each, the start-up
   floor), with hyperfine when it is installed, else timed subprocess runs.

It checks that both tools find the same heads and that asyncmigrate imported
no revision module (``Script.is_loaded`` is False for all of them) and says so
in its output.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import platform
import pstats
import random
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
GENERATOR_VERSION = 1


# -- the generated project ---------------------------------------------------------------


@dataclass
class Spec:
    revision: str
    down: str | tuple[str, ...] | None
    message: str
    labels: str | None = None
    depends_on: str | None = None


def _shape(count: int, rng: random.Random) -> list[Spec]:
    """A history of ``count`` revisions: mostly linear, with forks that merge back."""
    specs: list[Spec] = []
    ids: set[str] = set()

    def new_id() -> str:
        while True:
            rev = f"{rng.getrandbits(48):012x}"
            if rev not in ids:
                ids.add(rev)
                return rev

    def add(down: str | tuple[str, ...] | None, message: str, **kw: str | None) -> str:
        rev = new_id()
        specs.append(Spec(rev, down, message, **kw))
        return rev

    side_count = max(count // 30, 2)  # an independent, labelled second branch
    audit_head = add(None, "audit log base", labels="audit")
    main_head: str | None = None
    feature = 0
    while len(specs) < count - side_count:
        if main_head is not None and rng.random() < 0.03:
            # A feature branch forks from the main line and merges back later.
            feature += 1
            fork = main_head
            side = fork
            for i in range(rng.randint(2, 6)):
                label = f"feature_{feature}" if i == 0 and feature % 3 == 0 else None
                side = add(side, f"feature {feature} step {i + 1}", labels=label)
            for _ in range(rng.randint(1, 4)):
                main_head = add(main_head, _message(rng, len(specs)))
            main_head = add((main_head, side), f"merge feature {feature}")
            continue
        depends = None
        if main_head is not None and rng.random() < 0.01:
            depends = specs[rng.randrange(len(specs))].revision
            if depends in (main_head, audit_head):
                depends = None
        main_head = add(main_head, _message(rng, len(specs)), depends_on=depends)
    while len(specs) < count:
        depends = main_head if len(specs) == count - 1 else None
        audit_head = add(audit_head, f"audit step {len(specs)}", depends_on=depends)
    return specs


_TABLES = ["accounts", "orders", "invoices", "products", "customers", "shipments", "payments",
           "events", "sessions", "tenants", "documents", "audit_entries"]


def _message(rng: random.Random, n: int) -> str:
    verb = rng.choice(["add", "create", "alter", "index", "backfill", "drop"])
    return f"{verb} {rng.choice(_TABLES)} {n}"


def _body(spec: Spec, n: int, rng: random.Random) -> tuple[str, str]:
    table = f"{rng.choice(_TABLES)}_{n}"
    kind = n % 4
    if kind == 0:
        up = (
            f"    op.create_table(\n"
            f"        {table!r},\n"
            f"        sa.Column('id', sa.Integer(), nullable=False),\n"
            f"        sa.Column('tenant_id', sa.Integer(), nullable=False),\n"
            f"        sa.Column('name', sa.String(length=200), nullable=False),\n"
            f"        sa.Column('payload', postgresql.JSONB(astext_type=sa.Text()), nullable=True),\n"
            f"        sa.Column('created_at', sa.DateTime(timezone=True),\n"
            f"                  server_default=sa.text('now()'), nullable=False),\n"
            f"        sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], ondelete='CASCADE'),\n"
            f"        sa.PrimaryKeyConstraint('id'),\n"
            f"    )\n"
            f"    op.create_index(op.f('ix_{table}_tenant_id'), {table!r}, ['tenant_id'], unique=False)\n"
        )
        down = (
            f"    op.drop_index(op.f('ix_{table}_tenant_id'), table_name={table!r})\n"
            f"    op.drop_table({table!r})\n"
        )
    elif kind == 1:
        up = (
            f"    op.add_column({table!r}, sa.Column('status', sa.String(length=20), nullable=True))\n"
            f"    op.execute(sa.text(\"UPDATE {table} SET status = 'active'\"))\n"
            f"    op.alter_column({table!r}, 'status', existing_type=sa.String(length=20), nullable=False)\n"
        )
        down = f"    op.drop_column({table!r}, 'status')\n"
    elif kind == 2:
        up = (
            f"    with op.batch_alter_table({table!r}, schema=None) as batch_op:\n"
            f"        batch_op.add_column(sa.Column('archived', sa.Boolean(), server_default=sa.false()))\n"
            f"        batch_op.create_index('ix_{table}_archived', ['archived'], unique=False)\n"
        )
        down = (
            f"    with op.batch_alter_table({table!r}, schema=None) as batch_op:\n"
            f"        batch_op.drop_index('ix_{table}_archived')\n"
            f"        batch_op.drop_column('archived')\n"
        )
    else:
        up = (
            f"    op.create_unique_constraint('uq_{table}_name', {table!r}, ['tenant_id', 'name'])\n"
            f"    op.create_foreign_key('fk_{table}_owner', {table!r}, 'accounts', ['owner_id'], ['id'])\n"
        )
        down = (
            f"    op.drop_constraint('fk_{table}_owner', {table!r}, type_='foreignkey')\n"
            f"    op.drop_constraint('uq_{table}_name', {table!r}, type_='unique')\n"
        )
    return up, down


def _source(spec: Spec, n: int, created: datetime, rng: random.Random) -> str:
    downs = spec.down if isinstance(spec.down, tuple) else (spec.down,) if spec.down else ()
    up, down = _body(spec, n, rng)
    return (
        f'"""{spec.message}\n\n'
        f"Revision ID: {spec.revision}\n"
        f"Revises: {', '.join(downs)}\n"
        f"Create Date: {created.isoformat(sep=' ')}\n\n"
        f'"""\n'
        f"from collections.abc import Sequence\n"
        f"from typing import Union\n\n"
        f"import sqlalchemy as sa\n"
        f"from sqlalchemy.dialects import postgresql\n\n"
        f"from alembic import op\n\n"
        f"# revision identifiers\n"
        f"revision: str = {spec.revision!r}\n"
        f"down_revision: Union[str, Sequence[str], None] = {spec.down!r}\n"
        f"branch_labels: Union[str, Sequence[str], None] = {spec.labels!r}\n"
        f"depends_on: Union[str, Sequence[str], None] = {spec.depends_on!r}\n\n\n"
        f"def upgrade() -> None:\n"
        f'    """Apply {spec.message}."""\n'
        f"{up}\n\n"
        f"def downgrade() -> None:\n"
        f'    """Revert {spec.message}."""\n'
        f"{down}"
    )


_ENV_PY = '''"""A minimal env.py (the benchmarked commands never run it)."""
from alembic import context
from sqlalchemy import engine_from_config, pool

config = context.config

connectable = engine_from_config(config.get_section(config.config_ini_section, {}),
                                 prefix="sqlalchemy.", poolclass=pool.NullPool)
with connectable.connect() as connection:
    context.configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()
'''

_INI = """[alembic]
script_location = %(here)s/migrations
path_separator = os
sqlalchemy.url = sqlite:///%(here)s/bench.db
"""


def generate(root: Path, count: int, seed: int) -> Path:
    """Write the project under ``root`` (reused when already there); return its ini file."""
    marker = root / "GENERATED.json"
    wanted = {"generator": GENERATOR_VERSION, "revisions": count, "seed": seed}
    if marker.exists() and json.loads(marker.read_text()) == wanted:
        return root / "alembic.ini"
    shutil.rmtree(root, ignore_errors=True)
    versions = root / "migrations" / "versions"
    versions.mkdir(parents=True)
    rng = random.Random(seed)
    created = datetime(2019, 1, 7, 9, 30)
    for n, spec in enumerate(_shape(count, rng)):
        created += timedelta(hours=rng.randint(3, 90), seconds=rng.randint(0, 3599))
        slug = spec.message.replace(" ", "_")[:40]
        (versions / f"{spec.revision}_{slug}.py").write_text(_source(spec, n, created, rng))
    (root / "migrations" / "env.py").write_text(_ENV_PY)
    (root / "migrations" / "script.py.mako").write_text('"""${message}"""\n')
    (root / "alembic.ini").write_text(_INI)
    marker.write_text(json.dumps(wanted))
    return root / "alembic.ini"


def drop_bytecode(root: Path) -> None:
    for cache in root.rglob("__pycache__"):
        shutil.rmtree(cache)


# -- measuring ------------------------------------------------------------------------------


@dataclass
class Series:
    name: str
    seconds: list[float]
    #: CPU seconds (user + system) of the same runs; less disturbed by a busy machine.
    cpu: list[float] | None = None

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    def row(self) -> str:
        s = sorted(self.seconds)
        q1, q3 = s[len(s) // 4], s[(3 * len(s)) // 4]
        cpu = f"{statistics.median(self.cpu) * 1000:.1f}" if self.cpu else "-"
        return (f"| {self.name} | {self.median * 1000:.1f} | {s[0] * 1000:.1f} | "
                f"{q1 * 1000:.1f}-{q3 * 1000:.1f} | {cpu} | {len(s)} |")


def interleaved(cases: dict[str, Callable[[], object]], runs: int, warmup: int = 1) -> list[Series]:
    """Time each case ``runs`` times, one of each per round, after ``warmup`` rounds."""
    wall: dict[str, list[float]] = {name: [] for name in cases}
    cpu: dict[str, list[float]] = {name: [] for name in cases}
    for round_ in range(warmup + runs):
        for name, fn in cases.items():
            started, started_cpu = time.perf_counter(), time.process_time()
            fn()
            elapsed, elapsed_cpu = time.perf_counter() - started, time.process_time() - started_cpu
            if round_ >= warmup:
                wall[name].append(elapsed)
                cpu[name].append(elapsed_cpu)
    return [Series(name, wall[name], cpu[name]) for name in cases]


# Each worker case runs in a fresh interpreter, as a command-line run does: the
# tool itself is imported first (not timed), then one load is timed. Nothing
# is cached yet -- not asyncmigrate's headers, not Alembic's revision modules
# (their bytecode in __pycache__ is, as after any earlier run).
WORKER_CASES = {
    "asyncmigrate-load": "asyncmigrate `ScriptDirectory.from_config(cfg).get_heads()`",
    "asyncmigrate-command": "asyncmigrate `await command.heads(cfg)`",
    "alembic-load": "Alembic `ScriptDirectory.from_config(cfg).get_heads()`",
}


def worker(case: str, ini: Path, profile_top: int = 0) -> None:
    """Time one first load in this (fresh) process and print the result as JSON."""
    import anyio

    if case.startswith("asyncmigrate"):
        from asyncmigrate import Config, command
        from asyncmigrate.script import ScriptDirectory
    else:
        from alembic.config import Config as AlembicConfig
        from alembic.script import ScriptDirectory as AlembicScriptDirectory

    def run() -> tuple[list[str], Callable[[], int | None]]:
        """Do the timed work; return the heads and how to count imported modules afterwards."""
        if case == "asyncmigrate-load":
            script = ScriptDirectory.from_config(Config(str(ini)))
            heads = script.get_heads()

            def count() -> int:
                every = script.get_revisions([r.revision for r in script.graph])
                return sum(1 for s in every if s.is_loaded)

            return heads, count
        if case == "asyncmigrate-command":
            scripts = anyio.run(command.heads, Config(str(ini)))
            return [s.revision for s in scripts], lambda: sum(1 for s in scripts if s.is_loaded)
        heads = list(AlembicScriptDirectory.from_config(AlembicConfig(str(ini))).get_heads())
        return heads, lambda: None

    profiler = cProfile.Profile() if profile_top else None
    started, started_cpu = time.perf_counter(), time.process_time()
    if profiler is not None:
        profiler.enable()
    heads, count = run()
    if profiler is not None:
        profiler.disable()
    elapsed, cpu = time.perf_counter() - started, time.process_time() - started_cpu
    loaded = count()  # outside the timed region
    result: dict[str, object] = {"seconds": elapsed, "cpu": cpu, "heads": sorted(heads), "loaded": loaded}
    if profiler is not None:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).strip_dirs().sort_stats("tottime").print_stats(profile_top)
        result["profile"] = out.getvalue()
    print(json.dumps(result))


def _spawn(case: str, ini: Path, profile_top: int = 0) -> dict[str, object]:
    argv = [sys.executable, str(Path(__file__).resolve()), "--worker", case, "--ini", str(ini)]
    if profile_top:
        argv += ["--profile-top", str(profile_top)]
    done = subprocess.run(argv, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def first_loads(ini: Path, runs: int) -> tuple[list[Series], list[str]]:
    """The figure a command line pays: one load in a fresh process, per tool, ``runs`` times."""
    times: dict[str, list[float]] = {case: [] for case in WORKER_CASES}
    cpu: dict[str, list[float]] = {case: [] for case in WORKER_CASES}
    heads: set[tuple[str, ...]] = set()
    loaded: list[int] = []
    for round_ in range(runs + 1):
        for case in WORKER_CASES:
            result = _spawn(case, ini)
            if round_:  # the first round warms the OS file cache and writes Alembic's bytecode
                times[case].append(float(result["seconds"]))  # type: ignore[arg-type]
                cpu[case].append(float(result["cpu"]))  # type: ignore[arg-type]
            heads.add(tuple(result["heads"]))  # type: ignore[arg-type]
            if result["loaded"] is not None:
                loaded.append(int(result["loaded"]))  # type: ignore[call-overload]
    assert len(heads) == 1, f"the tools disagree on the heads: {heads}"
    assert not any(loaded), "asyncmigrate imported revision modules"
    notes = [
        f"heads (both tools agree): {', '.join(next(iter(heads)))}",
        f"asyncmigrate imported 0 revision modules in {len(loaded)} loads "
        f"(`Script.is_loaded` False for all {_count(ini)} scripts each time)",
    ]
    # Alembic's very first run: no __pycache__, so each file is compiled, then imported.
    drop_bytecode(ini.parent)
    cold = _spawn("alembic-load", ini)
    series = [Series(name, times[case], cpu[case]) for case, name in WORKER_CASES.items()]
    series.append(Series("Alembic, first run ever (no `__pycache__`)", [float(cold["seconds"])],  # type: ignore[arg-type]
                         [float(cold["cpu"])]))  # type: ignore[arg-type]
    return series, notes


def _count(ini: Path) -> int:
    return len(list((ini.parent / "migrations" / "versions").glob("*.py")))


def repeated_loads(ini: Path, runs: int) -> list[Series]:
    """Loads repeated in one long-lived process (an app calling the API again and again)."""
    from alembic.config import Config as AlembicConfig
    from alembic.script import ScriptDirectory as AlembicScriptDirectory

    from asyncmigrate import Config
    from asyncmigrate.script import ScriptDirectory

    def ours() -> None:
        script = ScriptDirectory.from_config(Config(str(ini)))
        script.get_heads()
        assert not any(s.is_loaded for s in script.get_revisions([r.revision for r in script.graph]))

    def theirs() -> None:
        AlembicScriptDirectory.from_config(AlembicConfig(str(ini))).get_heads()

    return interleaved(
        {
            "asyncmigrate `ScriptDirectory.from_config(cfg).get_heads()`, again": ours,
            "Alembic `ScriptDirectory.from_config(cfg).get_heads()`, again": theirs,
        },
        runs,
    )


def cli(ini: Path, runs: int) -> tuple[list[Series], list[str]]:
    bin_dir = Path(sys.executable).parent
    commands = {
        "`asyncmigrate -c alembic.ini heads`": [str(bin_dir / "asyncmigrate"), "-c", ini.name, "heads"],
        "`alembic -c alembic.ini heads`": [str(bin_dir / "alembic"), "-c", ini.name, "heads"],
        "`asyncmigrate --version` (start-up floor)": [str(bin_dir / "asyncmigrate"), "--version"],
        "`alembic --version` (start-up floor)": [str(bin_dir / "alembic"), "--version"],
    }
    first = [subprocess.run(argv, cwd=ini.parent, capture_output=True, text=True, check=True).stdout
             for argv in list(commands.values())[:2]]
    ids = [sorted(line.split()[0] for line in out.splitlines()) for out in first]
    assert ids[0] == ids[1], first
    hyperfine = shutil.which("hyperfine")
    if hyperfine:
        export = ini.parent / "hyperfine.json"
        argv = [hyperfine, "--warmup", "2", "--runs", str(runs), "--export-json", str(export),
                "--style", "none"]
        for name, command in commands.items():
            argv += ["-n", name, " ".join(command)]
        subprocess.run(argv, cwd=ini.parent, check=True, capture_output=True)
        data = json.loads(export.read_text())
        # hyperfine keeps per-run wall times but only the mean CPU time.
        series = [Series(r["command"], r["times"], [r["user"] + r["system"]]) for r in data["results"]]
        version = subprocess.run([hyperfine, "--version"], capture_output=True, text=True).stdout.strip()
        return series, [f"timed with {version} (--warmup 2 --runs {runs}; shell spawn time subtracted; "
                        f"CPU is hyperfine's mean user + system time)"]

    def runner(argv: list[str]) -> Callable[[], object]:
        return lambda: subprocess.run(argv, cwd=ini.parent, capture_output=True, check=True)

    series = interleaved({name: runner(argv) for name, argv in commands.items()}, runs, warmup=2)
    for item in series:
        item.cpu = None  # process_time() here would be this process's, not the child's
    return series, ["timed with subprocess.run (hyperfine not installed)"]


def machine() -> list[str]:
    def version(name: str) -> str:
        from importlib.metadata import version as v

        return v(name)

    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        cpu = platform.processor() or "?"
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=HERE, capture_output=True, text=True, check=False)
        return done.stdout.strip()

    changed = git("status", "--porcelain", "--", "asyncmigrate")
    dirty = " + uncommitted changes in asyncmigrate/" if changed else ""
    return [
        f"asyncmigrate source: commit {git('rev-parse', '--short', 'HEAD') or '?'}{dirty}",
        f"CPU: {cpu}, {os.cpu_count()} logical cores; load average at start: {load}",
        f"OS: {platform.platform()}",
        f"Python {platform.python_version()} ({platform.python_implementation()})",
        f"asyncmigrate {version('asyncmigrate')}, alembic {version('alembic')}, "
        f"SQLAlchemy {version('sqlalchemy')}",
    ]


def _table(title: str, series: list[Series], notes: list[str]) -> None:
    print(f"\n## {title} (ms)\n")
    print("| case | median | min | IQR | CPU | runs |\n|---|---|---|---|---|---|")
    for item in series:
        print(item.row())
    for note in notes:
        print(f"- {note}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--revisions", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=15, help="timed runs per case (median reported)")
    parser.add_argument("--seed", type=int, default=20240501)
    parser.add_argument("--workdir", type=Path, default=HERE / ".work")
    parser.add_argument("--no-cli", action="store_true", help="skip the end-to-end command lines")
    parser.add_argument("--profile", action="store_true",
                        help="profile one first load of each asyncmigrate case")
    parser.add_argument("--worker", choices=sorted(WORKER_CASES), help=argparse.SUPPRESS)
    parser.add_argument("--ini", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--profile-top", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.ini, args.profile_top)
        return

    ini = generate(args.workdir / f"graph-{args.revisions}", args.revisions, args.seed)
    os.chdir(ini.parent)
    print(f"# bench_graph: {args.revisions} revisions in {ini.parent / 'migrations' / 'versions'}")
    for line in machine():
        print(f"- {line}")
    series, notes = first_loads(ini, args.runs)
    _table("first load in a fresh process", series, notes)
    _table("repeated loads in one process", repeated_loads(ini, args.runs), [])
    if not args.no_cli:
        series, notes = cli(ini, args.runs)
        _table("command line, end to end", series, notes)
    if args.profile:
        # command.heads reads the directory in a worker thread, out of cProfile's sight;
        # the load it runs there is the one profiled here.
        result = _spawn("asyncmigrate-load", ini, profile_top=25)
        print("\n## profile: asyncmigrate's first load in a fresh process, top 25 by own time\n")
        print(result["profile"])


if __name__ == "__main__":
    main()
