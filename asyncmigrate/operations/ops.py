"""Operations as data: what a migration changes, apart from how a database does it.

Each class describes one change (add a column, drop an index, ...) with
every argument kept as an attribute, how to undo it (:meth:`reverse`), a
human description, and a diff tuple in the shape autogenerate compares
with (:meth:`to_diff_tuple`). Class names, constructor arguments and
attributes are Alembic's, so ``process_revision_directives`` hooks and
operation plugins written for Alembic work on them.

As in Alembic, operations are plain mutable objects: a
``process_revision_directives`` hook may change one in place
(``op.if_not_exists = True``) or derive a changed copy with
:meth:`MigrateOperation.replace`.

Executing an operation is :mod:`asyncmigrate.operations.toimpl`'s job;
turning it into SQL is the dialect implementation's.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Callable, Iterator, MutableMapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeVar, cast

from sqlalchemy import (
    CheckConstraint,
    Column,
    ForeignKeyConstraint,
    Index,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    UniqueConstraint,
)
from sqlalchemy.schema import Constraint, SchemaItem
from sqlalchemy.sql.elements import ColumnElement, TextClause
from sqlalchemy.types import NULLTYPE

from . import schemaobj
from .schemaobj import constraint_name_or_none, constraint_table

if TYPE_CHECKING:
    from sqlalchemy.dialects.postgresql import ExcludeConstraint
    from sqlalchemy.sql.expression import Executable, TableClause

    from ..runtime.migration import MigrationContext

__all__ = [
    "AddColumnOp",
    "AddConstraintOp",
    "AlterColumnOp",
    "AlterTableOp",
    "BulkInsertOp",
    "CreateCheckConstraintOp",
    "CreateExcludeConstraintOp",
    "CreateForeignKeyOp",
    "CreateIndexOp",
    "CreatePrimaryKeyOp",
    "CreateTableCommentOp",
    "CreateTableOp",
    "CreateUniqueConstraintOp",
    "DowngradeOps",
    "DropColumnOp",
    "DropConstraintOp",
    "DropIndexOp",
    "DropTableCommentOp",
    "DropTableOp",
    "ExecuteSQLOp",
    "MigrateOperation",
    "MigrationScript",
    "ModifyTableOps",
    "OpContainer",
    "RenameTableOp",
    "UpgradeOps",
]

_AC = TypeVar("_AC", bound="type[AddConstraintOp]")
_Op = TypeVar("_Op", bound="MigrateOperation")


class MigrateOperation:
    """Describe one migration change (or, for containers, a group of them).

    Subclasses set every constructor argument as an attribute. The base
    class owns :attr:`info` and :meth:`replace`; what an operation does to
    a database is registered separately with
    :meth:`Operations.implementation_for`. Instances are mutable, as
    Alembic's are.
    """

    #: Rewriters that already produced this operation (:class:`~asyncmigrate.autogenerate.Rewriter`).
    _mutations: frozenset[Any] = frozenset()

    @property
    def info(self) -> dict[Any, Any]:
        """A dictionary for arbitrary data travelling with this operation."""
        info: dict[Any, Any] | None = self.__dict__.get("_info")
        if info is None:
            info = {}
            self.__dict__["_info"] = info
        return info

    def replace(self: _Op, **changes: Any) -> _Op:
        """Return a copy with the given attributes changed.

        :raises AttributeError: for a name that is not an attribute of this operation.
        """
        clone = copy.copy(self)
        for name, value in changes.items():
            if name not in self.__dict__ and not hasattr(type(self), name):
                raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")
            setattr(clone, name, value)
        return clone

    def reverse(self) -> MigrateOperation:
        """Return the operation that undoes this one.

        :raises NotImplementedError: when the operation cannot be undone from
            what it records.
        """
        raise NotImplementedError(f"{type(self).__name__} has no reverse")

    def to_diff_tuple(self) -> Any:
        """Return the change as autogenerate's diff tuple."""
        raise NotImplementedError(f"{type(self).__name__} has no diff tuple")

    @property
    def description(self) -> str:
        """A one-line human description of the change."""
        return type(self).__name__

    def __str__(self) -> str:
        return self.description

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{key}={value!r}"
            for key, value in self.__dict__.items()
            if not key.startswith("_") and key != "info"
        )
        return f"{type(self).__name__}({shown})"


def _qualified(table_name: str | None, schema: str | None) -> str:
    name = table_name or "?"
    return f"{schema}.{name}" if schema else name


# -- constraints ---------------------------------------------------------------------------


class AddConstraintOp(MigrateOperation):
    """Add a constraint to an existing table (base of the ``create_*constraint`` operations)."""

    #: Constraint ``__visit_name__`` -> the operation class that describes adding it.
    _by_visit_name: ClassVar[dict[str, type[AddConstraintOp]]] = {}

    constraint_name: str | None
    table_name: str
    schema: str | None
    #: The kind of constraint: ``primarykey``, ``unique``, ``foreignkey``, ``check``, ``exclude``.
    constraint_type: ClassVar[str] = "constraint"

    @classmethod
    def register_add_constraint(cls, type_: str) -> Callable[[_AC], _AC]:
        """Register an operation class for constraints whose ``__visit_name__`` is ``type_``."""

        def register(klass: _AC) -> _AC:
            cls._by_visit_name[type_] = klass
            return klass

        return register

    @classmethod
    def from_constraint(cls, constraint: Constraint) -> AddConstraintOp:
        """Describe adding ``constraint`` (dispatching on its kind)."""
        klass = AddConstraintOp._by_visit_name.get(constraint.__visit_name__)
        if klass is None:
            raise ValueError(f"No operation describes adding a {constraint.__visit_name__}")
        return klass.from_constraint(constraint)

    def to_constraint(self, migration_context: MigrationContext | None = None) -> Constraint:
        """Build the SQLAlchemy constraint (on a stand-in table)."""
        raise NotImplementedError

    def reverse(self) -> DropConstraintOp:
        """Return the drop of this constraint."""
        return DropConstraintOp.from_constraint(self.to_constraint())

    def to_diff_tuple(self) -> tuple[Any, ...]:
        """Return ``("add_constraint", constraint)``."""
        return ("add_constraint", self.to_constraint())

    @property
    def description(self) -> str:
        """A one-line human description of the change."""
        name = self.constraint_name or "(unnamed)"
        return (
            f"Create {self.constraint_type} constraint {name} on "
            f"{_qualified(self.table_name, self.schema)}"
        )


