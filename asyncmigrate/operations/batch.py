"""Batch mode: changes to one table, applied together -- by ALTER or by recreating the table.

:class:`BatchOperationsImpl` stands in for the dialect implementation inside
``op.batch_alter_table()``: it records the DDL calls the operations make.
When the block ends they are either replayed as ordinary ``ALTER``
statements, or -- when the dialect cannot make them in place (SQLite) or
``recreate="always"`` -- applied to a :class:`TableRecreate`, which builds
the new table definition, creates it under a temporary name, copies the
rows, drops the original and renames the copy into place, then recreates
the indexes.
"""

from __future__ import annotations

import heapq
import itertools
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import (
    CheckConstraint,
    Column,
    ForeignKeyConstraint,
    Index,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    UniqueConstraint,
    select,
)
from sqlalchemy.schema import Constraint, DefaultClause, FetchedValue
from sqlalchemy.sql import sqltypes, visitors
from sqlalchemy.sql.elements import ClauseElement, ColumnElement, TextClause, conv, quoted_name
from sqlalchemy.sql.schema import SchemaEventTarget
from sqlalchemy.types import NULLTYPE

from ..exceptions import CommandError
from ..masking import get_logger
from .observe import observed
from .schemaobj import constraint_name_defined, is_type_bound

if TYPE_CHECKING:
    from sqlalchemy.engine import Dialect
    from sqlalchemy.sql.type_api import TypeEngine

    from ..ddl.impl import DefaultImpl
    from .base import AbstractOperations
    from .ops import MigrateOperation

__all__ = ["BatchCall", "BatchOperationsImpl", "TableRecreate"]

log = get_logger("asyncmigrate.operations.batch")

#: Prefix of the temporary table a recreate builds (Alembic's, so leftovers look familiar).
TEMP_PREFIX = "_alembic_tmp_"


@dataclass(frozen=True)
class BatchCall:
    """One recorded call to the DDL vocabulary (``add_column``, ``drop_index``...)."""

    name: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)
    #: The operation whose invocation recorded this call (what an observer is told at flush).
    operation: MigrateOperation | None = None


