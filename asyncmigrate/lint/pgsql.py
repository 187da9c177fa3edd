"""Read SQL with PostgreSQL's own parser (pglast) into :mod:`~asyncmigrate.lint.changes` records.

One string may hold several statements (``op.execute`` text often does),
comments included; each statement becomes one or more records (an
``ALTER TABLE`` with several sub-commands gives one per sub-command), each
carrying its own statement text. SQL the parser rejects becomes one
:class:`~asyncmigrate.lint.changes.Unreadable` record rather than an error.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pglast import ast, parse_sql
from pglast.enums import (
    AlterTableType,
    ConstrType,
    NullTestType,
    ObjectType,
    TransactionStmtKind,
)
from pglast.parser import ParseError
from pglast.stream import RawStream

from .changes import (
    AddColumn,
    AddConstraint,
    AlterType,
    Change,
    ConstraintKind,
    CreateIndex,
    CreateTable,
    DataChange,
    Default,
    DropColumn,
    DropIndex,
    DropTable,
    OtherStatement,
    Relation,
    RenameColumn,
    RenameTable,
    SetNotNull,
    SqlType,
    TransactionControl,
    Unreadable,
    ValidateConstraint,
    Volatility,
)
from .locks import LockMode

__all__ = ["parse_type", "read_sql", "volatility_of"]

#: Functions whose result changes per call (``pg_proc.provolatile = 'v'``) that defaults use.
VOLATILE_FUNCTIONS = frozenset({
    "random", "random_normal", "gen_random_uuid", "uuidv4", "uuidv7", "uuid_generate_v1",
    "uuid_generate_v1mc", "uuid_generate_v4", "gen_random_bytes", "clock_timestamp", "timeofday",
    "nextval", "setval", "txid_current", "pg_current_xact_id",
})
#: Functions fixed within a statement (``'s'``) or for given arguments (``'i'``).
NON_VOLATILE_FUNCTIONS = frozenset({
    "now", "statement_timestamp", "transaction_timestamp", "current_setting", "current_date",
    "lower", "upper", "btrim", "trim", "concat", "coalesce", "nullif", "greatest", "least", "md5",
    "to_jsonb", "jsonb_build_object", "jsonb_build_array", "json_build_object", "array",
    "make_interval", "to_timestamp", "timezone", "length", "abs", "round",
})
_SERIAL_TYPES = {"smallserial": "int2", "serial": "int4", "bigserial": "int8", "serial2": "int2",
                 "serial4": "int4", "serial8": "int8"}
_CONSTRAINT_KINDS: dict[ConstrType, ConstraintKind] = {
    ConstrType.CONSTR_FOREIGN: "foreign_key",
    ConstrType.CONSTR_CHECK: "check",
    ConstrType.CONSTR_UNIQUE: "unique",
    ConstrType.CONSTR_PRIMARY: "primary_key",
    ConstrType.CONSTR_EXCLUSION: "exclude",
}
#: ALTER TABLE sub-commands that take less than ACCESS EXCLUSIVE (PostgreSQL's ALTER TABLE page).
_SHARE_UPDATE_EXCLUSIVE_COMMANDS = frozenset({
    AlterTableType.AT_SetStatistics, AlterTableType.AT_SetOptions, AlterTableType.AT_ResetOptions,
    AlterTableType.AT_ClusterOn, AlterTableType.AT_DropCluster, AlterTableType.AT_SetRelOptions,
    AlterTableType.AT_ResetRelOptions, AlterTableType.AT_AttachPartition,
})


def read_sql(sql: str) -> list[Change]:
    """Parse ``sql`` (one or more statements) into change records."""
    try:
        statements = parse_sql(sql)
    except ParseError as exc:
        return [Unreadable(sql=sql.strip(), error=str(exc))]
    encoded = sql.encode("utf-8")
    changes: list[Change] = []
    for raw in statements:
        start = raw.stmt_location or 0
        end = start + raw.stmt_len if raw.stmt_len else len(encoded)
        text = encoded[start:end].decode("utf-8").strip()
        changes.extend(_statement(raw.stmt, text))
    return changes


def parse_type(spelled: str) -> SqlType | None:
    """Read a type as PostgreSQL spells it (``VARCHAR(50)``, ``BIGINT``) into a :class:`SqlType`."""
    try:
        (raw,) = parse_sql(f"SELECT CAST(NULL AS {spelled})")
    except (ParseError, ValueError):
        return None
    select = raw.stmt
    if not isinstance(select, ast.SelectStmt) or not select.targetList:
        return None
    cast = select.targetList[0].val
    return _type(cast.typeName) if isinstance(cast, ast.TypeCast) else None


def volatility_of(expression: str) -> tuple[Volatility, str | None]:
    """The volatility of a default written as SQL (``now()``, ``gen_random_uuid()``...)."""
    try:
        (raw,) = parse_sql(f"SELECT {expression}")
    except (ParseError, ValueError):
        return Volatility.UNKNOWN, None
    return _volatility(raw.stmt)


# -- statements -------------------------------------------------------------------------------


def _statement(stmt: Any, sql: str) -> Iterator[Change]:
    if isinstance(stmt, ast.TransactionStmt):
        kind = stmt.kind
        if kind in (TransactionStmtKind.TRANS_STMT_BEGIN, TransactionStmtKind.TRANS_STMT_START):
            yield TransactionControl(sql=sql, begin=True)
        elif kind in (TransactionStmtKind.TRANS_STMT_COMMIT, TransactionStmtKind.TRANS_STMT_ROLLBACK,
                      TransactionStmtKind.TRANS_STMT_PREPARE):
            yield TransactionControl(sql=sql, begin=False)
        return
    if isinstance(stmt, ast.CreateStmt):
        columns = tuple(
            (element.colname, _type(element.typeName))
            for element in stmt.tableElts or ()
            if isinstance(element, ast.ColumnDef) and element.colname
        )
        yield CreateTable(sql=sql, relation=_relation(stmt.relation), columns=columns)
    elif isinstance(stmt, ast.CreateTableAsStmt) and stmt.into is not None:
        yield CreateTable(sql=sql, relation=_relation(stmt.into.rel))
    elif isinstance(stmt, ast.IndexStmt):
        yield CreateIndex(
            sql=sql, relation=_relation(stmt.relation), index=stmt.idxname,
            concurrently=bool(stmt.concurrent), unique=bool(stmt.unique),
        )
    elif isinstance(stmt, ast.DropStmt):
        yield from _drop(stmt, sql)
    elif isinstance(stmt, ast.AlterTableStmt):
        yield from _alter_table(stmt, sql)
    elif isinstance(stmt, ast.RenameStmt):
        yield _rename(stmt, sql)
    elif isinstance(stmt, (ast.UpdateStmt, ast.DeleteStmt)):
        yield DataChange(
            sql=sql,
            relation=_relation(stmt.relation),
            verb="UPDATE" if isinstance(stmt, ast.UpdateStmt) else "DELETE",
            where=stmt.whereClause is not None,
            limited=any(
                isinstance(node, ast.SelectStmt) and node.limitCount is not None
                for node in _walk(stmt.whereClause)
            ),
        )
    elif isinstance(stmt, (ast.InsertStmt, ast.SelectStmt, ast.VariableSetStmt, ast.VariableShowStmt)):
        yield OtherStatement(sql=sql, ddl=False)
    elif isinstance(stmt, ast.CommentStmt):
        yield OtherStatement(sql=sql, mode=LockMode.SHARE_UPDATE_EXCLUSIVE, relation=_comment_target(stmt))
    else:
        yield OtherStatement(sql=sql)


def _drop(stmt: ast.DropStmt, sql: str) -> Iterator[Change]:
    for obj in stmt.objects or ():
        names = [item.sval for item in obj] if isinstance(obj, tuple) else []
        if not names:
            yield OtherStatement(sql=sql)
            continue
        schema = names[-2] if len(names) > 1 else None
        if stmt.removeType == ObjectType.OBJECT_INDEX:
            yield DropIndex(sql=sql, index=names[-1], concurrently=bool(stmt.concurrent))
        elif stmt.removeType == ObjectType.OBJECT_TABLE:
            yield DropTable(sql=sql, relation=Relation(names[-1], schema))
        else:
            yield OtherStatement(sql=sql)


def _alter_table(stmt: ast.AlterTableStmt, sql: str) -> Iterator[Change]:
    relation = _relation(stmt.relation)
    if stmt.objtype != ObjectType.OBJECT_TABLE:
        yield OtherStatement(sql=sql, relation=relation, mode=LockMode.SHARE_UPDATE_EXCLUSIVE)
        return
    for cmd in stmt.cmds or ():
        subtype = cmd.subtype
        if subtype == AlterTableType.AT_AddConstraint and isinstance(cmd.def_, ast.Constraint):
            yield _add_constraint(cmd.def_, relation, sql)
        elif subtype == AlterTableType.AT_ValidateConstraint and cmd.name:
            yield ValidateConstraint(sql=sql, relation=relation, name=cmd.name)
        elif subtype == AlterTableType.AT_SetNotNull and cmd.name:
            yield SetNotNull(sql=sql, relation=relation, column=cmd.name)
        elif subtype == AlterTableType.AT_AddColumn and isinstance(cmd.def_, ast.ColumnDef):
            yield _add_column(cmd.def_, relation, sql)
        elif subtype == AlterTableType.AT_AlterColumnType and isinstance(cmd.def_, ast.ColumnDef):
            definition = cmd.def_
            yield AlterType(
                sql=sql, relation=relation, column=cmd.name or "?", new=_type(definition.typeName),
                using=definition.raw_default is not None,
            )
        elif subtype == AlterTableType.AT_DropColumn and cmd.name:
            yield DropColumn(sql=sql, relation=relation, column=cmd.name)
        else:
            mode = (
                LockMode.SHARE_UPDATE_EXCLUSIVE
                if subtype in _SHARE_UPDATE_EXCLUSIVE_COMMANDS
                else LockMode.ACCESS_EXCLUSIVE
            )
            yield OtherStatement(sql=sql, relation=relation, mode=mode)


def _add_constraint(constraint: ast.Constraint, relation: Relation, sql: str) -> AddConstraint:
    kind: ConstraintKind = (
        _CONSTRAINT_KINDS.get(constraint.contype, "other") if constraint.contype is not None else "other"
    )
    not_null_column = None
    expr = constraint.raw_expr
    if (
        kind == "check"
        and isinstance(expr, ast.NullTest)
        and expr.nulltesttype == NullTestType.IS_NOT_NULL
        and isinstance(expr.arg, ast.ColumnRef)
    ):
        not_null_column = _column_name(expr.arg)
    return AddConstraint(
        sql=sql,
        relation=relation,
        name=constraint.conname,
        kind=kind,
        not_valid=bool(constraint.skip_validation),
        using_index=constraint.indexname,
        referenced=_relation(constraint.pktable) if constraint.pktable is not None else None,
        not_null_column=not_null_column,
    )


def _add_column(definition: ast.ColumnDef, relation: Relation, sql: str) -> AddColumn:
    type_name = definition.typeName
    sql_type = _type(type_name)
    default: Default | None = None
    not_null = bool(definition.is_not_null)
    generated = False
    if sql_type is not None and sql_type.name in _SERIAL_TYPES:
        default = Default(f"nextval(...) ({sql_type.name})", Volatility.VOLATILE, "nextval")
        sql_type = SqlType(_SERIAL_TYPES[sql_type.name])
    for constraint in definition.constraints or ():
        contype = constraint.contype
        if contype == ConstrType.CONSTR_DEFAULT and constraint.raw_expr is not None:
            volatility, function = _volatility(constraint.raw_expr)
            default = Default(_expression_text(constraint.raw_expr), volatility, function)
        elif contype in (ConstrType.CONSTR_NOTNULL, ConstrType.CONSTR_PRIMARY):
            not_null = True
        elif contype == ConstrType.CONSTR_GENERATED:
            generated = True
        elif contype == ConstrType.CONSTR_IDENTITY:
            default = Default("GENERATED AS IDENTITY", Volatility.VOLATILE, "nextval")
    return AddColumn(
        sql=sql, relation=relation, column=definition.colname or "?", type=sql_type,
        default=default, not_null=not_null, generated=generated,
    )


def _rename(stmt: ast.RenameStmt, sql: str) -> Change:
    relation = _relation(stmt.relation) if stmt.relation is not None else None
    if relation is not None and stmt.newname:
        if stmt.renameType == ObjectType.OBJECT_COLUMN and stmt.subname:
            return RenameColumn(sql=sql, relation=relation, column=stmt.subname, new_name=stmt.newname)
        if stmt.renameType == ObjectType.OBJECT_TABLE:
            return RenameTable(sql=sql, relation=relation, new_name=stmt.newname)
    # Renaming an index or a constraint: a brief SHARE UPDATE EXCLUSIVE / ACCESS EXCLUSIVE.
    return OtherStatement(sql=sql, relation=relation, mode=LockMode.SHARE_UPDATE_EXCLUSIVE)


# -- pieces -----------------------------------------------------------------------------------


def _relation(node: Any) -> Relation:
    if isinstance(node, ast.RangeVar) and node.relname:
        return Relation(node.relname, node.schemaname)
    return Relation("?")


def _comment_target(stmt: ast.CommentStmt) -> Relation | None:
    names = stmt.object
    if stmt.objtype == ObjectType.OBJECT_TABLE and isinstance(names, tuple) and names:
        parts = [n.sval for n in names if isinstance(n, ast.String)]
        return Relation(parts[-1], parts[-2] if len(parts) > 1 else None) if parts else None
    return None


def _column_name(ref: ast.ColumnRef) -> str | None:
    fields = ref.fields or ()
    last = fields[-1] if fields else None
    return last.sval if isinstance(last, ast.String) else None


def _type(type_name: ast.TypeName | None) -> SqlType | None:
    if type_name is None or not type_name.names:
        return None
    name = type_name.names[-1].sval
    modifiers = tuple(
        int(mod.val.ival or 0)
        for mod in type_name.typmods or ()
        if isinstance(mod, ast.A_Const) and isinstance(mod.val, ast.Integer)
    )
    return SqlType(name, modifiers, bool(type_name.arrayBounds))


def _walk(node: Any) -> Iterator[Any]:
    """Every AST node under ``node`` (itself included)."""
    if isinstance(node, tuple):
        for item in node:
            yield from _walk(item)
    elif isinstance(node, ast.Node):
        yield node
        for name in node:
            yield from _walk(getattr(node, name))


def _volatility(expr: Any) -> tuple[Volatility, str | None]:
    """The volatility of a default expression, and the function that decides it."""
    found = Volatility.CONSTANT
    deciding: str | None = None
    for node in _walk(expr):
        if isinstance(node, ast.SQLValueFunction) and found == Volatility.CONSTANT:
            found = Volatility.STABLE
        elif isinstance(node, ast.FuncCall):
            name = node.funcname[-1].sval.lower() if node.funcname else "?"
            if name in VOLATILE_FUNCTIONS:
                return Volatility.VOLATILE, name
            if name not in NON_VOLATILE_FUNCTIONS and found != Volatility.UNKNOWN:
                found, deciding = Volatility.UNKNOWN, name
            elif found == Volatility.CONSTANT:
                found, deciding = Volatility.STABLE, name
    return found, deciding


def _expression_text(expr: Any) -> str:
    """The default's SQL, printed back from the parse tree."""
    try:
        return str(RawStream()(expr))
    except Exception:  # pragma: no cover - pglast prints every expression it parses
        return "?"
