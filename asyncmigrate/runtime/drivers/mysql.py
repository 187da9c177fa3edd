"""MySQL/MariaDB: the plain path, plus the server session and how to stop its statement.

Nothing is folded: statements go through SQLAlchemy one by one, as Alembic
sends them. What this adds is what a cancelled migration needs: the
session's thread id, and ``KILL QUERY`` sent from a second connection (the
drivers do not cancel a statement on the server when the client stops
waiting for it).
"""

from __future__ import annotations

from typing import Any

from ..._greenlet import await_in_loop, in_loop_greenlet
from ..sessions import stop_session
from . import Driver, ServerSession

__all__ = ["MySQLDriver"]


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
        await_in_loop(stop_session(self.connection.engine.url, session, terminate=False))