class BatchOperationsImpl:
    """Record one ``batch_alter_table`` block's DDL calls and apply them when it ends.

    It owns the block's options and the recorded calls; the dialect
    implementation decides (``recreate="auto"``) whether the table must be
    recreated, and executes the resulting DDL.
    """

    def __init__(
        self,
        operations: AbstractOperations,
        table_name: str,
        schema: str | None,
        recreate: Literal["auto", "always", "never"],
        copy_from: Table | None,
        table_args: tuple[Any, ...],
        table_kwargs: Mapping[str, Any],
        reflect_args: tuple[Any, ...],
        reflect_kwargs: Mapping[str, Any],
        naming_convention: dict[str, str] | None,
        partial_reordering: list[tuple[str, ...]] | None,
    ) -> None:
        if recreate not in ("auto", "always", "never"):
            raise ValueError("recreate may be one of 'auto', 'always', or 'never'.")
        self.operations = operations
        self.table_name = table_name
        self.schema = schema
        self.recreate = recreate
        self.copy_from = copy_from
        self.table_args = tuple(table_args)
        self.table_kwargs = dict(table_kwargs)
        self.reflect_args = tuple(reflect_args)
        self.reflect_kwargs = dict(reflect_kwargs)
        self.naming_convention = naming_convention
        self.partial_reordering = partial_reordering
        self.batch: list[BatchCall] = []
        #: The operation being invoked on the block while it records its calls.
        self.recording: MigrateOperation | None = None

    @property
    def impl(self) -> DefaultImpl:
        """The dialect implementation the batch is applied with."""
        return self.operations.impl

    @property
    def dialect(self) -> Dialect:
        """The dialect of the migration."""
        return self.impl.dialect

    #: Foreign keys of added columns are recorded as constraints: on SQLite they
    #: make the batch recreate the table, where they keep their names.
    add_column_references_inline = False

    def _should_recreate(self) -> bool:
        if self.recreate == "always":
            return True
        if self.recreate == "never":
            return False
        return self.impl.requires_recreate_in_batch(self)

    def flush(self) -> None:
        """Apply the recorded calls: replayed as ALTERs, or through a table recreate."""
        if not self._should_recreate():
            for call in self.batch:
                with observed(self.operations, call.operation):
                    getattr(self.impl, call.name)(*call.args, **call.kwargs)
            return
        existing, reflected = self._existing_table()
        recreate = TableRecreate(
            self.impl,
            existing,
            table_args=self.table_args,
            table_kwargs=self.table_kwargs,
            reflected=reflected,
            partial_reordering=self.partial_reordering,
        )
        for call in self.batch:
            getattr(recreate, call.name)(*call.args, **call.kwargs)
        recreate.run()

    def _existing_table(self) -> tuple[Table, bool]:
        if self.copy_from is not None:
            return self.copy_from, False
        context = self.operations._context
        if context.as_sql:
            raise CommandError(
                f"batch_alter_table('{self.table_name}') has to recreate the table on "
                f"{context.dialect.name}, which needs a live connection to reflect it; offline "
                f"(--sql), pass the table's definition as copy_from=Table(...)"
            )
        kwargs = dict(self.reflect_kwargs)
        listeners = list(kwargs.pop("listeners", ()))
        hook = getattr(self.impl, "batch_column_reflect", None)
        if hook is not None:
            listeners.append(("column_reflect", hook))
        with warnings.catch_warnings():
            # Expression indexes SQLAlchemy cannot reflect are read by the dialect below.
            warnings.filterwarnings(
                "ignore", message="Skipped unsupported reflection of expression-based index"
            )
            table = Table(
                self.table_name,
                MetaData(),
                *self.reflect_args,
                schema=self.schema,
                autoload_with=self.operations.get_bind(),
                listeners=listeners,
                **kwargs,
            )
        self.impl.complete_reflected_table(table)
        if self.naming_convention:
            table = _apply_naming_convention(table, self.naming_convention)
        return table, True

    # -- the recorded vocabulary --------------------------------------------------------------

    def _record(self, _method: str, *args: Any, **kwargs: Any) -> None:
        self.batch.append(BatchCall(_method, args, kwargs, self.recording))

    def add_column(self, *args: Any, **kw: Any) -> None:
        """Record ``add_column``; placing it (``insert_before``/``insert_after``) needs a recreate."""
        if (kw.get("insert_before") or kw.get("insert_after")) and not self._should_recreate():
            raise CommandError(
                "Can't specify insert_before or insert_after when using ALTER; "
                "please specify recreate='always'"
            )
        self._record("add_column", *args, **kw)

    def alter_column(self, *args: Any, **kw: Any) -> None:
        """Record ``alter_column``."""
        self._record("alter_column", *args, **kw)

    def drop_column(self, *args: Any, **kw: Any) -> None:
        """Record ``drop_column``."""
        self._record("drop_column", *args, **kw)

    def add_constraint(self, const: Constraint, **kw: Any) -> None:
        """Record ``add_constraint``."""
        self._record("add_constraint", const, **kw)

    def drop_constraint(self, const: Constraint, **kw: Any) -> None:
        """Record ``drop_constraint``."""
        self._record("drop_constraint", const, **kw)

    def create_index(self, index: Index, **kw: Any) -> None:
        """Record ``create_index``."""
        self._record("create_index", index, **kw)

    def drop_index(self, index: Index, **kw: Any) -> None:
        """Record ``drop_index``."""
        self._record("drop_index", index, **kw)

    def create_table_comment(self, table: Table) -> None:
        """Record ``create_table_comment``."""
        self._record("create_table_comment", table)

    def drop_table_comment(self, table: Table) -> None:
        """Record ``drop_table_comment``."""
        self._record("drop_table_comment", table)

    def create_column_comment(self, column: Column[Any]) -> None:
        """Record ``create_column_comment``."""
        self._record("create_column_comment", column)

    def rename_table(self, *args: Any, **kw: Any) -> None:
        """Refuse: batch mode does not rename its table."""
        raise NotImplementedError("Can't rename the table in batch mode")

    def create_table(self, table: Table, **kw: Any) -> None:
        """Refuse: batch mode changes an existing table."""
        raise NotImplementedError("Can't create table in batch mode")

    def drop_table(self, table: Table, **kw: Any) -> None:
        """Refuse: batch mode changes an existing table."""
        raise NotImplementedError("Can't drop table in batch mode")

    def bulk_insert(self, *args: Any, **kw: Any) -> None:
        """Refuse: insert rows outside the batch block."""
        raise NotImplementedError("Can't bulk insert in batch mode")


