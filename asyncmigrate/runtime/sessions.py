"""Server sessions of a running migration, so they can be stopped from another connection.

Cancelling a task that waits on a query stops the client, not always the
server: when SQLAlchemy drops a connection whose statement was interrupted
(it invalidates it), or a driver never tells the server (MySQL), the
statement keeps running and its transaction keeps its locks -- the
migration lock included -- until it ends by itself. What stops it is a
second connection: ``pg_terminate_backend`` / ``pg_cancel_backend`` on
PostgreSQL, ``KILL`` on MySQL/MariaDB.

:func:`stop_session` does that for one session, guarded against a reused
process id (PostgreSQL: the session's client port must match too).
:class:`SessionProbe` records the sessions a command's migrations run on,
for a supervisor (the fan-out's per-tenant deadline) that must stop them.
"""

from __future__ import annotations

from typing import Any

import anyio
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.engine.url import URL
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from ..masking import get_logger
from .drivers import Driver, ServerSession, driver_for

__all__ = ["SessionProbe", "stop_session"]

log = get_logger(__name__)

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
        statement = (
            f"SELECT {fn}(pid) FROM pg_stat_activity WHERE pid = :pid "
            "AND (CAST(:port AS integer) IS NULL OR client_port = CAST(:port AS integer))"
        )
        params: dict[str, Any] = {"pid": session.pid, "port": session.client_port}
    elif session.dialect in ("mysql", "mariadb"):
        statement, params = f"KILL {'' if terminate else 'QUERY '}{int(session.pid)}", {}
    else:
        return False
    with anyio.move_on_after(timeout, shield=True):
        engine = create_async_engine(url, poolclass=NullPool)
        try:
            async with engine.connect() as conn:
                await conn.execute(text(statement), params)
                await conn.commit()
            return True
        except Exception as exc:  # best effort: the session may be gone already
            log.debug("Could not stop session %s: %s", session.pid, exc)
        finally:
            await engine.dispose()
    return False


class SessionProbe:
    """Record the server sessions migrations run on; stop them on demand."""

    def __init__(self) -> None:
        self._sessions: list[tuple[URL, ServerSession]] = []

    def record(self, connection: Connection, driver: Driver | None = None) -> None:
        """Remember the server session behind ``connection`` (PostgreSQL and MySQL)."""
        driver = driver or driver_for(connection)
        session = driver.session() if driver is not None else None
        if session is not None:
            self._sessions.append((connection.engine.url, session))

    @property
    def sessions(self) -> list[tuple[str, int]]:
        """The recorded (dialect, session id) pairs."""
        return [(session.dialect, session.pid) for _, session in self._sessions]

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
        return done
