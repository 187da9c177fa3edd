"""The DDL statements SQLAlchemy has no construct for, and how each compiles by default.

SQLAlchemy covers ``CREATE``/``DROP`` of tables and indexes, ``ADD``/``DROP``
of constraints and comments; everything that alters a table in place
(``ADD COLUMN``, ``ALTER COLUMN``, renames) is described here as an
executable DDL element, compiled through :func:`sqlalchemy.ext.compiler.compiles`.
The generic forms below follow the SQL standard (and PostgreSQL); dialect
modules register their own forms for the same elements.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, TypeAlias

from sqlalchemy import Column, Integer
from sqlalchemy.exc import CompileError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.schema import Computed, FetchedValue, Identity
from sqlalchemy.sql import sqltypes
from sqlalchemy.sql.ddl import ExecutableDDLElement
from sqlalchemy.sql.elements import BindParameter, ClauseElement, ColumnElement, TextClause

if TYPE_CHECKING:
    from sqlalchemy.sql.compiler import DDLCompiler, SQLCompiler
    from sqlalchemy.sql.type_api import TypeEngine

    from .impl import DefaultImpl

__all__ = [
    "AddColumn",
    "AlterColumn",
    "AlterTable",
    "ColumnComment",
    "ColumnDefault",
    "ColumnName",
    "ColumnNullable",
    "ColumnType",
    "ComputedColumnDefault",
    "DropColumn",
    "IdentityColumnDefault",
    "InlineLiteral",
    "RenameTable",
    "ServerDefault",
    "ServerDefaultArgument",
    "add_column",
    "alter_column",
    "alter_table",
    "comment_literal",
    "drop_column",
    "format_column_name",
    "format_server_default",
    "format_table_name",
    "format_type",
    "is_computed_default",
    "is_identity_default",
]

#: A server default: a string, a SQL expression, a ``DefaultClause`` (any
#: ``FetchedValue``), ``Computed`` or ``Identity``.
ServerDefault: TypeAlias = str | TextClause | ColumnElement[Any] | FetchedValue

#: ``server_default=`` in ``alter_column``: a default, ``None`` to drop it, or
#: ``False`` (the default) to leave it alone.
ServerDefaultArgument: TypeAlias = ServerDefault | Literal[False] | None


class AlterTable(ExecutableDDLElement):
    """Name one table for an ``ALTER TABLE`` statement (only its name and schema are needed)."""

    inherit_cache = False

    def __init__(self, table_name: str, schema: str | None = None) -> None:
        self.table_name = table_name
        self.schema = schema


class RenameTable(AlterTable):
    """Rename a table: ``ALTER TABLE old RENAME TO new``."""

    def __init__(self, old_table_name: str, new_table_name: str, schema: str | None = None) -> None:
        super().__init__(old_table_name, schema=schema)
        self.new_table_name = new_table_name


class AlterColumn(AlterTable):
    """Change one column; carries what is known about the column as it is."""

    def __init__(
        self,
        name: str,
        column_name: str,
        schema: str | None = None,
        existing_type: TypeEngine[Any] | type[TypeEngine[Any]] | None = None,
        existing_nullable: bool | None = None,
        existing_server_default: Any = None,
        existing_comment: str | None = None,
    ) -> None:
        super().__init__(name, schema=schema)
        self.column_name = column_name
        self.existing_type: TypeEngine[Any] | None = (
            sqltypes.to_instance(existing_type) if existing_type is not None else None
        )
        self.existing_nullable = existing_nullable
        self.existing_server_default = existing_server_default
        self.existing_comment = existing_comment


class ColumnNullable(AlterColumn):
    """Make a column nullable or ``NOT NULL``."""

    def __init__(self, name: str, column_name: str, nullable: bool, **kw: Any) -> None:
        super().__init__(name, column_name, **kw)
        self.nullable = nullable


class ColumnType(AlterColumn):
    """Change a column's type (``using`` is PostgreSQL's conversion expression)."""

    def __init__(
        self,
        name: str,
        column_name: str,
        type_: TypeEngine[Any] | type[TypeEngine[Any]],
        using: str | ClauseElement | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(name, column_name, **kw)
        self.type_: TypeEngine[Any] = sqltypes.to_instance(type_)
        self.using = using


class ColumnName(AlterColumn):
    """Rename a column."""

    def __init__(self, name: str, column_name: str, newname: str, **kw: Any) -> None:
        super().__init__(name, column_name, **kw)
        self.newname = newname


class ColumnDefault(AlterColumn):
    """Set (or, with ``None``, drop) a column's server default."""

    def __init__(self, name: str, column_name: str, default: Any, **kw: Any) -> None:
        super().__init__(name, column_name, **kw)
        self.default = default