class TableRecreate:
    """Rebuild one table with a batch's changes: new definition, rows copied, names swapped.

    It owns the evolving definition -- columns (keyed by their original
    names, so renamed columns still find their data), primary key,
    constraints, indexes and column order -- and the copy-and-move
    sequence. Each recorded batch call is applied to it by name.
    """

    def __init__(
        self,
        impl: DefaultImpl,
        table: Table,
        *,
        table_args: Sequence[Any] = (),
        table_kwargs: Mapping[str, Any] | None = None,
        reflected: bool = False,
        partial_reordering: Sequence[Sequence[str]] | None = None,
    ) -> None:
        self.impl = impl
        self.table = table
        self.table_args = list(table_args)
        self.table_kwargs = {**table.kwargs, **dict(table_kwargs or {})}
        self.reflected = reflected
        self.partial_reordering = [tuple(chain) for chain in (partial_reordering or ())]
        self.temp_table_name = f"{TEMP_PREFIX}{table.name}"[:50]
        self.comment: str | None = table.comment
        #: Scratch space for the dialect's prep/finish hooks.
        self.state: dict[str, Any] = {}

        self.columns: dict[str, Column[Any]] = {}
        self.sources: dict[str, ColumnElement[Any] | None] = {}
        self.order: list[str] = []
        self.moves: list[tuple[str, str | None, str | None]] = []
        self.dropped: set[str] = set()
        for col in table.columns:
            self.columns[col.key] = self._detached_copy(col)
            self.sources[col.key] = col
            self.order.append(col.key)

        pk = table.primary_key
        self.pk_name: Any = pk.name if pk is not None and pk.columns else None
        self.pk_columns: list[str] = [col.key for col in pk.columns] if pk is not None else []
        self.pk_kwargs: dict[str, Any] = dict(pk.dialect_kwargs) if pk is not None else {}

        self.named_constraints: dict[str, Constraint] = {}
        self.unnamed_constraints: list[Constraint] = []
        restated_checks = any(isinstance(arg, CheckConstraint) for arg in self.table_args)
        for const in self._existing_constraints():
            if isinstance(const, PrimaryKeyConstraint):
                continue
            if (
                reflected
                and restated_checks
                and isinstance(const, CheckConstraint)
                and not constraint_name_defined(const.name)
            ):
                continue  # restated through table_args
            self._keep(const)

        self.indexes: dict[str, Index] = {}
        self.unnamed_indexes: list[Index] = []
        for index in table.indexes:
            if index.name is None:
                self.unnamed_indexes.append(index)
            else:
                self.indexes[index.name] = index
        self.new_indexes: dict[str, Index] = {}
        self.new_table: Table | None = None

    # -- building blocks ------------------------------------------------------------------------

    def _existing_constraints(self) -> Iterable[Constraint]:
        yield from self.table.constraints
        for col in self.table.columns:
            for const in col.constraints:  # column-level CHECKs of a copy_from table
                if const not in self.table.constraints:
                    yield const

    def _keep(self, const: Constraint) -> None:
        if isinstance(const.name, str) and const.name:
            self.named_constraints[const.name] = const
        else:
            self.unnamed_constraints.append(const)

    @staticmethod
    def _detached_copy(col: Column[Any]) -> Column[Any]:
        copy = col._copy()
        copy.unique = False
        copy.index = False
        copy.primary_key = False
        copy.constraints = set()
        for fk in list(copy.foreign_keys):
            copy.foreign_keys.discard(fk)
        _disable_type_events(copy.type)
        return copy

    def _key_for(self, name: str) -> str | None:
        """Resolve a column name (current or original) to its key."""
        for key, col in self.columns.items():
            if col.name == name:
                return key
        return name if name in self.columns else None

    def _renamed(self) -> dict[str, str]:
        """Map original names of surviving, renamed columns to their new names."""
        renames: dict[str, str] = {}
        for key, column in self.columns.items():
            original = self.table.c.get(key)
            if original is not None and original.name != column.name:
                renames[original.name] = column.name
        return renames

    # -- the recorded vocabulary ----------------------------------------------------------------

    def add_column(
        self,
        table_name: str,
        column: Column[Any],
        *,
        insert_before: str | None = None,
        insert_after: str | None = None,
        **kw: Any,
    ) -> None:
        """Add a column, with its own foreign keys and CHECKs."""
        for fk in column.foreign_keys:
            if fk.constraint is not None:
                self._keep(fk.constraint)
        for const in column.constraints:
            if not is_type_bound(const):
                self._keep(const)
        copy = column._copy()
        copy.unique = False
        copy.index = False
        copy.constraints = set()
        is_pk = bool(copy.primary_key)
        copy.primary_key = False
        _disable_type_events(copy.type)
        key = copy.key
        while key in self.columns or key in self.table.c:
            key = f"_added_{key}"  # never mistaken for an original column of that name
        copy.key = key
        self.columns[key] = copy
        self.sources[key] = None
        self.order.append(key)
        if is_pk and key not in self.pk_columns:
            self.pk_columns.append(key)
        if insert_before or insert_after:
            self.moves.append((key, insert_before, insert_after))

    def drop_column(self, table_name: str, column: Column[Any], **kw: Any) -> None:
        """Drop a column; constraints and indexes on it go with it."""
        key = self._key_for(column.name)
        if key is None:
            raise ValueError(f"No such column: '{column.name}'")
        self.sources.pop(key)
        del self.columns[key]
        self.order.remove(key)
        if key in self.pk_columns:
            self.pk_columns.remove(key)
        original = self.table.c.get(key)
        if original is not None:
            self.dropped.add(original.name)

    def alter_column(
        self,
        table_name: str,
        column_name: str,
        nullable: bool | None = None,
        server_default: Any = False,
        name: str | None = None,
        type_: TypeEngine[Any] | None = None,
        autoincrement: bool | Literal["auto"] | None = None,
        comment: str | Literal[False] | None = False,
        insert_before: str | None = None,
        insert_after: str | None = None,
        **kw: Any,
    ) -> None:
        """Change a column of the new definition (name, type, nullability, default, comment)."""
        key = self._key_for(column_name)
        if key is None:
            raise ValueError(f"No such column: '{column_name}'")
        col = self.columns[key]
        if name is not None and name != col.name:
            col.name = name
        if type_ is not None:
            new_type = sqltypes.to_instance(type_)
            source = self.sources.get(key)
            if source is not None:
                transfer: dict[str, Any] = {"expr": source}
                self.impl.cast_for_batch_migrate(col, transfer, new_type)
                self.sources[key] = transfer["expr"]
            _disable_type_events(new_type)
            old_type = kw.get("existing_type") or col.type
            col.type = new_type
            self._forget_type_checks(key, old_type)
        if nullable is not None:
            col.nullable = nullable
        if server_default is not False:
            _set_server_default(col, server_default)
        if autoincrement is not None:
            col.autoincrement = bool(autoincrement) if autoincrement != "auto" else "auto"
        if comment is not False:
            col.comment = comment
        if insert_before or insert_after:
            self.moves.append((key, insert_before, insert_after))

    def _forget_type_checks(self, key: str, old_type: Any) -> None:
        """Drop the CHECKs the column's old type generated (or, reflected, looks like it did).

        A reflected CHECK of the form ``col IN (...)`` on a Boolean or Enum
        column is taken to be the one its type generated.
        """
        original = self.sources_name(key)
        type_check = isinstance(old_type, (sqltypes.Boolean, sqltypes.Enum))
        kept: list[Constraint] = []
        for const in self.unnamed_constraints:
            if isinstance(const, CheckConstraint) and (
                is_type_bound(const)
                or (self.reflected and type_check and _is_in_list_check(const, original))
            ):
                log.info("Dropping CHECK %s with the old type of column %s", const.sqltext, key)
                continue
            kept.append(const)
        self.unnamed_constraints = kept
        for name, const in list(self.named_constraints.items()):
            if is_type_bound(const) and _check_columns(const) <= {original}:
                del self.named_constraints[name]

    def sources_name(self, key: str) -> str:
        """Return the original name of a column (its key when it is new)."""
        source = self.table.c.get(key)
        return source.name if source is not None else key

    def add_constraint(self, const: Constraint, **kw: Any) -> None:
        """Add a constraint to the new definition (a primary key replaces the old one)."""
        if isinstance(const, PrimaryKeyConstraint):
            self.pk_name = const.name if constraint_name_defined(const.name) else None
            keys = [self._key_for(col.name) or col.name for col in const.columns]
            self.pk_columns = keys
            self.pk_kwargs = dict(const.dialect_kwargs)
            return
        self._keep(const)

    def drop_constraint(self, const: Constraint, **kw: Any) -> None:
        """Remove a constraint by name (the primary key also by kind).

        :raises ValueError: when no constraint of that name exists.
        """
        name = const.name if constraint_name_defined(const.name) else None
        if isinstance(const, PrimaryKeyConstraint) and (
            name is None or self.pk_name is None or name == self.pk_name
        ):
            self.pk_columns = []
            self.pk_name = None
            return
        if name is not None and name == self.pk_name and type(const) is Constraint:
            self.pk_columns = []
            self.pk_name = None
            return
        if name is not None and name in self.named_constraints:
            del self.named_constraints[name]
            return
        if const in self.unnamed_constraints:
            self.unnamed_constraints.remove(const)
            return
        if is_type_bound(const):
            return  # the type's own CHECK; handled with the type change
        raise ValueError(f"No such constraint: '{const.name}'")

    def create_index(self, index: Index, **kw: Any) -> None:
        """Create an index once the new table is in place."""
        self.new_indexes[str(index.name)] = index

    def drop_index(self, index: Index, **kw: Any) -> None:
        """Leave an index out of the new table.

        :raises ValueError: when no index of that name exists.
        """
        name = str(index.name)
        if name in self.indexes:
            del self.indexes[name]
        elif name in self.new_indexes:
            del self.new_indexes[name]
        else:
            raise ValueError(f"No such index: '{index.name}'")

    def create_table_comment(self, table: Table) -> None:
        """Give the new table the comment."""
        self.comment = table.comment

    def drop_table_comment(self, table: Table) -> None:
        """Give the new table no comment."""
        self.comment = None

    def create_column_comment(self, column: Column[Any]) -> None:
        """Nothing to do: the added column carries its comment into the new table."""

    # -- the new definition ---------------------------------------------------------------------

    def _final_order(self) -> list[str]:
        order = list(self.order)
        for key, before, after in self.moves:
            order.remove(key)
            anchor = self._key_for(before or after or "")
            if anchor is None or anchor not in order:
                raise ValueError(f"No such column: '{before or after}'")
            position = order.index(anchor) + (0 if before else 1)
            order.insert(position, key)
        if not self.partial_reordering:
            return order
        edges: dict[str, set[str]] = {key: set() for key in order}
        for chain in self.partial_reordering:
            resolved: list[str] = []
            for name in chain:
                found = self._key_for(name)
                if found is None:
                    raise ValueError(f"No such column in partial_reordering: '{name}'")
                resolved.append(found)
            for first, second in itertools.pairwise(resolved):
                if first != second:
                    edges[first].add(second)
        return _stable_topological(order, edges)

    def _build(self) -> Table:
        metadata = MetaData()
        order = self._final_order()
        renames = self._renamed()
        for key in order:
            computed = self.columns[key].computed
            if computed is not None and isinstance(computed.sqltext, TextClause):
                computed.sqltext = TextClause(
                    _rename_identifiers(computed.sqltext.text, renames, self.impl.dialect)
                )
        new_table = Table(
            self.temp_table_name,
            metadata,
            *[self.columns[key] for key in order],
            *self.table_args,
            schema=self.table.schema,
            comment=self.comment,
            **self.table_kwargs,
        )
        if self.pk_columns:
            new_table.append_constraint(
                PrimaryKeyConstraint(
                    *[new_table.c[key] for key in self.pk_columns if key in new_table.c],
                    name=self.pk_name,
                    **self.pk_kwargs,
                )
            )
        seen_fks: set[tuple[Any, ...]] = set()
        restated = {
            arg.name
            for arg in self.table_args
            if isinstance(arg, Constraint) and constraint_name_defined(arg.name)
        }
        for const in [*self.named_constraints.values(), *self.unnamed_constraints]:
            if const.name in restated:
                continue  # table_args gives this constraint anew
            copied = self._copy_constraint(const, new_table, metadata, renames, seen_fks)
            if copied is not None:
                new_table.append_constraint(copied)
        return new_table

    def _covers(self, const: Constraint) -> bool:
        """Tell whether every column ``const`` needs is still present."""
        if isinstance(const, CheckConstraint) and isinstance(const.sqltext, TextClause):
            return not (_identifiers_in(const.sqltext.text) & self._gone())
        return all(self._column_for(col) is not None for col in _constraint_columns(const))

    def _column_for(self, col: Any) -> str | None:
        """Find the new definition's column for a column a constraint or index names.

        An original column maps to itself while it exists; a dropped one to a
        column added under the same name in the same batch, if any (so an
        index survives dropping and re-adding its column, as in Alembic).
        """
        table = getattr(col, "table", None)
        if table is self.table and col.key in self.columns:
            return str(col.key)
        return self._key_for(col.name)

    def _gone(self) -> set[str]:
        """Original column names that were dropped and not added again."""
        return self.dropped - {col.name for col in self.columns.values()}

    def _copy_constraint(
        self,
        const: Constraint,
        new_table: Table,
        metadata: MetaData,
        renames: Mapping[str, str],
        seen_fks: set[tuple[Any, ...]],
    ) -> Constraint | None:
        if not self._covers(const):
            log.info("Leaving out constraint %r: a column it needs was dropped", const.name)
            return None
        name = const.name if constraint_name_defined(const.name) else None
        common: dict[str, Any] = {
            "name": name,
            "deferrable": const.deferrable,
            "initially": const.initially,
            **const.dialect_kwargs,
        }
        if isinstance(const, ForeignKeyConstraint):
            return self._copy_fk(const, new_table, metadata, seen_fks)
        if isinstance(const, CheckConstraint):
            sqltext: Any = const.sqltext
            if isinstance(sqltext, TextClause):
                sqltext = TextClause(_rename_identifiers(sqltext.text, renames, self.impl.dialect))
            else:
                sqltext = self._retarget(sqltext, new_table)
            return CheckConstraint(sqltext, **common)
        if isinstance(const, UniqueConstraint):
            cols = [self._target_column(col, new_table) for col in const.columns]
            return UniqueConstraint(*cols, **common)
        if type(const).__name__ == "ExcludeConstraint":
            copied: Constraint = const._copy(target_table=new_table)
            return copied
        log.warning("Cannot carry constraint %r of type %s into the new table", const.name, type(const))
        return None

    def _target_column(self, col: Any, new_table: Table) -> Column[Any]:
        key = self._column_for(col)
        assert key is not None
        return new_table.c[key]

    def _retarget(self, expression: Any, new_table: Table) -> Any:
        def replace(element: Any, **kw: Any) -> Any:
            if isinstance(element, Column) and element.table is not new_table:
                key = self._column_for(element)
                if key is not None:
                    return new_table.c[key]
            return None

        return visitors.replacement_traverse(expression, {}, replace)

    def _copy_fk(
        self,
        const: ForeignKeyConstraint,
        new_table: Table,
        metadata: MetaData,
        seen_fks: set[tuple[Any, ...]],
    ) -> ForeignKeyConstraint | None:
        local_keys: list[str] = []
        targets: list[tuple[str | None, str, str]] = []
        for element in const.elements:
            key = self._column_for(element.parent)
            if key is None:
                return None
            local_keys.append(key)
            targets.append(_split_colspec(element._get_colspec()))
        real_name, schema = self.table.name, self.table.schema
        specs: list[str] = []
        for target_schema, target_table, target_col in targets:
            self_ref = target_table == real_name and target_schema in (None, schema)
            if self_ref:
                key = self._key_for(target_col)
                if key is None:
                    return None
                target_col = self.columns[key].name
            prefix = f"{target_schema}." if target_schema else ""
            specs.append(f"{prefix}{target_table}.{target_col}")
            _ensure_stand_in(metadata, target_schema, target_table, target_col)
        signature = (tuple(local_keys), tuple(specs))
        if signature in seen_fks:
            return None
        seen_fks.add(signature)
        name = const.name if constraint_name_defined(const.name) else None
        return ForeignKeyConstraint(
            local_keys,
            specs,
            name=name,
            onupdate=const.onupdate,
            ondelete=const.ondelete,
            deferrable=const.deferrable,
            initially=const.initially,
            use_alter=const.use_alter,
            match=const.match,
            **const.dialect_kwargs,
        )

    def _indexes_for(self, new_table: Table) -> list[Index]:
        renames = self._renamed()
        indexes: list[Index] = []
        for index in [*self.indexes.values(), *self.unnamed_indexes]:
            expressions: list[Any] = []
            usable = True
            for expr in index.expressions:
                if isinstance(expr, TextClause):
                    if _identifiers_in(expr.text) & self._gone():
                        usable = False
                        break
                    expressions.append(
                        TextClause(_rename_identifiers(expr.text, renames, self.impl.dialect))
                    )
                elif isinstance(expr, Column) and expr.table is self.table:
                    key = self._column_for(expr)
                    if key is None:
                        usable = False
                        break
                    expressions.append(new_table.c[key])
                elif isinstance(expr, str):
                    key = self._key_for(renames.get(expr, expr))
                    if key is None:
                        usable = False
                        break
                    expressions.append(new_table.c[key])
                else:
                    expressions.append(self._retarget(expr, new_table))
            options: dict[str, Any] = {}
            for option, value in index.kwargs.items():
                if isinstance(value, TextClause):
                    if _identifiers_in(value.text) & self._gone():
                        usable = False
                    value = TextClause(_rename_identifiers(value.text, renames, self.impl.dialect))
                options[option] = value
            if not usable:
                log.info("Leaving out index %r: a column it needs was dropped", index.name)
                continue
            indexes.append(
                Index(index.name, *expressions, unique=index.unique, _table=new_table, **options)
            )
        for index in self.new_indexes.values():
            expressions = []
            for expr in index.expressions:
                if isinstance(expr, Column):
                    key = self._key_for(expr.name)
                    if key is None:
                        raise ValueError(f"No such column for index {index.name!r}: '{expr.name}'")
                    expressions.append(new_table.c[key])
                else:
                    expressions.append(self._retarget_by_name(expr, new_table))
            indexes.append(
                Index(index.name, *expressions, unique=index.unique, _table=new_table, **index.kwargs)
            )
        return indexes

    def _retarget_by_name(self, expression: Any, new_table: Table) -> Any:
        if not isinstance(expression, ClauseElement):
            return expression

        def replace(element: Any, **kw: Any) -> Any:
            if isinstance(element, Column) and element.table is not new_table:
                key = self._key_for(element.name)
                if key is not None:
                    return new_table.c[key]
            return None

        return visitors.replacement_traverse(expression, {}, replace)

    # -- copy and move ----------------------------------------------------------------------------

    def run(self) -> None:
        """Create the new table, copy the rows, drop the old table, rename, rebuild indexes."""
        impl = self.impl
        new_table = self._build()
        self.new_table = new_table
        impl.prep_table_for_batch(self, self.table)
        succeeded = False
        try:
            self._copy_and_move(new_table)
            succeeded = True
        finally:
            impl.finish_table_for_batch(self, new_table, succeeded)

    def _copy_and_move(self, new_table: Table) -> None:
        impl = self.impl
        impl.create_table(new_table)
        try:
            moved = [
                (new_table.c[key], source)
                for key in new_table.c.keys()  # noqa: SIM118 - a ColumnCollection
                if (source := self.sources.get(key)) is not None
                and new_table.c[key].computed is None
            ]
            if moved:
                impl._exec(
                    new_table.insert()
                    .inline()
                    .from_select([col for col, _ in moved], select(*[src for _, src in moved]))
                )
            impl.drop_table(self.table)
        except BaseException:
            try:
                impl.drop_table(new_table)
            except Exception:  # the transaction may be unusable; its rollback cleans up
                log.debug("Could not drop %s after a failed copy", self.temp_table_name)
            raise
        impl.rename_table_for_batch(self.temp_table_name, self.table.name, self.table.schema)
        new_table.name = quoted_name(self.table.name, getattr(self.table.name, "quote", None))
        try:
            for index in self._indexes_for(new_table):
                impl.create_index(index)
        except BaseException:
            new_table.name = quoted_name(self.temp_table_name, None)
            raise


