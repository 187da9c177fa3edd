"""The built-in checks a project turns on with one pytest option.

=================  =================================================================
``single_head``    the history has exactly one head (no unmerged branches)
``upgrade``        a fresh database upgrades from base to the target
``stairway``       every revision goes up, down and up again, one at a time
``downgrade_clean``  every downgrade undoes its upgrade exactly (tables, columns,
                   indexes, constraints, views, sequences, enum types), and base is
                   empty again after a full round trip
``models``         the models in env.py's ``target_metadata`` match the migrated
                   schema (``command.check``; needs autogenerate)
=================  =================================================================

Each check runs on its own fresh database from a :class:`DatabaseFactory`.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from sqlalchemy import inspect
from sqlalchemy.engine import URL, Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from ... import command
from ...config import Config
from ...exceptions import AsyncMigrateError, NotAtHeadError
from ...script import Script, ScriptDirectory
from .databases import DatabaseFactory, TemporaryDatabase

__all__ = ["CHECKS", "CheckFailed", "run_check", "schema_snapshot"]

#: The checks, in the order they run.
CHECKS = ("single_head", "upgrade", "stairway", "downgrade_clean", "models")


class CheckFailed(AsyncMigrateError, AssertionError):
    """A built-in check found a problem in the migration history."""


async def _script(config: Config) -> ScriptDirectory:
    def load() -> ScriptDirectory:
        script = ScriptDirectory.from_config(config)
        script.graph  # noqa: B018 - read the headers here, in the worker thread
        return script

    return await anyio.to_thread.run_sync(load)


def _ordered(script: ScriptDirectory) -> list[Script]:
    return list(reversed(list(script.walk_revisions())))


def _down_target(script: Script) -> str:
    """Return the downgrade target that undoes exactly ``script``."""
    down = script.down_revision
    if isinstance(down, (tuple, list)) and len(down) > 1:
        return str(down[0])  # a merge: unmerge back to one of its parents
    return f"{script.revision}@-1"


# -- schema snapshots -----------------------------------------------------------------------


def schema_snapshot(connection: Connection, exclude: frozenset[str] = frozenset()) -> dict[str, Any]:
    """Reflect the default schema into comparable data (tables, indexes, constraints, types).

    :param exclude: table names to leave out (the version table).
    """
    inspector = inspect(connection)
    tables = sorted(t for t in inspector.get_table_names() if t not in exclude)
    snapshot: dict[str, Any] = {}
    if tables:
        columns = inspector.get_multi_columns(filter_names=tables)
        pks: dict[Any, Any] = dict(inspector.get_multi_pk_constraint(filter_names=tables))
        fks = inspector.get_multi_foreign_keys(filter_names=tables)
        indexes = inspector.get_multi_indexes(filter_names=tables)
        uniques = inspector.get_multi_unique_constraints(filter_names=tables)
        try:
            checks: dict[Any, Any] = inspector.get_multi_check_constraints(filter_names=tables)
        except NotImplementedError:
            checks = {}
        for key in sorted(columns, key=lambda k: (k[0] or "", k[1])):
            name = key[1]
            snapshot[f"table {name}"] = {
                "columns": [
                    (c["name"], str(c["type"]), c["nullable"], str(c.get("default")))
                    for c in columns[key]
                ],
                "primary key": tuple(pks.get(key, {}).get("constrained_columns") or ()),
                "foreign keys": sorted(
                    (
                        str(fk.get("name")),
                        tuple(fk["constrained_columns"]),
                        fk["referred_table"],
                        tuple(fk["referred_columns"]),
                    )
                    for fk in fks.get(key, [])
                ),
                "indexes": sorted(
                    (str(ix["name"]), tuple(str(c) for c in ix["column_names"]), bool(ix["unique"]))
                    for ix in indexes.get(key, [])
                ),
                "unique constraints": sorted(
                    (str(u.get("name")), tuple(u["column_names"])) for u in uniques.get(key, [])
                ),
                "check constraints": sorted(
                    (str(c.get("name")), str(c.get("sqltext"))) for c in checks.get(key, [])
                ),
            }
    for view in sorted(inspector.get_view_names()):
        snapshot[f"view {view}"] = True
    try:
        for sequence in sorted(inspector.get_sequence_names()):
            snapshot[f"sequence {sequence}"] = True
    except NotImplementedError:
        pass
    get_enums = getattr(inspector, "get_enums", None)
    if get_enums is not None:
        for enum in get_enums():
            snapshot[f"enum type {enum['name']}"] = tuple(enum["labels"])
    return snapshot


def describe_difference(before: dict[str, Any], after: dict[str, Any]) -> str:
    """Say in words how ``after`` differs from ``before``."""
    lines = []
    for name in sorted(set(before) | set(after)):
        if name not in before:
            lines.append(f"left behind: {name}")
        elif name not in after:
            lines.append(f"missing: {name}")
        elif before[name] != after[name]:
            for part in sorted(set(before[name]) | set(after[name])) if isinstance(
                before[name], dict
            ) else ["definition"]:
                old = before[name].get(part) if isinstance(before[name], dict) else before[name]
                new = after[name].get(part) if isinstance(after[name], dict) else after[name]
                if old != new:
                    lines.append(f"changed: {name} {part}: {old!r} -> {new!r}")
    return "; ".join(lines)


async def _snapshot(engine: AsyncEngine, exclude: frozenset[str]) -> dict[str, Any]:
    async with engine.connect() as connection:
        return await connection.run_sync(schema_snapshot, exclude)


# -- the checks -------------------------------------------------------------------------------


async def check_single_head(config: Config) -> None:
    """Fail when the history has more than one head."""
    script = await _script(config)
    heads = script.get_heads()
    if len(heads) > 1:
        raise CheckFailed(
            f"The history has {len(heads)} heads ({', '.join(sorted(heads))}); merge them with "
            f"`asyncmigrate merge heads -m 'merge'`"
        )


async def check_upgrade(database: TemporaryDatabase, target: str) -> None:
    """Fail unless an empty database upgrades to ``target`` and then has nothing left to do."""
    try:
        await command.upgrade(database.config, target, url=database.url)
    except AsyncMigrateError as exc:
        raise CheckFailed(f"Upgrading an empty database to {target} failed: {exc}") from exc
    again = await command.upgrade(database.config, target, url=database.url)
    if again.changed:
        raise CheckFailed(f"A second upgrade to {target} still applied {len(again.steps)} step(s)")


async def check_stairway_fast(database: TemporaryDatabase) -> None:
    """Take every revision up, down and up again in one env.py run over one connection.

    The steps are exactly those separate ``upgrade``/``downgrade`` commands
    would run (same revision code, same version-table moves), planned as one
    list, so the check costs little more than the migrations themselves.
    """
    from ...command import _run  # the command runner with a plan of our own
    from ...revision.plan import MigrationStep, RevisionStep

    config = database.config
    script = await _script(config)
    graph = script.graph
    ordered = _ordered(script)

    def plan(heads: tuple[str, ...], ctx: Any) -> list[MigrationStep]:
        if heads:
            raise CheckFailed(f"The stairway needs an empty database; it is at {', '.join(heads)}")
        steps: list[MigrationStep] = []
        for rev in ordered:
            steps += [RevisionStep(graph, rev, True), RevisionStep(graph, rev, False),
                      RevisionStep(graph, rev, True)]
        return steps

    try:
        await _run(config, script, plan, url=database.url, lock=False)
    except CheckFailed:
        raise
    except AsyncMigrateError as exc:
        raise CheckFailed(f"Stairway: {exc}") from exc


async def check_stairway(database: TemporaryDatabase, *, compare_schema: bool = False) -> None:
    """Take every revision up, down and up again, one at a time.

    :param compare_schema: also require each downgrade to leave the schema
        exactly as it was before the upgrade, and base to be empty again
        after a full upgrade and downgrade (the ``downgrade_clean`` check).
    """
    config = database.config
    script = await _script(config)
    version_table = str(config.get_alembic_option("version_table", "alembic_version"))
    exclude = frozenset({version_table})
    engine = database.engine(poolclass=None)  # pooled: one connection serves every step
    opts: dict[str, Any] = {"engine": engine, "script": script}
    try:
        start = await _snapshot(engine, exclude) if compare_schema else {}
        before = start
        for rev in _ordered(script):
            where = f"revision {rev.revision}" + (f" ({rev.doc})" if rev.doc else "")
            try:
                await command.upgrade(config, rev.revision, **opts)
                await command.downgrade(config, _down_target(rev), **opts)
            except AsyncMigrateError as exc:
                raise CheckFailed(f"Stairway at {where}: {exc}") from exc
            if compare_schema:
                after = await _snapshot(engine, exclude)
                if after != before:
                    raise CheckFailed(
                        f"Downgrading {where} does not undo its upgrade: "
                        f"{describe_difference(before, after)}"
                    )
            try:
                await command.upgrade(config, rev.revision, **opts)
            except AsyncMigrateError as exc:
                raise CheckFailed(f"Upgrading {where} again after its downgrade: {exc}") from exc
            if compare_schema:
                before = await _snapshot(engine, exclude)
        if compare_schema:
            await command.downgrade(config, "base", **opts)
            after = await _snapshot(engine, exclude)
            if after != start:
                raise CheckFailed(
                    f"Downgrading to base leaves traces: {describe_difference(start, after)}"
                )
            state = await command.current(config, **opts)
            if state.heads:
                raise CheckFailed(f"Downgrading to base left version rows: {', '.join(state.heads)}")
    finally:
        await engine.dispose()


def models_available() -> bool:
    """True when this build of asyncmigrate has autogenerate (needed by ``models``)."""
    return importlib.util.find_spec("asyncmigrate.autogenerate") is not None


async def check_models(database: TemporaryDatabase) -> None:
    """Fail when env.py's ``target_metadata`` differs from the migrated schema."""
    try:
        await command.check(database.config, url=database.url)
    except NotAtHeadError as exc:
        raise CheckFailed(f"Models and migrations differ: {exc}") from exc


async def run_check(
    name: str,
    factory: DatabaseFactory,
    config: Config,
    base_url: str | URL,
    target: str = "heads",
) -> str | None:
    """Run the built-in check ``name`` on fresh databases from ``factory``.

    :return: None when it passed, or why it does not apply (the caller skips).
    :raises CheckFailed: when it found a problem.
    """
    if name == "single_head":
        await check_single_head(config)
        return None
    if name == "models" and not models_available():
        return "autogenerate is not available in this build of asyncmigrate"
    runs: dict[str, Callable[[TemporaryDatabase], Awaitable[None]]] = {
        "upgrade": lambda db: check_upgrade(db, target),
        "stairway": check_stairway_fast,
        "downgrade_clean": lambda db: check_stairway(db, compare_schema=True),
        "models": check_models,
    }
    if name not in runs:
        raise CheckFailed(f"No built-in check named {name!r}; the checks are {', '.join(CHECKS)}")
    template = await factory.template(config, base_url, target if name == "models" else None)
    database = await factory.create(template, config)
    try:
        await runs[name](database)
    finally:
        with anyio.CancelScope(shield=True):
            await factory.discard(database)
    return None
