"""Run a real-world history with Alembic (the reference) and record every step.

A *recording* is plain JSON-able data::

    {
      "history": "ckan", "backend": "postgresql", "tool": "alembic", "tool_version": "1.20.1",
      "sqlalchemy": "2.1.9", "server_version": "15.20", "server_flavor": "postgresql",
      "plan": {"up": [...targets...], "down": [...targets...]},
      "initial": <snapshot of the fresh database (after setup_metadata, if any)>,
      "steps": [
        {"phase": "up", "index": 0, "command": "upgrade", "target": "103676e0a497",
         "ok": true, "error": null, "seconds": 0.031, "snapshot": <snapshot>},
        ...
      ],
      "phases": {"up": {"steps": 109, "seconds": 3.2, "ok": true}, "down": ..., "up2": ...},
      "oneshot": {"upgrade_heads": {"seconds": .., "ok": ..}, "downgrade_base": ..,
                  "upgrade_heads_again": .., "snapshots": {...}},
      "failure": null | {"phase", "index", "target", "error_type", "message"},
      "failures": [ ...every failed step, same form... ]
    }

Phases: ``up`` upgrades one revision at a time from base to the heads, ``down``
downgrades one revision at a time back to base, ``up2`` upgrades one at a time again.
A failing step ends its phase (the snapshot after it is still taken); after a failed
``down`` step the run goes on with ``up2`` from wherever the database was left
(``upgrade <an applied revision>`` is a no-op in Alembic), after a failed ``up`` or
``up2`` step the run ends. ``failures`` lists every failed step, ``failure`` the
first; a step's ``error`` holds ``error_type``, ``code`` (SQLSTATE / MySQL errno, for
database errors), ``message``, ``detail`` and ``traceback``. The *plan* (:func:`plan`)
is computed once from Alembic's script directory and is the same list of
``(command, target)`` pairs the asyncmigrate side must run, so the two recordings
compare step by step (:func:`compare`).

Each step runs on a fresh connection passed to our env.py through
``config.attributes["connection"]``; the snapshot is taken on another fresh
connection with :func:`tests.histories.schema_snapshot.snapshot`.

Command line (runs in its own process, so a history's imports stay out of pytest)::

    python -m tests.histories.alembic_side run NAME BACKEND [--url URL] [--out FILE]
    python -m tests.histories.alembic_side table      # run everything, print timings
    python -m tests.histories.alembic_side summary    # Markdown table of the recordings

Synchronous drivers: psycopg2 for PostgreSQL, PyMySQL for MariaDB/MySQL.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import NullPool

from . import catalog, fetch
from .schema_snapshot import diff, snapshot

__all__ = [
    "DATABASE_ERRORS",
    "Step",
    "check_reference",
    "compare",
    "fingerprint",
    "plan",
    "plan_from_script",
    "record",
    "reference",
    "run_history",
    "same_error",
    "scratch_database",
]

POSTGRESQL_ENV = "ASYNCMIGRATE_TEST_POSTGRESQL_URL"
MYSQL_ENV = "ASYNCMIGRATE_TEST_MYSQL_URL"
_DEFAULTS = {
    "postgresql": "postgresql://postgres@127.0.0.1:5432/postgres",
    "mysql": "mysql://root@127.0.0.1:3306/test",
}
_SYNC_DRIVERS = {"postgresql": "postgresql+psycopg2", "mysql": "mysql+pymysql"}

Step = tuple[str, str]  # (command, target): ("upgrade", "<rev>") / ("downgrade", "<target>")


# ---------------------------------------------------------------- databases


def server_url(backend: str) -> URL:
    """Return the synchronous admin URL of ``backend``'s server (same env vars as tests/backends)."""
    env = POSTGRESQL_ENV if backend == "postgresql" else MYSQL_ENV
    url = make_url(os.environ.get(env) or _DEFAULTS[backend])
    return url.set(drivername=_SYNC_DRIVERS[backend])


def unavailable_reason(backend: str) -> str | None:
    """Return why ``backend``'s server cannot be used, or None."""
    if backend == "sqlite":
        return None
    engine = sa.create_engine(server_url(backend), poolclass=NullPool, connect_args=_timeout(backend))
    try:
        with engine.connect():
            return None
    except Exception as exc:
        return f"{backend} server not reachable ({type(exc).__name__}: {exc})"
    finally:
        engine.dispose()


