"""How long a step may wait for a table lock or run a statement, and retrying a step that waited too long.

On a live PostgreSQL database almost every DDL statement takes an ACCESS
EXCLUSIVE lock. A migration that waits behind one long query blocks every
query queued after it, for as long as it waits. A *step lock timeout* bounds
that wait: the statement gives up, the step's transaction rolls back (the
application's queries go through), and after a pause with jitter the step is
tried again, up to a number of retries. The last failure names the sessions
holding the lock, their query and how long they have held it.

Options, in ``alembic.ini`` / ``[tool.asyncmigrate]``, as ``context.configure``
keywords in env.py, or as module-level names in one revision file (which
then apply to that revision only):

``step_lock_timeout``
    How long one statement may wait for a lock (``5s``, ``500ms``, ``2min``;
    a bare number is seconds). PostgreSQL ``lock_timeout``; MySQL/MariaDB
    ``lock_wait_timeout`` and ``innodb_lock_wait_timeout`` (whole seconds,
    rounded up).
``step_statement_timeout``
    How long one statement may run. PostgreSQL ``statement_timeout``;
    MariaDB ``max_statement_time``; MySQL has no equivalent for DDL.
``step_retries``
    How many times a step that hit the lock timeout is tried again (default 0).
``step_retry_delay``
    The pause before the first retry (default ``1s``); each further pause
    doubles it, up to a minute, and is jittered (between half and all of it)
    so replicas do not retry in step.

None of them is set by default: a project switching from Alembic keeps
Alembic's behaviour (wait as long as the server lets it) until it opts in.
SQLite has no lock wait to bound; the options do nothing there.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from ..exceptions import ConfigError

__all__ = [
    "OPTION_NAMES",
    "StepTimeouts",
    "is_lock_timeout",
    "is_statement_timeout",
    "lock_holders",
    "parse_duration",
]

#: The option names, the same in config files, ``configure`` and revision files.
OPTION_NAMES = ("step_lock_timeout", "step_statement_timeout", "step_retries", "step_retry_delay")

_UNITS = {"ms": 0.001, "s": 1.0, "sec": 1.0, "min": 60.0, "m": 60.0, "h": 3600.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$")
_MAX_PAUSE = 60.0


def parse_seconds(value: Any, name: str, default: float) -> float | None:
    """Read a plain seconds option (``connect_timeout``, ``read_timeout``).

    Unset or empty gives ``default``; ``0`` means no limit (None).

    :raises ConfigError: for anything but a non-negative number.
    """
    if value is None or value == "":
        return default
    try:
        seconds = float(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name} must be a number of seconds, not {value!r}") from exc
    if math.isnan(seconds) or seconds < 0:
        raise ConfigError(f"{name} must be a number of seconds, not {value!r}")
    return seconds if seconds > 0 else None


def parse_duration(value: Any, name: str) -> float | None:
    """Read a duration option (``5s``, ``500ms``, ``2min``, ``1h``, or seconds) as seconds.

    ``None``, ``""``, ``0`` and ``off`` mean no limit.

    :raises ConfigError: for anything else.
    """
    if value is None or isinstance(value, bool):
        if isinstance(value, bool):
            raise ConfigError(f"{name} must be a duration such as 5s or 500ms, not {value!r}")
        return None
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        raw = str(value).strip().lower()
        if raw in ("", "off", "none"):
            return None
        match = _DURATION.match(raw)
        if match is None or match.group(2) not in ("", *_UNITS):
            raise ConfigError(f"{name} must be a duration such as 5s, 500ms or 2min, not {value!r}")
        seconds = float(match.group(1)) * _UNITS.get(match.group(2), 1.0)
    if seconds < 0 or math.isnan(seconds) or math.isinf(seconds):
        raise ConfigError(f"{name} must be a positive duration, not {value!r}")
    return seconds or None


def _parse_count(value: Any, name: str) -> int:
    if value is None or value == "":
        return 0
    try:
        count = int(str(value).strip())
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, not {value!r}") from None
    if count < 0:
        raise ConfigError(f"{name} must not be negative, not {value!r}")
    return count


@dataclass(frozen=True)
class StepTimeouts:
    """The limits one step runs under, and its retry policy."""

    lock_timeout: float | None = None
    """Seconds one statement may wait for a lock (None: the server's setting)."""
    statement_timeout: float | None = None
    """Seconds one statement may run (None: the server's setting)."""
    retries: int = 0
    """Further attempts after a lock timeout."""
    retry_delay: float = 1.0
    """The first pause between attempts, in seconds."""

    @classmethod
    def from_options(cls, options: Any) -> StepTimeouts:
        """Read the options from a mapping (context options, a config section)."""
        return cls()._with(lambda name: options.get(name))

    def for_revision(self, module: Any) -> StepTimeouts:
        """These limits with a revision file's own ``step_*`` names applied."""
        if module is None:
            return self
        return self._with(lambda name: getattr(module, name, None), keep=True)

    def _with(self, get: Any, keep: bool = False) -> StepTimeouts:
        values: dict[str, Any] = {}
        for name in OPTION_NAMES:
            raw = get(name)
            if raw is None and keep:
                continue
            field = name.removeprefix("step_")
            if name == "step_retries":
                values[field] = _parse_count(raw, name)
            elif name == "step_retry_delay":
                delay = parse_duration(raw, name)
                values[field] = 1.0 if delay is None and raw is None else (delay or 0.0)
            else:
                values[field] = parse_duration(raw, name)
        return replace(self, **values)

    @property
    def limited(self) -> bool:
        """Whether any limit is set (else the step runs as Alembic runs it)."""
        return self.lock_timeout is not None or self.statement_timeout is not None

    def pause(self, attempt: int) -> float:
        """Seconds to wait before attempt ``attempt + 1``: doubling, capped, jittered."""
        base = min(self.retry_delay * 2 ** (attempt - 1), _MAX_PAUSE)
        return random.uniform(base / 2, base)

    def settings_sql(self, dialect_name: str, mariadb: bool) -> list[str]:
        """The statements that put these limits on the step's transaction (or session)."""
        if dialect_name == "postgresql":
            # SET LOCAL both, in one round trip; "the default" is the session's reset value.
            return [
                "SELECT "
                + ", ".join(
                    f"set_config('{name}', {_pg_ms(value, name)}, true)"
                    for name, value in (("lock_timeout", self.lock_timeout),
                                        ("statement_timeout", self.statement_timeout))
                )
            ]
        if dialect_name in ("mysql", "mariadb"):
            wait = "DEFAULT" if self.lock_timeout is None else str(max(1, math.ceil(self.lock_timeout)))
            settings = [f"lock_wait_timeout = {wait}", f"innodb_lock_wait_timeout = {wait}"]
            if mariadb:
                run = "DEFAULT" if self.statement_timeout is None else f"{self.statement_timeout:g}"
                settings.append(f"max_statement_time = {run}")
            return ["SET SESSION " + ", ".join(settings)]  # one round trip
        return []

    def script_sql(self, dialect_name: str, mariadb: bool) -> list[str]:
        """The same limits as statements for an offline script (``--sql``), readable by a reviewer."""
        if dialect_name == "postgresql":
            return [
                f"SET LOCAL {name} = {_pg_ms(value, name)}" if value is not None
                else f"SET LOCAL {name} TO DEFAULT"
                for name, value in (("lock_timeout", self.lock_timeout),
                                    ("statement_timeout", self.statement_timeout))
            ]
        return self.settings_sql(dialect_name, mariadb)

    def describe_lock_timeout(self) -> str:
        """The lock timeout as a user wrote it, roughly (``5s``, ``500ms``)."""
        seconds = self.lock_timeout or 0.0
        return f"{seconds * 1000:.0f}ms" if seconds < 1 else f"{seconds:g}s"


def session_reset_sql(dialect_name: str, mariadb: bool) -> list[str]:
    """What returns a MySQL/MariaDB session's limits to the server's defaults.

    PostgreSQL's ``SET LOCAL`` ends with its transaction; nothing to undo.
    """
    if dialect_name in ("mysql", "mariadb"):
        return StepTimeouts().settings_sql(dialect_name, mariadb)
    return []


def _pg_ms(seconds: float | None, name: str) -> str:
    if seconds is None:
        return f"(SELECT reset_val FROM pg_settings WHERE name = '{name}')"
    return f"'{max(1, round(seconds * 1000))}ms'"


def _codes(exc: BaseException) -> tuple[str | None, int | None]:
    """The SQLSTATE (PostgreSQL) and error number (MySQL) of a database error, where known."""
    orig: Any = exc.orig if isinstance(exc, DBAPIError) else exc
    sqlstate = None
    for candidate in (orig, getattr(orig, "__cause__", None)):
        sqlstate = getattr(candidate, "pgcode", None) or getattr(candidate, "sqlstate", None)
        if sqlstate:
            break
    number = None
    args = getattr(orig, "args", ())
    if args and isinstance(args[0], int):
        number = args[0]
    return sqlstate, number


def is_lock_timeout(exc: BaseException) -> bool:
    """Whether ``exc`` is a statement giving up waiting for a lock (PostgreSQL 55P03, MySQL 1205)."""
    sqlstate, number = _codes(exc)
    return sqlstate == "55P03" or number == 1205


def is_statement_timeout(exc: BaseException) -> bool:
    """Whether ``exc`` is a statement stopped by the statement timeout."""
    sqlstate, number = _codes(exc)
    if sqlstate == "57014":
        return "statement timeout" in str(exc)
    return number in (1969, 3024)


_PG_HOLDERS = """
SELECT DISTINCT ON (l.pid) l.pid, a.usename, host(a.client_addr), a.state,
       EXTRACT(EPOCH FROM now() - COALESCE(a.xact_start, a.query_start))::float8,
       a.query, l.mode, c.relname
FROM pg_locks l
JOIN pg_stat_activity a ON a.pid = l.pid
LEFT JOIN pg_class c ON c.oid = l.relation
WHERE l.granted AND l.pid <> pg_backend_pid() AND l.locktype = 'relation'
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND {which}
ORDER BY l.pid, COALESCE(a.xact_start, a.query_start)
"""

_MYSQL_HOLDERS = """
SELECT p.id, p.user, p.host, p.command, t.trx_started, TIMESTAMPDIFF(SECOND, t.trx_started, NOW()),
       COALESCE(p.info, t.trx_query)
FROM information_schema.innodb_trx t
JOIN information_schema.processlist p ON p.id = t.trx_mysql_thread_id
WHERE p.id <> CONNECTION_ID()
ORDER BY t.trx_started
"""


def lock_holders(connection: Connection, statement: str | None, limit: int = 3) -> list[str]:
    """Describe the sessions holding locks the failed ``statement`` waited for, oldest first.

    Run after the step's transaction has rolled back, on its connection.
    PostgreSQL: the sessions holding a lock on a table the statement names
    (read with PostgreSQL's own parser), else on any table of the database.
    MySQL/MariaDB: the sessions with an open transaction. Best effort: an
    empty list when the server does not say.
    """
    name = connection.dialect.name
    try:
        if name == "postgresql":
            tables = _tables_named(statement or "")
            if tables:
                which = "l.relation IN (SELECT to_regclass(n) FROM unnest(CAST(:tables AS text[])) AS n)"
                rows = connection.execute(text(_PG_HOLDERS.format(which=which)), {"tables": tables})
            else:
                rows = connection.execute(text(_PG_HOLDERS.format(which="TRUE")))
            found = sorted(rows.all(), key=lambda r: -(r[4] or 0.0))
            return [
                f"pid {pid} ({user or '?'}{'@' + addr if addr else ''}, {state or '?'} for "
                f"{_age(age)}, {mode} on {table or '?'}: {_short(query)})"
                for pid, user, addr, state, age, query, mode, table in found[:limit]
            ]
        if name in ("mysql", "mariadb"):
            rows = connection.execute(text(_MYSQL_HOLDERS))
            return [
                f"connection {pid} ({user}@{host}, transaction open for {_age(age)}, "
                f"{command.lower() if command else '?'}: {_short(query)})"
                for pid, user, host, command, _started, age, query in rows.all()[:limit]
            ]
    except Exception:  # the description is a courtesy; the step's error stands without it
        if connection.in_transaction():
            connection.rollback()
    finally:
        if connection.in_transaction():
            connection.commit()
    return []


def _tables_named(statement: str) -> list[str]:
    """The tables a PostgreSQL statement names, as ``schema.table`` text for ``to_regclass``."""
    try:
        from pglast import parse_sql
        from pglast.visitors import Visitor
    except ImportError:  # pragma: no cover - pglast is a dependency
        return []

    found: list[str] = []

    class Tables(Visitor):
        def visit_RangeVar(self, ancestors: Any, node: Any) -> None:
            parts = [p for p in (node.schemaname, node.relname) if p]
            found.append(".".join('"' + p.replace('"', '""') + '"' for p in parts))

    try:
        Tables()(parse_sql(statement))
    except Exception:
        return []
    return list(dict.fromkeys(found))


def _age(seconds: Any) -> str:
    if seconds is None:
        return "?"
    seconds = float(seconds)
    return f"{seconds:.1f}s" if seconds < 120 else f"{seconds / 60:.0f}min"


def _short(query: Any) -> str:
    shown = " ".join(str(query or "").split()) or "no query"
    return shown if len(shown) <= 80 else shown[:77] + "..."
