"""MySQL/MariaDB: the plain path, plus the server session and how to stop its statement.

Nothing is folded: statements go through SQLAlchemy one by one, as Alembic
sends them. What this adds is what a cancelled migration needs: the
session's thread id, and ``KILL QUERY`` sent from a second connection (the
drivers do not cancel a statement on the server when the client stops
waiting for it).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from ..._greenlet import await_in_loop, in_loop_greenlet
from ...masking import get_logger
from . import Driver, ServerSession

__all__ = ["MySQLDriver", "kill"]

log = get_logger(__name__)


class MySQLDriver(Driver):
    """The plain path over MySQL/MariaDB drivers, with session identity and ``KILL QUERY``."""

    name = "mysql"

    def session(self) -> ServerSession | None:
        try:
            raw: Any = self.connection.connection.driver_connection
        except Exception:  # pragma: no cover - a connection without a DBAPI connection
            return None
        thread = getattr(raw, "server_thread_id", None)  # asyncmy
        if isinstance(thread, (tuple, list)) and thread:
            return ServerSession(self.connection.dialect.name, int(thread[0]))
        if callable(getattr(raw, "thread_id", None)):  # pymysql, mysqlclient
            return ServerSession(self.connection.dialect.name, int(raw.thread_id()))
        return None

    def interrupt(self) -> None:
        session = self.session()
        if session is None or not in_loop_greenlet():
            return
        await_in_loop(kill(self.connection.engine.url, session, query_only=True))


async def kill(url: Any, session: ServerSession, query_only: bool) -> bool:
    """Stop ``session``'s statement (or end the session) from a new connection; best effort."""
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            await conn.execute(text(f"KILL {'QUERY ' if query_only else ''}{int(session.pid)}"))
        return True
    except Exception as exc:  # the session may be gone already
        log.debug("Could not interrupt MySQL session %s: %s", session.pid, exc)
        return False
    finally:
        await engine.dispose()