def _timeout(backend: str) -> dict[str, Any]:
    return {"connect_timeout": 5}


_SCRATCH_PREFIX = "amh_"


def _drop_orphans(conn: sa.Connection, backend: str, admin: URL) -> None:
    """Drop scratch databases left by killed runs on this machine (their pid is gone).

    Only for a server on the loopback interface: pids mean nothing across machines.
    """
    if admin.host not in ("127.0.0.1", "localhost", "::1"):
        return
    if backend == "postgresql":
        query = "SELECT datname FROM pg_database WHERE datname LIKE 'amh\\_%'"
    else:
        query = "SHOW DATABASES LIKE 'amh\\_%'"
    quote = conn.dialect.identifier_preparer.quote
    for name in conn.execute(sa.text(query)).scalars():
        pid_text = name[len(_SCRATCH_PREFIX):].split("_", 1)[0]
        if not pid_text.isdigit():
            continue
        try:
            os.kill(int(pid_text), 0)
        except ProcessLookupError:
            force = " WITH (FORCE)" if backend == "postgresql" else ""
            with contextlib.suppress(sa.exc.DBAPIError):
                conn.execute(sa.text(f"DROP DATABASE IF EXISTS {quote(name)}{force}"))
        except PermissionError:
            continue


def server_flavor(dialect: sa.Dialect) -> str:
    """Return ``sqlite``, ``postgresql``, ``mysql`` or ``mariadb``."""
    if dialect.name == "mysql" and getattr(dialect, "is_mariadb", False):
        return "mariadb"
    return dialect.name


