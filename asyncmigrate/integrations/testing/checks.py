"""The built-in checks a project turns on with one pytest option, and where checks are registered.

=======================  ==========================================================
``single_head``          the history has exactly one head
``branches``             no unmerged branches beyond the allowed ones
                         (``allowed_heads``: branch labels or revisions)
``upgrade``              a fresh database upgrades from base to the target
``stairway``             every revision goes up, down and up again (down only above
                         ``minimum_downgrade_revision`` and any ``NotImplementedError``)
``downgrade_clean``      every downgrade undoes its upgrade exactly (tables, columns,
                         indexes, constraints, views, sequences, enum types, schemas)
``models``               env.py's ``target_metadata`` matches the migrated schema
                         (skipped when env.py has no ``target_metadata``)
``all_models_register``  every model module under the models' packages registers its
                         tables on the metadata env.py compares with
``offline_sql``          every revision renders as offline SQL, up and down
``lint``                 no revision has a lint error for the test database's dialect
                         (:mod:`asyncmigrate.lint`, each revision judged on its own)
=======================  ==========================================================

Each check that needs a database gets its own fresh one from a
:class:`DatabaseFactory`, set up by the options' ``setup`` hook; the
options' data at revisions is inserted as the checks migrate.

**Adding a check** (for example ``lint``): write ``async def check_x(run:
CheckRun) -> None`` that raises :class:`CheckFailed` on a problem (or
calls ``run.skip(reason)`` / ``run.warn(message)``), and add one
``Check(...)`` line to :data:`REGISTRY` at the bottom of this module. The
plugin makes a test item for every registered check.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

from ... import command
from ...config import Config
from ...exceptions import AsyncMigrateError, MigrationError, NoTargetMetadataError, NotAtHeadError
from ...script import ScriptDirectory
from .databases import DatabaseFactory, TemporaryDatabase
from .history import BASE, LinearHistory, load_script, undo_target
from .models import env_metadata, models_register
from .options import MigrationTestOptions
from .runner import MigrationRunner
from .schema import describe_difference, schema_snapshot

__all__ = [
    "CHECKS",
    "REGISTRY",
    "Check",
    "CheckFailed",
    "CheckOutcome",
    "CheckRun",
    "CheckSkipped",
    "MigrationCheckWarning",
    "run_check",
    "stairway_in_one_run",
]


class CheckFailed(AsyncMigrateError, AssertionError):
    """A built-in check found a problem in the migration history."""


class MigrationCheckWarning(UserWarning):
    """A built-in check passed but has something to say (a downgrade raised ``NotImplementedError``)."""


class CheckSkipped(AsyncMigrateError):
    """A built-in check does not apply to this project (the message says why)."""


@dataclass(frozen=True)
class CheckOutcome:
    """How a check ended without failing: skipped (with the reason) or passed, and its warnings."""

    skipped: str | None = None
    warnings: tuple[str, ...] = ()


@dataclass
class CheckRun:
    """What one run of one check is given, and what it reports besides failing.

    It owns the run's inputs (config, server, target, options), its fresh
    database when the check needs one, and the warnings it collected.
    """

    config: Config
    base_url: URL
    target: str
    options: MigrationTestOptions
    factory: DatabaseFactory
    database: TemporaryDatabase | None = None
    warnings: list[str] = field(default_factory=list)
    databases: list[TemporaryDatabase] = field(default_factory=list, repr=False)
    """Every database made for this run (dropped when the check ends)."""

    def warn(self, message: str) -> None:
        """Report ``message`` as a warning of this check (the check still passes)."""
        self.warnings.append(message)

    def skip(self, reason: str) -> None:
        """End the check as skipped, with ``reason``."""
        raise CheckSkipped(reason)

    @property
    def db(self) -> TemporaryDatabase:
        """The check's fresh database."""
        assert self.database is not None, "this check was registered without a database"
        return self.database

    async def fresh(self) -> TemporaryDatabase:
        """Return another fresh, set-up database (dropped when the check ends)."""
        template = await self.factory.template(self.config, self.base_url, None, self.options)
        database = await self.factory.create(template, self.config)
        self.databases.append(database)
        return database


#: What database a check needs: none, a set-up empty one, or one at the target.
Needs = Literal["nothing", "empty", "target"]


@dataclass(frozen=True)
class Check:
    """One built-in check: its name, what makes it fail (one line), what it needs, how it runs."""

    name: str
    fails_when: str
    run: Callable[[CheckRun], Awaitable[None]]
    needs: Needs = "empty"


async def _script(config: Config) -> ScriptDirectory:
    return await load_script(config)


def _describe(script: Any) -> str:
    return f"revision {script.revision}" + (f" ({script.doc})" if getattr(script, "doc", None) else "")


