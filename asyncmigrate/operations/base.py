"""``Operations``: the object behind ``op`` in revision files, with Alembic's directive set.

Every directive builds an operation object (:mod:`asyncmigrate.operations.ops`)
and hands it to :meth:`Operations.invoke`, which runs the implementation
registered for its class (:mod:`asyncmigrate.operations.toimpl`) against the
context's dialect implementation. Names, parameters and defaults of the
directives are exactly Alembic's, so revision files run unchanged;
:meth:`Operations.register_operation` and :meth:`Operations.implementation_for`
are Alembic's extension API for adding directives and replacing how one runs.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeVar, overload

from sqlalchemy.sql.elements import conv
from sqlalchemy.util import immutabledict

from ..compat import extensions
from ..ddl.base import InlineLiteral
from . import ops
from .observe import observed
from .schemaobj import SchemaObjects

if TYPE_CHECKING:
    from sqlalchemy import Column, Table
    from sqlalchemy.engine import Connection
    from sqlalchemy.sql.elements import ColumnElement, TextClause
    from sqlalchemy.sql.expression import Executable, TableClause
    from sqlalchemy.sql.schema import SchemaItem
    from sqlalchemy.sql.type_api import TypeEngine

    from ..ddl import DefaultImpl
    from ..ddl.base import ServerDefaultArgument
    from ..runtime.migration import MigrationContext
    from .batch import BatchOperationsImpl

__all__ = ["AbstractOperations", "BatchOperations", "Operations"]

_T = TypeVar("_T")
_C = TypeVar("_C", bound=Callable[..., Any])
_OpImplementation = Callable[[Any, Any], Any]


class AbstractOperations:
    """Hold what ``Operations`` and ``BatchOperations`` share: dispatch, SQL helpers, batch.

    It owns the registry from operation classes to their implementations;
    the directives themselves live on the subclasses.
    """

    #: Operation class -> the function that executes it (shared by both subclasses).
    _to_impl: ClassVar[dict[type[Any], _OpImplementation]] = {}

    impl: DefaultImpl

    def __init__(
        self,
        migration_context: MigrationContext,
        impl: DefaultImpl | BatchOperationsImpl | None = None,
    ) -> None:
        self._context = migration_context
        self.impl = impl if impl is not None else migration_context.impl  # type: ignore[assignment]
        self.schema_obj = SchemaObjects(migration_context)

    @property
    def migration_context(self) -> MigrationContext:
        """The running :class:`~asyncmigrate.runtime.MigrationContext` (as ``get_context()``)."""
        return self.get_context()

    # -- extension API -----------------------------------------------------------------------

    @classmethod
    def register_operation(
        cls, name: str, sourcename: str | None = None
    ) -> Callable[[type[_T]], type[_T]]:
        """Add a directive named ``name`` to this class, served by an operation class.

        Decorate an operation class whose classmethod ``name`` (or
        ``sourcename``) takes ``(cls, operations, ...)``; the directive gets
        that method's signature with ``operations`` as ``self``.
        """

        def register(op_cls: type[_T]) -> type[_T]:
            source = getattr(op_cls, sourcename or name)
            signature = inspect.signature(source)
            params = list(signature.parameters.values())
            if not params:
                raise TypeError(f"{op_cls.__name__}.{sourcename or name} must take 'operations'")
            params[0] = params[0].replace(name="self", annotation=inspect.Parameter.empty)

            def directive(self: AbstractOperations, *args: Any, **kw: Any) -> Any:
                return source(self, *args, **kw)

            directive.__name__ = name
            directive.__qualname__ = f"{cls.__name__}.{name}"
            directive.__doc__ = source.__doc__
            directive.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
            setattr(cls, name, directive)
            return op_cls

        return register

    @classmethod
    def implementation_for(cls, op_cls: Any, replace: bool = False) -> Callable[[_C], _C]:
        """Register the function that executes operations of class ``op_cls``.

        The function is called as ``fn(operations, operation)``. ``replace=True``
        swaps out an existing implementation (e.g. a built-in one).

        :raises ValueError: when ``op_cls`` has an implementation and
            ``replace`` is false.
        """

        def decorate(fn: _C) -> _C:
            if op_cls in cls._to_impl and not replace:
                raise ValueError(
                    f"{op_cls!r} already has an implementation; pass replace=True to replace it"
                )
            cls._to_impl[op_cls] = fn
            return fn

        return decorate

    @classmethod
    @contextmanager
    def context(cls, migration_context: MigrationContext) -> Iterator[Operations]:
        """Make ``op`` mean a new :class:`Operations` on ``migration_context`` in this task."""
        from ..runtime.local import bind_operations

        operations = Operations(migration_context)
        with bind_operations(operations):
            yield operations

    @overload
    def invoke(self, operation: ops.CreateTableOp) -> Table: ...

    @overload
    def invoke(self, operation: ops.MigrateOperation) -> Any: ...

    def invoke(self, operation: ops.MigrateOperation) -> Any:
        """Execute ``operation`` with the implementation registered for its class.

        :raises NotImplementedError: when no implementation is registered.
        """
        for klass in type(operation).__mro__:
            fn = self._to_impl.get(klass)
            if fn is not None:
                with observed(self, operation):
                    return fn(self, operation)
        # An operation of the real Alembic's: its own kind runs as ours, a plugin's as registered there.
        own = extensions.to_own(operation)
        if own is not operation:
            return self.invoke(own)
        fn = extensions.alembic_implementation(operation, self.migration_context.impl.__dialect__)
        if fn is not None:
            with observed(self, operation):
                return fn(self, operation)
        raise NotImplementedError(f"No implementation is registered for {type(operation).__name__}")

    if not TYPE_CHECKING:  # keep mypy's attribute checks on asyncmigrate's own code

        def __getattr__(self, name: str) -> Any:
            # A directive a plugin registered on the real Alembic's Operations
            # (alembic_utils' create_entity, alembic-postgresql-enum's sync_enum_values).
            if not name.startswith("_"):
                directive = extensions.alembic_directive(self, name)
                if directive is not None:
                    return directive
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    # -- batch ---------------------------------------------------------------------------------

    @contextmanager
    def batch_alter_table(
        self,
        table_name: str,
        schema: str | None = None,
        recreate: Literal["auto", "always", "never"] = "auto",
        partial_reordering: list[tuple[str, ...]] | None = None,
        copy_from: Table | None = None,
        table_args: tuple[Any, ...] = (),
        table_kwargs: Mapping[str, Any] = immutabledict(),
        reflect_args: tuple[Any, ...] = (),
        reflect_kwargs: Mapping[str, Any] = immutabledict(),
        naming_convention: dict[str, str] | None = None,
    ) -> Iterator[BatchOperations]:
        """Group changes to one table; run them together when the block ends.

        On SQLite (``recreate="auto"``) changes its ``ALTER TABLE`` cannot
        make are applied by recreating the table: create a copy with the new
        definition, copy the rows, drop the original, rename the copy --
        keeping indexes, constraints and data. Elsewhere the changes run as
        ordinary ``ALTER`` statements. ``recreate="always"``/``"never"`` force
        either way.

        :param table_name: the table to change.
        :param schema: its schema.
        :param recreate: ``"auto"``, ``"always"`` or ``"never"``.
        :param partial_reordering: tuples of column names giving the order of
            columns in the recreated table (needs ``recreate="always"``).
        :param copy_from: a ``Table`` describing the current table, used
            instead of reflection (required offline).
        :param table_args: extra positional ``Table`` arguments (e.g. CHECK
            constraints reflection cannot see) for the recreated table.
        :param table_kwargs: extra ``Table`` keyword arguments for it.
        :param reflect_args: extra positional arguments for reflecting the table.
        :param reflect_kwargs: extra keyword arguments for reflecting it.
        :param naming_convention: naming convention that names the reflected
            constraints that have no name (so they can be dropped by name).
        """
        from .batch import BatchOperationsImpl

        recorder = BatchOperationsImpl(
            self,
            table_name,
            schema,
            recreate,
            copy_from,
            table_args,
            table_kwargs,
            reflect_args,
            reflect_kwargs,
            naming_convention,
            partial_reordering,
        )
        yield BatchOperations(self._context, impl=recorder)
        recorder.flush()

    # -- helpers -------------------------------------------------------------------------------

    @property
    def _proxy(self) -> AbstractOperations:
        """This object: what Alembic's module-level ``op`` proxies to.

        Revision files in the wild reach through ``op._proxy`` (e.g.
        ``op._proxy.migration_context``); the task-local ``op`` forwards
        here, so that keeps working.
        """
        return self

    def get_context(self) -> MigrationContext:
        """Return the running :class:`~asyncmigrate.runtime.MigrationContext`."""
        return self._context

    def get_bind(self) -> Connection:
        """Return the connection the migration runs on (a SQL-rendering mock offline)."""
        return self._context.impl.bind  # type: ignore[return-value]

    def f(self, name: str) -> conv:
        """Mark ``name`` as final, so naming conventions leave it unchanged."""
        return conv(name)

    def inline_literal(
        self, value: str | int, type_: TypeEngine[Any] | None = None
    ) -> InlineLiteral:
        """Return ``value`` as a literal rendered inline in INSERT/UPDATE/DELETE statements.

        Offline scripts cannot carry bound parameters, so data changes meant
        to work in ``--sql`` mode use inline literals for their values.
        """
        return InlineLiteral(None, value, type_=type_)

    def execute(
        self, sqltext: Executable | str, *, execution_options: dict[str, Any] | None = None
    ) -> None:
        """Execute a SQL string or statement (written to the script offline).

        A string is executed as :func:`~sqlalchemy.text`; offline, use
        :meth:`inline_literal` for values inside statements.
        """
        self.invoke(ops.ExecuteSQLOp(sqltext, execution_options=execution_options))

    def run_async(
        self, async_function: Callable[..., Awaitable[_T]], *args: Any, **kw_args: Any
    ) -> _T:
        """Await ``async_function(async_connection, *args, **kw_args)`` from ``upgrade()``.

        The ``AsyncConnection`` shares the migration's connection and transaction.

        :raises NotImplementedError: offline.
        :raises ValueError: when the migration does not run on an async driver.
        """
        if self._context.as_sql:
            raise NotImplementedError("Cannot call run_async in SQL mode")
        bind = self.get_bind()
        if not bind.dialect.is_async:
            raise ValueError("Cannot call run_async with a sync engine")
        from sqlalchemy.ext.asyncio import AsyncConnection
        from sqlalchemy.util import await_only

        async_conn = AsyncConnection._retrieve_proxy_for_target(bind)
        return await_only(async_function(async_conn, *args, **kw_args))


class Operations(AbstractOperations):
    """Give revision files Alembic's ``op`` directives over one migration context.

    A revision's ``op`` is an instance bound task-locally while its
    ``upgrade()``/``downgrade()`` runs; one can also be built directly on a
    :class:`~asyncmigrate.runtime.MigrationContext`.
    """

    impl: DefaultImpl

    def __init__(self, migration_context: MigrationContext, impl: DefaultImpl | None = None) -> None:
        super().__init__(migration_context, impl)

    # -- tables --------------------------------------------------------------------------------

    def create_table(
        self, table_name: str, *columns: SchemaItem, if_not_exists: bool | None = None, **kw: Any
    ) -> Table:
        """Create a table from ``Column``, constraint and ``Index`` objects; return the ``Table``.

        :param table_name: name of the table.
        :param columns: columns, constraints and indexes.
        :param if_not_exists: add ``IF NOT EXISTS``.
        :param kw: other ``Table`` arguments (``schema``, ``comment``, dialect options...).
        """
        return self.invoke(
            ops.CreateTableOp(table_name, columns, if_not_exists=if_not_exists, **kw)
        )

    def drop_table(
        self,
        table_name: str,
        *,
        schema: str | None = None,
        if_exists: bool | None = None,
        **kw: Any,
    ) -> None:
        """Drop a table (``if_exists`` adds ``IF EXISTS``; ``kw`` go to the ``Table``)."""
        self.invoke(ops.DropTableOp(table_name, schema=schema, if_exists=if_exists, table_kw=kw))

    def rename_table(
        self, old_table_name: str, new_table_name: str, *, schema: str | None = None
    ) -> None:
        """Rename a table within its schema."""
        self.invoke(ops.RenameTableOp(old_table_name, new_table_name, schema=schema))

    def create_table_comment(
        self,
        table_name: str,
        comment: str | None,
        *,
        existing_comment: str | None = None,
        schema: str | None = None,
    ) -> None:
        """Set a table's comment (``existing_comment`` lets autogenerate reverse it)."""
        self.invoke(
            ops.CreateTableCommentOp(
                table_name, comment, existing_comment=existing_comment, schema=schema
            )
        )

    def drop_table_comment(
        self,
        table_name: str,
        *,
        existing_comment: str | None = None,
        schema: str | None = None,
    ) -> None:
        """Remove a table's comment."""
        self.invoke(
            ops.DropTableCommentOp(table_name, existing_comment=existing_comment, schema=schema)
        )

    # -- columns -------------------------------------------------------------------------------

    def add_column(
        self,
        table_name: str,
        column: Column[Any],
        *,
        schema: str | None = None,
        if_not_exists: bool | None = None,
        inline_references: bool | None = None,
        inline_primary_key: bool | None = None,
    ) -> None:
        """Add a column (``ALTER TABLE ... ADD COLUMN``).

        Its single-column foreign key and unique/CHECK constraints are added
        too: a foreign key as a separate constraint unless
        ``inline_references`` (always inline on SQLite); ``PRIMARY KEY`` only
        with ``inline_primary_key``. Use ``server_default`` for database-side
        defaults.
        """
        self.invoke(
            ops.AddColumnOp(
                table_name,
                column,
                schema=schema,
                if_not_exists=if_not_exists,
                inline_references=inline_references,
                inline_primary_key=inline_primary_key,
            )
        )

    def drop_column(
        self, table_name: str, column_name: str, *, schema: str | None = None, **kw: Any
    ) -> None:
        """Drop a column (``if_exists=True`` adds ``IF EXISTS`` where supported)."""
        self.invoke(ops.DropColumnOp(table_name, column_name, schema=schema, **kw))

    def alter_column(
        self,
        table_name: str,
        column_name: str,
        *,
        nullable: bool | None = None,
        comment: str | Literal[False] | None = False,
        server_default: ServerDefaultArgument = False,
        new_column_name: str | None = None,
        type_: TypeEngine[Any] | type[TypeEngine[Any]] | None = None,
        existing_type: TypeEngine[Any] | type[TypeEngine[Any]] | None = None,
        existing_server_default: ServerDefaultArgument = False,
        existing_nullable: bool | None = None,
        existing_comment: str | None = None,
        schema: str | None = None,
        **kw: Any,
    ) -> None:
        """Change a column's nullability, type, server default, comment and/or name.

        ``server_default=None`` and ``comment=None`` remove the default or
        comment; ``False`` (the default) leaves them alone. The ``existing_*``
        arguments describe the column as it is: MySQL needs them to restate
        the column, and a type change uses ``existing_type`` to drop CHECKs
        the old type generated. ``postgresql_using`` gives the conversion
        expression for a PostgreSQL type change.
        """
        self.invoke(
            ops.AlterColumnOp(
                table_name,
                column_name,
                schema=schema,
                existing_type=existing_type,
                existing_server_default=existing_server_default,
                existing_nullable=existing_nullable,
                existing_comment=existing_comment,
                modify_nullable=nullable,
                modify_comment=comment,
                modify_server_default=server_default,
                modify_name=new_column_name,
                modify_type=type_,
                **kw,
            )
        )

    # -- constraints ---------------------------------------------------------------------------

    def create_primary_key(
        self,
        constraint_name: str | None,
        table_name: str,
        columns: list[str],
        *,
        schema: str | None = None,
    ) -> None:
        """Create a primary key (a ``None`` name is filled in by a naming convention)."""
        self.invoke(ops.CreatePrimaryKeyOp(constraint_name, table_name, columns, schema=schema))

    def create_unique_constraint(
        self,
        constraint_name: str | None,
        table_name: str,
        columns: Sequence[str],
        *,
        schema: str | None = None,
        **kw: Any,
    ) -> Any:
        """Create a unique constraint (``deferrable``, ``initially`` and dialect options in ``kw``)."""
        return self.invoke(
            ops.CreateUniqueConstraintOp(constraint_name, table_name, columns, schema=schema, **kw)
        )

    def create_foreign_key(
        self,
        constraint_name: str | None,
        source_table: str,
        referent_table: str,
        local_cols: list[str],
        remote_cols: list[str],
        *,
        onupdate: str | None = None,
        ondelete: str | None = None,
        deferrable: bool | None = None,
        initially: str | None = None,
        match: str | None = None,
        source_schema: str | None = None,
        referent_schema: str | None = None,
        **dialect_kw: Any,
    ) -> None:
        """Create a foreign key from ``source_table(local_cols)`` to ``referent_table(remote_cols)``."""
        self.invoke(
            ops.CreateForeignKeyOp(
                constraint_name,
                source_table,
                referent_table,
                local_cols,
                remote_cols,
                onupdate=onupdate,
                ondelete=ondelete,
                deferrable=deferrable,
                source_schema=source_schema,
                referent_schema=referent_schema,
                initially=initially,
                match=match,
                **dialect_kw,
            )
        )

    def create_check_constraint(
        self,
        constraint_name: str | None,
        table_name: str,
        condition: str | ColumnElement[bool] | TextClause,
        *,
        schema: str | None = None,
        **kw: Any,
    ) -> None:
        """Create a CHECK constraint from a SQL string or expression."""
        self.invoke(
            ops.CreateCheckConstraintOp(
                constraint_name, table_name, condition, schema=schema, **kw
            )
        )

    def create_exclude_constraint(
        self, constraint_name: str, table_name: str, *elements: Any, **kw: Any
    ) -> Table | None:
        """Create a PostgreSQL EXCLUDE constraint from ``(column or expression, operator)`` pairs.

        ``where``, ``using``, ``deferrable``, ``initially`` and ``schema`` go in ``kw``.
        """
        return self.invoke(  # type: ignore[no-any-return]
            ops.CreateExcludeConstraintOp(constraint_name, table_name, elements, **kw)
        )

    def drop_constraint(
        self,
        constraint_name: str,
        table_name: str,
        type_: str | None = None,
        *,
        schema: str | None = None,
        if_exists: bool | None = None,
    ) -> None:
        """Drop a constraint by name.

        :param type_: ``"foreignkey"``, ``"primary"``, ``"unique"`` or
            ``"check"``; MySQL needs it to pick the statement.
        :param if_exists: add ``IF EXISTS``.
        """
        self.invoke(
            ops.DropConstraintOp(
                constraint_name, table_name, type_=type_, schema=schema, if_exists=if_exists
            )
        )

    # -- indexes -------------------------------------------------------------------------------

    def create_index(
        self,
        index_name: str | None,
        table_name: str,
        columns: Sequence[str | TextClause | ColumnElement[Any]],
        *,
        schema: str | None = None,
        unique: bool = False,
        if_not_exists: bool | None = None,
        **kw: Any,
    ) -> None:
        """Create an index over column names and/or SQL expressions.

        Dialect options go in ``kw`` (``postgresql_where``,
        ``postgresql_using``, ``postgresql_concurrently``,
        ``postgresql_include``, ``sqlite_where``, ``mysql_length``...).
        """
        self.invoke(
            ops.CreateIndexOp(
                index_name,
                table_name,
                columns,
                schema=schema,
                unique=unique,
                if_not_exists=if_not_exists,
                **kw,
            )
        )

    def drop_index(
        self,
        index_name: str,
        table_name: str | None = None,
        *,
        schema: str | None = None,
        if_exists: bool | None = None,
        **kw: Any,
    ) -> None:
        """Drop an index (MySQL needs ``table_name``; dialect options in ``kw``)."""
        self.invoke(
            ops.DropIndexOp(index_name, table_name, schema=schema, if_exists=if_exists, **kw)
        )

    # -- data ----------------------------------------------------------------------------------

    def bulk_insert(
        self,
        table: Table | TableClause,
        rows: list[dict[str, Any]],
        *,
        multiinsert: bool = True,
    ) -> None:
        """Insert ``rows`` (dictionaries) into ``table`` (a ``Table`` or ``sa.table()``).

        Online the rows go in one executemany unless ``multiinsert=False``;
        offline each row becomes an INSERT with literal values.
        """
        self.invoke(ops.BulkInsertOp(table, rows, multiinsert=multiinsert))


