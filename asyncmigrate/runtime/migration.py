"""The sync migration context: one connection (or SQL buffer), its transactions, the run loop.

This is the sync core of the "sync core, async shell" design. It runs inside
``AsyncConnection.run_sync`` (a greenlet), so every database call it makes
yields to the event loop.

What happens when step 3 fails, in order (all in this module):

1. the step's statement raises where the migration issued it, naming that
   statement (statements are sent one at a time, see ``statements.py``);
2. :meth:`MigrationContext._run_step` reports the step failed
   (``steps.StepLedger.fail``) and raises :class:`MigrationError`;
3. the transaction holding it rolls back (``_ProxyTransaction.__exit__`` →
   :meth:`MigrationContext._roll_back`): finished steps of that transaction
   are reported rolled back, the error says which revisions the database is
   still at, and on MySQL which of the step's statements had already
   committed themselves;
4. the migration lock is given back (or, if that fails, the connection is
   invalidated) when the outermost transaction ends.

If the task is cancelled instead (Ctrl-C, SIGTERM, a lifespan shutdown, a
deadline), steps 3 and 4 run shielded from the cancellation and bounded in
time; if they cannot complete, the server session is stopped from another
connection (:mod:`asyncmigrate.runtime.sessions`) and the connection is
invalidated, so no statement keeps running and no lock stays held.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext, suppress
from types import ModuleType
from typing import TYPE_CHECKING, Any, TextIO

from sqlalchemy import event
from sqlalchemy.engine import Connection, Dialect, Engine, Transaction
from sqlalchemy.engine.mock import MockConnection
from sqlalchemy.engine.url import URL, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.expression import Executable

from .._greenlet import await_in_loop, run_shielded, sleep, to_thread
from ..ddl import impl_for_dialect
from ..events import StepEvent
from ..exceptions import CommandError, ConfigError, MigrationError, VersionTableError
from ..masking import get_logger
from ..revision.graph import recorded_heads
from ..revision.plan import MigrationStep, RevisionStep, VersionChange
from .drivers import Driver, Statement, driver_for, translated_schema
from .drivers.mysql_notes import expect_existing
from .history import HistoryRecorder
from .local import bind_operations
from .locking import DEFAULT_LOCK_TIMEOUT, LockHold, lock_for
from .sessions import stop_session
from .statements import RawStatements
from .steps import RunRecord, StepLedger, StepRecord
from .timeouts import StepTimeouts, is_lock_timeout, lock_holders, session_reset_sql
from .version_table import PG_VERSION_READ, VersionTable, decode_pg_versions

if TYPE_CHECKING:
    from ..config import Config
    from ..script import ScriptDirectory
    from .environment import EnvironmentContext

__all__ = ["PG_VERSION_READ", "MigrationContext", "RunRecord"]

log = get_logger("asyncmigrate.runtime.migration")

#: ``fn(heads, context)`` returns the steps a command wants run against those heads.
MigrationsFn = Callable[[tuple[str, ...], "MigrationContext"], Iterable[MigrationStep]]

#: Seconds a cancelled run gets to roll back and give its lock back before its session is stopped.
CLEANUP_TIMEOUT = 10.0


class _ProxyTransaction:
    """A transaction begun by :meth:`MigrationContext.begin_transaction`."""

    def __init__(self, context: MigrationContext, outer: bool) -> None:
        self.context = context
        self.outer = outer

    @property
    def _transaction(self) -> Transaction | None:
        return self.context._transaction

    def rollback(self) -> None:
        """Roll back now."""
        transaction, self.context._transaction = self.context._transaction, None
        if transaction is not None:
            self.context._roll_back(transaction, interrupted=False)

    def commit(self) -> None:
        """Commit now."""
        transaction, self.context._transaction = self.context._transaction, None
        if transaction is not None:
            self.context._commit(transaction, release_lock=False)

    def __enter__(self) -> _ProxyTransaction:
        if self.outer:
            self.context._outer_depth += 1
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        context = self.context
        interrupted = exc_type is not None and not issubclass(exc_type, Exception)
        try:
            transaction, context._transaction = context._transaction, None
            if transaction is not None:
                if exc_type is None and transaction.is_active:
                    context._commit(transaction, release_lock=self.outer and context._outer_depth == 1)
                else:
                    context._roll_back(transaction, interrupted, exc)
        finally:
            if self.outer:
                context._outer_depth -= 1
                if context._outer_depth == 0:
                    context._release_lock(interrupted)


class _OuterMarker:
    """Track the env.py-level ``begin_transaction`` when it opens no transaction itself."""

    def __init__(self, context: MigrationContext) -> None:
        self.context = context

    def __enter__(self) -> None:
        self.context._outer_depth += 1

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.context._outer_depth -= 1
        if self.context._outer_depth == 0:
            self.context._release_lock(exc_type is not None and not issubclass(exc_type, Exception))


class MigrationContext:
    """Hold the database side of one migration run.

    It owns the connection (or, offline, the SQL output buffer), the
    transaction boundaries and the loop that runs plan steps. It leaves the
    version rows to :class:`~asyncmigrate.runtime.version_table.VersionTable`,
    step bookkeeping and events to :class:`~asyncmigrate.runtime.steps.StepLedger`,
    the lock to :mod:`~asyncmigrate.runtime.locking`, how statements travel
    to a driver adapter, what a step changes to the revision's
    ``upgrade()``/``downgrade()`` and how each change becomes SQL to the
    dialect implementation.
    """

    def __init__(
        self,
        dialect: Dialect,
        connection: Connection | None,
        opts: dict[str, Any],
        environment_context: EnvironmentContext | None = None,
    ) -> None:
        self.environment_context = environment_context
        # The revision modules of this run (its environment's, shared by a multi-database env.py).
        self._revision_modules: dict[str, ModuleType] = (
            environment_context.revision_modules if environment_context is not None else {}
        )
        self.opts = opts
        self.dialect = dialect
        self.script: ScriptDirectory | None = opts.get("script")
        self.as_sql: bool = bool(opts.get("as_sql", False))
        self._transaction_per_migration = bool(opts.get("transaction_per_migration", False))
        self.on_version_apply_callbacks: tuple[Callable[..., Any], ...] = tuple(
            opts.get("on_version_apply", ()) or ()
        )
        self._on_step: Callable[[StepEvent], None] | None = opts.get("on_step")
        self._transaction: Transaction | None = None
        self._outer_depth = 0
        self.output_buffer: TextIO = opts.get("output_buffer") or sys.stdout
        if self.as_sql:
            self.connection: Connection | None = self._stdout_connection()
            self._in_external_transaction = False
        else:
            if connection is None:
                raise CommandError("An online migration needs a connection")
            self.connection = connection
            self._in_external_transaction = connection.in_transaction()
        self._migrations_fn: MigrationsFn | None = opts.get("fn")
        self.purge = bool(opts.get("purge", False))
        #: The tenant's schema in a schema-per-tenant set-up (see :mod:`asyncmigrate.tenants`).
        self.tenant_schema: str | None = opts.get("tenant_schema")
        if self.tenant_schema is not None:
            from ..tenants.model import check_identifier

            check_identifier(self.tenant_schema, "schema")
        self._start_from_rev: str | Sequence[str] | None = opts.get("starting_rev")
        self.impl = impl_for_dialect(dialect)(
            dialect,
            self.connection,
            self.as_sql,
            opts.get("transactional_ddl"),
            self.output_buffer,
            opts,
        )
        self.version = VersionTable(
            self.impl,
            opts.get("version_table", "alembic_version"),
            opts.get("version_table_schema") or self.tenant_schema,
            bool(opts.get("version_table_pk", True)),
        )
        self.driver: Driver | None = None if self.as_sql else driver_for(self.connection)
        self.record = RunRecord()
        #: Writes the history table's rows (None: the history table is not configured).
        self.history: HistoryRecorder | None = HistoryRecorder.for_context(self)
        self._ledger: StepLedger | None = None
        self._current: set[str] = set()
        self._versions_at_commit: list[VersionChange] = []
        self._lock: ExitStack | None = None
        self._lock_hold: LockHold | None = None
        self._caller_savepoint: Any = None
        self._schema_entered = False
        self._timeouts = StepTimeouts.from_options(opts)
        #: The limits set on the open transaction (PostgreSQL) or session (MySQL), if any.
        self._limits_on: StepTimeouts | None = None
        self._session_limited = False
        #: Commits so far: a step during which one happened cannot be retried.
        self._commits = 0
        #: The last COMMIT was cut off before its answer (see :meth:`_commit`).
        self._commit_in_doubt = False
        self._unit_attempt = 1
        self._step_limits = self._timeouts
        probe = self._probe = opts.get("session_probe")
        if probe is not None and not self.as_sql and self.connection is not None:
            probe.record(self.connection, self.driver)
        if self._in_external_transaction:
            self._begin_sqlite_transaction()
        # A command's run reads the version table once, up front: when there is
        # nothing to do, that single query is the whole cost.
        self._prefetched: tuple[str, ...] | None = None
        if not self.as_sql and self._migrations_fn is not None and not self.purge:
            self._prefetched = self._early_version_read()
            if self._prefetched is None:
                self._prefetched = self._read_heads()
        if self.tenant_schema is not None:
            self._enter_tenant_schema()
        log.debug(
            "Context impl %s; %s DDL%s",
            type(self.impl).__name__,
            "transactional" if self.impl.transactional_ddl else "non-transactional",
            "; generating static SQL" if self.as_sql else "",
        )

    @classmethod
    def configure(
        cls,
        connection: Connection | None = None,
        url: str | URL | None = None,
        dialect_name: str | None = None,
        dialect: Dialect | None = None,
        environment_context: EnvironmentContext | None = None,
        dialect_opts: dict[str, Any] | None = None,
        opts: dict[str, Any] | None = None,
    ) -> MigrationContext:
        """Create a context from a connection, a URL, a dialect name or a dialect."""
        opts = dict(opts or {})
        if connection is not None:
            if isinstance(connection, Engine):
                raise CommandError(
                    f"'connection' argument to configure() is expected to be a "
                    f"sqlalchemy.engine.Connection instance, got {connection!r}"
                )
            if hasattr(connection, "sync_connection"):
                raise CommandError(
                    "configure() needs a sync Connection; inside env.py, run the migration "
                    "through `await connection.run_sync(do_run_migrations)`"
                )
            dialect = connection.dialect
        elif url is not None:
            dialect = make_url(url).get_dialect()(**(dialect_opts or {}))
        elif dialect_name is not None:
            dialect = make_url(f"{dialect_name}://").get_dialect()(**(dialect_opts or {}))
        elif dialect is None:
            raise CommandError("Connection, url, or dialect_name is required.")
        return cls(dialect, connection, opts, environment_context)

    # -- connection and output -------------------------------------------------------

    def _stdout_connection(self) -> Connection:
        def dump(construct: Any, *multiparams: Any, **params: Any) -> None:
            self.impl._exec(construct)

        return MockConnection(self.dialect, dump)  # type: ignore[return-value]

    @property
    def bind(self) -> Connection | None:
        """The connection migrations run on (a mock that renders SQL offline)."""
        return self.connection

    @property
    def config(self) -> Config | None:
        """The :class:`~asyncmigrate.Config` of the environment, if any."""
        return self.environment_context.config if self.environment_context else None

    @property
    def version_table(self) -> str:
        """The version table's name."""
        return self.version.name

    @property
    def version_table_schema(self) -> str | None:
        """The version table's schema (None: the connection's default)."""
        return self.version.schema

    def execute(
        self, sql: Executable | str, execution_options: dict[str, Any] | None = None
    ) -> None:
        """Execute a statement online, or write it to the SQL output offline."""
        with self._sending():
            self.impl._exec(sql, execution_options)

    @contextmanager
    def _sending(self) -> Iterator[None]:
        """Let answer-less statements take the driver's short path for the block (online only)."""
        driver, impl = self.driver, self.impl
        if driver is None or not driver.raw_statements or impl.sender is not None or self.connection is None:
            yield
            return
        impl.sender = RawStatements(self.connection, driver)
        try:
            yield
        finally:
            impl.sender = None

    # -- transactions -----------------------------------------------------------------

    def _safe_begin(self) -> Transaction:
        assert self.connection is not None
        transaction = self.connection.get_transaction() or self.connection.begin()
        self._begin_sqlite_transaction()
        return transaction

    def _begin_sqlite_transaction(self) -> None:
        """Open the SQLite transaction for real, so DDL inside it can be rolled back.

        The sqlite3 module begins a transaction only before DML; DDL before
        that would commit on its own. An explicit BEGIN makes the whole step
        (or the caller's shared transaction) atomic.
        """
        if self.dialect.name != "sqlite" or not self.impl.transactional_ddl or self.connection is None:
            return
        begin = getattr(self.driver, "begin", None)
        if begin is not None:
            begin()  # travels with the next statement
            return
        raw = self.connection.connection.driver_connection
        if raw is not None and not getattr(raw, "in_transaction", True):
            self.connection.exec_driver_sql("BEGIN")

    def begin_transaction(self, _per_migration: bool = False) -> AbstractContextManager[Any]:
        """Begin the logical transaction around a run (or, internally, one migration).

        With transactional DDL it is a real transaction around the whole run,
        unless ``transaction_per_migration`` moves it around each migration.
        Without transactional DDL each migration is committed on its own.
        Offline it writes ``BEGIN``/``COMMIT``. Inside a caller's own
        transaction it does nothing: the caller commits.
        """
        outer = not _per_migration
        if self._in_external_transaction:
            return _OuterMarker(self) if outer else nullcontext()
        if self.impl.transactional_ddl:
            now = _per_migration == self._transaction_per_migration
        else:
            now = _per_migration
        if not now:
            return _OuterMarker(self) if outer else nullcontext()
        if not self.impl.transactional_ddl:
            if self.as_sql or self._transaction is not None:
                return nullcontext()
            self._transaction = self._safe_begin()
            return _ProxyTransaction(self, outer)
        if self.as_sql:
            return self._offline_transaction(outer)
        self._transaction = self._safe_begin()
        return _ProxyTransaction(self, outer)

    def _step_commits(self) -> bool:
        """Whether each step's own transaction commits as the step ends."""
        if self.as_sql or self._in_external_transaction:
            return False
        return not self.impl.transactional_ddl or self._transaction_per_migration

    @contextmanager
    def _offline_transaction(self, outer: bool) -> Iterator[None]:
        self.impl.emit_begin()
        yield
        self.impl.emit_commit()
        self._limits_ended_with_transaction()

    def _limits_ended_with_transaction(self) -> None:
        if self.dialect.name == "postgresql":  # SET LOCAL: they end with the transaction
            self._limits_on = None

    def _commit(self, transaction: Transaction, release_lock: bool) -> None:
        """Commit ``transaction`` with the version rows kept for it (and the lock's release).

        One round trip where the driver folds them; the ledger then reports
        the transaction's steps committed.
        """
        changes, self._versions_at_commit = self._versions_at_commit, []
        hold = self._lock_hold if release_lock else None
        release = hold.fold_release() if hold is not None else []
        reset = self._session_reset_sql() if release_lock else []
        driver = self.driver
        self._limits_ended_with_transaction()
        committing = False
        try:
            history = self.history.at_commit_statements() if self.history is not None else []
            committing = driver is not None and driver.raw_statements
            if committing and driver is not None and driver.commit_with(
                [self.version.statement(c) for c in changes] + history, release + reset
            ):
                if hold is not None and release:
                    hold.released_with_commit()
                if reset:
                    self._schema_entered = self._session_limited = False
                    self._limits_on = None
            else:
                committing = False  # nothing was sent: the version rows go first
                for change in changes:
                    self._apply_version_change(change)
                if self.history is not None:
                    self.history.send_at_commit()
                committing = True
            transaction.commit()
        except BaseException as exc:
            # Cut off while the COMMIT was on the way, the database may have committed: say so.
            doubt = committing and self._answer_lost(exc)
            self._commit_in_doubt = doubt
            self._roll_back(transaction, not isinstance(exc, Exception), exc, in_doubt=doubt)
            raise
        self._commits += 1
        if self.history is not None:
            self.history.committed()
        if self._ledger is not None:
            self._ledger.committed(self._current)

    def _answer_lost(self, exc: BaseException) -> bool:
        """Whether ``exc`` came before the server's answer could: an interruption, a lost connection."""
        if not isinstance(exc, Exception):
            return True
        if isinstance(exc, DBAPIError):
            if exc.connection_invalidated:
                return True
            try:
                raw = None if self.connection is None or self.connection.invalidated else (
                    self.connection.connection.dbapi_connection
                )
                return bool(self.dialect.is_disconnect(exc.orig, raw, None))  # type: ignore[arg-type]
            except Exception:
                return False
        return isinstance(exc, OSError)

    def _roll_back(
        self, transaction: Transaction, interrupted: bool, exc: Any = None, in_doubt: bool = False
    ) -> None:
        """Roll ``transaction`` back; its finished steps are reported rolled back.

        Interrupted (the task is being cancelled): shielded and bounded, and
        the server session is stopped if the rollback cannot complete.
        :param in_doubt: the transaction's ``COMMIT`` was on the way when it was cut
            off: its steps are reported in doubt, not rolled back.
        """
        self._versions_at_commit = []
        self._limits_ended_with_transaction()
        if interrupted:
            self._clean_up_interrupted(transaction.rollback)
        else:
            try:
                if transaction.is_active:
                    transaction.rollback()
            except Exception as error:
                log.debug("Rollback failed; dropping the connection: %s", error)
                self._invalidate(error)
        ledger = self._ledger
        if ledger is not None and in_doubt:
            ledger.in_doubt()
        elif ledger is not None:
            ledger.rolled_back()
            if isinstance(exc, MigrationError):
                exc.note_database_at(ledger.database_at)
        if self.history is not None:
            self.history.rolled_back()
            if not interrupted and not in_doubt:
                self.history.record_failures(own_transaction=True)

    @contextmanager
    def autocommit_block(self) -> Iterator[None]:
        """Run the block outside any transaction (e.g. ``CREATE INDEX CONCURRENTLY``).

        The migration's transaction so far is committed first, and a new one
        begins after the block.
        """
        in_transaction = self._transaction is not None
        if self.impl.transactional_ddl and self.as_sql:
            self.impl.emit_commit()
            self._limits_ended_with_transaction()
        elif in_transaction:
            assert self._transaction is not None
            transaction, self._transaction = self._transaction, None
            self._commit(transaction, release_lock=False)
        base = self.connection
        fake: Transaction | None = None
        current_level: Any = None
        if not self.as_sql:
            assert base is not None
            if base.in_transaction():
                base.commit()
            current_level = base.get_isolation_level()
            self.connection = self.impl.connection = base.execution_options(
                isolation_level="AUTOCOMMIT"
            )
            fake = self.connection.begin()
        try:
            yield
        finally:
            if not self.as_sql:
                assert self.connection is not None
                assert base is not None
                if fake is not None and fake.is_active:
                    fake.commit()
                self.connection.execution_options(isolation_level=current_level)
                self.connection = self.impl.connection = base
            if self.impl.transactional_ddl and self.as_sql:
                self.impl.emit_begin()
                self._set_limits(self._step_limits)
            elif in_transaction:
                self._transaction = self._safe_begin()
                self._set_limits(self._step_limits)  # the rest of the step runs under them too

    # -- the tenant's schema ---------------------------------------------------------

    def _enter_tenant_schema(self) -> None:
        """Make the tenant's schema the default for unqualified names (PostgreSQL search_path).

        The setting is committed right away (outside any migration
        transaction) so it holds for the whole run whatever later rolls
        back; the run resets it when it ends, so a pooled connection never
        carries it into another tenant's run.
        """
        schema = self.tenant_schema
        assert schema is not None
        name = self.dialect.name
        if name == "postgresql":
            use = "SET search_path TO {}"
        elif name in ("mysql", "mariadb"):
            use = "USE {}"
        else:
            raise ConfigError(f"A schema per tenant needs PostgreSQL or MySQL/MariaDB, not {name}")
        quoted = self.dialect.identifier_preparer.quote_identifier(schema)
        if self.as_sql:
            self.impl.static_output(use.format(quoted) + self.impl.command_terminator)
            return
        assert self.connection is not None
        statements = []
        if self.opts.get("create_schema") and not self.opts.get("dont_mutate"):
            create = "CREATE SCHEMA IF NOT EXISTS {}" if name == "postgresql" else (
                "CREATE DATABASE IF NOT EXISTS {}"
            )
            if name != "postgresql":
                expect_existing("database", schema)
            statements.append(create.format(quoted))
        statements.append(use.format(quoted))
        driver = self.driver
        sql = ";\n".join(statements)
        try:
            if self._in_external_transaction or driver is None or driver.simple_status(sql) is None:
                for statement in statements:
                    self.connection.exec_driver_sql(statement)
                if not self._in_external_transaction:
                    self.connection.commit()
        except DBAPIError as exc:
            if len(statements) > 1 or not _unknown_database(exc):
                raise
            # A read-only run on a tenant whose database does not exist yet: it stands at
            # base (its version table, read qualified, is absent), as PostgreSQL's missing
            # schema does.
            log.debug("Tenant schema %s does not exist; nothing to enter", schema)
            if not self._in_external_transaction and self.connection.in_transaction():
                self.connection.rollback()
            return
        self._schema_entered = True

    def _session_reset_sql(self) -> list[str]:
        """SQL that undoes what the run set on this session: the tenant's schema, MySQL's limits.

        Empty when nothing is left to undo, so a pooled connection returns
        to the pool as the run found it.
        """
        reset = []
        if self._session_limited:
            reset += session_reset_sql(self.dialect.name, self._is_mariadb)
        if not self._schema_entered or self._in_external_transaction:
            return reset
        if self.dialect.name == "postgresql":
            return [*reset, "RESET search_path"]
        database = self.connection.engine.url.database if self.connection is not None else None
        if database:
            return [*reset, f"USE {self.dialect.identifier_preparer.quote_identifier(database)}"]
        return reset

    @property
    def _is_mariadb(self) -> bool:
        return bool(getattr(self.dialect, "is_mariadb", False))

    def _leave_tenant_schema(self) -> None:
        statements = self._session_reset_sql()
        self._schema_entered = self._session_limited = False
        self._limits_on = None
        if not statements or self.connection is None or self.connection.invalidated:
            return
        driver = self.driver
        # Outside a transaction the driver sends each as it is: one round trip, no BEGIN/COMMIT.
        if driver is None or not driver.raw_statements or self.connection.in_transaction():
            driver = None
        try:
            for statement in statements:
                if driver is None or driver.simple_status(statement) is None:
                    self.connection.exec_driver_sql(statement)
            if self.connection.in_transaction() and not self._in_external_transaction:
                self.connection.commit()
        except Exception as exc:  # the session must not be reused with another tenant's schema
            log.debug("Could not reset the session's schema; dropping the connection: %s", exc)
            self._invalidate(exc)

    # -- the version table -------------------------------------------------------------

    def ensure_version_table(self, purge: bool = False, commit: bool = True) -> None:
        """Create the version table if it does not exist (and, with ``purge``, empty it).

        :param commit: commit a transaction begun for it; otherwise the
            creation stays in the transaction the first step then joins (it
            commits, or rolls back, with that step).
        :raises VersionTableError: when the table cannot be created.
        """
        assert self.connection is not None
        begun = None if self.connection.in_transaction() else self.connection.begin()
        version = self.version
        with self._sending():
            if version.exists is None:
                version.read(self.connection, self.driver, own_transaction=False)
            if not version.exists:
                self._create_version_table()
            if purge:
                self.connection.execute(version.table.delete())
        if begun is not None and commit:
            begun.commit()

    def _create_version_table(self) -> None:
        version, driver = self.version, self.driver
        try:
            if driver is not None and driver.raw_statements:
                driver.run(Statement(version.create_sql()))
            else:
                self.impl._exec(version.create_construct())
        except Exception as exc:
            from .steps import first_line

            raise VersionTableError(
                f"Could not create the version table {version.qualified_name()}: {first_line(exc)}"
            ) from exc
        version.exists = True

    def get_current_heads(self) -> tuple[str, ...]:
        """Return the revision ids in the version table (``()`` when there is none).

        Offline, the ``starting_rev`` given to the command stands in for the table.
        """
        if self.as_sql:
            start = self._start_from_rev
            if start is None or start == "base":
                return ()
            ids: list[str] = [start] if isinstance(start, str) else list(start)
            if self.script is None:
                return tuple(ids)
            heads = []
            for rev in ids:
                if rev in (None, "base"):
                    continue
                found = self.script.get_revision(rev)
                if found is not None:
                    heads.append(found.revision)
            return tuple(heads)
        if self._start_from_rev:
            raise CommandError(
                "Can't specify current_rev to context when using a database connection"
            )
        if self._prefetched is not None:
            prefetched, self._prefetched = self._prefetched, None
            return prefetched
        return self._read_heads()

    def _read_heads(self) -> tuple[str, ...]:
        assert self.connection is not None
        return self.version.read(self.connection, self.driver, not self._in_external_transaction)

    def _early_version_read(self) -> tuple[str, ...] | None:
        """The version rows read while the connection opened (see ``EnvironmentContext.connect``)."""
        env = self.environment_context
        early = env._early if env is not None else None
        if early is None or self.connection is None or self.tenant_schema is not None:
            return None
        found, xml = early.take_version_read(
            self.connection, self.version.name, translated_schema(self.connection, self.version.schema)
        )
        if not found:
            return None
        self.version.exists = xml is not None
        return decode_pg_versions(xml)

    def get_current_revision(self) -> str | None:
        """Return the single current revision, or None.

        :raises CommandError: when the table holds several heads.
        """
        heads = self.get_current_heads()
        if len(heads) > 1:
            raise CommandError(
                f"Version table '{self.version.name}' has more than one head present; "
                f"please use get_current_heads()"
            )
        return heads[0] if heads else None

    def _write_versions(self, changes: Sequence[VersionChange], at_commit: bool) -> None:
        """Move the version rows for one step (with ``at_commit``: kept for the commit's round trip)."""
        if at_commit:
            self._versions_at_commit.extend(changes)
            return
        driver = self.driver
        for change in changes:
            if driver is not None and driver.raw_statements:
                driver.run(self.version.statement(change))
            else:
                self._apply_version_change(change)

    def _apply_version_change(self, change: VersionChange) -> None:
        """Move a version row through SQLAlchemy (bound values; checked where rowcounts are sane)."""
        result = self.impl._exec(self.version.construct(change))
        if result is not None and not self.as_sql and self.dialect.supports_sane_rowcount:
            self.version.check_rowcount(change, result.rowcount)

    def stamp(self, script_directory: ScriptDirectory, revision: str) -> None:
        """Make the version table say ``revision`` without running migrations."""
        from ..revision.plan import stamp_plan

        heads = self.get_current_heads()
        if not self.as_sql and not heads:
            self.ensure_version_table()
        current = set(heads)
        for step in stamp_plan(script_directory.graph, revision, heads):
            self._write_versions(step.advance(current), at_commit=False)

    # -- locking -------------------------------------------------------------------------

    def _lock_wanted(self) -> bool:
        return (
            not self.as_sql
            and bool(self.opts.get("lock", False))
            and not self.opts.get("dont_mutate", False)
        )

    def _take_lock(self) -> None:
        assert self.connection is not None
        if (
            self._transaction is None
            and not self._in_external_transaction
            and self.connection.in_transaction()
        ):
            # End the read that found work to do, so the next read sees other
            # migrators' commits (MySQL's repeatable-read snapshot would not).
            self.connection.commit()
        schema = translated_schema(self.connection, self.version.schema)
        lock = lock_for(self.connection, self.version.name, schema)
        started = time.perf_counter()
        stack = ExitStack()
        self._lock_hold = stack.enter_context(
            lock.holding(
                self.connection,
                self.driver,
                float(self.opts.get("lock_timeout", DEFAULT_LOCK_TIMEOUT)),
                in_transaction=self._in_external_transaction,
            )
        )
        self._lock = stack
        self.record.waited_for_lock = time.perf_counter() - started

    def _release_lock(self, interrupted: bool) -> None:
        """Give the lock back (if still held) and undo the tenant's schema setting."""
        lock, self._lock = self._lock, None
        if lock is None and not self._schema_entered and not self._session_limited:
            return
        connection = self.connection

        def release() -> None:
            if (
                connection is not None
                and not connection.invalidated
                and self._transaction is None
                and not self._in_external_transaction
                and connection.in_transaction()
            ):
                connection.rollback()  # nothing of ours is left in it: end it, then unlock
            if lock is not None:
                lock.close()
            self._leave_tenant_schema()

        if interrupted:
            self._clean_up_interrupted(release)
            if lock is not None and connection is not None and connection.invalidated:
                lock.close()  # the lock ended with the session: this only forgets it
        else:
            release()

    # -- interruption ------------------------------------------------------------------

    def _clean_up_interrupted(self, work: Callable[[], None]) -> None:
        """Run clean-up ``work`` while the task is being cancelled: shielded, bounded, then forceful.

        If ``work`` cannot complete -- the connection was dropped mid-statement,
        the server does not answer -- the server session is stopped from
        another connection (its statement, transaction and locks end with it)
        and the connection is invalidated.
        """
        connection, driver = self.connection, self.driver
        session = driver.session() if driver is not None else None
        if self._probe is not None and self._probe.terminated:
            # Ended on the server already (a stalled connection): nothing left to clean up there,
            # and a round trip over the connection might never come back.
            self._invalidate(None)
            return

        def guarded() -> None:
            if driver is not None:
                driver.interrupt()
            if connection is not None and not connection.invalidated:
                work()

        def budget() -> float:  # the run's deadline may have spent the clean-up time already
            return self._probe.cleanup_budget(CLEANUP_TIMEOUT) if self._probe else CLEANUP_TIMEOUT

        done = False
        try:
            done = budget() > 0 and run_shielded(guarded, budget())
        except Exception as exc:
            log.debug("Clean-up after cancellation failed: %s", exc)
        if connection is not None and (not done or connection.invalidated):
            if session is not None and budget() > 0:
                url = connection.engine.url

                def stop() -> None:
                    await_in_loop(stop_session(url, session, terminate=True))

                run_shielded(stop, budget())
            self._invalidate(None)

    def _invalidate(self, exc: BaseException | None) -> None:
        connection = self.connection
        if connection is not None and not connection.closed and not connection.invalidated:
            connection.invalidate(exc)

    # -- running --------------------------------------------------------------------------

    def _plan(self, heads: tuple[str, ...]) -> list[MigrationStep]:
        assert self._migrations_fn is not None
        with recorded_heads(heads):
            return list(self._migrations_fn(heads, self))

    def run_migrations(self, **kw: Any) -> None:
        """Run the steps the command asked for against the current heads.

        Each step runs its migration and writes its version rows in the same
        transaction (per run or per migration); ``on_version_apply``
        callbacks and step events follow each step.
        """
        if self._migrations_fn is None:
            raise CommandError("This context was configured without a command to run")
        self.record.ran = True
        self.impl.start_migrations()
        portals = None if self.as_sql else _PortalSweeper.for_connection(self.connection)
        interrupted = False
        try:
            with self._sending():
                steps = self._prepare_run()
                self._run_steps(steps, portals, kw)
                self._finish_run()
        except BaseException as exc:
            interrupted = not isinstance(exc, Exception)
            self._abort_run(exc)
            raise
        finally:
            if portals is not None:
                portals.close()
            if self._outer_depth == 0:
                self._release_lock(interrupted)

    def _prepare_run(self) -> list[MigrationStep]:
        """Read the heads, plan, take the lock (planning again if another migrator moved them)."""
        record = self.record
        if self.purge:
            if self.as_sql:
                raise CommandError("Can't use --purge with --sql mode")
            self.ensure_version_table(purge=True)
            heads: tuple[str, ...] = ()
        else:
            heads = self.get_current_heads()
        steps = self._plan(heads)
        if steps and self._lock_wanted():
            self._take_lock()
            again = self.get_current_heads()
            if again != heads:  # another migrator moved it meanwhile
                heads = again
                steps = self._plan(heads)
        record.starting_heads = heads
        self._current = set(heads)
        self._ledger = StepLedger(self._on_step, record, heads)
        if steps and not self.as_sql and not heads and not self.opts.get("dont_mutate", False):
            self.ensure_version_table(commit=False)
        if steps and self.history is not None and not self.opts.get("dont_mutate", False):
            self.history.ensure(heads)
        if steps and self._in_external_transaction and self.impl.transactional_ddl and not self.as_sql:
            assert self.connection is not None
            # The caller's transaction gets back exactly what it had if the run fails.
            self._caller_savepoint = self.connection.begin_nested()
        self._preload(steps)
        return steps

    def _finish_run(self) -> None:
        savepoint, self._caller_savepoint = self._caller_savepoint, None
        if savepoint is not None and savepoint.is_active:
            savepoint.commit()
        self.record.final_heads = tuple(sorted(self._current))
        ledger = self._ledger
        if ledger is not None and ledger.pending and self._transaction is None:
            # No transaction of ours holds them (a caller's does, or env.py's own):
            # they are handed over as done.
            ledger.committed(self._current)

    def _abort_run(self, exc: BaseException) -> None:
        """The run failed or was interrupted: give the caller's transaction back as it was."""
        self._versions_at_commit = []
        savepoint, self._caller_savepoint = self._caller_savepoint, None
        if savepoint is None or not savepoint.is_active:
            return
        if isinstance(exc, Exception):
            try:
                savepoint.rollback()
            except Exception as error:
                log.debug("Could not roll back to the run's savepoint: %s", error)
        else:
            self._clean_up_interrupted(savepoint.rollback)
        if self._ledger is not None:
            self._ledger.rolled_back()
            if isinstance(exc, MigrationError):
                exc.note_database_at(self._ledger.database_at)
        if self.history is not None:
            self.history.rolled_back()
            if isinstance(exc, Exception):
                self.history.record_failures(own_transaction=False)

    def _preload(self, steps: Sequence[MigrationStep]) -> None:
        """Import the revision files a plan needs for this run, in a worker thread, off the event loop."""
        from ..script import Script

        scripts = [
            s.revision for s in steps if isinstance(s, RevisionStep) and isinstance(s.revision, Script)
        ]
        modules = self._revision_modules
        pending = [script for script in scripts if script.path not in modules]
        # The history rows' checksums: the files as they are now, before any step runs.
        unread = [s for s in scripts if not s.checksum_read] if self.history is not None else []

        def load() -> None:
            for script in pending:
                modules.setdefault(script.path, script.module_for_run())
            for script in unread:
                with suppress(OSError):  # the row then has no checksum (logged as it is written)
                    script.run_checksum()

        if pending or unread:
            to_thread(load)

    def _module_of(self, step: RevisionStep) -> ModuleType:
        """The revision's module as this run imported it (:meth:`_preload`)."""
        revision = step.revision
        path = getattr(revision, "path", None)
        module = self._revision_modules.get(path) if path is not None else None
        return module if module is not None else revision.module  # type: ignore[attr-defined]

    def _run_steps(self, steps: Sequence[MigrationStep], portals: _PortalSweeper | None,
                   kw: dict[str, Any]) -> None:
        """Run ``steps`` in order; a transaction that timed out waiting for a lock starts over.

        The *unit* a lock-timeout retry repeats is what the failed attempt
        rolled back: the step alone when each step commits by itself, else
        every step since the run's transaction began (or since the last
        commit inside it). Rolling the whole unit back releases the locks its
        earlier steps took, so the application is never blocked by a
        migration that is only waiting.
        """
        index, unit_start, unit_heads = 0, 0, set(self._current)
        self._unit_attempt = 1
        while index < len(steps):
            commits_before = self._commits
            try:
                self._run_step(steps[index], portals, kw)
            except _RetryUnit as retry:
                self._restart_unit(unit_heads, retry.pause)
                self._unit_attempt += 1
                index = unit_start
                continue
            if self._commits != commits_before:
                unit_start, unit_heads, self._unit_attempt = index + 1, set(self._current), 1
            index += 1

    def _run_step(self, step: MigrationStep, portals: _PortalSweeper | None, kw: dict[str, Any]) -> None:
        ledger = self._ledger
        assert ledger is not None
        record = ledger.start(step)
        commits = self._step_commits()
        # Without callbacks that may read the version table, a step's version rows
        # travel with its COMMIT (one round trip) when the step commits by itself.
        at_commit = commits and self.impl.transactional_ddl and not self.on_version_apply_callbacks
        timeouts = self._step_timeouts(step)
        attempt = 1
        while True:
            watch = _CommittedStatements.for_context(self)
            commits_before = self._commits
            self._commit_in_doubt = False
            try:
                with watch, self.begin_transaction(_per_migration=True):
                    self._step_limits = timeouts
                    self._set_limits(timeouts)
                    self._run_revision_code(step, record, portals, kw)
                    self._write_versions(step.advance(self._current), at_commit)
                    if self.history is not None:  # travels with our COMMIT when we hold the transaction
                        self.history.finished(step, record, at_commit or self._transaction is not None)
                    for callback in self.on_version_apply_callbacks:
                        callback(ctx=self, step=step.info, heads=set(self._current), run_args=kw)
                    if not commits:
                        ledger.finish(record)
                break
            except Exception as exc:
                if commits and self._commit_in_doubt:  # its own COMMIT was cut off
                    raise ledger.doubt(record, exc) from exc
                note = watch.note(exc)
                tries = attempt if commits else self._unit_attempt
                retry = (
                    is_lock_timeout(exc)
                    and not watch.ran  # MySQL: the failed DDL committed whatever ran before it
                    and self._commits == commits_before
                    and tries <= timeouts.retries
                    and (commits or self._owns_run_transaction())
                )
                if retry:
                    pause = timeouts.pause(tries)
                    ledger.retrying(record, exc, tries, timeouts.retries + 1, pause)
                    if not commits:
                        raise _RetryUnit(pause) from exc
                    sleep(pause)
                    attempt += 1
                    continue
                if is_lock_timeout(exc) and not self.as_sql:
                    if not commits and self._owns_run_transaction():
                        # Roll back first: the holders can be asked only outside the failed transaction.
                        transaction, self._transaction = self._transaction, None
                        assert transaction is not None
                        self._roll_back(transaction, interrupted=False)
                        commits = True
                    note += self._lock_note(exc, tries, timeouts)
                if self.history is not None:
                    self.history.failed(step, record)
                    if commits:  # its transaction has rolled back already
                        self.history.record_failures(own_transaction=True)
                error = ledger.fail(record, exc, note)
                if commits:  # the step's own transaction has rolled back already
                    error.note_database_at(ledger.database_at)
                raise error from exc
            except BaseException:
                if commits and self._commit_in_doubt:  # interrupted while its COMMIT was on the way
                    ledger.doubt(record)
                raise
        if commits:
            ledger.finish(record)
            ledger.committed(self._current)

    def _owns_run_transaction(self) -> bool:
        """Whether the open transaction is the run's own, which a retry may roll back and begin again."""
        return self._transaction is not None and not self._in_external_transaction and not self.as_sql

    def _step_timeouts(self, step: MigrationStep) -> StepTimeouts:
        if isinstance(step, RevisionStep):
            return self._timeouts.for_revision(self._module_of(step))
        return self._timeouts

    def _set_limits(self, timeouts: StepTimeouts) -> None:
        """Put the step's lock and statement timeouts on its transaction (PostgreSQL) or session (MySQL).

        Nothing is sent when no limit was ever asked for (Alembic's behaviour),
        or when the limits in force already are the step's. Offline they are
        written into the script (``SET LOCAL`` after each ``BEGIN``; no
        retry is possible there).
        """
        if (self.connection is None and not self.as_sql) or self._limits_on == timeouts:
            return
        if self._limits_on is None and not timeouts.limited and not self._session_limited:
            return
        if self.as_sql:
            statements = timeouts.script_sql(self.dialect.name, self._is_mariadb)
        else:
            statements = timeouts.settings_sql(self.dialect.name, self._is_mariadb)
        if not statements:
            return
        for statement in statements:
            if self.as_sql:
                self.impl.static_output(statement + self.impl.command_terminator)
            else:
                assert self.connection is not None
                self.connection.exec_driver_sql(statement)
        self._limits_on = timeouts
        if self.dialect.name != "postgresql":
            self._session_limited = True

    def _restart_unit(self, heads: set[str], pause: float) -> None:
        """Roll back the run's transaction, wait ``pause`` seconds, and begin it again at ``heads``."""
        transaction, self._transaction = self._transaction, None
        assert transaction is not None
        self._roll_back(transaction, interrupted=False)
        self._current = set(heads)
        if not heads:
            self.version.exists = None  # its creation may have rolled back too
        sleep(pause)
        self._transaction = self._safe_begin()
        if not heads and not self.opts.get("dont_mutate", False):
            self.ensure_version_table(commit=False)

    def _lock_note(self, exc: BaseException, attempts: int, timeouts: StepTimeouts) -> str:
        """What a step that gave up waiting for a lock adds to its error: attempts and the lock's holders."""
        assert self.connection is not None
        statement = getattr(exc, "statement", None)
        holders = [] if self._in_external_transaction else lock_holders(self.connection, statement)
        limit = (
            f" of {timeouts.describe_lock_timeout()} (step_lock_timeout)"
            if timeouts.lock_timeout is not None else ""
        )
        held = "; held by " + "; ".join(holders) if holders else ""
        return f"; gave up after {attempts} attempt(s) waiting for a lock{limit}{held}"

    def _run_revision_code(
        self, step: MigrationStep, record: StepRecord, portals: _PortalSweeper | None, kw: dict[str, Any]
    ) -> None:
        if self.as_sql and not self._current:
            self.impl._exec(self.version.create_construct())
        log.info("Running %s", record.description)
        if self.as_sql:
            self.impl.static_output(f"-- Running {record.description}")
        if not isinstance(step, RevisionStep):
            return
        module = self._module_of(step)
        fn = module.upgrade if step.is_upgrade else module.downgrade
        from ..operations import Operations

        with bind_operations(Operations(self)):
            try:
                fn(**kw)
            except SystemExit as exc:  # a step's failure like any other: rolled back, one line
                raise MigrationError(f"the revision called sys.exit({exc.code!r})") from exc
        if portals is not None:
            portals.sweep(self.connection)


