"""asyncmigrate and Alembic, given the same files and targets, leave the same database.

Each scenario runs a sequence of commands twice -- Alembic (sync drivers, its
own ``generic`` env.py) on one database and asyncmigrate on a twin -- and
compares the version rows and the tables after every command, including
which commands fail.
"""

from __future__ import annotations

import random
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import anyio
import pytest
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.pool import NullPool

from asyncmigrate import Config, command
from asyncmigrate.exceptions import AsyncMigrateError

from .. import backends
from ..project import PER_MIGRATION_ENV, Rev, make_project, write_revisions


def table_rev(rev: str, down: str | tuple[str, ...] | None, **kw: object) -> Rev:
    """A revision that creates (and drops) a table named after itself."""
    return Rev(
        rev, down,
        f"op.execute('CREATE TABLE tbl_{rev} (id INTEGER)')",
        f"op.execute('DROP TABLE tbl_{rev}')",
        **kw,  # type: ignore[arg-type]
    )


LINEAR = [table_rev(f"lin{i}", f"lin{i - 1}" if i else None) for i in range(6)]

BRANCHED = [
    table_rev("root1", None),
    table_rev("aa11", "root1", branch_labels="alpha"),
    table_rev("aa22", "aa11"),
    table_rev("bb11", "root1", branch_labels="beta"),
    table_rev("bb22", "bb11"),
    table_rev("mm11", ("aa22", "bb22")),
    table_rev("mm22", "mm11"),
    table_rev("oo11", None, branch_labels="other"),
    table_rev("oo22", "oo11"),
    table_rev("dd11", "mm22", depends_on="oo22"),
    table_rev("cc11", "bb11", branch_labels="gamma"),
]

FAILING = [
    table_rev("ok1", None),
    table_rev("ok2", "ok1"),
    Rev("bad3", "ok2", "op.execute('CREATE TABLE tbl_bad3 (id INTEGER)')\nop.execute('SELECT * FROM missing')"),
    table_rev("ok4", "bad3"),
]

SCENARIOS = {
    "failing": (FAILING, [
        ("upgrade", "head"), ("upgrade", "ok2"), ("upgrade", "head"), ("stamp", "bad3"),
        ("upgrade", "head"), ("downgrade", "ok1"), ("downgrade", "base"),
    ]),
    "linear": (LINEAR, [
        ("upgrade", "+1"), ("upgrade", "+2"), ("downgrade", "-1"), ("upgrade", "head"),
        ("downgrade", "lin2"), ("upgrade", "lin4"), ("stamp", "lin1"), ("upgrade", "lin1+1"),
        ("downgrade", "base"), ("stamp", "head"), ("downgrade", "lin3"), ("stamp", "base"),
        ("upgrade", "lin9"), ("downgrade", "-1"), ("upgrade", "heads"), ("downgrade", "-10"),
    ]),
    "branched": (BRANCHED, [
        ("upgrade", "alpha@head"), ("upgrade", "beta@+1"), ("upgrade", "gamma@head"),
        ("upgrade", "mm11"), ("downgrade", "beta@-1"), ("upgrade", "heads"),
        ("downgrade", "mm11"), ("downgrade", "gamma@base"), ("upgrade", "other@head"),
        ("stamp", "dd11"), ("downgrade", "oo11"), ("upgrade", "heads"), ("downgrade", "root1"),
        ("stamp", "heads"), ("downgrade", "base"), ("upgrade", "head"),
        ("upgrade", "dd11"), ("downgrade", "alpha@base"), ("upgrade", "heads"),
    ]),
}

TARGETS = [
    "head", "heads", "base", "+1", "+2", "-1", "-2", "alpha@head", "beta@head", "gamma@head",
    "other@head", "alpha@-1", "beta@+1", "root1", "aa22", "mm11", "mm22", "dd11", "oo22", "cc11",
    "bb11", "aa11+1", "mm11-1", "alpha@base",
]


def alembic_project(root: Path, versions: Path, url: str) -> Path:
    root.mkdir(parents=True)
    subprocess.run(
        [sys.executable, "-m", "alembic", "init", "-t", "generic", "migrations"],
        cwd=root, check=True, capture_output=True,
    )
    ini = root / "alembic.ini"
    text_ = ini.read_text().replace("driver://user:pass@localhost/dbname", url.replace("%", "%%"))
    text_ = text_.replace("[alembic]", f"[alembic]\nversion_locations = {versions}", 1)
    ini.write_text(text_)
    return ini