class BatchOperations(AbstractOperations):
    """Give a ``batch_alter_table`` block the directives of one table.

    The same directives as :class:`Operations` without ``table_name`` and
    ``schema``; the changes are recorded and applied when the block ends.
    """

    impl: BatchOperationsImpl  # type: ignore[assignment]

    def invoke(self, operation: ops.MigrateOperation) -> Any:
        """Record ``operation`` in the block, noting it on the calls it records."""
        self.impl.recording = operation
        try:
            return super().invoke(operation)
        finally:
            self.impl.recording = None

    def _table(self) -> tuple[str, str | None]:
        return self.impl.table_name, self.impl.schema

    def add_column(
        self,
        column: Column[Any],
        *,
        insert_before: str | None = None,
        insert_after: str | None = None,
        if_not_exists: bool | None = None,
        inline_references: bool | None = None,
        inline_primary_key: bool | None = None,
    ) -> None:
        """Add a column; ``insert_before``/``insert_after`` place it in a recreated table."""
        table_name, schema = self._table()
        kw: dict[str, Any] = {}
        if insert_before:
            kw["insert_before"] = insert_before
        if insert_after:
            kw["insert_after"] = insert_after
        self.invoke(
            ops.AddColumnOp(
                table_name,
                column,
                schema=schema,
                if_not_exists=if_not_exists,
                inline_references=inline_references,
                inline_primary_key=inline_primary_key,
                **kw,
            )
        )

    def alter_column(
        self,
        column_name: str,
        *,
        nullable: bool | None = None,
        comment: str | Literal[False] | None = False,
        server_default: ServerDefaultArgument = False,
        new_column_name: str | None = None,
        type_: TypeEngine[Any] | type[TypeEngine[Any]] | None = None,
        existing_type: TypeEngine[Any] | type[TypeEngine[Any]] | None = None,
        existing_server_default: ServerDefaultArgument = False,
        existing_nullable: bool | None = None,
        existing_comment: str | None = None,
        insert_before: str | None = None,
        insert_after: str | None = None,
        **kw: Any,
    ) -> None:
        """Change a column (see :meth:`Operations.alter_column`); may move it in a recreate."""
        table_name, schema = self._table()
        if insert_before:
            kw["insert_before"] = insert_before
        if insert_after:
            kw["insert_after"] = insert_after
        self.invoke(
            ops.AlterColumnOp(
                table_name,
                column_name,
                schema=schema,
                existing_type=existing_type,
                existing_server_default=existing_server_default,
                existing_nullable=existing_nullable,
                existing_comment=existing_comment,
                modify_nullable=nullable,
                modify_comment=comment,
                modify_server_default=server_default,
                modify_name=new_column_name,
                modify_type=type_,
                **kw,
            )
        )

    def drop_column(self, column_name: str, **kw: Any) -> None:
        """Drop a column."""
        table_name, schema = self._table()
        self.invoke(ops.DropColumnOp(table_name, column_name, schema=schema, **kw))

    def create_primary_key(self, constraint_name: str | None, columns: list[str]) -> None:
        """Create the table's primary key."""
        table_name, schema = self._table()
        self.invoke(ops.CreatePrimaryKeyOp(constraint_name, table_name, columns, schema=schema))

    def create_unique_constraint(
        self, constraint_name: str, columns: Sequence[str], **kw: Any
    ) -> Any:
        """Create a unique constraint."""
        table_name, schema = self._table()
        kw["schema"] = schema
        return self.invoke(ops.CreateUniqueConstraintOp(constraint_name, table_name, columns, **kw))

    def create_foreign_key(
        self,
        constraint_name: str | None,
        referent_table: str,
        local_cols: list[str],
        remote_cols: list[str],
        *,
        referent_schema: str | None = None,
        onupdate: str | None = None,
        ondelete: str | None = None,
        deferrable: bool | None = None,
        initially: str | None = None,
        match: str | None = None,
        **dialect_kw: Any,
    ) -> None:
        """Create a foreign key from this table to ``referent_table``."""
        table_name, schema = self._table()
        self.invoke(
            ops.CreateForeignKeyOp(
                constraint_name,
                table_name,
                referent_table,
                local_cols,
                remote_cols,
                onupdate=onupdate,
                ondelete=ondelete,
                deferrable=deferrable,
                source_schema=schema,
                referent_schema=referent_schema,
                initially=initially,
                match=match,
                **dialect_kw,
            )
        )

    def create_check_constraint(
        self,
        constraint_name: str,
        condition: str | ColumnElement[bool] | TextClause,
        **kw: Any,
    ) -> None:
        """Create a CHECK constraint."""
        table_name, schema = self._table()
        self.invoke(
            ops.CreateCheckConstraintOp(constraint_name, table_name, condition, schema=schema, **kw)
        )

    def create_exclude_constraint(
        self, constraint_name: str, *elements: Any, **kw: Any
    ) -> Table | None:
        """Create a PostgreSQL EXCLUDE constraint."""
        table_name, schema = self._table()
        kw["schema"] = schema
        return self.invoke(  # type: ignore[no-any-return]
            ops.CreateExcludeConstraintOp(constraint_name, table_name, elements, **kw)
        )

    def drop_constraint(self, constraint_name: str, type_: str | None = None) -> None:
        """Drop a constraint by name."""
        table_name, schema = self._table()
        self.invoke(ops.DropConstraintOp(constraint_name, table_name, type_=type_, schema=schema))

    def create_index(
        self,
        index_name: str,
        columns: Sequence[str | TextClause | ColumnElement[Any]],
        **kw: Any,
    ) -> None:
        """Create an index."""
        table_name, schema = self._table()
        self.invoke(ops.CreateIndexOp(index_name, table_name, columns, schema=schema, **kw))

    def drop_index(self, index_name: str, **kw: Any) -> None:
        """Drop an index."""
        table_name, schema = self._table()
        self.invoke(ops.DropIndexOp(index_name, table_name=table_name, schema=schema, **kw))

    def create_table_comment(
        self, comment: str | None, *, existing_comment: str | None = None
    ) -> None:
        """Set the table's comment."""
        table_name, schema = self._table()
        self.invoke(
            ops.CreateTableCommentOp(
                table_name, comment, existing_comment=existing_comment, schema=schema
            )
        )

    def drop_table_comment(self, *, existing_comment: str | None = None) -> None:
        """Remove the table's comment."""
        table_name, schema = self._table()
        self.invoke(
            ops.DropTableCommentOp(table_name, existing_comment=existing_comment, schema=schema)
        )
