"""Run a real-world history with asyncmigrate, step by step, and compare it with Alembic's run.

The recording has the form :mod:`tests.histories.alembic_side` documents (``tool`` is
``asyncmigrate``). The plan is asyncmigrate's own, computed from its script directory
by the same :func:`alembic_side.plan_from_script` (``own_plan``; ``--reference`` runs a
recorded plan instead); :func:`compare` checks it against Alembic's, then every step.

Every step is one ``await asyncmigrate.command.upgrade/downgrade(config, target,
url=...)`` in this process's event loop, on a :class:`asyncmigrate.Config` built for
the history's script_location (the catalog's minimal env.py, unchanged: it builds a
plain ``Engine`` from ``sqlalchemy.url``, which asyncmigrate maps to the async driver
and runs in the loop). The snapshot after each step is
:func:`tests.histories.schema_snapshot.snapshot` through ``AsyncConnection.run_sync``
(SQLite files: the stdlib driver). The one-shot commands run on SQLite with
``transaction_per_migration=True``, as Alembic commits each migration there.

A failed step's ``error`` holds, besides what the Alembic side records about the
*underlying* exception (``error_type``, ``code``, ``message`` -- what
:func:`alembic_side.same_error` compares), what asyncmigrate raised: ``raised_type``
(module-qualified class), ``raised_message`` (``str()`` of it, which must be one line),
``revision`` and ``direction`` (from :class:`asyncmigrate.exceptions.MigrationError`).

:func:`compare` accepts exactly the differences the catalog lists as
``asyncmigrate_deviations``; where one says asyncmigrate *succeeds* on a step Alembic
fails on, the runner ends that phase there, as Alembic's run does.

Command line (one process per run, as for the Alembic side)::

    python -m tests.histories.asyncmigrate_side run NAME BACKEND [--out FILE]
        [--reference FILE] [--per-migration]
    python -m tests.histories.asyncmigrate_side table [NAME...]   # both tools, timings
    python -m tests.histories.asyncmigrate_side summary           # Markdown timing table

Drivers: asyncpg for PostgreSQL, asyncmy for MariaDB/MySQL, aiosqlite for SQLite.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from . import alembic_side, catalog, fetch
from .schema_snapshot import snapshot

__all__ = [
    "ERRORS_MODULE",
    "ONESHOT",
    "check_errors",
    "check_expected_messages",
    "compare",
    "own_plan",
    "record",
    "run_history",
    "step_revisions",
]

#: Where every error asyncmigrate raises on purpose lives.
ERRORS_MODULE = "asyncmigrate.exceptions"
#: Option (in ``config.attributes``) our env.py merges into ``context.configure``.
OVERRIDES_ATTRIBUTE = "configure_overrides"

Step = alembic_side.Step
#: The one-shot commands, in order: (label, command, target).
ONESHOT: tuple[tuple[str, str, str], ...] = (
    ("upgrade_heads", "upgrade", "heads"),
    ("downgrade_base", "downgrade", "base"),
    ("upgrade_heads_again", "upgrade", "heads"),
)


def async_url(url: str) -> str:
    """Return the async-driver form of a (sync) URL, as asyncmigrate would map it."""
    from asyncmigrate.urls import to_async_url

    return to_async_url(url).render_as_string(hide_password=False)


def config_for(
    prepared: fetch.PreparedHistory, url: str | None, overrides: Mapping[str, Any] | None = None
) -> Any:
    """Return an :class:`asyncmigrate.Config` for the history's script_location."""
    from asyncmigrate import Config

    config = Config()
    for key, value in prepared.main_options(url).items():
        config.set_main_option(key, value.replace("%", "%%"))
    if overrides:
        config.attributes[OVERRIDES_ATTRIBUTE] = dict(overrides)
    return config


def own_plan(prepared: fetch.PreparedHistory) -> dict[str, list[Step]]:
    """Return the step plan computed from asyncmigrate's script directory.

    Same algorithm as :func:`alembic_side.plan` (:func:`alembic_side.plan_from_script`),
    over asyncmigrate's graph: equal plans mean equal walk orders, labels and
    dependency resolution. Call inside :func:`fetch.activated`.
    """
    from asyncmigrate.script import ScriptDirectory

    script = ScriptDirectory.from_config(config_for(prepared, None))
    return alembic_side.plan_from_script(script)