class ComputedColumnDefault(AlterColumn):
    """Add or remove ``GENERATED ALWAYS AS`` on an existing column (not supported anywhere)."""

    def __init__(self, name: str, column_name: str, default: Computed | None, **kw: Any) -> None:
        super().__init__(name, column_name, **kw)
        self.default = default


class IdentityColumnDefault(AlterColumn):
    """Add, change or drop an identity (``GENERATED ... AS IDENTITY``) on a column."""

    def __init__(
        self,
        name: str,
        column_name: str,
        default: Identity | None,
        impl: DefaultImpl | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(name, column_name, **kw)
        self.default = default
        self.impl = impl


class ColumnComment(AlterColumn):
    """Set (or, with ``None``, remove) a column's comment."""

    def __init__(self, name: str, column_name: str, comment: str | None, **kw: Any) -> None:
        super().__init__(name, column_name, **kw)
        self.comment = comment


class AddColumn(AlterTable):
    """Add a column: ``ALTER TABLE t ADD COLUMN <column specification>``."""

    def __init__(
        self,
        name: str,
        column: Column[Any],
        schema: str | None = None,
        if_not_exists: bool | None = None,
        inline_references: bool | None = None,
        inline_primary_key: bool | None = None,
    ) -> None:
        super().__init__(name, schema=schema)
        self.column = column
        self.if_not_exists = if_not_exists
        self.inline_references = inline_references
        self.inline_primary_key = inline_primary_key


class DropColumn(AlterTable):
    """Drop a column."""

    def __init__(
        self,
        name: str,
        column: Column[Any],
        schema: str | None = None,
        if_exists: bool | None = None,
    ) -> None:
        super().__init__(name, schema=schema)
        self.column = column
        self.if_exists = if_exists


class InlineLiteral(BindParameter[Any]):
    """A bound value that always renders inline as a SQL literal (``op.inline_literal``).

    Offline scripts cannot pass parameters separately, so values in their
    INSERT/UPDATE/DELETE statements must be part of the SQL text.
    """

    inherit_cache = False


@compiles(InlineLiteral)
def _inline_literal(element: InlineLiteral, compiler: SQLCompiler, **kw: Any) -> str:
    rendered: str = compiler.render_literal_bindparam(element, **kw)  # type: ignore[no-untyped-call]
    return rendered


# -- helpers shared by the dialect compilers ------------------------------------------


class _InSchema:
    """A name in ``schema``, as the preparer's schema translation looks at tables."""

    _use_schema_map = True

    def __init__(self, schema: str | None) -> None:
        self.schema = schema


def format_table_name(compiler: DDLCompiler, name: str, schema: str | None) -> str:
    """Quote ``schema.name`` (or ``name``) for ``compiler``'s dialect.

    The schema goes through the connection's ``schema_translate_map``, as
    SQLAlchemy's own ``CREATE TABLE`` does: compiled for a connection that
    has one, it is a placeholder the execution replaces.
    """
    preparer = compiler.preparer
    schema = preparer.schema_for_object(_InSchema(schema))
    if schema:
        return f"{preparer.quote_schema(schema)}.{preparer.quote(name)}"
    return preparer.quote(name)


def format_column_name(compiler: DDLCompiler, name: str) -> str:
    """Quote a column name for ``compiler``'s dialect."""
    return compiler.preparer.quote(name)


def format_type(compiler: DDLCompiler, type_: TypeEngine[Any]) -> str:
    """Render ``type_`` as DDL for ``compiler``'s dialect."""
    return compiler.dialect.type_compiler_instance.process(type_)


def format_server_default(compiler: DDLCompiler, default: Any) -> str:
    """Render a server default (string, SQL expression or ``DefaultClause``) as DDL.

    The dialect's own column-default rendering is used, so quoting and
    parenthesising rules match what ``CREATE TABLE`` would emit.
    """
    stand_in = Column("x", Integer, server_default=default)
    rendered = compiler.get_column_default_string(stand_in)
    if rendered is None:
        raise CompileError(f"Cannot render {default!r} as a server default")
    return rendered


def alter_table(compiler: DDLCompiler, name: str, schema: str | None) -> str:
    """Return ``ALTER TABLE <name>``."""
    return f"ALTER TABLE {format_table_name(compiler, name, schema)}"


def alter_column(compiler: DDLCompiler, name: str) -> str:
    """Return ``ALTER COLUMN <name>``."""
    return f"ALTER COLUMN {format_column_name(compiler, name)}"


def drop_column(compiler: DDLCompiler, name: str, if_exists: bool | None = None) -> str:
    """Return ``DROP COLUMN [IF EXISTS] <name>``."""
    guard = "IF EXISTS " if if_exists else ""
    return f"DROP COLUMN {guard}{format_column_name(compiler, name)}"


def add_column(
    compiler: DDLCompiler,
    column: Column[Any],
    *,
    if_not_exists: bool | None = None,
    inline_references: bool | None = None,
    inline_primary_key: bool | None = None,
    **kw: Any,
) -> str:
    """Return ``ADD COLUMN <spec>`` with the column's own constraints inline.

    ``inline_references`` renders a single-column foreign key as
    ``REFERENCES``; ``inline_primary_key`` adds ``PRIMARY KEY``.
    """
    guard = "IF NOT EXISTS " if if_not_exists else ""
    parts = [f"ADD COLUMN {guard}{compiler.get_column_specification(column, **kw)}"]
    if inline_primary_key and column.primary_key:
        parts.append("PRIMARY KEY")
    reference = inline_reference(compiler, column) if inline_references else None
    if reference:
        parts.append(reference)
    parts.extend(compiler.process(constraint) for constraint in column.constraints)
    return " ".join(part for part in parts if part)


def inline_reference(compiler: DDLCompiler, column: Column[Any]) -> str | None:
    """Render the column's single-column foreign key as ``REFERENCES t (c) ...``, if it has one."""
    if len(column.foreign_keys) != 1:
        return None
    fk = next(iter(column.foreign_keys))
    constraint = fk.constraint
    if constraint is None or len(constraint.columns) != 1:
        return None
    target = fk.column
    table = target.table
    name = format_table_name(compiler, table.name, getattr(table, "schema", None))
    text = f"REFERENCES {name} ({compiler.preparer.quote(target.name)})"
    if constraint.name is not None and isinstance(constraint.name, str):
        text = f"CONSTRAINT {compiler.preparer.format_constraint(constraint)} {text}"
    text += compiler.define_constraint_match(constraint)
    text += compiler.define_constraint_cascades(constraint)
    text += compiler.define_constraint_deferrability(constraint)
    return text


def is_computed_default(server_default: Any, existing_server_default: Any) -> bool:
    """Tell whether a default change adds or removes a ``Computed`` construct."""
    return isinstance(server_default, Computed) or isinstance(existing_server_default, Computed)


def is_identity_default(server_default: Any, existing_server_default: Any) -> bool:
    """Tell whether a default change adds, changes or removes an ``Identity``."""
    return isinstance(server_default, Identity) or isinstance(existing_server_default, Identity)


def comment_literal(compiler: DDLCompiler, comment: str | None) -> str:
    """Render a comment as a SQL string literal (``NULL`` for None)."""
    if comment is None:
        return "NULL"
    return compiler.sql_compiler.render_literal_value(comment, sqltypes.String())


# -- generic compilation ------------------------------------------------------------------


@compiles(RenameTable)
def _rename_table(element: RenameTable, compiler: DDLCompiler, **kw: Any) -> str:
    new_name = format_table_name(compiler, element.new_table_name, None)
    return f"{alter_table(compiler, element.table_name, element.schema)} RENAME TO {new_name}"


@compiles(AddColumn)
def _add_column(element: AddColumn, compiler: DDLCompiler, **kw: Any) -> str:
    clause = add_column(
        compiler,
        element.column,
        if_not_exists=element.if_not_exists,
        inline_references=element.inline_references,
        inline_primary_key=element.inline_primary_key,
    )
    return f"{alter_table(compiler, element.table_name, element.schema)} {clause}"


@compiles(DropColumn)
def _drop_column(element: DropColumn, compiler: DDLCompiler, **kw: Any) -> str:
    clause = drop_column(compiler, element.column.name, element.if_exists)
    return f"{alter_table(compiler, element.table_name, element.schema)} {clause}"


@compiles(ColumnNullable)
def _column_nullable(element: ColumnNullable, compiler: DDLCompiler, **kw: Any) -> str:
    action = "DROP NOT NULL" if element.nullable else "SET NOT NULL"
    return (
        f"{alter_table(compiler, element.table_name, element.schema)} "
        f"{alter_column(compiler, element.column_name)} {action}"
    )


@compiles(ColumnType)
def _column_type(element: ColumnType, compiler: DDLCompiler, **kw: Any) -> str:
    text = (
        f"{alter_table(compiler, element.table_name, element.schema)} "
        f"{alter_column(compiler, element.column_name)} TYPE {format_type(compiler, element.type_)}"
    )
    if element.using is not None:
        using = element.using
        if isinstance(using, ClauseElement):
            using = compiler.sql_compiler.process(using, literal_binds=True)
        text += f" USING {using}"
    return text


@compiles(ColumnName)
def _column_name(element: ColumnName, compiler: DDLCompiler, **kw: Any) -> str:
    return (
        f"{alter_table(compiler, element.table_name, element.schema)} RENAME "
        f"{format_column_name(compiler, element.column_name)} TO "
        f"{format_column_name(compiler, element.newname)}"
    )


@compiles(ColumnDefault)
def _column_default(element: ColumnDefault, compiler: DDLCompiler, **kw: Any) -> str:
    if element.default is None:
        action = "DROP DEFAULT"
    else:
        action = f"SET DEFAULT {format_server_default(compiler, element.default)}"
    return (
        f"{alter_table(compiler, element.table_name, element.schema)} "
        f"{alter_column(compiler, element.column_name)} {action}"
    )


@compiles(ColumnComment)
def _column_comment(element: ColumnComment, compiler: DDLCompiler, **kw: Any) -> str:
    table = format_table_name(compiler, element.table_name, element.schema)
    column = format_column_name(compiler, element.column_name)
    return f"COMMENT ON COLUMN {table}.{column} IS {comment_literal(compiler, element.comment)}"


@compiles(ComputedColumnDefault)
def _computed_default(element: ComputedColumnDefault, compiler: DDLCompiler, **kw: Any) -> str:
    raise CompileError(
        "Adding or removing a computed (GENERATED ALWAYS AS) construct on an existing "
        "column is not supported; drop and re-add the column instead"
    )


@compiles(IdentityColumnDefault)
def _identity_default(element: IdentityColumnDefault, compiler: DDLCompiler, **kw: Any) -> str:
    raise CompileError(
        f"Adding, changing or removing an identity on an existing column is not supported "
        f"on {compiler.dialect.name}"
    )
