"""MySQL and MariaDB DDL: ``CHANGE``/``MODIFY COLUMN`` and non-transactional DDL.

MySQL restates a column in full to change any part of it, so
``alter_column`` needs the column as it is (``existing_type``,
``existing_nullable``, ``existing_server_default``, ``existing_comment``).
Offline those must be given; online, when ``existing_type`` is missing the
current definition is read from the database instead of failing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import ForeignKeyConstraint, PrimaryKeyConstraint, UniqueConstraint, inspect, text
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.schema import CheckConstraint, Constraint, Table
from sqlalchemy.sql import sqltypes
from sqlalchemy.sql.ddl import ExecutableDDLElement
from sqlalchemy.sql.elements import ClauseElement

from ..exceptions import CommandError
from .base import (
    AlterColumn,
    ColumnName,
    RenameTable,
    alter_table,
    comment_literal,
    format_column_name,
    format_server_default,
    format_table_name,
    format_type,
    is_computed_default,
    is_identity_default,
)
from .impl import DefaultImpl

if TYPE_CHECKING:
    from sqlalchemy.sql.compiler import DDLCompiler
    from sqlalchemy.sql.type_api import TypeEngine

    from ..operations.batch import TableRecreate
    from .base import ServerDefaultArgument

__all__ = [
    "MariaDBImpl",
    "MySQLAlterDefault",
    "MySQLChangeColumn",
    "MySQLDropConstraint",
    "MySQLImpl",
    "MySQLModifyColumn",
]


class MySQLAlterDefault(AlterColumn):
    """``ALTER TABLE t ALTER COLUMN c SET DEFAULT x`` / ``DROP DEFAULT``."""

    def __init__(self, name: str, column_name: str, default: Any, schema: str | None = None) -> None:
        super().__init__(name, column_name, schema=schema)
        self.default = default


class MySQLChangeColumn(AlterColumn):
    """Restate a column in full under a (possibly new) name: ``CHANGE old new <spec>``."""

    def __init__(
        self,
        name: str,
        column_name: str,
        schema: str | None = None,
        newname: str | None = None,
        type_: TypeEngine[Any] | type[TypeEngine[Any]] | None = None,
        nullable: bool | None = None,
        default: Any = False,
        autoincrement: bool | None = None,
        comment: str | Literal[False] | None = False,
    ) -> None:
        super().__init__(name, column_name, schema=schema)
        if type_ is None:
            raise CommandError(
                f"MySQL restates a column in full to change it; alter_column() on "
                f"'{name}.{column_name}' needs existing_type= (or type_=)"
            )
        self.newname = newname if newname is not None else column_name
        self.type_: TypeEngine[Any] = sqltypes.to_instance(type_)
        self.nullable = nullable
        self.default = default
        self.autoincrement = autoincrement
        self.comment = comment


class MySQLModifyColumn(MySQLChangeColumn):
    """Restate a column in full under its own name: ``MODIFY c <spec>``."""


class MySQLDropConstraint(ExecutableDDLElement):
    """Drop a constraint with the statement its kind needs in MySQL/MariaDB.

    SQLAlchemy's ``DropConstraint`` is not compiled for MySQL here so that
    nothing in this package changes how SQLAlchemy's own constructs compile.
    """

    inherit_cache = False

    def __init__(self, constraint: Constraint, if_exists: bool | None = None) -> None:
        self.constraint = constraint
        self.if_exists = if_exists


class MySQLImpl(DefaultImpl):
    """Emit MySQL DDL; each statement commits on its own (no transactional DDL)."""

    __dialect__ = "mysql"
    transactional_ddl = False

    def alter_column(
        self,
        table_name: str,
        column_name: str,
        *,
        nullable: bool | None = None,
        server_default: ServerDefaultArgument = False,
        name: str | None = None,
        type_: TypeEngine[Any] | None = None,
        schema: str | None = None,
        autoincrement: bool | None = None,
        comment: str | Literal[False] | None = False,
        existing_comment: str | None = None,
        existing_type: TypeEngine[Any] | None = None,
        existing_server_default: ServerDefaultArgument = None,
        existing_nullable: bool | None = None,
        existing_autoincrement: bool | None = None,
        **kw: Any,
    ) -> None:
        """Change a column with ``CHANGE``, ``MODIFY``, ``RENAME COLUMN`` or ``ALTER ... DEFAULT``."""
        if is_identity_default(server_default, existing_server_default) or is_computed_default(
            server_default, existing_server_default
        ):
            super().alter_column(
                table_name,
                column_name,
                server_default=server_default,
                schema=schema,
                existing_server_default=existing_server_default,
            )
            return
        restates = (
            nullable is not None
            or type_ is not None
            or autoincrement is not None
            or comment is not False
            or (name is not None and name != column_name)
            or (server_default is not False and _needs_full_restatement(server_default))
        )
        rename_only = (
            name is not None
            and nullable is None
            and type_ is None
            and autoincrement is None
            and comment is False
            and server_default is False
        )
        if rename_only and existing_type is None and self._supports_rename_column():
            assert name is not None
            self._exec(ColumnName(table_name, column_name, name, schema=schema))
            return
        if restates and existing_type is None and type_ is None:
            found = self._reflect_column(table_name, column_name, schema)
            if found is not None:
                existing_type = found["type"]
                if existing_nullable is None:
                    existing_nullable = found["nullable"]
                if existing_server_default in (None, False) and found.get("default") is not None:
                    existing_server_default = text(found["default"])
                if existing_comment is None:
                    existing_comment = found.get("comment")
                if existing_autoincrement is None and found.get("autoincrement") is True:
                    existing_autoincrement = True
        if restates:
            element_cls = (
                MySQLChangeColumn
                if name is not None and name != column_name
                else MySQLModifyColumn
            )
            self._exec(
                element_cls(
                    table_name,
                    column_name,
                    schema=schema,
                    newname=name,
                    type_=type_ if type_ is not None else existing_type,
                    nullable=nullable if nullable is not None else (
                        existing_nullable if existing_nullable is not None else True
                    ),
                    default=server_default
                    if server_default is not False
                    else existing_server_default,
                    autoincrement=autoincrement
                    if autoincrement is not None
                    else existing_autoincrement,
                    comment=comment if comment is not False else existing_comment,
                )
            )
        elif server_default is not False:
            self._exec(MySQLAlterDefault(table_name, column_name, server_default, schema=schema))

    def prep_table_for_batch(self, recreate: TableRecreate, table: Table) -> None:
        """Free the foreign key names the copy takes over; let the original go despite references.

        InnoDB foreign key names are unique per database, so the original's
        keys are dropped before the copy is created; ``foreign_key_checks``
        is off while the original is dropped and the copy renamed, after
        which the tables that referred to the original refer to the copy.
        """
        previous = 1
        if not self.as_sql and self.connection is not None:
            found = self.connection.exec_driver_sql("SELECT @@foreign_key_checks").scalar()
            previous = int(found) if found is not None else 1
        recreate.state["mysql_foreign_key_checks"] = previous
        self._exec("SET foreign_key_checks = 0")
        for constraint in table.constraints:
            if (
                isinstance(constraint, ForeignKeyConstraint)
                and isinstance(constraint.name, str)
                and constraint.name in recreate.named_constraints
            ):
                self.drop_constraint(constraint)

    def finish_table_for_batch(
        self, recreate: TableRecreate, table: Table, succeeded: bool
    ) -> None:
        """Restore ``foreign_key_checks``."""
        previous = recreate.state.get("mysql_foreign_key_checks", 1)
        self._exec(f"SET foreign_key_checks = {int(previous)}")

    def _supports_rename_column(self) -> bool:
        version = self.dialect.server_version_info
        if version is None:
            return True
        if getattr(self.dialect, "is_mariadb", False):
            return tuple(version[:3]) >= (10, 5, 2)
        return tuple(version[:2]) >= (8, 0)

    def _reflect_column(
        self, table_name: str, column_name: str, schema: str | None
    ) -> dict[str, Any] | None:
        if self.as_sql or self.connection is None:
            return None
        for column in inspect(self.connection).get_columns(table_name, schema=schema):
            if column["name"] == column_name:
                return dict(column)
        return None

    def drop_constraint(self, const: Constraint, **kw: Any) -> None:
        """Drop a constraint; a type's own CHECK goes with the type, a named one by kind.

        Without a ``type_`` MySQL 8.0.19+ and MariaDB take a generic ``DROP CONSTRAINT``.
        """
        if isinstance(const, CheckConstraint) and getattr(const, "_type_bound", False):
            return
        self._exec(MySQLDropConstraint(const, if_exists=kw.get("if_exists")))


class MariaDBImpl(MySQLImpl):
    """Emit MariaDB DDL (as MySQL)."""

    __dialect__ = "mariadb"


def _needs_full_restatement(server_default: Any) -> bool:
    # ALTER COLUMN ... SET DEFAULT takes a literal only; an expression such as
    # CURRENT_TIMESTAMP must be given in a full column specification.
    return server_default is not None and (
        isinstance(server_default, ClauseElement)
        or isinstance(getattr(server_default, "arg", None), ClauseElement)
    )


def _column_spec(compiler: DDLCompiler, element: MySQLChangeColumn) -> str:
    """Render ``name TYPE NULL|NOT NULL [AUTO_INCREMENT] [DEFAULT x] [COMMENT 'c']``."""
    parts = [
        format_column_name(compiler, element.newname),
        format_type(compiler, element.type_),
        "NULL" if element.nullable else "NOT NULL",
    ]
    if element.autoincrement:
        parts.append("AUTO_INCREMENT")
    if element.default is not False and element.default is not None:
        parts.append(f"DEFAULT {format_server_default(compiler, element.default)}")
    if element.comment is not False and element.comment is not None:
        parts.append(f"COMMENT {comment_literal(compiler, element.comment)}")
    return " ".join(parts)


@compiles(MySQLModifyColumn, "mysql", "mariadb")
def _modify_column(element: MySQLModifyColumn, compiler: DDLCompiler, **kw: Any) -> str:
    return (
        f"{alter_table(compiler, element.table_name, element.schema)} MODIFY "
        f"{_column_spec(compiler, element)}"
    )


@compiles(MySQLChangeColumn, "mysql", "mariadb")
def _change_column(element: MySQLChangeColumn, compiler: DDLCompiler, **kw: Any) -> str:
    return (
        f"{alter_table(compiler, element.table_name, element.schema)} CHANGE "
        f"{format_column_name(compiler, element.column_name)} {_column_spec(compiler, element)}"
    )


@compiles(MySQLAlterDefault, "mysql", "mariadb")
def _alter_default(element: MySQLAlterDefault, compiler: DDLCompiler, **kw: Any) -> str:
    if element.default is None:
        action = "DROP DEFAULT"
    else:
        action = f"SET DEFAULT {format_server_default(compiler, element.default)}"
    return (
        f"{alter_table(compiler, element.table_name, element.schema)} ALTER COLUMN "
        f"{format_column_name(compiler, element.column_name)} {action}"
    )


@compiles(ColumnName, "mysql", "mariadb")
def _rename_column(element: ColumnName, compiler: DDLCompiler, **kw: Any) -> str:
    return (
        f"{alter_table(compiler, element.table_name, element.schema)} RENAME COLUMN "
        f"{format_column_name(compiler, element.column_name)} TO "
        f"{format_column_name(compiler, element.newname)}"
    )


@compiles(RenameTable, "mysql", "mariadb")
def _rename_table(element: RenameTable, compiler: DDLCompiler, **kw: Any) -> str:
    # An unqualified new name would move the table into the connection's database.
    new_name = format_table_name(compiler, element.new_table_name, element.schema)
    return f"{alter_table(compiler, element.table_name, element.schema)} RENAME TO {new_name}"


@compiles(MySQLDropConstraint, "mysql", "mariadb")
def _drop_constraint(element: MySQLDropConstraint, compiler: DDLCompiler, **kw: Any) -> str:
    constraint = element.constraint
    preparer = compiler.preparer
    table = preparer.format_table(constraint.table)
    guard = "IF EXISTS " if element.if_exists else ""
    if isinstance(constraint, PrimaryKeyConstraint):
        return f"ALTER TABLE {table} DROP PRIMARY KEY"
    name = preparer.format_constraint(constraint)
    if isinstance(constraint, ForeignKeyConstraint):
        clause = "FOREIGN KEY"
    elif isinstance(constraint, UniqueConstraint):
        clause = "INDEX"
    elif isinstance(constraint, CheckConstraint) and not getattr(
        compiler.dialect, "is_mariadb", False
    ):
        clause = "CHECK"
    else:
        # A CHECK on MariaDB, or no kind given: the generic form (MySQL 8.0.19+, MariaDB).
        clause = "CONSTRAINT"
    return f"ALTER TABLE {table} DROP {clause} {guard}{name}"