def step_revisions(plan_: Mapping[str, Sequence[Sequence[str]]]) -> dict[str, list[str]]:
    """Return, per phase key (``up``/``down``), the revision each step applies or removes.

    ``up`` applies its target; ``down`` removes the revisions of ``up`` last to first.
    """
    ups = [target for _command, target in plan_["up"]]
    return {"up": ups, "down": list(reversed(ups))}


def _underlying(exc: BaseException) -> BaseException:
    """Return the exception behind an asyncmigrate error (its ``__cause__`` chain)."""
    seen: set[int] = set()
    current = exc
    while current.__cause__ is not None and id(current) not in seen:
        seen.add(id(current))
        if not type(current).__module__.startswith("asyncmigrate"):
            break
        current = current.__cause__
    return current


def _error(exc: BaseException) -> dict[str, Any]:
    cause = _underlying(exc)
    message = str(cause).strip()
    raised = str(exc)
    return {
        "error_type": type(cause).__name__,
        "code": alembic_side.error_code(cause),
        "message": message.splitlines()[0][:500] if message else "",
        "detail": message[:4000],
        "raised_type": f"{type(exc).__module__}.{type(exc).__qualname__}",
        "raised_message": raised[:4000],
        "revision": getattr(exc, "revision", None),
        "direction": getattr(exc, "direction", None),
        "traceback": "".join(traceback.format_exception(exc))[-6000:],
    }


async def _take(engine: AsyncEngine, history: catalog.History) -> dict[str, Any]:
    """Snapshot the database through ``AsyncConnection.run_sync`` (PostgreSQL, MariaDB).

    SQLite files are read with the stdlib driver instead: aiosqlite hands every one of
    reflection's many PRAGMA queries to a thread, four times slower, and the file reads
    the same through either driver (the Alembic side uses the stdlib one as well).
    """
    def take(sync: sa.Connection) -> dict[str, Any]:
        return snapshot(
            sync,
            version_table=history.version_table,
            version_table_schema=history.version_table_schema,
        )

    if engine.dialect.name == "sqlite":
        sync_engine = sa.create_engine(engine.url.set(drivername="sqlite"), poolclass=NullPool)
        try:
            with sync_engine.connect() as sync:
                return take(sync)
        finally:
            sync_engine.dispose()
    async with engine.connect() as conn:
        try:
            return await conn.run_sync(take)
        finally:
            await conn.rollback()


async def _run_command(config: Any, url: str, command_name: str, target: str) -> dict[str, Any]:
    from asyncmigrate import command

    started = time.perf_counter()
    error = None
    try:
        await getattr(command, command_name)(config, target, url=url)
    except Exception as exc:
        error = _error(exc)
    return {"ok": error is None, "error": error, "seconds": round(time.perf_counter() - started, 4)}


async def _setup(prepared: fetch.PreparedHistory, engine: AsyncEngine) -> None:
    if prepared.history.setup_metadata:
        async with engine.begin() as conn:
            await conn.run_sync(prepared.setup)


