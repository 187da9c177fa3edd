"""Open a run's own database connection sooner and with fewer round trips.

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

:class:`EarlyConnection` opens the driver connection before env.py runs, so
the server's part of connecting (a new backend process on PostgreSQL,
authentication) overlaps env.py's own start. The engine env.py then creates
takes it for its first connection only if it would open exactly the same one
(same driver arguments); otherwise it is closed unused.
"""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, Dialect, make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from .._greenlet import await_in_loop
from ..masking import get_logger

__all__ = ["EarlyConnection", "answer_first_connect"]

log = get_logger(__name__)

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


def answer_first_connect(engine: AsyncEngine, early: EarlyConnection | None = None) -> None:
    """Let ``engine``'s first connection answer SQLAlchemy's dialect questions in one query.

    Applies to PostgreSQL over asyncpg; other engines are left as they are.
    A connection ``early`` opened has asked them already.
    """
    dialect = engine.sync_engine.dialect
    if dialect.name != "postgresql" or dialect.driver != "asyncpg":
        return
    original = dialect.initialize

    def initialize(connection: Connection) -> None:
        del dialect.initialize  # once: back to the class's method
        answers = early.answers_for(connection) if early is not None else None
        if answers is None:
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
        # SQLAlchemy asks inside a transaction its adapter begins: at the server's default
        # level only when the adapter names none (SQLAlchemy 2.0 names READ COMMITTED).
        if getattr(dbapi_connection, "isolation_level", None) is not None:
            return level_from_server(dbapi_connection)
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


# Connection arguments SQLAlchemy's asyncpg adapter keeps for itself (not passed to asyncpg.connect).
_ADAPTER_KEYS = frozenset(
    {"async_creator_fn", "prepared_statement_cache_size", "prepared_statement_name_func"}
)


class EarlyConnection:
    """An asyncpg connection being opened before any engine asks for it.

    Once connected it asks, in one query, SQLAlchemy's first-connect
    questions and the version rows of the version table the command names
    (the read a run starts with): the engine that takes the connection, and
    the migration context on it, then need not ask again.
    """

    def __init__(
        self, args: tuple[Any, ...], params: dict[str, Any], version_table: tuple[str, str | None]
    ) -> None:
        self._args = args
        self._params = params
        self._version_table = version_table
        self._raw: Any = None
        self._row: Any = None
        self._opening: asyncio.Future[Any] | None = None

    @classmethod
    def start(
        cls, url: str, version_table: str, version_table_schema: str | None
    ) -> EarlyConnection | None:
        """Start connecting to ``url`` (PostgreSQL over asyncpg only; None otherwise)."""
        try:
            sa_url = make_url(url)
            dialect_cls = sa_url.get_dialect()
            if dialect_cls.name != "postgresql" or dialect_cls.driver != "asyncpg":
                return None
            args, params = dialect_cls().create_connect_args(sa_url)
        except Exception:  # a bad URL fails the usual way when env.py connects
            return None
        driver = {k: v for k, v in params.items() if k not in _ADAPTER_KEYS}
        early = cls(tuple(args), driver, (version_table, version_table_schema))
        early._opening = asyncio.ensure_future(early._open())
        return early

    async def _open(self) -> Any:
        import asyncpg  # type: ignore[import-untyped]

        from .version_table import PG_VERSION_READ

        raw = await asyncpg.connect(*self._args, **self._params)
        try:
            self._row = await raw.fetchrow(_PG_FACTS + f", ({PG_VERSION_READ})", *self._version_table)
        except asyncpg.PostgresError as exc:  # the usual questions will tell the real story
            log.debug("Could not ask the first questions at once: %s", exc)
        except BaseException:
            raw.terminate()
            raise
        self._raw = raw
        return raw

    def answers_for(self, connection: Connection) -> dict[str, Any] | None:
        """The first-connect answers, if ``connection`` is this one."""
        if self._row is None or connection.connection.driver_connection is not self._raw:
            return None
        return dict(zip(_PG_QUESTIONS, tuple(self._row)[: len(_PG_QUESTIONS)], strict=True))

    def take_version_read(
        self, connection: Connection, version_table: str, version_table_schema: str | None
    ) -> tuple[bool, str | None]:
        """The version read made on connecting, once: ``(True, xml or None if no table)``.

        ``(False, None)`` when ``connection`` is not this one, the read is
        of another table, or it was taken already.
        """
        row, self._row = self._row, None
        if (
            row is None
            or connection.connection.driver_connection is not self._raw
            or (version_table, version_table_schema) != self._version_table
        ):
            return False, None
        value: str | None = row[len(_PG_QUESTIONS)]
        return True, value

    def offer_to(self, engine: AsyncEngine) -> None:
        """Let ``engine``'s first connection be this one if it would open the same connection."""
        answer_first_connect(engine, self)

        def do_connect(dialect: Any, record: Any, cargs: list[Any], cparams: dict[str, Any]) -> None:
            opening = self._opening
            if opening is None or "async_creator_fn" in cparams:
                return
            driver = {k: v for k, v in cparams.items() if k not in _ADAPTER_KEYS}
            if tuple(cargs) != self._args or driver != self._params:
                return
            self._opening = None
            cparams["async_creator_fn"] = lambda *args, **kw: opening

        event.listen(engine.sync_engine, "do_connect", do_connect)

    async def close(self) -> None:
        """Close the connection if no engine took it."""
        opening, self._opening = self._opening, None
        self._row = None
        if opening is None:
            return
        if not opening.done():
            opening.cancel()
        await asyncio.wait([opening])
        if opening.cancelled() or opening.exception() is not None:
            return
        await opening.result().close()