# -- helpers ------------------------------------------------------------------------------------

_CONVENTION_KEYS: tuple[tuple[type[Constraint], str], ...] = (
    (CheckConstraint, "ck"),
    (UniqueConstraint, "uq"),
    (ForeignKeyConstraint, "fk"),
    (PrimaryKeyConstraint, "pk"),
)


def _apply_naming_convention(table: Table, convention: Mapping[Any, Any]) -> Table:
    """Name a reflected table's unnamed constraints by ``convention``; keep reflected names.

    Names that came back from the database are final. A constraint the
    convention cannot name (its pattern needs ``%(constraint_name)s``) stays
    unnamed instead of failing the whole batch.
    """
    for constraint in table.constraints:
        if isinstance(constraint.name, str) and not isinstance(constraint.name, conv):
            constraint.name = conv(constraint.name)
    held: list[Constraint] = []
    for constraint in list(table.constraints):
        if constraint_name_defined(constraint.name):
            continue
        for cls, key in _CONVENTION_KEYS:
            pattern = convention.get(key, convention.get(cls))
            if (
                isinstance(constraint, cls)
                and isinstance(pattern, str)
                and "%(constraint_name)s" in pattern
            ):
                held.append(constraint)
                table.constraints.discard(constraint)
                break
    metadata = MetaData(naming_convention=dict(convention))
    named = table.to_metadata(metadata)
    metadata.naming_convention = {}  # attach the held ones as they are
    try:
        for constraint in held:
            named.append_constraint(constraint._copy(target_table=named))
    finally:
        metadata.naming_convention = dict(convention)
    return named



