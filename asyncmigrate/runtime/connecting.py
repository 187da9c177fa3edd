"""Open a run's own database connection with fewer round trips.

A new SQLAlchemy engine asks the server a few questions on its first
connection (``Dialect.initialize``): its version, the default schema, the
isolation level, how string literals are quoted. Over asyncpg each question
is a prepared statement, two round trips, and they run inside a ``BEGIN`` /
``ROLLBACK`` of their own: ten round trips before the first statement of a
migration, on every command that opens its own engine.

:func:`answer_first_connect` asks the same questions of the server in one
query and lets SQLAlchemy's own ``initialize`` read the answers: it still
decides everything it decides from them (the version parsed its way, its
flags set its way). A question it asks that this module does not know goes
to the server as before, so a newer SQLAlchemy that asks more is only slower,
never wrong. Only engines asyncmigrate creates itself get this.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.ext.asyncio import AsyncEngine

from .._greenlet import await_in_loop

__all__ = ["answer_first_connect"]

log = logging.getLogger(__name__)

# What PostgreSQL's dialect asks on the first connection, each answered by a column of _PG_FACTS.
_PG_QUESTIONS = (
    "select pg_catalog.version()",
    "select current_schema()",
    "show transaction isolation level",
    "show standard_conforming_strings",
)
_PG_FACTS = (
    "SELECT pg_catalog.version(), current_schema(), "
    "current_setting('transaction_isolation'), current_setting('standard_conforming_strings')"
)


def answer_first_connect(engine: AsyncEngine) -> None:
    """Let ``engine``'s first connection answer SQLAlchemy's dialect questions in one query.

    Applies to PostgreSQL over asyncpg; other engines are left as they are.
    """
    dialect = engine.sync_engine.dialect
    if dialect.name != "postgresql" or dialect.driver != "asyncpg":
        return
    original = dialect.initialize

    def initialize(connection: Connection) -> None:
        del dialect.initialize  # once: back to the class's method
        answers = _ask(connection)
        if answers is None:
            original(connection)
            return
        _initialize_with(dialect, original, connection, answers)

    dialect.initialize = initialize  # type: ignore[method-assign]


def _ask(connection: Connection) -> dict[str, Any] | None:
    """The answers to :data:`_PG_QUESTIONS` from one query, or None if it could not run."""
    try:
        raw = connection.connection.driver_connection
        row = await_in_loop(raw.fetchrow(_PG_FACTS))  # type: ignore[union-attr]
    except Exception as exc:  # the usual questions will tell the real story
        log.debug("Could not ask the first-connect questions at once: %s", exc)
        return None
    return dict(zip(_PG_QUESTIONS, tuple(row), strict=True))


class _Scalar:
    """Just enough of a result for ``exec_driver_sql(...).scalar()``."""

    def __init__(self, value: Any) -> None:
        self._value = value

    def scalar(self) -> Any:
        return self._value


class _AnsweringCursor:
    """A DBAPI cursor that answers the known questions from memory."""

    def __init__(self, answers: dict[str, Any]) -> None:
        self._answers = answers
        self._row: tuple[Any, ...] | None = None

    def execute(self, statement: str, parameters: Any = None) -> None:
        if parameters or statement not in self._answers:
            raise _Unanswered(statement)
        self._row = (self._answers[statement],)

    def fetchone(self) -> tuple[Any, ...] | None:
        row, self._row = self._row, None
        return row

    def close(self) -> None:
        self._row = None


class _AnsweringDBAPIConnection:
    def __init__(self, answers: dict[str, Any]) -> None:
        self._answers = answers

    def cursor(self) -> _AnsweringCursor:
        return _AnsweringCursor(self._answers)


class _Unanswered(Exception):
    """A question this module has no answer for: ask the server."""


def _initialize_with(
    dialect: Dialect, original: Any, connection: Connection, answers: dict[str, Any]
) -> None:
    """Run SQLAlchemy's ``initialize`` with the known questions answered from ``answers``."""
    ask_server = connection.exec_driver_sql
    level_from_server = dialect.get_default_isolation_level

    def exec_driver_sql(statement: str, parameters: Any = None, execution_options: Any = None) -> Any:
        if parameters is None and execution_options is None and statement in answers:
            return _Scalar(answers[statement])
        return ask_server(statement, parameters, execution_options)

    def get_default_isolation_level(dbapi_connection: Any) -> Any:
        try:
            return level_from_server(_AnsweringDBAPIConnection(answers))  # type: ignore[arg-type]
        except _Unanswered:
            return level_from_server(dbapi_connection)

    connection.exec_driver_sql = exec_driver_sql  # type: ignore[method-assign]
    dialect.get_default_isolation_level = get_default_isolation_level  # type: ignore[method-assign,assignment]
    try:
        original(connection)
    finally:
        del connection.exec_driver_sql
        del dialect.get_default_isolation_level
