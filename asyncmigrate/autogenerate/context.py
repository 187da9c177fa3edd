"""The state of one autogenerate run: the database side, the models side, filters, imports."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import MetaData, Table, inspect
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.engine.default import DefaultDialect
from sqlalchemy.engine.reflection import Inspector

from ..exceptions import CommandError, NoTargetMetadataError
from .compare.registry import Comparators, comparators

if TYPE_CHECKING:
    from sqlalchemy.schema import SchemaItem

    from ..runtime.migration import MigrationContext
    from .compare.reflection import SchemaReflection

__all__ = ["AutogenContext", "IncludeNameFn", "IncludeObjectFn", "NameFilterType", "RenderItemFn"]

#: The kinds of names ``include_name`` is asked about.
NameFilterType = Literal[
    "schema",
    "table",
    "column",
    "index",
    "unique_constraint",
    "foreign_key_constraint",
    "check_constraint",
]
#: ``include_name(name, type_, parent_names) -> bool``: filter names before reflection.
IncludeNameFn = Callable[[str | None, str, Mapping[str, str | None]], bool]
#: ``include_object(object, name, type_, reflected, compare_to) -> bool``: filter objects.
IncludeObjectFn = Callable[[Any, str | None, str, bool, Any], bool]
#: ``render_item(type_, object, autogen_context) -> str | False``: override rendering.
RenderItemFn = Callable[[str, Any, "AutogenContext"], "str | Literal[False]"]


class AutogenContext:
    """Hold what one comparison (or rendering) run needs and collects.

    It owns the connection and dialect taken from the migration context, the
    target ``MetaData``, the ``include_name``/``include_object`` filters, the
    set of ``imports`` rendered code needs, and the per-schema reflection
    cache. Comparing is the comparators' job, writing Python the renderers'.

    :param migration_context: the context env.py configured (its ``opts``
        carry ``target_metadata``, the filters and the rendering options);
        None renders with SQLAlchemy's default dialect.
    :param metadata: the models to compare with (default: ``target_metadata``).
    :param opts: options to use instead of the migration context's.
    :param autogenerate: whether this run compares (needs a connection and metadata).
    :raises CommandError: for a comparison offline or without metadata.
    """

    def __init__(
        self,
        migration_context: MigrationContext | None,
        metadata: MetaData | Sequence[MetaData] | None = None,
        opts: dict[str, Any] | None = None,
        autogenerate: bool = True,
    ) -> None:
        if autogenerate and migration_context is not None and migration_context.as_sql:
            raise CommandError(
                "autogenerate can't use as_sql=True as it prevents querying the database "
                "for schema information"
            )
        if opts is None:
            opts = migration_context.opts if migration_context is not None else {}
        self.opts: dict[str, Any] = opts
        self.metadata: MetaData | Sequence[MetaData] | None = (
            opts.get("target_metadata") if metadata is None else metadata
        )
        if (
            autogenerate
            and self.metadata is None
            and migration_context is not None
            and migration_context.script is not None
        ):
            raise NoTargetMetadataError(
                "Can't proceed with --autogenerate option; environment script "
                f"{migration_context.script.env_py_location} does not provide a MetaData "
                "object or sequence of objects to the context."
            )
        self.migration_context = migration_context
        self.connection: Connection | None = (
            migration_context.bind
            if migration_context is not None and not migration_context.as_sql
            else None
        )
        self.dialect: Dialect = (
            migration_context.dialect if migration_context is not None else DefaultDialect()
        )
        #: Import lines the rendered code needs (``render_item`` hooks may add to it).
        self.imports: set[str] = set()
        #: The comparison functions this run uses.
        self.comparators: Comparators = comparators
        include_name = opts.get("include_name")
        include_object = opts.get("include_object")
        self._name_filters: list[IncludeNameFn] = [include_name] if include_name else []
        self._object_filters: list[IncludeObjectFn] = [include_object] if include_object else []
        self._has_batch = False
        self._reflections: dict[str | None, SchemaReflection] = {}

    # -- the database side ------------------------------------------------------------------

    @cached_property
    def inspector(self) -> Inspector:
        """The SQLAlchemy inspector on the run's connection (one per run: its cache is shared).

        :raises TypeError: when the run has no connection.
        """
        if self.connection is None:
            raise TypeError("This AutogenContext has no database connection to inspect")
        return inspect(self.connection)

    @property
    def default_schema(self) -> str | None:
        """The connection's default schema name (None when the dialect has none)."""
        name = self.dialect.default_schema_name
        return str(name) if name else None

    def reflection(self, schema: str | None) -> SchemaReflection:
        """Return the (bulk) reflection of ``schema``, made on first use."""
        from .compare.reflection import SchemaReflection

        found = self._reflections.get(schema)
        if found is None:
            found = self._reflections[schema] = SchemaReflection(self, schema)
        return found

    # -- the models side --------------------------------------------------------------------

    @property
    def metadatas(self) -> list[MetaData]:
        """The target ``MetaData`` objects, as a list."""
        if self.metadata is None:
            return []
        if isinstance(self.metadata, MetaData):
            return [self.metadata]
        return list(self.metadata)

    @cached_property
    def sorted_tables(self) -> list[Table]:
        """Every target table, dependency-sorted within each ``MetaData`` (in list order)."""
        return [table for metadata in self.metadatas for table in metadata.sorted_tables]

    @cached_property
    def table_key_to_table(self) -> dict[str, Table]:
        """Every target table by key (``schema.name``).

        :raises ValueError: when two ``MetaData`` objects hold the same key.
        """
        result: dict[str, Table] = {}
        for metadata in self.metadatas:
            clash = set(result) & set(metadata.tables)
            if clash:
                names = ", ".join(f'"{key}"' for key in sorted(clash))
                raise ValueError(f"Duplicate table keys across multiple MetaData objects: {names}")
            result.update(metadata.tables)
        return result

    # -- filters ------------------------------------------------------------------------------

    def run_name_filters(
        self, name: str | None, type_: str, parent_names: dict[str, str | None]
    ) -> bool:
        """Ask ``include_name`` whether a reflected name takes part (before reflecting it).

        ``parent_names`` gets ``schema_qualified_table_name`` added when it
        names a schema, as Alembic does.
        """
        if "schema_name" in parent_names:
            table_name = name if type_ == "table" else parent_names.get("table_name")
            if table_name:
                schema_name = parent_names["schema_name"]
                parent_names["schema_qualified_table_name"] = (
                    f"{schema_name}.{table_name}" if schema_name else table_name
                )
        return all(fn(name, type_, parent_names) for fn in self._name_filters)

    def run_object_filters(
        self,
        object_: SchemaItem,
        name: str | None,
        type_: str,
        reflected: bool,
        compare_to: SchemaItem | None,
    ) -> bool:
        """Ask ``include_object`` whether an object takes part in the comparison."""
        return all(fn(object_, name, type_, reflected, compare_to) for fn in self._object_filters)

    run_filters = run_object_filters

    # -- rendering ----------------------------------------------------------------------------

    @property
    def has_batch(self) -> bool:
        """True while rendering the body of a ``batch_alter_table`` block."""
        return self._has_batch

    @contextlib.contextmanager
    def _within_batch(self) -> Iterator[None]:
        self._has_batch = True
        try:
            yield
        finally:
            self._has_batch = False