def _disable_type_events(type_: Any) -> None:
    """Stop a SchemaType (Boolean, Enum) from adding its own CHECK / CREATE TYPE to a table."""
    if isinstance(type_, SchemaEventTarget):
        for attr in ("_create_events", "create_constraint"):
            if hasattr(type_, attr):
                setattr(type_, attr, False)


def _set_server_default(col: Column[Any], value: Any) -> None:
    col.server_default = None
    col.computed = None
    if value is None:
        return
    if isinstance(value, FetchedValue):
        value = value._copy() if hasattr(value, "_copy") else value
        value._set_parent(col)
    else:
        DefaultClause(value)._set_parent(col)


def _constraint_columns(const: Constraint) -> list[Any]:
    if isinstance(const, ForeignKeyConstraint):
        return [element.parent for element in const.elements]
    if isinstance(const, CheckConstraint):
        found: list[Any] = []
        visitors.traverse(const.sqltext, {}, {"column": found.append})
        return [col for col in found if isinstance(col, Column)]
    return list(getattr(const, "columns", ()))


def _check_columns(const: Constraint) -> set[str]:
    if isinstance(const, CheckConstraint) and isinstance(const.sqltext, TextClause):
        return _identifiers_in(const.sqltext.text)
    return {col.name for col in _constraint_columns(const)}