class DropConstraintOp(MigrateOperation):
    """Drop a constraint by name; ``type_`` is its kind (``foreignkey``, ``primary``, ...)."""


    def __init__(
        self,
        constraint_name: str | None,
        table_name: str,
        type_: str | None = None,
        *,
        schema: str | None = None,
        if_exists: bool | None = None,
        _reverse: AddConstraintOp | None = None,
    ) -> None:
        self.constraint_name = constraint_name
        self.table_name = table_name
        self.constraint_type = type_
        self.schema = schema
        self.if_exists = if_exists
        self._reverse = _reverse

    @classmethod
    def from_constraint(cls, constraint: Constraint) -> DropConstraintOp:
        """Describe dropping ``constraint`` (its re-creation is kept for :meth:`reverse`)."""
        kinds = {
            "unique_constraint": "unique",
            "foreign_key_constraint": "foreignkey",
            "primary_key_constraint": "primary",
            "check_constraint": "check",
            "column_check_constraint": "check",
            "table_or_column_check_constraint": "check",
        }
        table = constraint_table(constraint)
        return cls(
            constraint_name_or_none(constraint.name),
            table.name,
            type_=kinds.get(constraint.__visit_name__),
            schema=table.schema,
            _reverse=AddConstraintOp.from_constraint(constraint),
        )

    def to_constraint(self) -> Constraint:
        """Build the dropped constraint as it was (needs the original).

        :raises ValueError: when the operation was not made from a constraint.
        """
        if self._reverse is None:
            raise ValueError("Constraint cannot be produced; the original constraint is not known")
        constraint = self._reverse.to_constraint()
        constraint.name = self.constraint_name
        table = constraint_table(constraint)
        table.name = self.table_name
        table.schema = self.schema
        return constraint

    def reverse(self) -> AddConstraintOp:
        """Return the re-creation of the dropped constraint (needs the original)."""
        return AddConstraintOp.from_constraint(self.to_constraint())

    def to_diff_tuple(self) -> tuple[Any, ...]:
        """Return ``("remove_fk", fk)`` or ``("remove_constraint", constraint)``."""
        if self.constraint_type == "foreignkey":
            return ("remove_fk", self.to_constraint())
        return ("remove_constraint", self.to_constraint())

    @property
    def description(self) -> str:
        """A one-line human description of the change."""
        return (
            f"Drop {self.constraint_type or ''} constraint {self.constraint_name} on "
            f"{_qualified(self.table_name, self.schema)}".replace("Drop  ", "Drop ")
        )


@AddConstraintOp.register_add_constraint("primary_key_constraint")
class CreatePrimaryKeyOp(AddConstraintOp):
    """Create a primary key on existing columns."""

    constraint_type = "primarykey"

    def __init__(
        self,
        constraint_name: str | None,
        table_name: str,
        columns: Sequence[str],
        *,
        schema: str | None = None,
        **kw: Any,
    ) -> None:
        self.constraint_name = constraint_name
        self.table_name = table_name
        self.columns = columns
        self.schema = schema
        self.kw = kw

    @classmethod
    def from_constraint(cls, constraint: Constraint) -> CreatePrimaryKeyOp:
        """Describe adding a primary key constraint."""
        pk = cast(PrimaryKeyConstraint, constraint)
        table = constraint_table(pk)
        return cls(
            constraint_name_or_none(pk.name),
            table.name,
            pk.columns.keys(),
            schema=table.schema,
            **pk.dialect_kwargs,
        )

    def to_constraint(
        self, migration_context: MigrationContext | None = None
    ) -> PrimaryKeyConstraint:
        """Build the primary key on a stand-in table."""
        return schemaobj.SchemaObjects(migration_context).primary_key_constraint(
            self.constraint_name, self.table_name, self.columns, schema=self.schema, **self.kw
        )


@AddConstraintOp.register_add_constraint("unique_constraint")
class CreateUniqueConstraintOp(AddConstraintOp):
    """Create a unique constraint."""

    constraint_type = "unique"

    def __init__(
        self,
        constraint_name: str | None,
        table_name: str,
        columns: Sequence[str],
        *,
        schema: str | None = None,
        **kw: Any,
    ) -> None:
        self.constraint_name = constraint_name
        self.table_name = table_name
        self.columns = columns
        self.schema = schema
        self.kw = kw

    @classmethod
    def from_constraint(cls, constraint: Constraint) -> CreateUniqueConstraintOp:
        """Describe adding a unique constraint."""
        uq = cast(UniqueConstraint, constraint)
        table = constraint_table(uq)
        kw: dict[str, Any] = {}
        if uq.deferrable:
            kw["deferrable"] = uq.deferrable
        if uq.initially:
            kw["initially"] = uq.initially
        kw.update(uq.dialect_kwargs)
        return cls(
            constraint_name_or_none(uq.name),
            table.name,
            [col.name for col in uq.columns],
            schema=table.schema,
            **kw,
        )

    def to_constraint(
        self, migration_context: MigrationContext | None = None
    ) -> UniqueConstraint:
        """Build the unique constraint on a stand-in table."""
        return schemaobj.SchemaObjects(migration_context).unique_constraint(
            self.constraint_name, self.table_name, self.columns, schema=self.schema, **self.kw
        )