def _not_implemented(exc: BaseException) -> bool:
    """True when ``exc`` (or what caused it) is a ``NotImplementedError`` raised by a migration."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, NotImplementedError):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return isinstance(exc, MigrationError) and "NotImplementedError" in str(exc)


def _downgrade_floor(run: CheckRun, history: LinearHistory) -> int:
    """Return the lowest position downgrades may undo (0: every revision).

    ``minimum_downgrade_revision`` M: the database is never taken down to M
    or below, so the lowest revision undone is the one after M.
    """
    minimum = run.options.minimum_downgrade_revision
    if minimum is None:
        return 0
    return history.position(minimum) + 2


def _barrier(run: CheckRun, revision: str, exc: BaseException) -> None:
    """Apply the ``NotImplementedError`` policy to a downgrade that raised it (or fail)."""
    policy = run.options.not_implemented_downgrade
    if policy == "fail" or not _not_implemented(exc):
        raise CheckFailed(f"Downgrading revision {revision} failed: {exc}") from exc
    if policy == "warn":
        run.warn(
            f"The downgrade of {revision} raised NotImplementedError; downgrades stop above it. "
            f"If that is intended, set minimum_downgrade_revision = {revision} to say so."
        )


# -- history shape --------------------------------------------------------------------------------


async def check_single_head(run: CheckRun) -> None:
    """Fail when the history has more than one head."""
    script = await _script(run.config)
    heads = script.get_heads()
    if len(heads) > 1:
        raise CheckFailed(
            f"The history has {len(heads)} heads ({', '.join(sorted(heads))}); merge them with "
            f"`asyncmigrate merge heads -m 'merge'`"
        )


async def check_branches(run: CheckRun) -> None:
    """Fail when heads stay unmerged beyond the allowed branches (one head each, plus one other)."""
    script = await _script(run.config)
    allowed = run.options.allowed_heads
    by_branch: dict[str, list[str]] = {}
    for head in sorted(script.get_heads()):
        rev = script.get_revision(head)
        labels = sorted(set(getattr(rev, "branch_labels", ()) or ()) & allowed)
        branch = head if head in allowed else (labels[0] if labels else "")
        by_branch.setdefault(branch, []).append(head)
    problems = []
    for branch, heads in sorted(by_branch.items()):
        if len(heads) > 1:
            where = f"on branch {branch!r}" if branch else "outside the allowed branches"
            problems.append(f"{len(heads)} unmerged heads {where} ({', '.join(heads)})")
    if problems:
        allowed_text = ", ".join(sorted(allowed)) or "none"
        raise CheckFailed(f"{'; '.join(problems)}; allowed branches: {allowed_text}")


# -- running the history -------------------------------------------------------------------------


async def check_upgrade(run: CheckRun) -> None:
    """Fail unless an empty database upgrades to the target and then has nothing left to do."""
    database = run.db
    options = run.options
    try:
        if options.seeds or options.skip_revisions:
            await MigrationRunner(database, options).migrate_up_to(run.target)
        else:
            await command.upgrade(database.config, run.target, url=database.url)
    except AsyncMigrateError as exc:
        raise CheckFailed(f"Upgrading an empty database to {run.target} failed: {exc}") from exc
    again = await command.upgrade(database.config, run.target, url=database.url)
    if again.changed:
        raise CheckFailed(f"A second upgrade to {run.target} still applied {len(again.steps)} step(s)")


async def stairway_in_one_run(database: TemporaryDatabase, floor: int = 0) -> None:
    """Every revision up, the ones above ``floor`` down and up again: one env.py run, one connection.

    The steps are those separate ``upgrade``/``downgrade`` commands would run
    (same code, same version-table moves), planned as one list.
    """
    from ...command import _run  # the command runner with a plan of our own
    from ...revision.plan import MigrationStep, RevisionStep

    config = database.config
    script = await _script(config)
    graph = script.graph
    history = LinearHistory(script)
    scripts = [history.scripts[rev] for rev in history.revisions]
    down = scripts[floor:]

    def plan(heads: tuple[str, ...], ctx: Any) -> list[MigrationStep]:
        if heads:
            raise CheckFailed(f"The stairway needs an empty database; it is at {', '.join(heads)}")
        steps: list[MigrationStep] = [RevisionStep(graph, rev, True) for rev in scripts]
        steps += [RevisionStep(graph, rev, False) for rev in reversed(down)]
        steps += [RevisionStep(graph, rev, True) for rev in down]
        return steps

    await _run(config, script, plan, url=database.url, lock=False)


async def check_stairway(run: CheckRun) -> None:
    """Upgrade revision by revision, downgrade as far as allowed, upgrade again.

    Without data at revisions or skipped revisions it runs as one plan
    (:func:`stairway_in_one_run`); a ``NotImplementedError`` there, or data
    to insert, means one command per revision.
    """
    options = run.options
    history = LinearHistory(await _script(run.config))
    floor = _downgrade_floor(run, history)
    if not (options.seeds or options.skip_revisions):
        try:
            await stairway_in_one_run(run.db, floor)
            return
        except CheckFailed:
            raise
        except AsyncMigrateError as exc:
            if not _not_implemented(exc) or options.not_implemented_downgrade == "fail":
                raise CheckFailed(f"Stairway: {exc}") from exc
        run.database = await run.fresh()  # the one-run attempt rolled back; walk step by step
    await _stairway_by_steps(run, history, floor)


async def _stairway_by_steps(run: CheckRun, history: LinearHistory, floor: int) -> None:
    runner = MigrationRunner(run.db, run.options)
    for revision in history.revisions:
        try:
            await runner.migrate_up_to(revision)
        except AsyncMigrateError as exc:
            raise CheckFailed(f"Stairway: upgrading {revision} failed: {exc}") from exc
    undone: list[str] = []
    for revision in reversed(history.revisions[floor:]):
        try:
            await runner.migrate_down_before(revision)
        except AsyncMigrateError as exc:
            _barrier(run, revision, exc)
            break
        undone.append(revision)
    for revision in reversed(undone):
        try:
            await runner.migrate_up_to(revision, again=True)
        except AsyncMigrateError as exc:
            raise CheckFailed(
                f"Stairway: upgrading {revision} again after its downgrade failed: {exc}"
            ) from exc


async def _snapshot(engine: AsyncEngine, exclude: frozenset[str]) -> dict[str, Any]:
    async with engine.connect() as connection:
        return await connection.run_sync(schema_snapshot, exclude)


def _tool_tables(config: Config) -> frozenset[str]:
    """The tables the migration tool keeps for itself: the version table and, if kept, the history table.

    A downgrade leaves them as they are (the history table records the downgrade).
    """
    names = {str(config.get_alembic_option("version_table", "alembic_version"))}
    history = config.get_alembic_option("history_table")
    if history:
        names.add(str(history))
    return frozenset(names)


async def check_downgrade_clean(run: CheckRun) -> None:
    """Fail when a downgrade does not leave the schema exactly as it was before its upgrade.

    Revisions at or below ``minimum_downgrade_revision``'s successor are
    only upgraded; a downgrade raising ``NotImplementedError`` follows the
    options' policy. A full round trip must leave base as it started.
    """
    database = run.db
    config = database.config
    history = LinearHistory(await _script(config))
    floor = _downgrade_floor(run, history)
    exclude = _tool_tables(config)
    runner = MigrationRunner(database, run.options)
    engine = database.engine(poolclass=None)
    complete = True
    try:
        before = start = await _snapshot(engine, exclude)
        for position, revision in enumerate(history.revisions):
            where = _describe(history.scripts[revision])
            try:
                await runner.migrate_up_to(revision)
            except AsyncMigrateError as exc:
                raise CheckFailed(f"Upgrading {where} failed: {exc}") from exc
            if position < floor or revision in run.options.skip_revisions:
                before = await _snapshot(engine, exclude)
                complete = False
                continue
            try:
                await command.downgrade(config, undo_target(history.scripts[revision]), url=database.url)
            except AsyncMigrateError as exc:
                _barrier(run, revision, exc)
                before = await _snapshot(engine, exclude)
                complete = False
                continue
            after = await _snapshot(engine, exclude)
            if after != before:
                raise CheckFailed(
                    f"Downgrading {where} does not undo its upgrade: {describe_difference(before, after)}"
                )
            try:
                await runner.apply(revision, again=True)
            except AsyncMigrateError as exc:
                raise CheckFailed(f"Upgrading {where} again after its downgrade failed: {exc}") from exc
            before = await _snapshot(engine, exclude)
        if complete:
            await command.downgrade(config, "base", url=database.url)
            after = await _snapshot(engine, exclude)
            if after != start:
                raise CheckFailed(f"Downgrading to base leaves traces: {describe_difference(start, after)}")
            state = await command.current(config, url=database.url)
            if state.heads:
                raise CheckFailed(f"Downgrading to base left version rows: {', '.join(state.heads)}")
    finally:
        await engine.dispose()


async def check_models(run: CheckRun) -> None:
    """Fail when env.py's ``target_metadata`` differs from the migrated schema (skip without one)."""
    database = run.db
    if await env_metadata(database.config, database.url) is None:
        run.skip("env.py sets no target_metadata: there are no models to compare with")
    try:
        await command.check(database.config, url=database.url)
    except NoTargetMetadataError:
        run.skip("env.py sets no target_metadata: there are no models to compare with")
    except NotAtHeadError as exc:
        raise CheckFailed(f"Models and migrations differ at {run.target}: {exc}") from exc