def _is_in_list_check(const: CheckConstraint, column: str) -> bool:
    """Tell whether a reflected CHECK reads ``column IN (...)`` (what Boolean/Enum generate)."""
    if not isinstance(const.sqltext, TextClause):
        return False
    pattern = rf"""^\s*\(?\s*["`\[]?{re.escape(column)}["`\]]?\s+IN\s*\("""
    return re.match(pattern, const.sqltext.text, re.IGNORECASE) is not None


_TOKEN = re.compile(
    r"""('(?:[^']|'')*')          # string literal: left alone
      | "((?:[^"]|"")+)"          # "quoted" identifier
      | `((?:[^`]|``)+)`          # `quoted` identifier
      | \[([^\]]+)\]              # [quoted] identifier
      | ([A-Za-z_][A-Za-z0-9_$]*) # bare word
    """,
    re.VERBOSE,
)


def _identifiers_in(sql: str) -> set[str]:
    """Return the identifiers (bare or quoted) a SQL fragment mentions, string literals excluded."""
    names: set[str] = set()
    for match in _TOKEN.finditer(sql):
        if match.group(1):
            continue
        for group in (2, 3, 4):
            if match.group(group):
                names.add(match.group(group))
                break
        else:
            names.add(match.group(5))
    return names


def _rename_identifiers(sql: str, renames: Mapping[str, str], dialect: Dialect) -> str:
    """Rewrite column names in a SQL fragment (outside string literals)."""
    if not renames:
        return sql
    quote = dialect.identifier_preparer.quote

    def replace(match: re.Match[str]) -> str:
        if match.group(1):
            return match.group(0)
        name = next((match.group(g) for g in (2, 3, 4, 5) if match.group(g)), None)
        if name is not None and name in renames:
            return quote(renames[name])
        return match.group(0)

    return _TOKEN.sub(replace, sql)