@AddConstraintOp.register_add_constraint("foreign_key_constraint")
class CreateForeignKeyOp(AddConstraintOp):
    """Create a foreign key from ``source_table`` to ``referent_table``."""

    constraint_type = "foreignkey"

    def __init__(
        self,
        constraint_name: str | None,
        source_table: str,
        referent_table: str,
        local_cols: list[str],
        remote_cols: list[str],
        **kw: Any,
    ) -> None:
        self.constraint_name = constraint_name
        self.source_table = source_table
        self.referent_table = referent_table
        self.local_cols = local_cols
        self.remote_cols = remote_cols
        self.kw = kw

    @property
    def table_name(self) -> str:  # type: ignore[override]
        """The source table (where the constraint lives)."""
        return self.source_table

    @property
    def schema(self) -> str | None:  # type: ignore[override]
        """The source table's schema."""
        schema: str | None = self.kw.get("source_schema")
        return schema

    @classmethod
    def from_constraint(cls, constraint: Constraint) -> CreateForeignKeyOp:
        """Describe adding a foreign key constraint."""
        fk = cast(ForeignKeyConstraint, constraint)
        kw: dict[str, Any] = {}
        for attr in ("onupdate", "ondelete", "initially", "deferrable", "use_alter", "match"):
            value = getattr(fk, attr)
            if value:
                kw[attr] = value
        source = constraint_table(fk)
        first = fk.elements[0]
        target_parts = first._get_colspec().split(".")
        target_table = target_parts[-2]
        target_schema = ".".join(target_parts[:-2]) or None
        kw["source_schema"] = source.schema
        kw["referent_schema"] = target_schema
        kw.update(fk.dialect_kwargs)
        return cls(
            constraint_name_or_none(fk.name),
            source.name,
            target_table,
            [element.parent.name for element in fk.elements],
            [element._get_colspec().split(".")[-1] for element in fk.elements],
            **kw,
        )

    def to_constraint(
        self, migration_context: MigrationContext | None = None
    ) -> ForeignKeyConstraint:
        """Build the foreign key between stand-in tables."""
        return schemaobj.SchemaObjects(migration_context).foreign_key_constraint(
            self.constraint_name,
            self.source_table,
            self.referent_table,
            self.local_cols,
            self.remote_cols,
            **self.kw,
        )

    def to_diff_tuple(self) -> tuple[Any, ...]:
        """Return ``("add_fk", constraint)``."""
        return ("add_fk", self.to_constraint())

    @property
    def description(self) -> str:
        """A one-line human description of the change."""
        return (
            f"Create foreign key {self.constraint_name or '(unnamed)'} from "
            f"{_qualified(self.source_table, self.schema)}({', '.join(self.local_cols)}) to "
            f"{_qualified(self.referent_table, self.kw.get('referent_schema'))}"
            f"({', '.join(self.remote_cols)})"
        )


@AddConstraintOp.register_add_constraint("check_constraint")
@AddConstraintOp.register_add_constraint("column_check_constraint")
@AddConstraintOp.register_add_constraint("table_or_column_check_constraint")
class CreateCheckConstraintOp(AddConstraintOp):
    """Create a CHECK constraint."""

    constraint_type = "check"

    def __init__(
        self,
        constraint_name: str | None,
        table_name: str,
        condition: str | TextClause | ColumnElement[Any],
        *,
        schema: str | None = None,
        **kw: Any,
    ) -> None:
        self.constraint_name = constraint_name
        self.table_name = table_name
        self.condition = condition
        self.schema = schema
        self.kw = kw

    @classmethod
    def from_constraint(cls, constraint: Constraint) -> CreateCheckConstraintOp:
        """Describe adding a CHECK constraint."""
        ck = cast(CheckConstraint, constraint)
        table = constraint_table(ck)
        return cls(
            constraint_name_or_none(ck.name),
            table.name,
            cast("ColumnElement[Any]", ck.sqltext),
            schema=table.schema,
            **ck.dialect_kwargs,
        )

    def to_constraint(
        self, migration_context: MigrationContext | None = None
    ) -> CheckConstraint:
        """Build the CHECK constraint on a stand-in table."""
        return schemaobj.SchemaObjects(migration_context).check_constraint(
            self.constraint_name, self.table_name, self.condition, schema=self.schema, **self.kw
        )


@AddConstraintOp.register_add_constraint("exclude_constraint")
class CreateExcludeConstraintOp(AddConstraintOp):
    """Create a PostgreSQL EXCLUDE constraint from ``(expression, operator)`` elements."""

    constraint_type = "exclude"

    def __init__(
        self,
        constraint_name: str | None,
        table_name: str,
        elements: Sequence[tuple[Any, str]],
        where: ColumnElement[bool] | str | None = None,
        schema: str | None = None,
        _orig_constraint: ExcludeConstraint | None = None,
        **kw: Any,
    ) -> None:
        self.constraint_name = constraint_name
        self.table_name = table_name
        self.elements = elements
        self.where = where
        self.schema = schema
        self._orig_constraint = _orig_constraint
        self.kw = kw

    @classmethod
    def from_constraint(cls, constraint: Constraint) -> CreateExcludeConstraintOp:
        """Describe adding an EXCLUDE constraint."""
        from sqlalchemy.dialects.postgresql import ExcludeConstraint

        excl = cast(ExcludeConstraint, constraint)
        table = constraint_table(excl)
        return cls(
            constraint_name_or_none(excl.name),
            table.name,
            [(expr, operator) for expr, _name, operator in excl._render_exprs],
            where=cast("ColumnElement[bool] | None", excl.where),
            schema=table.schema,
            _orig_constraint=excl,
            deferrable=excl.deferrable,
            initially=excl.initially,
            using=excl.using,
        )

    def to_constraint(
        self, migration_context: MigrationContext | None = None
    ) -> ExcludeConstraint:
        """Build the EXCLUDE constraint on a stand-in table."""
        from sqlalchemy.dialects.postgresql import ExcludeConstraint

        if self._orig_constraint is not None:
            return self._orig_constraint
        table = schemaobj.SchemaObjects(migration_context).table(
            self.table_name, schema=self.schema
        )
        excl = ExcludeConstraint(
            *self.elements, name=self.constraint_name, where=self.where, **self.kw
        )
        for _expr, name, _operator in excl._render_exprs:
            if isinstance(name, str) and name not in table.c:
                table.append_column(Column(name, NULLTYPE))
        table.append_constraint(excl)
        return excl


