"""Compare server defaults, identity options and computed columns.

Off by default, as in Alembic: ``compare_server_default=True`` turns the
comparison on, and a callable ``fn(context, inspected_column,
metadata_column, inspected_default, metadata_default,
rendered_metadata_default)`` decides instead (True: different, False: the
same, None: compare as usual). Identity options are compared under the
same switch. A changed ``Computed`` expression cannot be altered: it is
logged, never turned into an operation.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from sqlalchemy import Computed, DefaultClause, Float, Identity, Numeric, literal_column, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.elements import ClauseElement, TextClause

from ...masking import get_logger
from .registry import DispatchPriority, DispatchResult, comparators

if TYPE_CHECKING:
    from sqlalchemy import Column

    from ...operations.ops import AlterColumnOp
    from ..context import AutogenContext

__all__ = ["identity_differences", "rendered_default"]

log = get_logger("asyncmigrate.autogenerate")

#: Identity options compared (Oracle's ``order``/``on_null`` are not).
_IDENTITY_OPTIONS = ("start", "increment", "minvalue", "maxvalue", "cycle", "cache")
_PG_REGCLASS = re.compile(r"nextval\('(.+?)'::regclass\)")


def rendered_default(default: Any, autogen_context: AutogenContext) -> str | None:
    """Return a server default as SQL text (None for none, or for identity/computed)."""
    if isinstance(default, DefaultClause):
        default = default.arg
    if isinstance(default, str):
        return default
    if isinstance(default, TextClause):
        return default.text
    if isinstance(default, ClauseElement):
        return str(
            default.compile(dialect=autogen_context.dialect, compile_kwargs={"literal_binds": True})
        )
    return None


def _conn_text(default: Any) -> str | None:
    if isinstance(default, DefaultClause):
        arg = default.arg
        return arg.text if isinstance(arg, TextClause) else str(arg)
    return None


@comparators.dispatch_for("column", element="server_default", priority=DispatchPriority.FIRST)
def compare_server_default_with_hook(
    autogen_context: AutogenContext,
    alter_column_op: AlterColumnOp,
    schema: str | None,
    table_name: str,
    column_name: str,
    conn_col: Column[Any],
    metadata_col: Column[Any],
) -> DispatchResult:
    """Record the existing default; honour ``compare_server_default`` (off, or a callable)."""
    metadata_default = metadata_col.server_default
    conn_default = conn_col.server_default
    if conn_default is None and metadata_default is None:
        return DispatchResult.CONTINUE
    alter_column_op.existing_server_default = conn_default
    setting = autogen_context.opts.get("compare_server_default", False)
    if setting is False:
        return DispatchResult.STOP
    if not callable(setting):
        return DispatchResult.CONTINUE
    verdict = setting(
        autogen_context.migration_context,
        conn_col,
        metadata_col,
        _conn_text(conn_default),
        metadata_default,
        rendered_default(metadata_default, autogen_context),
    )
    if verdict:
        alter_column_op.modify_server_default = metadata_default
        log.info("compare_server_default hook detected a server default change on '%s.%s'",
                 table_name, column_name)
        return DispatchResult.STOP
    return DispatchResult.STOP if verdict is False else DispatchResult.CONTINUE


def _normalized_expression(sqltext: str) -> str:
    sqltext = re.sub(r"::\s*[\w ]+(\(\d+(,\s*\d+)?\))?", "", sqltext)
    return re.sub(r"[\s()'\"`\[\]]", "", sqltext).lower()


@comparators.dispatch_for("column", element="server_default")
def compare_computed_default(
    autogen_context: AutogenContext,
    alter_column_op: AlterColumnOp,
    schema: str | None,
    table_name: str,
    column_name: str,
    conn_col: Column[Any],
    metadata_col: Column[Any],
) -> DispatchResult:
    """Log a changed ``Computed`` expression (it cannot be altered); never emit an operation."""
    metadata_default = metadata_col.server_default
    conn_default = conn_col.server_default
    metadata_computed = isinstance(metadata_default, Computed)
    conn_computed = isinstance(conn_default, Computed)
    if not metadata_computed and not conn_computed:
        return DispatchResult.CONTINUE
    if metadata_computed and conn_computed:
        assert isinstance(metadata_default, Computed)
        assert isinstance(conn_default, Computed)
        ours = _normalized_expression(rendered_default(metadata_default.sqltext, autogen_context) or "")
        theirs = _normalized_expression(rendered_default(conn_default.sqltext, autogen_context) or "")
        if ours == theirs:
            return DispatchResult.STOP
    log.warning("Computed default on %s.%s cannot be modified", table_name, column_name)
    return DispatchResult.STOP


def _identity_options(identity: Any) -> dict[str, Any]:
    if not isinstance(identity, Identity):
        return {}
    return {name: getattr(identity, name, None) for name in _IDENTITY_OPTIONS}


def identity_differences(metadata_identity: Any, conn_identity: Any) -> set[str]:
    """Return the identity options the models set to something the database does not have.

    Options the models leave unset are not compared (the database fills in
    its own defaults); ``always`` is compared as a boolean.
    """
    ours = _identity_options(metadata_identity)
    theirs = _identity_options(conn_identity)
    differences = {
        name
        for name in _IDENTITY_OPTIONS
        if ours.get(name) is not None and ours.get(name) != theirs.get(name)
    }
    if bool(getattr(metadata_identity, "always", False)) != bool(
        getattr(conn_identity, "always", False)
    ):
        differences.add("always")
    return differences


@comparators.dispatch_for("column", element="server_default")
def compare_identity_default(
    autogen_context: AutogenContext,
    alter_column_op: AlterColumnOp,
    schema: str | None,
    table_name: str,
    column_name: str,
    conn_col: Column[Any],
    metadata_col: Column[Any],
) -> DispatchResult:
    """Detect an identity added, removed, or with different options."""
    metadata_default = metadata_col.server_default
    conn_default = conn_col.server_default
    if not isinstance(metadata_default, Identity) and not isinstance(conn_default, Identity):
        return DispatchResult.CONTINUE
    if not getattr(autogen_context.dialect, "supports_identity_columns", True):
        return DispatchResult.STOP  # the dialect renders no identity: nothing to compare
    differences = identity_differences(metadata_default, conn_default)
    if differences or isinstance(metadata_default, Identity) != isinstance(conn_default, Identity):
        alter_column_op.modify_server_default = metadata_default
        log.info("Detected identity change on '%s.%s': %s", table_name, column_name,
                 sorted(differences) or "added/removed")
        return DispatchResult.STOP
    return DispatchResult.STOP


def _strip_sqlite(value: str | None) -> str | None:
    if value is None:
        return None
    value = re.sub(r"^\((.+)\)$", r"\1", value, flags=re.S)
    return re.sub(r"^\"?'(.+)'\"?$", r"\1", value, flags=re.S)


def _postgresql_defaults_differ(
    autogen_context: AutogenContext,
    conn_col: Column[Any],
    metadata_col: Column[Any],
    ours: str | None,
    theirs: str | None,
) -> bool:
    table = metadata_col.table
    if metadata_col.primary_key and metadata_col is table._autoincrement_column:
        return False  # SERIAL / sequence-backed key
    if theirs is not None and _PG_REGCLASS.match(theirs):
        theirs = theirs.replace("::regclass", "")
    if theirs == ours:
        return False
    if theirs is None or ours is None or metadata_col.server_default is None:
        return True
    default = metadata_col.server_default
    arg = default.arg if isinstance(default, DefaultClause) else None
    metadata_sql: Any
    if isinstance(arg, str):
        value = arg
        if not isinstance(conn_col.type, (Numeric, Float)):
            value = "'" + re.sub(r"^'|'$", "", value).replace("'", "''") + "'"
        metadata_sql = literal_column(value)
    else:
        metadata_sql = literal_column(ours)
    connection = autogen_context.connection
    if connection is None:
        return True
    # Let the server decide whether the two expressions mean the same value;
    # a savepoint keeps a failing comparison from spoiling the transaction.
    try:
        with connection.begin_nested():
            return not connection.scalar(select(literal_column(theirs) == metadata_sql))
    except DBAPIError:
        return True


@comparators.dispatch_for("column", element="server_default", priority=DispatchPriority.LAST)
def compare_server_default_by_dialect(
    autogen_context: AutogenContext,
    alter_column_op: AlterColumnOp,
    schema: str | None,
    table_name: str,
    column_name: str,
    conn_col: Column[Any],
    metadata_col: Column[Any],
) -> DispatchResult:
    """Compare plain server defaults as the dialect stores them."""
    metadata_default = metadata_col.server_default
    conn_default = conn_col.server_default
    if conn_default is None and metadata_default is None:
        return DispatchResult.CONTINUE
    if not isinstance(metadata_default, (DefaultClause, type(None))) or not isinstance(
        conn_default, (DefaultClause, type(None))
    ):
        return DispatchResult.CONTINUE
    ours = rendered_default(metadata_default, autogen_context)
    theirs = _conn_text(conn_default)
    dialect = autogen_context.dialect.name
    if dialect == "postgresql":
        differ = _postgresql_defaults_differ(autogen_context, conn_col, metadata_col, ours, theirs)
    elif dialect == "sqlite":
        differ = _strip_sqlite(ours) != _strip_sqlite(theirs)
    else:
        differ = _strip_sqlite(ours) != _strip_sqlite(theirs)
    if differ:
        alter_column_op.modify_server_default = metadata_default
        log.info("Detected server default change on '%s.%s'", table_name, column_name)
        return DispatchResult.STOP
    return DispatchResult.CONTINUE