async def check_all_models_register(run: CheckRun) -> None:
    """Fail when a model module below the models' packages is not imported by what env.py imports."""
    database = run.db
    found = await models_register(database.config, database.url, run.options.model_packages)
    if found.metadata_count == 0:
        run.skip("env.py sets no target_metadata: there are no models to check")
    if not found.packages:
        run.skip("no package holding the models was found; name it with model_packages")
    if found.missing:
        where = "; ".join(f"{table} (defined in {module})" for table, module in sorted(found.missing.items()))
        raise CheckFailed(
            f"Tables missing from the metadata env.py compares with (their modules are not imported "
            f"when env.py runs, so autogenerate would drop them): {where}"
        )


async def check_offline_sql(run: CheckRun) -> None:
    """Fail unless every revision renders as offline SQL (``--sql``), upgrading and downgrading."""
    config = run.config.copy(url=run.base_url.render_as_string(hide_password=False))
    history = LinearHistory(await _script(config))
    if not history.revisions:
        return
    try:
        await command.upgrade(config, "heads", sql=True)
    except AsyncMigrateError as exc:
        raise CheckFailed(f"Offline SQL of the upgrade: {exc}") from exc
    floor = _downgrade_floor(run, history)
    if floor >= len(history.revisions):
        return
    lowest = history.revisions[floor - 1] if floor > 0 else BASE
    heads = sorted(history.script.get_heads())
    while history.position(lowest) < len(history.revisions) - 1:
        try:
            for head in heads:  # one branch at a time: a range starts at one revision
                if history.position(head) > history.position(lowest):
                    await command.downgrade(config, f"{head}:{lowest}", sql=True)
            return
        except AsyncMigrateError as exc:
            failing = getattr(exc, "revision", None)
            if failing is None or not _not_implemented(exc):
                raise CheckFailed(f"Offline SQL of the downgrade: {exc}") from exc
            _barrier(run, failing, exc)
            lowest = failing