@contextlib.contextmanager
def scratch_database(backend: str, directory: str | os.PathLike[str] | None = None) -> Iterator[str]:
    """Create an empty database, yield its synchronous URL (as a string), drop it after."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(dir=directory) as tmp:
            yield f"sqlite:///{Path(tmp) / 'history.db'}"
        return
    name = f"{_SCRATCH_PREFIX}{os.getpid()}_{secrets.token_hex(4)}"
    admin = server_url(backend)
    engine = sa.create_engine(admin, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    quote = engine.dialect.identifier_preparer.quote
    try:
        with engine.connect() as conn:
            _drop_orphans(conn, backend, admin)
            conn.execute(sa.text(f"CREATE DATABASE {quote(name)}"))
        try:
            yield admin.set(database=name).render_as_string(hide_password=False)
        finally:
            with engine.connect() as conn:
                if backend == "postgresql":
                    conn.execute(sa.text(f"DROP DATABASE IF EXISTS {quote(name)} WITH (FORCE)"))
                else:
                    conn.execute(sa.text(f"DROP DATABASE IF EXISTS {quote(name)}"))
    finally:
        engine.dispose()


# ---------------------------------------------------------------- plan


def _alembic_config(prepared: fetch.PreparedHistory, url: str | None = None) -> Any:
    from alembic.config import Config

    cfg = Config()
    for key, value in prepared.main_options(url).items():
        cfg.set_main_option(key, value.replace("%", "%%"))
    return cfg


def plan(prepared: fetch.PreparedHistory) -> dict[str, list[Step]]:
    """Return the step lists ``{"up": [...], "down": [...]}`` for a history.

    ``up`` upgrades to each revision in a topological order (down_revisions *and*
    depends_on before a revision; ties broken by Alembic's own walk order), so each
    step applies exactly one revision. ``down`` undoes them in reverse order, one
    revision a step; see :func:`_down_steps`.
    Call inside :func:`fetch.activated` (revision headers may import things).
    """
    from alembic.script import ScriptDirectory

    return plan_from_script(ScriptDirectory.from_config(_alembic_config(prepared)))


def plan_from_script(script: Any) -> dict[str, list[Step]]:
    """Return the :func:`plan` of a loaded script directory (Alembic's or asyncmigrate's).

    Both tools' ``ScriptDirectory`` objects answer ``walk_revisions``, ``get_revision``,
    ``_all_down_revisions`` and ``_normalized_down_revisions`` alike, so the
    asyncmigrate side computes its own plan with this function and the two plans
    are compared.
    """
    walk = list(script.walk_revisions("base", "heads"))  # heads first
    rank = {rev.revision: i for i, rev in enumerate(reversed(walk))}
    parents: dict[str, set[str]] = {}
    for rev in walk:
        deps: set[str] = set(rev._all_down_revisions)
        parents[rev.revision] = deps
    order: list[str] = []
    done: set[str] = set()
    pending = sorted(parents, key=rank.__getitem__)
    while pending:
        for rev_id in pending:
            if parents[rev_id] <= done:
                order.append(rev_id)
                done.add(rev_id)
                pending.remove(rev_id)
                break
        else:  # pragma: no cover - Alembic rejects cycles first
            raise RuntimeError(f"dependency cycle among {pending}")
    up = [("upgrade", rev_id) for rev_id in order]
    down = _down_steps(script, order, parents)
    return {"up": up, "down": down}


def _down_steps(script: Any, order: Sequence[str], parents: Mapping[str, set[str]]) -> list[Step]:
    """Return downgrade steps that remove the revisions of ``order`` last to first.

    For a revision with at most one down_revision the step is ``downgrade <rev>@-1``:
    Alembic reads it as "one step down along <rev>'s lineage from the current head",
    dropping exactly <rev> (for a base revision: down to nothing on that branch).
    A merge revision has no single step down (``<merge>@-1`` is an "Ambiguous walk"),
    so its step is ``downgrade <parent>``, which drops every applied descendant of
    <parent>'s children; we pick the parent (in down_revision order) whose applied
    descendants are exactly the merge, else the first parent.
    """
    children: dict[str, set[str]] = {rev_id: set() for rev_id in order}
    for rev_id, ups in parents.items():
        for parent in ups:
            children.setdefault(parent, set()).add(rev_id)

    def descendants(roots: set[str], applied: set[str]) -> set[str]:
        seen: set[str] = set()
        stack = [r for r in roots if r in applied]
        while stack:
            rev_id = stack.pop()
            if rev_id in seen:
                continue
            seen.add(rev_id)
            stack.extend(c for c in children.get(rev_id, ()) if c in applied)
        return seen

    steps: list[Step] = []
    applied = set(order)
    for rev_id in reversed(order):
        down_revisions = list(script.get_revision(rev_id)._normalized_down_revisions)
        if len(down_revisions) <= 1:
            steps.append(("downgrade", f"{rev_id}@-1"))
        else:
            target = down_revisions[0]
            for parent in down_revisions:
                if descendants(children.get(parent, set()), applied) == {rev_id}:
                    target = parent
                    break
            steps.append(("downgrade", target))
        applied.discard(rev_id)
    return steps


# ---------------------------------------------------------------- running


#: SQLAlchemy's DBAPI error classes: which one a driver error maps to can differ
#: between drivers (psycopg2 vs asyncpg, PyMySQL vs asyncmy).
DATABASE_ERRORS = frozenset({
    "DBAPIError", "InterfaceError", "DatabaseError", "DataError", "OperationalError",
    "IntegrityError", "InternalError", "ProgrammingError", "NotSupportedError",
})


def error_code(exc: BaseException) -> str | None:
    """Return the database's error code behind ``exc``: errno (MySQL), SQLSTATE (PostgreSQL).

    MySQL's errno comes first: both PyMySQL and asyncmy also carry a SQLSTATE, but a
    coarse one (``HY000`` for most errors).
    """
    orig = getattr(exc, "orig", None)
    if orig is None:
        return None
    if orig.args and isinstance(orig.args[0], int):
        return str(orig.args[0])
    code = getattr(orig, "pgcode", None) or getattr(orig, "sqlstate", None)
    return None if code is None else str(code)


def _error(exc: BaseException) -> dict[str, Any]:
    message = str(exc).strip()
    return {
        "error_type": type(exc).__name__,
        "code": error_code(exc),
        "message": message.splitlines()[0][:500] if message else "",
        "detail": message[:4000],
        "traceback": "".join(traceback.format_exception(exc))[-6000:],
    }


def same_error(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether two recorded errors are the same failure, across drivers.

    Database errors match on the database's error code when both have one (else on
    being database errors at all); other exceptions match on the class name.
    """
    if a["error_type"] in DATABASE_ERRORS and b["error_type"] in DATABASE_ERRORS:
        if a.get("code") and b.get("code"):
            return bool(a["code"] == b["code"])
        return True
    return bool(a["error_type"] == b["error_type"])


def _take(engine: sa.Engine, history: catalog.History) -> dict[str, Any]:
    with engine.connect() as conn:
        try:
            return snapshot(
                conn,
                version_table=history.version_table,
                version_table_schema=history.version_table_schema,
            )
        finally:
            conn.rollback()


def _run_command(cfg: Any, engine: sa.Engine, command_name: str, target: str) -> dict[str, Any]:
    from alembic import command

    started = time.perf_counter()
    error = None
    with engine.connect() as conn:
        cfg.attributes["connection"] = conn
        try:
            getattr(command, command_name)(cfg, target)
            if conn.in_transaction():
                conn.commit()
        except Exception as exc:
            error = _error(exc)
            with contextlib.suppress(Exception):
                conn.rollback()
        finally:
            cfg.attributes.pop("connection", None)
    return {"ok": error is None, "error": error, "seconds": round(time.perf_counter() - started, 4)}


def _setup(prepared: fetch.PreparedHistory, engine: sa.Engine) -> None:
    if prepared.history.setup_metadata:
        with engine.begin() as conn:
            prepared.setup(conn)


def run_history(
    name: str,
    backend: str,
    url: str,
    *,
    stepwise: bool = True,
    oneshot: bool = True,
    oneshot_url: str | None = None,
    snapshots: bool = True,
) -> dict[str, Any]:
    """Run history ``name`` with Alembic on the empty database at ``url``; return the recording.

    :param stepwise: run the ``up``/``down``/``up2`` phases one revision at a time.
    :param oneshot: also run ``upgrade heads`` / ``downgrade base`` / ``upgrade heads``
        as three single commands (timings) on ``oneshot_url`` (another empty database;
        required when both ``stepwise`` and ``oneshot`` are set).
    :param snapshots: take a snapshot after every step (else only at phase ends).
    """
    import alembic

    prepared = fetch.prepare(name)
    history = prepared.history
    recording: dict[str, Any] = {
        "history": name,
        "backend": backend,
        "tool": "alembic",
        "tool_version": alembic.__version__,
        "sqlalchemy": sa.__version__,
        "python": sys.version.split()[0],
        "artifacts": [a.requirement for a in history.artifacts],
        "failure": None,
        "failures": [],
    }
    with fetch.activated(prepared):
        try:
            steps_plan = plan(prepared)
        except Exception as exc:
            err = _error(exc)
            recording["plan_error"] = err
            recording["failure"] = {
                "phase": "plan", "index": 0, "target": None,
                "error_type": err["error_type"], "message": err["message"],
            }
            recording["failures"].append(recording["failure"])
            return recording
        recording["plan"] = {k: [list(s) for s in v] for k, v in steps_plan.items()}
        if stepwise:
            engine = sa.create_engine(url, poolclass=NullPool)
            try:
                with engine.connect() as conn:
                    recording["server_version"] = ".".join(
                        map(str, conn.dialect.server_version_info or ())
                    )
                    recording["server_flavor"] = server_flavor(conn.dialect)
                _setup(prepared, engine)
                recording["initial"] = _take(engine, history)
                _run_stepwise(prepared, engine, steps_plan, recording, snapshots)
            finally:
                engine.dispose()
        if oneshot:
            target_url = oneshot_url or url
            if stepwise and oneshot_url is None:
                raise ValueError("oneshot after stepwise needs another empty database (oneshot_url)")
            engine = sa.create_engine(target_url, poolclass=NullPool)
            try:
                _setup(prepared, engine)
                recording["oneshot"] = _run_oneshot(prepared, engine)
            finally:
                engine.dispose()
    return recording


def _run_stepwise(
    prepared: fetch.PreparedHistory,
    engine: sa.Engine,
    steps_plan: Mapping[str, Sequence[Step]],
    recording: dict[str, Any],
    snapshots: bool,
) -> None:
    history = prepared.history
    cfg = _alembic_config(prepared)
    steps: list[dict[str, Any]] = []
    phases: dict[str, Any] = {}
    recording["steps"] = steps
    recording["phases"] = phases
    for phase, key in (("up", "up"), ("down", "down"), ("up2", "up")):
        phase_steps = steps_plan[key]
        total = 0.0
        phases[phase] = {"steps": 0, "seconds": 0.0, "ok": True}
        for index, (command_name, target) in enumerate(phase_steps):
            result = _run_command(cfg, engine, command_name, target)
            total += result["seconds"]
            last = index == len(phase_steps) - 1
            step = {
                "phase": phase, "index": index, "command": command_name, "target": target,
                **result,
            }
            if snapshots or last or not result["ok"]:
                step["snapshot"] = _take(engine, history)
            steps.append(step)
            phases[phase]["steps"] = index + 1
            phases[phase]["seconds"] = round(total, 3)
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
                    # The database stays where the failed step left it; up2 goes on
                    # from there ("upgrade <applied revision>" is a no-op in Alembic).
                    break
                return


def _run_oneshot(prepared: fetch.PreparedHistory, engine: sa.Engine) -> dict[str, Any]:
    history = prepared.history
    cfg = _alembic_config(prepared)
    out: dict[str, Any] = {"snapshots": {}}
    for label, command_name, target in (
        ("upgrade_heads", "upgrade", "heads"),
        ("downgrade_base", "downgrade", "base"),
        ("upgrade_heads_again", "upgrade", "heads"),
    ):
        result = _run_command(cfg, engine, command_name, target)
        out[label] = result
        out["snapshots"][label] = _take(engine, history)
        if not result["ok"]:
            break
    return out


def record(name: str, backend: str, *, directory: str | None = None, **kwargs: Any) -> dict[str, Any]:
    """Run ``name`` on fresh scratch databases of ``backend`` and return the recording."""
    with scratch_database(backend, directory) as url, scratch_database(backend, directory) as url2:
        return run_history(name, backend, url, oneshot_url=url2, **kwargs)


# ---------------------------------------------------------------- comparing


def compare(reference: Mapping[str, Any], other: Mapping[str, Any]) -> list[str]:
    """Return the differences between two recordings of the same history, step by step.

    Compares the plan, the initial snapshot, and for each step: the command and target,
    success, the error (:func:`same_error`: database errors by their SQLSTATE/errno,
    since drivers map them to different SQLAlchemy classes; other exceptions by class),
    and the snapshot. Messages and timings are ignored. Empty list: the runs agree.
    """
    problems: list[str] = []
    if reference.get("plan") != other.get("plan"):
        problems.append("plans differ")
    problems += [f"initial: {d}" for d in diff(reference.get("initial"), other.get("initial"))]
    ref_steps = reference.get("steps", [])
    other_steps = other.get("steps", [])
    if len(ref_steps) != len(other_steps):
        problems.append(f"{len(ref_steps)} steps in the reference, {len(other_steps)} in the other run")
    for a, b in zip(ref_steps, other_steps, strict=False):
        where = f"{a['phase']}[{a['index']}] {a['command']} {a['target']}"
        if (a["command"], a["target"]) != (b["command"], b["target"]):
            problems.append(f"{where}: the other run did {b['command']} {b['target']}")
            break
        if a["ok"] != b["ok"]:
            problems.append(f"{where}: ok={a['ok']} in the reference, ok={b['ok']} in the other")
        elif not a["ok"] and not same_error(a["error"], b["error"]):
            problems.append(
                f"{where}: {a['error']['error_type']} ({a['error'].get('code')}) in the "
                f"reference, {b['error']['error_type']} ({b['error'].get('code')}) in the other"
            )
        if "snapshot" in a and "snapshot" in b:
            problems += [f"{where}: {d}" for d in diff(a["snapshot"], b["snapshot"])]
    return problems


def check_reference(history: catalog.History, rec: Mapping[str, Any]) -> list[str]:
    """Return the ways an Alembic recording departs from what the catalog expects.

    Checks: the plan covers every revision; the failed steps are exactly
    ``history.alembic_expected[backend]`` (phase, target, exception class, message
    substring); the heads are stamped after ``up``; a complete ``down`` leaves the
    initial schema and an empty version table; ``up2`` reproduces ``up`` step by step
    when ``down`` completed; the one-shot commands end where the stepwise phases end
    (or fail with the same exception class).
    """
    problems: list[str] = []
    backend = rec["backend"]
    plan_ = rec.get("plan") or {}
    for key in ("up", "down"):
        if plan_ and len(plan_[key]) != history.revision_count:
            problems.append(f"plan {key} has {len(plan_[key])} steps, catalog says "
                            f"{history.revision_count} revisions")
    expected = history.alembic_expected.get(backend, ())
    flavor = rec.get("server_flavor")
    failures = rec.get("failures", [])
    if all(e.flavor in (None, flavor) for e in expected):
        got = [(f["phase"], f["target"], f["error_type"]) for f in failures]
        want = [(e.phase, e.target, e.error_type) for e in expected]
        if got != want:
            problems.append(f"failed steps {got}, expected {want}")
        else:
            for e, f in zip(expected, failures, strict=True):
                if e.message not in f["message"] and e.message not in json.dumps(f):
                    problems.append(f"{e.target}: message {f['message']!r} lacks {e.message!r}")
    steps = rec.get("steps", [])
    by_phase = {p: [s for s in steps if s["phase"] == p] for p in ("up", "down", "up2")}
    complete = {
        p: len(by_phase[p]) == len(plan_.get("up" if p == "up2" else p, ())) > 0
        and all(s["ok"] for s in by_phase[p])
        for p in by_phase
    }
    if complete["up"]:
        version = by_phase["up"][-1]["snapshot"]["version"]
        rows = sorted(history.head_rows if history.head_rows is not None else history.heads)
        if version != rows:
            problems.append(f"after up the version table holds {version}, expected {rows}")
    if complete["down"]:
        last = by_phase["down"][-1]["snapshot"]
        vt = history.version_table
        if last["version"] not in ([], None):
            problems.append(f"after down the version table holds {last['version']}")
        left = {k: v for k, v in last["tables"].items() if k != vt}
        initial = {k: v for k, v in rec["initial"]["tables"].items() if k != vt}
        problems += [f"after down vs initial: {d}" for d in diff(initial, left, limit=10)]
        if complete["up2"]:
            for a, b in zip(by_phase["up"], by_phase["up2"], strict=True):
                found = diff(a["snapshot"], b["snapshot"], limit=5)
                if found:
                    problems.append(f"up2 differs from up after {a['target']}: {found}")
                    break
    one = rec.get("oneshot")
    if one:
        pairs = (("up", "upgrade_heads"), ("down", "downgrade_base"), ("up2", "upgrade_heads_again"))
        for phase, label in pairs:
            if label not in one:
                break
            first_failure = next((s for s in by_phase[phase] if not s["ok"]), None)
            result = one[label]
            if first_failure is None and complete[phase]:
                if not result["ok"]:
                    problems.append(f"one-shot {label} failed: {result['error']['message']}")
                    break
                found = diff(by_phase[phase][-1]["snapshot"], one["snapshots"][label], limit=5)
                if found:
                    problems.append(f"one-shot {label} ends elsewhere than stepwise {phase}: {found}")
            elif first_failure is not None:
                if result["ok"] or result["error"]["error_type"] != first_failure["error"]["error_type"]:
                    problems.append(
                        f"one-shot {label}: ok={result['ok']}, stepwise {phase} failed with "
                        f"{first_failure['error']['error_type']}"
                    )
                break
            else:
                break
    deviations = history.known_deviations.get(backend, ())
    remaining = []
    for problem in problems:
        if not any(text in problem for text, _why in deviations):
            remaining.append(problem)
    for text, _why in deviations:
        if not any(text in problem for problem in problems):
            remaining.append(f"known deviation did not occur: {text}")
    return remaining


# ---------------------------------------------------------------- cached reference runs

FRESH_ENV = "ASYNCMIGRATE_HISTORIES_FRESH"
#: (name, backend) recorded by this process: "fresh" means once per test session.
_RECORDED_HERE: set[tuple[str, str]] = set()
#: What decides a reference recording, beside the history and the server.
_SOURCES = ("alembic_side.py", "schema_snapshot.py", "fetch.py")


def _server_identity(backend: str) -> str:
    """Return the server's address, flavour and version (SQLite: the library version)."""
    if backend == "sqlite":
        import sqlite3

        return f"sqlite {sqlite3.sqlite_version}"
    url = server_url(backend)
    engine = sa.create_engine(url, poolclass=NullPool, connect_args=_timeout(backend))
    try:
        with engine.connect() as conn:
            version = ".".join(map(str, conn.dialect.server_version_info or ()))
            return f"{url.host}:{url.port} {server_flavor(conn.dialect)} {version}"
    finally:
        engine.dispose()


def fingerprint(name: str, backend: str) -> str:
    """Return a key for what a reference recording of ``name`` on ``backend`` depends on.

    Alembic, SQLAlchemy, the drivers and Python; this package's recording code
    (:data:`_SOURCES`); the history's artifacts, requirements and env.py options;
    the server (address, flavour, version). Equal keys give equal recordings (timings
    aside), so a recording can be reused instead of run again.
    """
    import hashlib
    from importlib.metadata import PackageNotFoundError, version

    history = catalog.get(name)
    parts = [name, backend, sys.version.split()[0], _server_identity(backend)]
    for package in ("alembic", "sqlalchemy", "psycopg2-binary", "pymysql"):
        try:
            parts.append(f"{package}=={version(package)}")
        except PackageNotFoundError:
            parts.append(f"{package} missing")
    here = Path(__file__).resolve().parent
    parts += [(here / source).read_text(encoding="utf-8") for source in _SOURCES]
    parts.append(repr((
        [a.requirement for a in history.artifacts], history.requirements,
        sorted(history.configure.items(), key=str), sorted(history.environ.items()),
        history.setup_metadata,
    )))
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def reference(name: str, backend: str, *, fresh: bool | None = None) -> dict[str, Any]:
    """Return Alembic's recording of ``name`` on ``backend``, from the cache when current.

    Runs ``python -m tests.histories.alembic_side run`` in a subprocess (the history's
    imports stay out of the caller) when no recording with the same :func:`fingerprint`
    is cached, or when ``fresh`` (default: ``$ASYNCMIGRATE_HISTORIES_FRESH`` set) and this
    process has not recorded it yet.
    The recording is also copied to the ``summary`` command's default path.

    :raises fetch.HistoryUnavailable: when the run reports that it cannot run (exit 3).
    :raises RuntimeError: when the run fails.
    """
    import shutil
    import subprocess

    if fresh is None:
        fresh = os.environ.get(FRESH_ENV, "").strip().lower() not in ("", "0", "no", "false")
    out = fetch.cache_root() / "recordings"
    out.mkdir(exist_ok=True)
    key = fingerprint(name, backend)
    path = out / f"{name}-{backend}-alembic.{key}.json"
    with fetch._locked(f"reference-{name}-{backend}"):
        if path.exists() and (not fresh or (name, backend) in _RECORDED_HERE):
            return dict(json.loads(path.read_text()))
        repo = Path(__file__).resolve().parents[2]
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        pythonpath = os.pathsep.join(filter(None, [str(repo), os.environ.get("PYTHONPATH")]))
        proc = subprocess.run(
            [sys.executable, "-m", "tests.histories.alembic_side", "run", name, backend,
             "--out", str(tmp)],
            cwd=repo, env={**os.environ, "PYTHONPATH": pythonpath},
            capture_output=True, text=True, check=False,
        )
        if proc.returncode == 3:
            raise fetch.HistoryUnavailable(proc.stderr.strip().removeprefix("SKIP: "))
        if proc.returncode != 0:
            raise RuntimeError(f"Alembic's run of {name} on {backend} failed:\n"
                               f"{(proc.stdout + proc.stderr)[-4000:]}")
        tmp.replace(path)
        _RECORDED_HERE.add((name, backend))
        for stale in out.glob(f"{name}-{backend}-alembic.*.json"):
            if stale != path:
                stale.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            shutil.copyfile(path, _default_out(name, backend))
        return dict(json.loads(path.read_text()))


# ---------------------------------------------------------------- command line


def _default_out(name: str, backend: str) -> Path:
    out = fetch.cache_root() / "recordings"
    out.mkdir(exist_ok=True)
    return out / f"{name}-{backend}-alembic.json"


def _cmd_run(args: argparse.Namespace) -> int:
    history = catalog.get(args.name)
    if not history.supports(args.backend):
        print(f"{args.name} does not support {args.backend}", file=sys.stderr)
        return 2
    reason = unavailable_reason(args.backend)
    if reason:
        print(f"SKIP: {reason}", file=sys.stderr)
        return 3
    try:
        if args.url:
            recording = run_history(
                args.name, args.backend, args.url, oneshot=False, snapshots=not args.no_snapshots,
            )
        else:
            recording = record(
                args.name, args.backend, snapshots=not args.no_snapshots, oneshot=not args.no_oneshot,
            )
    except fetch.HistoryUnavailable as exc:
        print(f"SKIP: {exc}", file=sys.stderr)
        return 3
    out = Path(args.out) if args.out else _default_out(args.name, args.backend)
    out.write_text(json.dumps(recording, indent=1, sort_keys=True, default=str) + "\n")
    print(_line(recording))
    print(f"recording: {out}")
    return 0


def _line(rec: Mapping[str, Any]) -> str:
    phases = rec.get("phases", {})
    parts = [f"{rec['history']:<22} {rec['backend']:<10}"]
    for phase in ("up", "down", "up2"):
        p = phases.get(phase)
        parts.append(f"{phase}={p['seconds']:.2f}s/{p['steps']}" if p else f"{phase}=-")
    one = rec.get("oneshot")
    if one:
        for label in ("upgrade_heads", "downgrade_base", "upgrade_heads_again"):
            r = one.get(label)
            parts.append(f"{label}={r['seconds']:.2f}s" if r else f"{label}=-")
    failures = rec.get("failures") or ([rec["failure"]] if rec.get("failure") else [])
    for failure in failures:
        parts.append(
            f"FAILED {failure['phase']}[{failure['index']}] {failure['target']}: "
            f"{failure['error_type']}: {failure['message'][:160]}"
        )
    if not failures:
        parts.append("ok")
    return " ".join(parts)


def _cmd_table(args: argparse.Namespace) -> int:
    import subprocess

    names = args.names or catalog.names()
    for name in names:
        history = catalog.get(name)
        for backend in history.backends:
            if args.backend and backend not in args.backend:
                continue
            out = _default_out(name, backend)
            started = time.perf_counter()
            proc = subprocess.run(
                [sys.executable, "-m", "tests.histories.alembic_side", "run", name, backend,
                 "--out", str(out), *(["--no-snapshots"] if args.no_snapshots else [])],
                capture_output=True, text=True, check=False,
            )
            wall = time.perf_counter() - started
            if proc.returncode == 0:
                print(proc.stdout.splitlines()[0] + f"  (wall {wall:.1f}s)", flush=True)
            else:
                print(f"{name:<22} {backend:<10} exit {proc.returncode}: "
                      f"{(proc.stderr or proc.stdout).strip()[-800:]}", flush=True)
    return 0


def _cmd_summary(args: argparse.Namespace) -> int:
    """Print a Markdown table of the cached recordings (timings and outcomes)."""
    rows = [
        "| history | backend | server | up / down / up2, one step a command (s, steps) "
        "| upgrade heads / downgrade base / upgrade heads (s) | Alembic's failures |",
        "|---|---|---|---|---|---|",
    ]
    for history in catalog.HISTORIES:
        for backend in history.backends:
            path = _default_out(history.name, backend)
            if not path.exists():
                continue
            rec = json.loads(path.read_text())
            phases = rec.get("phases", {})
            stepwise = " / ".join(
                f"{phases[p]['seconds']:.1f} ({phases[p]['steps']})" if p in phases else "-"
                for p in ("up", "down", "up2")
            )
            one = rec.get("oneshot", {})
            oneshot = " / ".join(
                (f"{one[k]['seconds']:.1f}" + ("" if one[k]["ok"] else " ✗")) if k in one else "-"
                for k in ("upgrade_heads", "downgrade_base", "upgrade_heads_again")
            )
            failures = "; ".join(
                f"{f['phase']} `{f['target']}`: {f['error_type']}" for f in rec.get("failures", [])
            ) or "none"
            server = f"{rec.get('server_flavor', backend)} {rec.get('server_version', '')}".strip()
            rows.append(
                f"| {history.name} | {backend} | {server} | {stepwise} | {oneshot} | {failures} |"
            )
    print("\n".join(rows))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.histories.alembic_side")
    sub = parser.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser("run", help="record one history on one backend")
    run.add_argument("name")
    run.add_argument("backend", choices=catalog.BACKENDS)
    run.add_argument("--url", help="an existing empty database (default: a scratch one)")
    run.add_argument("--out", help="where to write the recording (JSON)")
    run.add_argument("--no-snapshots", action="store_true", help="snapshot at phase ends only")
    run.add_argument("--no-oneshot", action="store_true", help="skip the one-shot timing run")
    run.set_defaults(func=_cmd_run)
    table = sub.add_parser("table", help="record every history on every backend it supports")
    table.add_argument("names", nargs="*")
    table.add_argument("--backend", action="append", choices=catalog.BACKENDS)
    table.add_argument("--no-snapshots", action="store_true")
    table.set_defaults(func=_cmd_table)
    summary_ = sub.add_parser("summary", help="Markdown table of the cached recordings")
    summary_.set_defaults(func=_cmd_summary)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