def _unknown_database(exc: DBAPIError) -> bool:
    """Whether MySQL/MariaDB refused ``USE`` because the database does not exist (error 1049)."""
    args: tuple[object, ...] = getattr(exc.orig, "args", ())
    return bool(args) and args[0] == 1049


class _RetryUnit(Exception):
    """The run's transaction timed out waiting for a lock and is to be tried again after ``pause``."""

    def __init__(self, pause: float) -> None:
        super().__init__(pause)
        self.pause = pause


class _CommittedStatements:
    """The statements a step ran on a database whose DDL commits itself (MySQL/MariaDB).

    When such a step fails, the statements up to its last successful DDL
    statement stay committed whatever rolls back; its error says which.
    """

    _DDL = ("CREATE", "ALTER", "DROP", "RENAME", "TRUNCATE")

    def __init__(self, connection: Connection | None) -> None:
        self.connection = connection
        self.ran: list[str] = []

    @classmethod
    def for_context(cls, context: MigrationContext) -> _CommittedStatements:
        watching = not context.as_sql and not context.impl.transactional_ddl
        return cls(context.connection if watching else None)

    def __enter__(self) -> None:
        if self.connection is not None:
            event.listen(self.connection, "after_cursor_execute", self._ran)

    def __exit__(self, *exc: Any) -> None:
        if self.connection is not None and event.contains(self.connection, "after_cursor_execute", self._ran):
            event.remove(self.connection, "after_cursor_execute", self._ran)

    def _ran(self, conn: Any, cursor: Any, statement: Any, *args: Any) -> None:
        sql = " ".join(str(statement).split())
        if not sql.upper().startswith("SET "):  # session settings commit nothing
            self.ran.append(sql)

    def note(self, exc: BaseException | None = None) -> str:
        """What the failure message must add: the statements already committed.

        A DDL statement commits what ran before it as it starts, so when the
        failing statement (``exc``'s) is DDL, everything before it stays.
        """
        failed = " ".join(str(getattr(exc, "statement", "") or "").split()).upper()
        last = max(
            (i for i, sql in enumerate(self.ran) if sql.upper().startswith(self._DDL)), default=-1
        )
        if failed.startswith(self._DDL):
            last = len(self.ran) - 1
        if last < 0:
            return ""
        committed = self.ran[: last + 1]
        shown = "; ".join(s if len(s) <= 80 else s[:77] + "..." for s in committed)
        return (
            f"; {len(committed)} statement(s) of this step were already committed "
            f"(this database commits each DDL statement): {shown}"
        )