async def check_lint(run: CheckRun) -> None:
    """Fail when :mod:`asyncmigrate.lint` finds an error in any revision (nothing connects)."""
    from ...lint.testing import lint_errors

    failure = await lint_errors(run.config, run.base_url)
    if failure is not None:
        raise CheckFailed(failure)


#: Every check, in the order they run. Add new checks here (one line each).
REGISTRY: dict[str, Check] = {
    check.name: check
    for check in (
        Check("single_head", "the history has several heads", check_single_head, "nothing"),
        Check("branches", "heads stay unmerged beyond the allowed branches", check_branches, "nothing"),
        Check("upgrade", "an empty database does not upgrade to the target", check_upgrade),
        Check("stairway", "a revision cannot go up, down and up again", check_stairway),
        Check("downgrade_clean", "a downgrade does not undo its upgrade exactly", check_downgrade_clean),
        Check("models", "the models differ from the migrated schema", check_models, "target"),
        Check("all_models_register", "a model module is not imported when env.py runs",
              check_all_models_register),
        Check("offline_sql", "a revision does not render as offline SQL", check_offline_sql, "nothing"),
        Check("lint", "a revision has a lint error for the database's dialect", check_lint, "nothing"),
    )
}

#: The names of the checks, in the order they run.
CHECKS: tuple[str, ...] = tuple(REGISTRY)


async def run_check(
    name: str,
    factory: DatabaseFactory,
    config: Config,
    base_url: str | URL,
    target: str = "heads",
    options: MigrationTestOptions | None = None,
) -> CheckOutcome:
    """Run the built-in check ``name`` on fresh databases from ``factory``.

    :return: how it ended when it did not fail (skipped with a reason, or
        passed), with its warnings.
    :raises CheckFailed: when it found a problem.
    """
    from ...urls import to_async_url

    check = REGISTRY.get(name)
    if check is None:
        raise CheckFailed(f"No built-in check named {name!r}; the checks are {', '.join(CHECKS)}")
    options = options or MigrationTestOptions()
    run = CheckRun(config, to_async_url(base_url), target, options, factory)
    try:
        if check.needs != "nothing":
            try:
                template = await factory.template(
                    config, run.base_url, target if check.needs == "target" else None, options
                )
                run.database = await factory.create(template, config)
            except AsyncMigrateError as exc:
                raise CheckFailed(f"Preparing the {name} check's database failed: {exc}") from exc
            run.databases.append(run.database)
        await check.run(run)
    except CheckSkipped as exc:
        return CheckOutcome(str(exc), tuple(run.warnings))
    finally:
        with anyio.CancelScope(shield=True):
            for database in run.databases:
                await factory.discard(database)
    return CheckOutcome(None, tuple(run.warnings))
