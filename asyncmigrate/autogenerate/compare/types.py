"""Compare a column's type in the database with its type in the models.

On by default (``compare_type=True``). ``compare_type`` may instead be a
callable ``fn(context, inspected_column, metadata_column, inspected_type,
metadata_type)`` returning True (different), False (same: stop comparing)
or None (no opinion: compare as usual).

The default comparison renders both types in the dialect's DDL, then
compares the type names (allowing synonyms such as ``NUMERIC``/``DECIMAL``),
the parenthesized arguments when both sides have them, and the trailing
words (``WITH TIME ZONE``) when both sides have as many -- so a reflected
``VARCHAR(50)`` matches ``String(50)``, but not ``String(100)`` or ``Text``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import types as sqltypes
from sqlalchemy.engine import Dialect

from ...masking import get_logger
from .registry import DispatchPriority, DispatchResult, comparators

if TYPE_CHECKING:
    from sqlalchemy import Column

    from ...operations.ops import AlterColumnOp
    from ..context import AutogenContext

__all__ = ["TypeSignature", "type_signature", "types_differ"]

log = get_logger("asyncmigrate.autogenerate")

#: Type names that mean the same thing, per dialect ("default" applies everywhere).
SYNONYMS: dict[str, tuple[frozenset[str], ...]] = {
    "default": (frozenset({"numeric", "decimal"}),),
    "postgresql": (frozenset({"float", "double precision"}),),
}

_WORD_OR_GROUP = re.compile(r"\([^()]*\)|[^\s()]+")


@dataclass(frozen=True)
class TypeSignature:
    """A type as the dialect spells it: its name words, arguments and trailing words."""

    words: tuple[str, ...]
    args: tuple[str, ...]
    trailing: tuple[str, ...]

    @property
    def name(self) -> str:
        """The first word (``varchar``, ``timestamp``, ``double``)."""
        return self.words[0] if self.words else ""

    @property
    def phrase(self) -> str:
        """The words before the arguments (``double precision``)."""
        return " ".join(self.words)


def type_signature(dialect: Dialect, type_: sqltypes.TypeEngine[Any]) -> TypeSignature:
    """Render ``type_`` in ``dialect``'s DDL and split it into a :class:`TypeSignature`."""
    rendered = dialect.type_compiler_instance.process(type_).lower()
    words: list[str] = []
    args: list[str] = []
    trailing: list[str] = []
    seen_args = False
    for token in _WORD_OR_GROUP.findall(rendered):
        if token.startswith("("):
            if not seen_args:
                args = [part.strip() for part in token[1:-1].split(",") if part.strip()]
                seen_args = True
        elif seen_args:
            trailing.append(token)
        else:
            words.append(token)
    if not seen_args and len(words) > 1:
        # "timestamp with time zone": the first word names the type.
        trailing, words = words[1:], words[:1]
        if " ".join([*words, *trailing]) in _phrases(dialect):
            words, trailing = [*words, *trailing], []
    return TypeSignature(tuple(words), tuple(args), tuple(trailing))


def _phrases(dialect: Dialect) -> set[str]:
    return {
        phrase
        for group in (*SYNONYMS["default"], *SYNONYMS.get(dialect.name, ()))
        for phrase in group
        if " " in phrase
    }


def _names_match(dialect: Dialect, inspected: TypeSignature, metadata: TypeSignature) -> bool:
    if inspected.name == metadata.name:
        return True
    for group in (*SYNONYMS["default"], *SYNONYMS.get(dialect.name, ())):
        if {inspected.phrase, metadata.phrase} <= group or {inspected.name, metadata.name} <= group:
            return True
    return False


def types_differ(
    dialect: Dialect,
    inspected_type: sqltypes.TypeEngine[Any],
    metadata_type: sqltypes.TypeEngine[Any],
) -> bool:
    """Tell whether a reflected type and a model type differ in a way DDL would change."""
    inspected = type_signature(dialect, inspected_type)
    metadata = type_signature(dialect, metadata_type)
    if not _names_match(dialect, inspected, metadata):
        return True
    same_arity = bool(inspected.args) and len(inspected.args) == len(metadata.args)
    if same_arity and _plain(inspected.args) != _plain(metadata.args):
        return True
    return (
        len(inspected.trailing) == len(metadata.trailing)
        and inspected.trailing != metadata.trailing
        and inspected.phrase == metadata.phrase
    )


def _plain(args: tuple[str, ...]) -> tuple[str, ...]:
    # keyword arguments (MySQL "charset=...") are not compared
    return tuple(arg for arg in args if "=" not in arg)


def _comparable(conn_col: Column[Any], metadata_col: Column[Any], table_name: str) -> bool:
    if conn_col.type._type_affinity is sqltypes.NullType:
        log.info("Couldn't determine database type for column '%s.%s'", table_name, conn_col.name)
        return False
    if metadata_col.type._type_affinity is sqltypes.NullType:
        log.info("Column '%s.%s' has no type within the model; can't compare", table_name, metadata_col.name)
        return False
    return True


@comparators.dispatch_for("column", element="types", priority=DispatchPriority.FIRST)
def compare_type_with_hook(
    autogen_context: AutogenContext,
    alter_column_op: AlterColumnOp,
    schema: str | None,
    table_name: str,
    column_name: str,
    conn_col: Column[Any],
    metadata_col: Column[Any],
) -> DispatchResult:
    """Record the existing type; apply ``compare_type=False`` or a ``compare_type`` callable."""
    alter_column_op.existing_type = conn_col.type
    setting = autogen_context.opts.get("compare_type", True)
    if setting is False:
        return DispatchResult.STOP
    if not callable(setting) or not _comparable(conn_col, metadata_col, table_name):
        return DispatchResult.CONTINUE
    verdict = setting(
        autogen_context.migration_context, conn_col, metadata_col, conn_col.type, metadata_col.type
    )
    if verdict:
        alter_column_op.modify_type = metadata_col.type
        log.info("Detected type change from %r to %r on '%s.%s'",
                 conn_col.type, metadata_col.type, table_name, column_name)
        return DispatchResult.STOP
    return DispatchResult.STOP if verdict is False else DispatchResult.CONTINUE


@comparators.dispatch_for("column", element="types", priority=DispatchPriority.LAST)
def compare_type_by_dialect(
    autogen_context: AutogenContext,
    alter_column_op: AlterColumnOp,
    schema: str | None,
    table_name: str,
    column_name: str,
    conn_col: Column[Any],
    metadata_col: Column[Any],
) -> DispatchResult:
    """Compare the two types as the dialect renders them (see :func:`types_differ`)."""
    if not _comparable(conn_col, metadata_col, table_name):
        return DispatchResult.CONTINUE
    if types_differ(autogen_context.dialect, conn_col.type, metadata_col.type):
        alter_column_op.modify_type = metadata_col.type
        log.info("Detected type change from %r to %r on '%s.%s'",
                 conn_col.type, metadata_col.type, table_name, column_name)
        return DispatchResult.STOP
    return DispatchResult.CONTINUE