def _split_colspec(spec: str) -> tuple[str | None, str, str]:
    parts = spec.split(".")
    return (".".join(parts[:-2]) or None, parts[-2], parts[-1])


def _ensure_stand_in(metadata: MetaData, schema: str | None, table_name: str, column: str) -> None:
    key = f"{schema}.{table_name}" if schema else table_name
    table = metadata.tables.get(key)
    if table is None:
        table = Table(table_name, metadata, schema=schema)
    if column not in table.c:
        table.append_column(Column(column, NULLTYPE))


def _stable_topological(order: list[str], edges: Mapping[str, set[str]]) -> list[str]:
    """Sort ``order`` so each ``a -> b`` edge holds, otherwise keeping the given order.

    :raises ValueError: when the edges form a cycle.
    """
    position = {key: i for i, key in enumerate(order)}
    incoming = dict.fromkeys(order, 0)
    for targets in edges.values():
        for target in targets:
            incoming[target] += 1
    ready = [(position[key], key) for key in order if incoming[key] == 0]
    heapq.heapify(ready)
    result: list[str] = []
    while ready:
        _, key = heapq.heappop(ready)
        result.append(key)
        for target in edges.get(key, ()):
            incoming[target] -= 1
            if incoming[target] == 0:
                heapq.heappush(ready, (position[target], target))
    if len(result) != len(order):
        raise ValueError("partial_reordering contains a cycle")
    return result