class _PortalSweeper:
    """Close the portals of server-side cursors a migration step left open (PostgreSQL, asyncpg).

    A revision that reads with ``yield_per`` (or ``stream_results``) gets a
    server-side cursor. psycopg2 closes its named cursor when the result is
    closed; SQLAlchemy's asyncpg cursor only drops its reference, and the
    portal stays open to the end of the transaction -- where PostgreSQL then
    refuses ``ALTER TABLE`` on the tables it read ("being used by active
    queries in this session"). With one transaction per run, a later
    migration fails that runs under Alembic. So a step that opened such a
    cursor ends with ``CLOSE ALL`` (one statement, only then).
    """

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.opened = False
        event.listen(connection, "after_cursor_execute", self._after_execute)

    @classmethod
    def for_connection(cls, connection: Connection | None) -> _PortalSweeper | None:
        """Return a sweeper for a PostgreSQL connection over asyncpg, else None."""
        if connection is None:
            return None
        dialect = connection.dialect
        if dialect.name != "postgresql" or dialect.driver != "asyncpg":
            return None
        return cls(connection)

    def _after_execute(self, conn: Connection, cursor: Any, statement: Any, parameters: Any,
                       context: Any, executemany: bool) -> None:
        if context is not None and getattr(context, "_is_server_side", False):
            self.opened = True

    def sweep(self, connection: Connection | None) -> None:
        """Close every open portal when the step opened a server-side cursor."""
        if self.opened and connection is not None:
            self.opened = False
            connection.exec_driver_sql("CLOSE ALL")

    def close(self) -> None:
        """Stop watching the connection."""
        if event.contains(self.connection, "after_cursor_execute", self._after_execute):
            event.remove(self.connection, "after_cursor_execute", self._after_execute)

