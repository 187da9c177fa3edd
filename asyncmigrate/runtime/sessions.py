"""Server sessions of a running migration, so they can be stopped from another connection.

Cancelling a task that waits on a query stops the client, not always the
server: when SQLAlchemy drops a connection whose statement was interrupted
(it invalidates it), or a driver never tells the server (MySQL), the
statement keeps running and its transaction keeps its locks -- the
migration lock included -- until it ends by itself. What stops it is a
second connection: ``pg_terminate_backend`` / ``pg_cancel_backend`` on
PostgreSQL, ``KILL`` on MySQL/MariaDB.

:func:`stop_session` does that for one session, guarded against a reused
process id: the session must be in the same database under the same user
(PostgreSQL; the client port is no guard, since a proxy or NAT between
client and server changes it).
:class:`SessionProbe` records the sessions a command's migrations run on,
for a supervisor (the fan-out's per-tenant deadline) that must stop them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import anyio
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.engine.url import URL
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from ..masking import get_logger
from .drivers import Driver, ServerSession, driver_for

__all__ = ["SessionProbe", "SessionState", "session_state", "stop_session"]

log = get_logger(__name__)

#: The session with process id ``:pid`` in the same database under the same user.
_PG_SAME_SESSION = "pid = :pid AND datname = current_database() AND usename = current_user"

#: Seconds allowed for reaching the server to stop a session.
STOP_TIMEOUT = 10.0


async def stop_session(
    url: URL | str, session: ServerSession, terminate: bool = True, timeout: float = STOP_TIMEOUT
) -> bool:
    """Stop ``session``'s statement (or, with ``terminate``, the whole session) from a new connection.

    Shielded from cancellation and bounded by ``timeout`` seconds; best
    effort (the session may be gone already). Returns whether the server
    was reached.
    """
    if session.dialect == "postgresql":
        fn = "pg_terminate_backend" if terminate else "pg_cancel_backend"
        statement = f"SELECT {fn}(pid) FROM pg_stat_activity WHERE {_PG_SAME_SESSION}"
        params: dict[str, Any] = {"pid": session.pid}
    elif session.dialect in ("mysql", "mariadb"):
        statement, params = f"KILL {'' if terminate else 'QUERY '}{int(session.pid)}", {}
    else:
        return False
    reached, _ = await _on_new_connection(url, statement, params, timeout, f"stop session {session.pid}")
    return reached


async def _on_new_connection(
    url: URL | str, statement: str, params: dict[str, Any], timeout: float, what: str
) -> tuple[bool, tuple[Any, ...] | None]:
    """Run ``statement`` over a new connection to ``url``: whether the server was reached, and its first row.

    Shielded from cancellation and bounded by ``timeout`` seconds; an
    error is only logged (``Could not <what>``), as the server not reached.
    """
    with anyio.move_on_after(timeout, shield=True):
        engine = create_async_engine(url, poolclass=NullPool)
        try:
            async with engine.connect() as conn:
                result = await conn.execute(text(statement), params)
                first = result.first() if result.returns_rows else None
                row = tuple(first) if first is not None else None
                await conn.commit()
            return True, row
        except Exception as exc:  # best effort: the session may be gone, the server down
            log.debug("Could not %s: %s", what, exc)
        finally:
            await engine.dispose()
    return False, None


@dataclass(frozen=True)
class SessionState:
    """What the server says a session is doing, seen from another connection."""

    running: bool
    """Whether it is executing a statement (or waiting for a lock inside one)."""
    idle_for: float
    """Seconds since it last started or finished a statement (infinite when it is gone)."""

    @property
    def gone(self) -> bool:
        """Whether the session no longer exists on the server."""
        return self.idle_for == float("inf")


async def session_state(url: URL | str, session: ServerSession, timeout: float) -> SessionState | None:
    """Ask the server, over a new connection, what ``session`` is doing.

    Shielded from cancellation and bounded by ``timeout`` seconds. None when
    the server cannot be reached (or does not answer) in that time.
    """
    if session.dialect == "postgresql":
        statement = (
            "SELECT state = 'active' OR state LIKE 'fastpath%', "
            "EXTRACT(EPOCH FROM clock_timestamp() - state_change) "
            f"FROM pg_stat_activity WHERE {_PG_SAME_SESSION}"
        )
        params: dict[str, Any] = {"pid": session.pid}
    elif session.dialect in ("mysql", "mariadb"):
        statement = "SELECT COMMAND <> 'Sleep', TIME FROM information_schema.PROCESSLIST WHERE ID = :pid"
        params = {"pid": session.pid}
    else:
        return None
    reached, row = await _on_new_connection(
        url, statement, params, timeout, f"read the state of session {session.pid}"
    )
    if not reached:
        return None
    if row is None:
        return SessionState(running=False, idle_for=float("inf"))
    return SessionState(running=bool(row[0]), idle_for=float(row[1] or 0))


class SessionProbe:
    """Record the server sessions migrations run on; stop them on demand."""

    def __init__(self) -> None:
        self._sessions: list[tuple[URL, ServerSession]] = []
        #: Whether :meth:`interrupt` terminated a recorded session: its connection is dead.
        self.terminated = False
        #: ``time.monotonic()`` past which the run's clean-up may not wait on the server
        #: (set when the run's deadline passed: the rest of its clean-up shares what is left).
        self.cleanup_deadline: float | None = None
        #: Whether the sessions could be neither cancelled nor ended (the server is unreachable).
        self.unanswered = False

    def cleanup_budget(self, limit: float) -> float:
        """Seconds a clean-up step may wait now: ``limit``, or less once the deadline is set."""
        if self.cleanup_deadline is None:
            return limit
        return max(0.0, min(limit, self.cleanup_deadline - time.monotonic()))

    def record(self, connection: Connection, driver: Driver | None = None) -> None:
        """Remember the server session behind ``connection`` (PostgreSQL and MySQL)."""
        driver = driver or driver_for(connection)
        session = driver.session() if driver is not None else None
        if session is not None:
            self._sessions.append((connection.engine.url, session))

    def forget(self) -> None:
        """Start over for a new attempt: the recorded sessions are gone."""
        self._sessions.clear()
        self.terminated = False

    @property
    def sessions(self) -> list[tuple[str, int]]:
        """The recorded (dialect, session id) pairs."""
        return [(session.dialect, session.pid) for _, session in self._sessions]

    async def states(self, timeout: float) -> list[SessionState | None]:
        """The server's view of every recorded session (None where it could not be reached)."""
        return [await session_state(url, session, timeout) for url, session in self._sessions]

    async def interrupt(self, terminate: bool = False, timeout: float = STOP_TIMEOUT) -> int:
        """Cancel the recorded sessions' running statements (or ``terminate`` the sessions).

        Runs shielded from cancellation, so it also works while the caller is
        being cancelled, and takes at most ``timeout`` seconds in all.
        :return: how many sessions were signalled.
        """
        done = 0
        deadline = anyio.current_time() + timeout
        for url, session in self._sessions:
            left = deadline - anyio.current_time()
            if left <= 0:
                break
            if await stop_session(url, session, terminate=terminate, timeout=left):
                done += 1
        self.terminated = self.terminated or (terminate and done > 0)
        return done