# -- indexes --------------------------------------------------------------------------------


class CreateIndexOp(MigrateOperation):
    """Create an index over columns and/or SQL expressions."""


    def __init__(
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
        self.index_name = index_name
        self.table_name = table_name
        self.columns = columns
        self.schema = schema
        self.unique = unique
        self.if_not_exists = if_not_exists
        self.kw = kw

    @classmethod
    def from_index(cls, index: Index) -> CreateIndexOp:
        """Describe creating ``index``."""
        table = index.table
        assert table is not None
        return cls(
            index.name,
            table.name,
            index.expressions,
            schema=getattr(table, "schema", None),
            unique=bool(index.unique),
            **index.kwargs,
        )

    def to_index(self, migration_context: MigrationContext | None = None) -> Index:
        """Build the index on a stand-in table."""
        return schemaobj.SchemaObjects(migration_context).index(
            self.index_name,
            self.table_name,
            self.columns,
            schema=self.schema,
            unique=self.unique,
            **self.kw,
        )

    def reverse(self) -> DropIndexOp:
        """Return the drop of this index."""
        return DropIndexOp.from_index(self.to_index())

    def to_diff_tuple(self) -> tuple[Any, ...]:
        """Return ``("add_index", index)``."""
        return ("add_index", self.to_index())

    @property
    def description(self) -> str:
        """A one-line human description of the change."""
        kind = "unique index" if self.unique else "index"
        return f"Create {kind} {self.index_name} on {_qualified(self.table_name, self.schema)}"


class DropIndexOp(MigrateOperation):
    """Drop an index by name."""


    def __init__(
        self,
        index_name: str,
        table_name: str | None = None,
        *,
        schema: str | None = None,
        if_exists: bool | None = None,
        _reverse: CreateIndexOp | None = None,
        **kw: Any,
    ) -> None:
        self.index_name = index_name
        self.table_name = table_name
        self.schema = schema
        self.if_exists = if_exists
        self._reverse = _reverse
        self.kw = kw

    @classmethod
    def from_index(cls, index: Index) -> DropIndexOp:
        """Describe dropping ``index`` (its re-creation is kept for :meth:`reverse`)."""
        table = index.table
        assert table is not None
        assert index.name is not None
        return cls(
            index.name,
            table_name=table.name,
            schema=getattr(table, "schema", None),
            _reverse=CreateIndexOp.from_index(index),
            unique=index.unique,
            **index.kwargs,
        )

    def to_index(self, migration_context: MigrationContext | None = None) -> Index:
        """Build the index on a stand-in table (columns only when the original is known)."""
        columns: Sequence[Any] = self._reverse.columns if self._reverse is not None else ["x"]
        return schemaobj.SchemaObjects(migration_context).index(
            self.index_name, self.table_name, columns, schema=self.schema, **self.kw
        )

    def reverse(self) -> CreateIndexOp:
        """Return the re-creation of the index (needs the original for its columns)."""
        return CreateIndexOp.from_index(self.to_index())

    def to_diff_tuple(self) -> tuple[Any, ...]:
        """Return ``("remove_index", index)``."""
        return ("remove_index", self.to_index())

    @property
    def description(self) -> str:
        """A one-line human description of the change."""
        where = f" on {_qualified(self.table_name, self.schema)}" if self.table_name else ""
        return f"Drop index {self.index_name}{where}"


# -- tables ----------------------------------------------------------------------------------


class CreateTableOp(MigrateOperation):
    """Create a table from columns, constraints and indexes.

    ``info``, ``comment`` and ``prefixes`` are lifted out of the table
    keyword arguments; the rest stay in :attr:`kw`.
    """


    def __init__(
        self,
        table_name: str,
        columns: Sequence[SchemaItem],
        *,
        schema: str | None = None,
        if_not_exists: bool | None = None,
        _namespace_metadata: MetaData | None = None,
        _constraints_included: bool = False,
        **kw: Any,
    ) -> None:
        self.table_name = table_name
        self.columns = columns
        self.schema = schema
        self.if_not_exists = if_not_exists
        self.__dict__["_info"] = kw.pop("info", None) or {}
        self.comment: str | None = kw.pop("comment", None)
        self.prefixes: list[str] | None = kw.pop("prefixes", None)
        self.kw = kw
        self._namespace_metadata = _namespace_metadata
        self._constraints_included = _constraints_included

    @classmethod
    def from_table(
        cls, table: Table, *, _namespace_metadata: MetaData | None = None
    ) -> CreateTableOp:
        """Describe creating ``table``."""
        if _namespace_metadata is None:
            _namespace_metadata = table.metadata
        return cls(
            table.name,
            [*table.columns, *table.constraints],
            schema=table.schema,
            _namespace_metadata=_namespace_metadata,
            # The Table already holds the Index/UniqueConstraint objects that
            # unique=True/index=True columns produced; rebuilding must not add them twice.
            _constraints_included=True,
            comment=table.comment,
            info=dict(table.info),
            prefixes=list(table._prefixes),
            **table.kwargs,
        )

    def to_table(self, migration_context: MigrationContext | None = None) -> Table:
        """Build the table (in a fresh ``MetaData`` with the target naming convention)."""
        return schemaobj.SchemaObjects(migration_context).table(
            self.table_name,
            *self.columns,
            schema=self.schema,
            prefixes=list(self.prefixes) if self.prefixes else [],
            comment=self.comment,
            info=dict(self.info),
            _constraints_included=self._constraints_included,
            **self.kw,
        )

    def reverse(self) -> DropTableOp:
        """Return the drop of this table."""
        return DropTableOp.from_table(
            self.to_table(), _namespace_metadata=self._namespace_metadata
        )

    def to_diff_tuple(self) -> tuple[Any, ...]:
        """Return ``("add_table", table)``."""
        return ("add_table", self.to_table())

    @property
    def description(self) -> str:
        """A one-line human description of the change."""
        return f"Create table {_qualified(self.table_name, self.schema)}"


class DropTableOp(MigrateOperation):
    """Drop a table; ``table_kw`` are keyword arguments of its ``Table``."""


    def __init__(
        self,
        table_name: str,
        *,
        schema: str | None = None,
        if_exists: bool | None = None,
        table_kw: MutableMapping[Any, Any] | None = None,
        _reverse: CreateTableOp | None = None,
    ) -> None:
        self.table_name = table_name
        self.schema = schema
        self.if_exists = if_exists
        table_kw = dict(table_kw or {})
        self.comment: str | None = table_kw.pop("comment", None)
        self.__dict__["_info"] = table_kw.pop("info", None) or {}
        self.prefixes: list[str] | None = table_kw.pop("prefixes", None)
        self.table_kw = table_kw
        self._reverse = _reverse

    @classmethod
    def from_table(
        cls, table: Table, *, _namespace_metadata: MetaData | None = None
    ) -> DropTableOp:
        """Describe dropping ``table`` (its re-creation is kept for :meth:`reverse`)."""
        return cls(
            table.name,
            schema=table.schema,
            table_kw={
                "comment": table.comment,
                "info": dict(table.info),
                "prefixes": list(table._prefixes),
                **table.kwargs,
            },
            _reverse=CreateTableOp.from_table(table, _namespace_metadata=_namespace_metadata),
        )

    def to_table(self, migration_context: MigrationContext | None = None) -> Table:
        """Build the table (with its columns when the original is known)."""
        items: Sequence[SchemaItem] = self._reverse.columns if self._reverse is not None else []
        return schemaobj.SchemaObjects(migration_context).table(
            self.table_name,
            *items,
            comment=self.comment,
            info=dict(self.info),
            prefixes=list(self.prefixes) if self.prefixes else [],
            schema=self.schema,
            _constraints_included=(
                self._reverse._constraints_included if self._reverse is not None else False
            ),
            **self.table_kw,
        )

    def reverse(self) -> CreateTableOp:
        """Return the re-creation of the table (needs the original for its columns)."""
        return CreateTableOp.from_table(self.to_table())

    def to_diff_tuple(self) -> tuple[Any, ...]:
        """Return ``("remove_table", table)``."""
        return ("remove_table", self.to_table())

    @property
    def description(self) -> str:
        """A one-line human description of the change."""
        return f"Drop table {_qualified(self.table_name, self.schema)}"


class AlterTableOp(MigrateOperation):
    """Change one existing table (base of the column and comment operations)."""


    def __init__(self, table_name: str, *, schema: str | None = None) -> None:
        self.table_name = table_name
        self.schema = schema


class RenameTableOp(AlterTableOp):
    """Rename a table within its schema."""

    def __init__(
        self, old_table_name: str, new_table_name: str, *, schema: str | None = None
    ) -> None:
        super().__init__(old_table_name, schema=schema)
        self.new_table_name = new_table_name

    def reverse(self) -> RenameTableOp:
        """Return the rename back."""
        return RenameTableOp(self.new_table_name, self.table_name, schema=self.schema)

    def to_diff_tuple(self) -> tuple[Any, ...]:
        """Return ``("rename_table", schema, old_name, new_name)``."""
        return ("rename_table", self.schema, self.table_name, self.new_table_name)

    @property
    def description(self) -> str:
        """A one-line human description of the change."""
        return (
            f"Rename table {_qualified(self.table_name, self.schema)} to {self.new_table_name}"
        )


class CreateTableCommentOp(AlterTableOp):
    """Set a table's comment (``existing_comment`` makes it reversible)."""

    def __init__(
        self,
        table_name: str,
        comment: str | None,
        *,
        schema: str | None = None,
        existing_comment: str | None = None,
    ) -> None:
        super().__init__(table_name, schema=schema)
        self.comment = comment
        self.existing_comment = existing_comment

    def reverse(self) -> CreateTableCommentOp | DropTableCommentOp:
        """Return the restoration of the previous comment (or its removal)."""
        if self.existing_comment is None:
            return DropTableCommentOp(
                self.table_name, existing_comment=self.comment, schema=self.schema
            )
        return CreateTableCommentOp(
            self.table_name,
            self.existing_comment,
            existing_comment=self.comment,
            schema=self.schema,
        )

    def to_table(self, migration_context: MigrationContext | None = None) -> Table:
        """Build a stand-in table carrying the new comment."""
        return schemaobj.SchemaObjects(migration_context).table(
            self.table_name, schema=self.schema, comment=self.comment
        )

    def to_diff_tuple(self) -> tuple[Any, ...]:
        """Return ``("add_table_comment", table, existing_comment)``."""
        return ("add_table_comment", self.to_table(), self.existing_comment)

    @property
    def description(self) -> str:
        """A one-line human description of the change."""
        return f"Set comment on table {_qualified(self.table_name, self.schema)}"


class DropTableCommentOp(AlterTableOp):
    """Remove a table's comment (``existing_comment`` makes it reversible)."""

    def __init__(
        self,
        table_name: str,
        *,
        schema: str | None = None,
        existing_comment: str | None = None,
    ) -> None:
        super().__init__(table_name, schema=schema)
        self.existing_comment = existing_comment

    def reverse(self) -> CreateTableCommentOp:
        """Return the restoration of the removed comment."""
        return CreateTableCommentOp(self.table_name, self.existing_comment, schema=self.schema)

    def to_table(self, migration_context: MigrationContext | None = None) -> Table:
        """Build a stand-in table."""
        return schemaobj.SchemaObjects(migration_context).table(
            self.table_name, schema=self.schema
        )

    def to_diff_tuple(self) -> tuple[Any, ...]:
        """Return ``("remove_table_comment", table)``."""
        return ("remove_table_comment", self.to_table())

    @property
    def description(self) -> str:
        """A one-line human description of the change."""
        return f"Remove comment from table {_qualified(self.table_name, self.schema)}"


# -- columns --------------------------------------------------------------------------------


class AlterColumnOp(AlterTableOp):
    """Change one column: each ``modify_*`` is a change, each ``existing_*`` what it is now.

    ``modify_comment`` and the server defaults use ``False`` for "no change"
    (``None`` means "remove"). Mutable, as autogenerate fills it in aspect
    by aspect; dialect options (``postgresql_using``, ``mysql_*``, batch
    ``insert_before``/``insert_after``) travel in :attr:`kw`.
    """


    def __init__(
        self,
        table_name: str,
        column_name: str,
        *,
        schema: str | None = None,
        existing_type: Any | None = None,
        existing_server_default: Any = False,
        existing_nullable: bool | None = None,
        existing_comment: str | None = None,
        modify_nullable: bool | None = None,
        modify_comment: str | Literal[False] | None = False,
        modify_server_default: Any = False,
        modify_name: str | None = None,
        modify_type: Any | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(table_name, schema=schema)
        self.column_name = column_name
        self.existing_type = existing_type
        self.existing_server_default = existing_server_default
        self.existing_nullable = existing_nullable
        self.existing_comment = existing_comment
        self.modify_nullable = modify_nullable
        self.modify_comment = modify_comment
        self.modify_server_default = modify_server_default
        self.modify_name = modify_name
        self.modify_type = modify_type
        self.kw = kw

    def has_changes(self) -> bool:
        """Tell whether anything is being modified."""
        return (
            self.modify_nullable is not None
            or self.modify_server_default is not False
            or self.modify_type is not None
            or self.modify_comment is not False
            or any(key.startswith("modify_") for key in self.kw)
        )

    def to_diff_tuple(self) -> list[tuple[Any, ...]]:
        """Return one diff tuple per modified aspect (type, nullable, default, comment)."""
        schema, table, column = self.schema, self.table_name, self.column_name
        diffs: list[tuple[Any, ...]] = []
        if self.modify_type is not None:
            diffs.append(
                (
                    "modify_type",
                    schema,
                    table,
                    column,
                    {
                        "existing_nullable": self.existing_nullable,
                        "existing_server_default": self.existing_server_default,
                        "existing_comment": self.existing_comment,
                    },
                    self.existing_type,
                    self.modify_type,
                )
            )
        if self.modify_nullable is not None:
            diffs.append(
                (
                    "modify_nullable",
                    schema,
                    table,
                    column,
                    {
                        "existing_type": self.existing_type,
                        "existing_server_default": self.existing_server_default,
                        "existing_comment": self.existing_comment,
                    },
                    self.existing_nullable,
                    self.modify_nullable,
                )
            )
        if self.modify_server_default is not False:
            diffs.append(
                (
                    "modify_default",
                    schema,
                    table,
                    column,
                    {
                        "existing_nullable": self.existing_nullable,
                        "existing_type": self.existing_type,
                        "existing_comment": self.existing_comment,
                    },
                    self.existing_server_default,
                    self.modify_server_default,
                )
            )
        if self.modify_comment is not False:
            diffs.append(
                (
                    "modify_comment",
                    schema,
                    table,
                    column,
                    {
                        "existing_nullable": self.existing_nullable,
                        "existing_type": self.existing_type,
                        "existing_server_default": self.existing_server_default,
                    },
                    self.existing_comment,
                    self.modify_comment,
                )
            )
        return diffs

    def reverse(self) -> AlterColumnOp:
        """Return the change back: every modified aspect swaps with its ``existing_*`` value."""
        kw = dict(self.kw)
        kw["existing_type"] = self.existing_type
        kw["existing_nullable"] = self.existing_nullable
        kw["existing_server_default"] = self.existing_server_default
        kw["existing_comment"] = self.existing_comment
        if self.modify_type is not None:
            kw["modify_type"] = self.modify_type
        if self.modify_nullable is not None:
            kw["modify_nullable"] = self.modify_nullable
        if self.modify_server_default is not False:
            kw["modify_server_default"] = self.modify_server_default
        if self.modify_comment is not False:
            kw["modify_comment"] = self.modify_comment
        aspects = {
            match.group(1)
            for match in (re.match(r"^(?:existing_|modify_)(.+)$", key) for key in kw)
            if match
        }
        for aspect in aspects:
            modify, existing = f"modify_{aspect}", f"existing_{aspect}"
            if modify in kw:
                kw[modify], kw[existing] = kw.get(existing), kw[modify]
        return type(self)(self.table_name, self.column_name, schema=self.schema, **kw)

    @property
    def description(self) -> str:
        """A one-line human description of the change."""
        aspects = [
            label
            for label, changed in (
                ("type", self.modify_type is not None),
                ("nullable", self.modify_nullable is not None),
                ("server default", self.modify_server_default is not False),
                ("comment", self.modify_comment is not False),
                (f"name to {self.modify_name}", self.modify_name is not None),
            )
            if changed
        ]
        what = ", ".join(aspects) if aspects else "nothing"
        return (
            f"Alter column {_qualified(self.table_name, self.schema)}.{self.column_name}: {what}"
        )


class AddColumnOp(AlterTableOp):
    """Add a column (``inline_references``/``inline_primary_key`` render those inline)."""

    def __init__(
        self,
        table_name: str,
        column: Column[Any],
        *,
        schema: str | None = None,
        if_not_exists: bool | None = None,
        inline_references: bool | None = None,
        inline_primary_key: bool | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(table_name, schema=schema)
        self.column = column
        self.if_not_exists = if_not_exists
        self.inline_references = inline_references
        self.inline_primary_key = inline_primary_key
        self.kw = kw

    @classmethod
    def from_column(cls, col: Column[Any]) -> AddColumnOp:
        """Describe adding ``col`` to the table it belongs to."""
        table = col.table
        return cls(table.name, col, schema=table.schema)

    @classmethod
    def from_column_and_tablename(
        cls, schema: str | None, tname: str, col: Column[Any]
    ) -> AddColumnOp:
        """Describe adding ``col`` to ``schema.tname``."""
        return cls(tname, col, schema=schema)

    def to_column(self) -> Column[Any]:
        """Return the column being added."""
        return self.column

    def reverse(self) -> DropColumnOp:
        """Return the drop of this column."""
        return DropColumnOp.from_column_and_tablename(
            self.schema, self.table_name, self.column
        ).replace(if_exists=self.if_not_exists)

    def to_diff_tuple(self) -> tuple[Any, ...]:
        """Return ``("add_column", schema, table_name, column)``."""
        return ("add_column", self.schema, self.table_name, self.column)

    @property
    def description(self) -> str:
        """A one-line human description of the change."""
        return f"Add column {_qualified(self.table_name, self.schema)}.{self.column.name}"


class DropColumnOp(AlterTableOp):
    """Drop a column by name."""

    def __init__(
        self,
        table_name: str,
        column_name: str,
        *,
        schema: str | None = None,
        if_exists: bool | None = None,
        _reverse: AddColumnOp | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(table_name, schema=schema)
        self.column_name = column_name
        self.if_exists = if_exists
        self._reverse = _reverse
        self.kw = kw

    @classmethod
    def from_column_and_tablename(
        cls, schema: str | None, tname: str, col: Column[Any]
    ) -> DropColumnOp:
        """Describe dropping ``col`` from ``schema.tname`` (kept for :meth:`reverse`)."""
        return cls(
            tname,
            col.name,
            schema=schema,
            _reverse=AddColumnOp.from_column_and_tablename(schema, tname, col),
        )

    def to_column(self, migration_context: MigrationContext | None = None) -> Column[Any]:
        """Return the dropped column (a typeless stand-in when the original is not known)."""
        if self._reverse is not None:
            return self._reverse.column
        return schemaobj.SchemaObjects(migration_context).column(self.column_name, NULLTYPE)

    def reverse(self) -> AddColumnOp:
        """Return the re-adding of the column (needs the original).

        :raises ValueError: when the operation was not made from a column.
        """
        if self._reverse is None:
            raise ValueError("Operation is not reversible; the original column is not known")
        return AddColumnOp.from_column_and_tablename(
            self.schema, self.table_name, self._reverse.column
        ).replace(if_not_exists=self.if_exists)

    def to_diff_tuple(self) -> tuple[Any, ...]:
        """Return ``("remove_column", schema, table_name, column)``."""
        return ("remove_column", self.schema, self.table_name, self.to_column())

    @property
    def description(self) -> str:
        """A one-line human description of the change."""
        return f"Drop column {_qualified(self.table_name, self.schema)}.{self.column_name}"


# -- data and raw SQL --------------------------------------------------------------------------


class BulkInsertOp(MigrateOperation):
    """Insert rows (dictionaries) into a table."""


    def __init__(
        self,
        table: Table | TableClause,
        rows: list[dict[str, Any]],
        *,
        multiinsert: bool = True,
    ) -> None:
        self.table = table
        self.rows = rows
        self.multiinsert = multiinsert

    @property
    def description(self) -> str:
        """A one-line human description of the change."""
        return f"Insert {len(self.rows)} row(s) into {self.table.name}"


class ExecuteSQLOp(MigrateOperation):
    """Execute a SQL string or statement."""


    def __init__(
        self,
        sqltext: Executable | str,
        *,
        execution_options: dict[str, Any] | None = None,
    ) -> None:
        self.sqltext = sqltext
        self.execution_options = execution_options

    def to_diff_tuple(self) -> tuple[Any, ...]:
        """Return ``("execute", sqltext)``."""
        return ("execute", self.sqltext)

    @property
    def description(self) -> str:
        """A one-line human description of the change."""
        text = str(self.sqltext).strip().splitlines()
        first = text[0] if text else ""
        return f"Execute SQL: {first[:60]}{'...' if len(first) > 60 or len(text) > 1 else ''}"


# -- containers ------------------------------------------------------------------------------


class OpContainer(MigrateOperation):
    """Hold a list of operations (mutable: hooks edit :attr:`ops` in place)."""

    def __init__(self, ops: Sequence[MigrateOperation] = ()) -> None:
        self.ops: list[MigrateOperation] = list(ops)

    def is_empty(self) -> bool:
        """Tell whether the container holds no operations."""
        return not self.ops

    def as_diffs(self) -> list[Any]:
        """Return the diff tuples of every operation, nested containers flattened."""
        return list(self._diffs(self))

    @classmethod
    def _diffs(cls, container: OpContainer) -> Iterator[Any]:
        for op in container.ops:
            if isinstance(op, OpContainer):
                yield from cls._diffs(op)
            else:
                yield op.to_diff_tuple()

    @property
    def description(self) -> str:
        """A one-line human description of the contents."""
        return f"{type(self).__name__} with {len(self.ops)} operation(s)"


class ModifyTableOps(OpContainer):
    """Hold operations that all change one table."""

    def __init__(
        self, table_name: str, ops: Sequence[MigrateOperation], *, schema: str | None = None
    ) -> None:
        super().__init__(ops)
        self.table_name = table_name
        self.schema = schema

    def reverse(self) -> ModifyTableOps:
        """Return the reverses of the operations, in reverse order."""
        return ModifyTableOps(
            self.table_name,
            ops=[op.reverse() for op in reversed(self.ops)],
            schema=self.schema,
        )


class UpgradeOps(OpContainer):
    """Hold the operations of a revision's ``upgrade()``."""

    def __init__(
        self, ops: Sequence[MigrateOperation] = (), upgrade_token: str = "upgrades"
    ) -> None:
        super().__init__(ops=ops)
        self.upgrade_token = upgrade_token

    def reverse_into(self, downgrade_ops: DowngradeOps) -> DowngradeOps:
        """Fill ``downgrade_ops`` with the reverse of these operations and return it."""
        downgrade_ops.ops[:] = [op.reverse() for op in reversed(self.ops)]
        return downgrade_ops

    def reverse(self) -> DowngradeOps:
        """Return the downgrade that undoes these operations."""
        return self.reverse_into(DowngradeOps(ops=[]))


class DowngradeOps(OpContainer):
    """Hold the operations of a revision's ``downgrade()``."""

    def __init__(
        self, ops: Sequence[MigrateOperation] = (), downgrade_token: str = "downgrades"
    ) -> None:
        super().__init__(ops=ops)
        self.downgrade_token = downgrade_token

    def reverse(self) -> UpgradeOps:
        """Return the upgrade that undoes these operations."""
        return UpgradeOps(ops=[op.reverse() for op in reversed(self.ops)])


class MigrationScript(MigrateOperation):
    """Describe one revision file to write: its identity and its upgrade/downgrade operations.

    Usually holds one :class:`UpgradeOps` and one :class:`DowngradeOps`;
    autogenerate runs over several databases hold one per database, reached
    through :attr:`upgrade_ops_list` / :attr:`downgrade_ops_list`.
    """

    _upgrade_ops: list[UpgradeOps]
    _downgrade_ops: list[DowngradeOps]
    #: Set once autogenerate has filled the script in (its code is rendered, not a template stub).
    _needs_render: bool = False

    def __init__(
        self,
        rev_id: str | None,
        upgrade_ops: UpgradeOps | list[UpgradeOps],
        downgrade_ops: DowngradeOps | list[DowngradeOps],
        *,
        message: str | None = None,
        imports: set[str] | None = None,
        head: str | None = None,
        splice: bool | None = None,
        branch_label: str | Sequence[str] | None = None,
        version_path: str | os.PathLike[str] | None = None,
        depends_on: str | Sequence[str] | None = None,
    ) -> None:
        self.rev_id = rev_id
        self.message = message
        self.imports = imports if imports is not None else set()
        self.head = head
        self.splice = splice
        self.branch_label = branch_label
        self.version_path = Path(version_path).as_posix() if version_path else None
        self.depends_on = depends_on
        self.upgrade_ops = upgrade_ops
        self.downgrade_ops = downgrade_ops

    @property
    def upgrade_ops(self) -> UpgradeOps | None:
        """The single :class:`UpgradeOps` (None when there is none).

        :raises ValueError: when the script holds several; use :attr:`upgrade_ops_list`.
        """
        if len(self._upgrade_ops) > 1:
            raise ValueError(
                "This MigrationScript holds several UpgradeOps; use upgrade_ops_list"
            )
        return self._upgrade_ops[0] if self._upgrade_ops else None

    @upgrade_ops.setter
    def upgrade_ops(self, upgrade_ops: UpgradeOps | list[UpgradeOps]) -> None:
        items = list(upgrade_ops) if isinstance(upgrade_ops, list) else [upgrade_ops]
        for item in items:
            if not isinstance(item, UpgradeOps):
                raise TypeError(f"Expected UpgradeOps, got {item!r}")
        self._upgrade_ops = items

    @property
    def downgrade_ops(self) -> DowngradeOps | None:
        """The single :class:`DowngradeOps` (None when there is none).

        :raises ValueError: when the script holds several; use :attr:`downgrade_ops_list`.
        """
        if len(self._downgrade_ops) > 1:
            raise ValueError(
                "This MigrationScript holds several DowngradeOps; use downgrade_ops_list"
            )
        return self._downgrade_ops[0] if self._downgrade_ops else None

    @downgrade_ops.setter
    def downgrade_ops(self, downgrade_ops: DowngradeOps | list[DowngradeOps]) -> None:
        items = list(downgrade_ops) if isinstance(downgrade_ops, list) else [downgrade_ops]
        for item in items:
            if not isinstance(item, DowngradeOps):
                raise TypeError(f"Expected DowngradeOps, got {item!r}")
        self._downgrade_ops = items

    @property
    def upgrade_ops_list(self) -> list[UpgradeOps]:
        """Every :class:`UpgradeOps` of the script (at least one)."""
        return self._upgrade_ops

    @property
    def downgrade_ops_list(self) -> list[DowngradeOps]:
        """Every :class:`DowngradeOps` of the script (at least one)."""
        return self._downgrade_ops

    @property
    def description(self) -> str:
        """A one-line human description of the script."""
        return f"Revision {self.rev_id}: {self.message or ''}".rstrip(": ")


# -- Alembic's directive classmethods ---------------------------------------------------------
#
# Alembic's operation classes carry the directives as classmethods taking the
# ``Operations`` first (``AddColumnOp.add_column(operations, "t", col)``), and plugin
# code calls them so. Here each runs the directive of the same name on ``operations``.


def _directive_classmethod(op_cls: type[MigrateOperation], name: str, directive: str) -> None:
    def call(cls: type[MigrateOperation], operations: Any, *args: Any, **kw: Any) -> Any:
        return getattr(operations, directive)(*args, **kw)

    call.__name__ = name
    call.__qualname__ = f"{op_cls.__name__}.{name}"
    call.__doc__ = f"Run ``operations.{directive}(...)`` (Alembic's classmethod form of the directive)."
    setattr(op_cls, name, classmethod(call))


for _op_cls, _directive, _batch in [
    (AddColumnOp, "add_column", True),
    (AlterColumnOp, "alter_column", True),
    (BulkInsertOp, "bulk_insert", False),
    (CreateCheckConstraintOp, "create_check_constraint", True),
    (CreateExcludeConstraintOp, "create_exclude_constraint", True),
    (CreateForeignKeyOp, "create_foreign_key", True),
    (CreateIndexOp, "create_index", True),
    (CreatePrimaryKeyOp, "create_primary_key", True),
    (CreateTableCommentOp, "create_table_comment", True),
    (CreateUniqueConstraintOp, "create_unique_constraint", True),
    (DropColumnOp, "drop_column", True),
    (DropConstraintOp, "drop_constraint", True),
    (DropIndexOp, "drop_index", True),
    (DropTableCommentOp, "drop_table_comment", True),
    (DropTableOp, "drop_table", False),
    (ExecuteSQLOp, "execute", True),
    (RenameTableOp, "rename_table", False),
    (CreateTableOp, "create_table", False),
]:
    _directive_classmethod(_op_cls, _directive, _directive)
    if _batch:
        _directive_classmethod(_op_cls, f"batch_{_directive}", _directive)
del _op_cls, _directive, _batch
