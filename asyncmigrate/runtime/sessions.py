"""Server sessions of a running migration, so a supervisor can stop them on the server.

Cancelling a task that waits on a query stops the client, not the server:
the query keeps running and its transaction keeps its locks until it ends by
itself. A :class:`SessionProbe` handed to a command (``session_probe=``)
records the server session of each migration connection; :meth:`interrupt`
cancels their current statements (the migration then fails and rolls back
normally) or terminates the sessions outright.
"""

from __future__ import annotations

import logging
from typing import Any

import anyio
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.engine.url import URL
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

__all__ = ["SessionProbe"]

log = logging.getLogger(__name__)


def _session_id(dialect: str, raw: Any) -> int | None:
    if dialect == "postgresql":
        if hasattr(raw, "get_server_pid"):  # asyncpg
            return int(raw.get_server_pid())
        info = getattr(raw, "info", None)  # psycopg 3
        return int(info.backend_pid) if info is not None else None
    if dialect in ("mysql", "mariadb"):
        thread = getattr(raw, "server_thread_id", None)
        if isinstance(thread, (tuple, list)) and thread:
            return int(thread[0])
        if callable(getattr(raw, "thread_id", None)):
            return int(raw.thread_id())
    return None


class SessionProbe:
    """Record the server sessions migrations run on; interrupt them on demand."""

    def __init__(self) -> None:
        self._sessions: list[tuple[str, URL, int]] = []

    def record(self, connection: Connection) -> None:
        """Remember the server session behind ``connection`` (PostgreSQL and MySQL)."""
        dialect = connection.dialect.name
        try:
            raw = connection.connection.driver_connection
        except Exception:  # pragma: no cover - a connection without a DBAPI connection
            return
        session = _session_id(dialect, raw)
        if session is not None:
            self._sessions.append((dialect, connection.engine.url, session))

    @property
    def sessions(self) -> list[tuple[str, int]]:
        """The recorded (dialect, session id) pairs."""
        return [(dialect, session) for dialect, _, session in self._sessions]

    async def interrupt(self, terminate: bool = False) -> int:
        """Cancel the recorded sessions' running statements (or ``terminate`` the sessions).

        Runs shielded from cancellation, so it also works while the caller is
        being cancelled. :return: how many sessions were signalled.
        """
        done = 0
        with anyio.CancelScope(shield=True):
            for dialect, url, session in self._sessions:
                if dialect == "postgresql":
                    fn = "pg_terminate_backend" if terminate else "pg_cancel_backend"
                    statement, params = f"SELECT {fn}(:pid)", {"pid": session}
                else:
                    statement, params = f"KILL {'' if terminate else 'QUERY '}{int(session)}", {}
                engine = create_async_engine(url, poolclass=NullPool)
                try:
                    with anyio.fail_after(10):
                        async with engine.connect() as conn:
                            await conn.execute(text(statement), params)
                    done += 1
                except Exception as exc:  # best effort: the session may be gone already
                    log.debug("Could not interrupt session %s: %s", session, exc)
                finally:
                    await engine.dispose()
        return done