async def run_history(
    name: str,
    backend: str,
    url: str,
    *,
    steps_plan: Mapping[str, Sequence[Sequence[str]]] | None = None,
    stepwise: bool = True,
    oneshot: bool = True,
    oneshot_url: str | None = None,
    snapshots: bool = True,
    overrides: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Run history ``name`` with asyncmigrate on the empty database at ``url``; return the recording.

    :param steps_plan: the plan to run (the Alembic reference's, so that the two
        recordings compare step by step); default: asyncmigrate's own plan.
    :param overrides: extra ``context.configure`` options for our env.py (e.g.
        ``{"transaction_per_migration": True}``).
    Other parameters as :func:`alembic_side.run_history`.
    """
    import asyncmigrate

    prepared = fetch.prepare(name)
    history = prepared.history
    url = async_url(url)
    recording: dict[str, Any] = {
        "history": name,
        "backend": backend,
        "tool": "asyncmigrate",
        "tool_version": asyncmigrate.__version__,
        "sqlalchemy": sa.__version__,
        "python": sys.version.split()[0],
        "artifacts": [a.requirement for a in history.artifacts],
        "overrides": dict(overrides or {}),
        "failure": None,
        "failures": [],
    }
    with fetch.activated(prepared):
        try:
            mine = own_plan(prepared)
        except Exception as exc:
            err = _error(exc)
            recording["plan_error"] = err
            recording["failure"] = {
                "phase": "plan", "index": 0, "target": None,
                "error_type": err["error_type"], "message": err["message"],
            }
            recording["failures"].append(recording["failure"])
            return recording
        recording["own_plan"] = {k: [list(s) for s in v] for k, v in mine.items()}
        chosen = steps_plan if steps_plan is not None else mine
        recording["plan"] = {k: [list(s) for s in v] for k, v in chosen.items()}
        config = config_for(prepared, url, overrides)
        if stepwise:
            # The snapshot engine keeps one idle connection between steps (rolled back,
            # holding no locks), so asyncpg's prepared reflection queries are reused.
            engine = create_async_engine(url, pool_size=1, max_overflow=0)
            try:
                async with engine.connect() as conn:
                    recording["server_version"] = ".".join(
                        map(str, conn.dialect.server_version_info or ())
                    )
                    recording["server_flavor"] = alembic_side.server_flavor(conn.dialect)
                await _setup(prepared, engine)
                recording["initial"] = await _take(engine, history)
                await _run_stepwise(prepared, config, engine, url, recording, snapshots)
            finally:
                await engine.dispose()
        if oneshot:
            if stepwise and oneshot_url is None:
                raise ValueError("oneshot after stepwise needs another empty database (oneshot_url)")
            target_url = async_url(oneshot_url) if oneshot_url else url
            oneshot_overrides = dict(overrides or {})
            if backend == "sqlite":
                # Alembic commits each migration on its own on SQLite; asyncmigrate's
                # default is one transaction per run. Compare like with like.
                oneshot_overrides.setdefault("transaction_per_migration", True)
            engine = create_async_engine(target_url, pool_size=1, max_overflow=0)
            try:
                await _setup(prepared, engine)
                recording["oneshot"] = await _run_oneshot(
                    config_for(prepared, target_url, oneshot_overrides), engine, target_url,
                    history, backend,
                )
                recording["oneshot"]["overrides"] = oneshot_overrides
            finally:
                await engine.dispose()
    return recording


def _succeeds_where_alembic_fails(history: catalog.History, backend: str) -> set[tuple[str, Any]]:
    return {
        (d.phase, d.target)
        for d in history.asyncmigrate_deviations.get(backend, ())
        if d.kind == "succeeds"
    }


async def _run_stepwise(
    prepared: fetch.PreparedHistory,
    config: Any,
    engine: AsyncEngine,
    url: str,
    recording: dict[str, Any],
    snapshots: bool,
) -> None:
    history = prepared.history
    steps_plan = recording["plan"]
    # Where asyncmigrate runs a step Alembic fails on, the phase ends there as Alembic's does.
    stop_after = _succeeds_where_alembic_fails(history, recording["backend"])
    steps: list[dict[str, Any]] = []
    phases: dict[str, Any] = {}
    recording["steps"] = steps
    recording["phases"] = phases
    for phase, key in (("up", "up"), ("down", "down"), ("up2", "up")):
        phase_steps = steps_plan[key]
        total = 0.0
        phases[phase] = {"steps": 0, "seconds": 0.0, "ok": True}
        for index, (command_name, target) in enumerate(phase_steps):
            result = await _run_command(config, url, command_name, target)
            total += result["seconds"]
            last = index == len(phase_steps) - 1
            step = {
                "phase": phase, "index": index, "command": command_name, "target": target,
                **result,
            }
            if snapshots or last or not result["ok"]:
                step["snapshot"] = await _take(engine, history)
            steps.append(step)
            phases[phase]["steps"] = index + 1
            phases[phase]["seconds"] = round(total, 3)
            if result["ok"] and (phase, target) in stop_after:
                step["stopped"] = "Alembic fails here (a catalogued deviation)"
                if phase == "down":
                    break
                return
            if not result["ok"]:
                phases[phase]["ok"] = False
                err = result["error"]
                failure = {
                    "phase": phase, "index": index, "target": target,
                    "error_type": err["error_type"], "message": err["message"],
                }
                recording["failures"].append(failure)
                recording["failure"] = recording["failure"] or failure
                if phase == "down":
                    break
                return


async def _run_oneshot(
    config: Any, engine: AsyncEngine, url: str, history: catalog.History, backend: str
) -> dict[str, Any]:
    stop_after = _succeeds_where_alembic_fails(history, backend)
    out: dict[str, Any] = {"snapshots": {"initial": await _take(engine, history)}}
    for label, command_name, target in ONESHOT:
        result = await _run_command(config, url, command_name, target)
        out[label] = result
        out["snapshots"][label] = await _take(engine, history)
        if not result["ok"] or (label, None) in stop_after:
            break
    return out


def record(
    name: str,
    backend: str,
    *,
    steps_plan: Mapping[str, Sequence[Sequence[str]]] | None = None,
    directory: str | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """Run ``name`` on fresh scratch databases of ``backend`` and return the recording."""
    with (
        alembic_side.scratch_database(backend, directory) as url,
        alembic_side.scratch_database(backend, directory) as url2,
    ):
        return asyncio.run(
            run_history(name, backend, url, steps_plan=steps_plan, oneshot_url=url2, **kwargs)
        )


# ---------------------------------------------------------------- comparing


def check_errors(rec: Mapping[str, Any]) -> list[str]:
    """Return the ways asyncmigrate's failed steps fall short of a clear error.

    Each must have raised an :mod:`asyncmigrate.exceptions` error whose message is
    one line (no traceback, no SQL dump) naming the failing revision, with the
    revision also in its ``revision`` attribute.
    """
    problems: list[str] = []
    plan_ = rec.get("plan")
    if not plan_:
        return problems
    revisions = step_revisions(plan_)
    for step in rec.get("steps", []):
        if step["ok"]:
            continue
        err = step["error"]
        where = f"{step['phase']}[{step['index']}] {step['target']}"
        revision = revisions["down" if step["phase"] == "down" else "up"][step["index"]]
        if not err["raised_type"].startswith(ERRORS_MODULE + "."):
            problems.append(f"{where}: raised {err['raised_type']}, not an {ERRORS_MODULE} error")
        message = err["raised_message"]
        if "\n" in message.strip():
            problems.append(f"{where}: the message has {len(message.splitlines())} lines: {message!r}")
        if revision not in message:
            problems.append(f"{where}: the message does not name {revision}: {message!r}")
        if err.get("revision") != revision:
            problems.append(f"{where}: error.revision is {err.get('revision')!r}, not {revision!r}")
    return problems


def _matches(difference: str, path: str) -> bool:
    """Whether a :func:`schema_snapshot.diff` line is about ``path`` (or below it)."""
    return path == "" or any(difference.startswith(path + sep) for sep in (":", "/", "["))


class _Deviations:
    """The catalogued deviations of one history on one backend, as a comparison walks steps."""

    def __init__(self, deviations: Sequence[catalog.Deviation]) -> None:
        self.all = list(deviations)
        self.active: set[int] = set()
        self.seen: set[int] = set()

    def enter(self, key: tuple[str, Any]) -> list[catalog.Deviation]:
        """Step ``key`` begins: end deviations that last until it, start those that begin at it."""
        self.active = {i for i in self.active if self.all[i].until != key}
        starting = [i for i, d in enumerate(self.all) if (d.phase, d.target) == key]
        self.active.update(starting)
        return [self.all[i] for i in starting]

    def saw(self, deviation: catalog.Deviation) -> None:
        self.seen.add(self.all.index(deviation))

    def filter(self, differences: Sequence[str]) -> list[str]:
        """Drop the differences an active deviation allows (noting that it occurred)."""
        left = []
        for difference in differences:
            allowing = [i for i in self.active if any(_matches(difference, p) for p in self.all[i].paths)]
            if allowing:
                self.seen.update(allowing)
            else:
                left.append(difference)
        return left

    def missing(self) -> list[str]:
        return [
            f"catalogued deviation did not occur: {d.kind} at {d.phase} {d.target or ''}".rstrip()
            for i, d in enumerate(self.all)
            if i not in self.seen
        ]


def compare(
    history: catalog.History, reference: Mapping[str, Any], mine: Mapping[str, Any]
) -> list[str]:
    """Return the differences between Alembic's recording and asyncmigrate's, step by step.

    Compared: the plans (the one run and asyncmigrate's own), the initial snapshot,
    and per stepwise step and per one-shot command the outcome, the error
    (:func:`alembic_side.same_error`) and the snapshot -- minus exactly the
    differences ``history.asyncmigrate_deviations`` allows, each of which must occur.
    Empty list: the runs agree.
    """
    from .schema_snapshot import diff

    backend = reference["backend"]
    deviations = _Deviations(history.asyncmigrate_deviations.get(backend, ()))
    problems: list[str] = []
    if reference.get("plan") != mine.get("plan"):
        problems.append("the runs followed different plans")
    if reference.get("plan") != mine.get("own_plan"):
        problems.append("asyncmigrate's own plan differs from Alembic's")
    problems += [f"initial: {d}" for d in diff(reference.get("initial"), mine.get("initial"))]
    ref_steps, my_steps = reference.get("steps", []), mine.get("steps", [])
    if len(ref_steps) != len(my_steps):
        problems.append(f"{len(ref_steps)} steps in Alembic's run, {len(my_steps)} in asyncmigrate's")
    my_previous = mine.get("initial")
    for a, b in zip(ref_steps, my_steps, strict=False):
        where = f"{a['phase']}[{a['index']}] {a['command']} {a['target']}"
        if (a["phase"], a["command"], a["target"]) != (b["phase"], b["command"], b["target"]):
            problems.append(f"{where}: asyncmigrate's run did {b['phase']} {b['command']} {b['target']}")
            break
        starting = deviations.enter((a["phase"], a["target"]))
        problems += _outcome(where, a, b, starting, deviations)
        if "snapshot" in a and "snapshot" in b:
            for deviation in starting:
                if deviation.kind == "rolled_back" and my_previous is not None:
                    left = diff(my_previous, b["snapshot"], limit=5)
                    if left:
                        problems.append(f"{where}: asyncmigrate's failed step left changes: {left}")
                if deviation.kind == "succeeds" and a["phase"] == "down" and my_previous:
                    problems += [
                        f"{where}: {p}"
                        for p in _check_undoes_upgrade(reference, b["index"], my_previous, b["snapshot"])
                    ]
            found = diff(a["snapshot"], b["snapshot"], limit=1000)
            problems += [f"{where}: {d}" for d in deviations.filter(found)]
        my_previous = b.get("snapshot", my_previous)
    problems += _compare_oneshot(reference, mine, deviations)
    problems += deviations.missing()
    return problems


def _check_undoes_upgrade(
    reference: Mapping[str, Any], down_index: int, before_down: Any, after_down: Any
) -> list[str]:
    """Check a downgrade Alembic could not run against Alembic's run of the upgrade it undoes.

    The tables the downgrade changed must be those the upgrade changed, each back as it
    was before the upgrade, and the version rows as they were then. (Not the whole
    schema: later revisions' downgrades need not restore everything exactly.)
    """
    from .schema_snapshot import diff

    revisions = step_revisions(reference["plan"])
    up_index = revisions["up"].index(revisions["down"][down_index])
    ups = [s for s in reference["steps"] if s["phase"] == "up"]
    if "snapshot" not in ups[up_index]:
        return []
    before = reference["initial"] if up_index == 0 else ups[up_index - 1]["snapshot"]
    after = ups[up_index]["snapshot"]

    def touched(x: Any, y: Any) -> set[str]:
        names = set(x["tables"]) | set(y["tables"])
        return {n for n in names if x["tables"].get(n) != y["tables"].get(n)}

    problems = []
    upgraded, downgraded = touched(before, after), touched(before_down, after_down)
    if upgraded != downgraded:
        problems.append(f"the downgrade changed tables {sorted(downgraded)}, the upgrade {sorted(upgraded)}")
    for name in sorted(upgraded):
        found = diff(before["tables"].get(name), after_down["tables"].get(name), f"/tables/{name}", 5)
        problems += [f"not as before the upgrade: {d}" for d in found]
    if before["version"] != after_down["version"]:
        problems.append(f"version rows {after_down['version']}, before the upgrade {before['version']}")
    return problems


def _outcome(
    where: str,
    a: Mapping[str, Any],
    b: Mapping[str, Any],
    starting: Sequence[catalog.Deviation],
    deviations: _Deviations,
) -> list[str]:
    kinds = {d.kind for d in starting}
    if a["ok"] != b["ok"]:
        if "succeeds" in kinds and not a["ok"] and b["ok"]:
            for d in starting:
                if d.kind == "succeeds":
                    deviations.saw(d)
            return []
        ok_a, ok_b = a["ok"], b["ok"]
        detail = (a["error"] or b["error"] or {}).get("message", "")
        return [f"{where}: ok={ok_a} in Alembic's run, ok={ok_b} in asyncmigrate's ({detail[:200]})"]
    if not a["ok"] and not alembic_side.same_error(a["error"], b["error"]):
        return [
            f"{where}: {a['error']['error_type']} ({a['error'].get('code')}) in Alembic's run, "
            f"{b['error']['error_type']} ({b['error'].get('code')}) in asyncmigrate's: "
            f"{b['error']['message'][:200]}"
        ]
    if "rolled_back" in kinds and a["ok"]:
        return [f"{where}: a rolled_back deviation is catalogued, but the step succeeded"]
    return []


def _compare_oneshot(
    reference: Mapping[str, Any], mine: Mapping[str, Any], deviations: _Deviations
) -> list[str]:
    from .schema_snapshot import diff

    problems: list[str] = []
    ref, my = reference.get("oneshot"), mine.get("oneshot")
    if not ref or not my:
        return problems
    deviations.active.clear()
    for label, _command, _target in ONESHOT:
        where = f"one-shot {label}"
        if (label in ref) != (label in my):
            problems.append(f"{where}: run by only one tool")
            break
        if label not in ref:
            break
        starting = deviations.enter((label, None))
        problems += _outcome(where, ref[label], my[label], starting, deviations)
        found = diff(ref["snapshots"][label], my["snapshots"][label], limit=1000)
        problems += [f"{where}: {d}" for d in deviations.filter(found)]
    return problems


def check_expected_messages(history: catalog.History, mine: Mapping[str, Any]) -> list[str]:
    """Return the catalogued Alembic failures whose message asyncmigrate's error lacks.

    Where both tools fail on a step, asyncmigrate's one-line message must carry the
    message the catalog records for Alembic (the database's or the revision file's
    words), after naming the migration.
    """
    problems = []
    failed = {(s["phase"], s["target"]): s for s in mine.get("steps", []) if not s["ok"]}
    for expected in history.alembic_expected.get(mine["backend"], ()):
        if expected.flavor not in (None, mine.get("server_flavor")):
            continue
        step = failed.get((expected.phase, expected.target))
        if step is None:
            continue  # compare() reports the outcome
        message = step["error"]["raised_message"]
        if expected.message not in message:
            problems.append(
                f"{expected.phase} {expected.target}: asyncmigrate's message lacks "
                f"{expected.message!r}: {message!r}"
            )
    return problems


# ---------------------------------------------------------------- command line


def _default_out(name: str, backend: str, suffix: str = "") -> Path:
    out = fetch.cache_root() / "recordings"
    out.mkdir(exist_ok=True)
    return out / f"{name}-{backend}-asyncmigrate{suffix}.json"


def _cmd_run(args: argparse.Namespace) -> int:
    history = catalog.get(args.name)
    if not history.supports(args.backend):
        print(f"{args.name} does not support {args.backend}", file=sys.stderr)
        return 2
    reason = alembic_side.unavailable_reason(args.backend)
    if reason:
        print(f"SKIP: {reason}", file=sys.stderr)
        return 3
    steps_plan = None
    if args.reference:
        steps_plan = json.loads(Path(args.reference).read_text()).get("plan")
    overrides = {"transaction_per_migration": True} if args.per_migration else None
    try:
        recording = record(
            args.name, args.backend, steps_plan=steps_plan, overrides=overrides,
            snapshots=not args.no_snapshots, oneshot=not args.no_oneshot,
        )
    except fetch.HistoryUnavailable as exc:
        print(f"SKIP: {exc}", file=sys.stderr)
        return 3
    out = Path(args.out) if args.out else _default_out(args.name, args.backend)
    out.write_text(json.dumps(recording, indent=1, sort_keys=True, default=str) + "\n")
    print(alembic_side._line(recording))
    print(f"recording: {out}")
    return 0


def _cmd_summary(args: argparse.Namespace) -> int:
    """Print a Markdown table comparing the cached recordings of both tools."""
    rows = [
        "| history | revisions | backend | stepwise up / down / up2 (s): asyncmigrate vs Alembic "
        "| one-shot upgrade heads / downgrade base / upgrade heads (s): asyncmigrate vs Alembic |",
        "|---|---|---|---|---|",
    ]
    for history in catalog.HISTORIES:
        for backend in history.backends:
            paths = (_default_out(history.name, backend),
                     alembic_side._default_out(history.name, backend))
            if not all(p.exists() for p in paths):
                continue
            mine, ref = (json.loads(p.read_text()) for p in paths)

            def phase(rec: Mapping[str, Any], p: str) -> str:
                entry = rec.get("phases", {}).get(p)
                return f"{entry['seconds']:.1f}" if entry else "-"

            def once(rec: Mapping[str, Any], k: str) -> str:
                entry = rec.get("oneshot", {}).get(k)
                if not entry:
                    return "-"
                return f"{entry['seconds']:.1f}" + ("" if entry["ok"] else " ✗")

            stepwise = " / ".join(f"{phase(mine, p)} vs {phase(ref, p)}" for p in ("up", "down", "up2"))
            oneshot = " / ".join(
                f"{once(mine, k)} vs {once(ref, k)}"
                for k in ("upgrade_heads", "downgrade_base", "upgrade_heads_again")
            )
            rows.append(
                f"| {history.name} | {history.revision_count} | {backend} | {stepwise} | {oneshot} |"
            )
    print("\n".join(rows))
    return 0


def _cmd_table(args: argparse.Namespace) -> int:
    """Record both tools on every history x backend, one after the other, and compare."""
    import subprocess

    for name in args.names or catalog.names():
        history = catalog.get(name)
        for backend in history.backends:
            if args.backend and backend not in args.backend:
                continue
            ref_out = alembic_side._default_out(name, backend)
            mine_out = _default_out(name, backend)
            lines = []
            for module, out, extra in (
                ("tests.histories.alembic_side", ref_out, []),
                ("tests.histories.asyncmigrate_side", mine_out, ["--reference", str(ref_out)]),
            ):
                started = time.perf_counter()
                proc = subprocess.run(
                    [sys.executable, "-m", module, "run", name, backend, "--out", str(out), *extra],
                    capture_output=True, text=True, check=False,
                )
                wall = time.perf_counter() - started
                if proc.returncode != 0:
                    lines.append(f"{module} exit {proc.returncode}: "
                                 f"{(proc.stderr or proc.stdout).strip()[-800:]}")
                    break
                lines.append(proc.stdout.splitlines()[0] + f"  (wall {wall:.1f}s)")
            else:
                ref, mine = json.loads(ref_out.read_text()), json.loads(mine_out.read_text())
                problems = (compare(history, ref, mine) + check_errors(mine)
                            + check_expected_messages(history, mine))
                lines.append(f"{len(problems)} differences" + "".join(
                    f"\n    {p}" for p in problems[:20]))
            print("\n".join(lines), flush=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.histories.asyncmigrate_side")
    sub = parser.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser("run", help="record one history on one backend with asyncmigrate")
    run.add_argument("name")
    run.add_argument("backend", choices=catalog.BACKENDS)
    run.add_argument("--out", help="where to write the recording (JSON)")
    run.add_argument("--reference", help="an Alembic recording whose plan to run")
    run.add_argument("--per-migration", action="store_true",
                     help="configure transaction_per_migration=True")
    run.add_argument("--no-snapshots", action="store_true", help="snapshot at phase ends only")
    run.add_argument("--no-oneshot", action="store_true", help="skip the one-shot timing run")
    run.set_defaults(func=_cmd_run)
    table = sub.add_parser("table", help="record both tools on every history and backend")
    table.add_argument("names", nargs="*")
    table.add_argument("--backend", action="append", choices=catalog.BACKENDS)
    table.set_defaults(func=_cmd_table)
    summary_ = sub.add_parser("summary", help="Markdown table of the cached recordings")
    summary_.set_defaults(func=_cmd_summary)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        raise SystemExit(main())