def snapshot(url: str) -> tuple[set[str], set[str]]:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            names = set(inspect(conn).get_table_names())
            rows: set[str] = set()
            if "alembic_version" in names:
                rows = {r[0] for r in conn.execute(text("SELECT version_num FROM alembic_version"))}
            return names - {"alembic_version"}, rows
    finally:
        engine.dispose()


@contextmanager
def twin_databases(backend: str, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Yield sync URLs of two fresh, empty databases."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'alembic.db'}", f"sqlite:///{tmp_path / 'asyncmigrate.db'}"
        return
    backends.require("postgresql")
    names = (backends.scratch_name("diffa"), backends.scratch_name("diffb"))
    admin = backends.server_url("postgresql").set(drivername="postgresql+psycopg2")
    engine = create_engine(admin, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with engine.connect() as conn:
        for name in names:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield tuple(admin.set(database=n).render_as_string(hide_password=False) for n in names)  # type: ignore[misc]
    finally:
        with engine.connect() as conn:
            for name in names:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()


def run_alembic(ini: Path, verb: str, target: str) -> str | None:
    from alembic import command as alembic_command
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig(str(ini))
    try:
        getattr(alembic_command, verb)(cfg, target)
    except Exception as exc:  # noqa: BLE001 - any failure is an outcome to compare
        return f"{type(exc).__name__}: {exc}"
    return None


async def run_ours(config: Config, verb: str, target: str, url: str) -> str | None:
    try:
        await getattr(command, verb)(config, target, url=url)
    except AsyncMigrateError as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


async def replay(
    tmp_path: Path,
    backend: str,
    revisions: list[Rev],
    steps: list[tuple[str, str]],
    per_migration: bool = False,
) -> None:
    versions = tmp_path / "versions"
    write_revisions(versions, revisions)
    with twin_databases(backend, tmp_path) as (alembic_url, our_url):
        ini = alembic_project(tmp_path / "alembic_side", versions, alembic_url)
        if per_migration:  # both sides commit each migration on its own
            env = ini.parent / "migrations" / "env.py"
            env.write_text(env.read_text().replace(
                "target_metadata=target_metadata", "target_metadata=target_metadata, "
                "transaction_per_migration=True",
            ))
        # Alembic's SQLite DDL is not transactional: each migration commits on its own,
        # so after a failure mid-run its database keeps the migrations before it.
        # asyncmigrate makes a SQLite run atomic by default; for a like-for-like
        # comparison its side commits per migration here.
        env_py = PER_MIGRATION_ENV if backend == "sqlite" or per_migration else None
        config = make_project(
            tmp_path / "our_side", [], ini_extra=f"version_locations = {versions}", env_py=env_py
        )
        for verb, target in steps:
            theirs = await anyio.to_thread.run_sync(run_alembic, ini, verb, target)
            ours = await run_ours(config, verb, target, our_url)
            where = f"{verb} {target}"
            assert (theirs is None) == (ours is None), f"{where}: alembic={theirs!r} ours={ours!r}"
            assert snapshot(alembic_url) == snapshot(our_url), where


# Not "failing" on SQLite: there Alembic's DDL is not transactional, so a failed
# migration's tables stay, where asyncmigrate rolls the migration back.
@pytest.mark.parametrize(
    ("scenario", "backend"),
    [(s, b) for s in sorted(SCENARIOS) for b in ("sqlite", "postgresql") if (s, b) != ("failing", "sqlite")],
)
async def test_scenarios_match_alembic(tmp_path: Path, backend: str, scenario: str) -> None:
    revisions, steps = SCENARIOS[scenario]
    await replay(tmp_path, backend, revisions, steps)


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
async def test_scenarios_match_alembic_with_a_transaction_per_migration(
    tmp_path: Path, scenario: str
) -> None:
    # On PostgreSQL each step is then one batch with its BEGIN and COMMIT.
    revisions, steps = SCENARIOS[scenario]
    await replay(tmp_path, "postgresql", revisions, steps, per_migration=True)


@pytest.mark.parametrize("seed", range(4))
async def test_random_walks_match_alembic(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    steps = [(rng.choice(["upgrade", "upgrade", "downgrade", "stamp"]), rng.choice(TARGETS)) for _ in range(25)]
    await replay(tmp_path, "sqlite", BRANCHED, steps)
