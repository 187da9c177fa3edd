"""Read what SQLAlchemy's SQLite reflection misses from the stored ``CREATE`` statements.

SQLite keeps each table's and index's original SQL in ``sqlite_master``.
SQLAlchemy reflects most of it, but not column-level ``CHECK`` and
``UNIQUE`` constraints, ``AUTOINCREMENT``, expression indexes, ``COLLATE``
or ``DESC`` in index columns, and it can misread generated columns. A
batch recreate copies a table from its reflection, so anything missing
would silently disappear; this module parses the stored statements so the
reflected table can be completed first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = [
    "ColumnSpec",
    "IndexSpec",
    "TableSpec",
    "parse_create_index",
    "parse_create_table",
]

_TOKEN = re.compile(
    r"""
      (?P<space>\s+|--[^\n]*|/\*.*?\*/)
    | (?P<string>'(?:[^']|'')*')
    | (?P<dquote>"(?:[^"]|"")*")
    | (?P<bquote>`(?:[^`]|``)*`)
    | (?P<bracket>\[[^\]]*\])
    | (?P<word>[A-Za-z_][A-Za-z0-9_$]*)
    | (?P<lparen>\()
    | (?P<rparen>\))
    | (?P<comma>,)
    | (?P<other>.)
    """,
    re.VERBOSE | re.DOTALL,
)


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    start: int
    end: int

    @property
    def upper(self) -> str:
        return self.text.upper() if self.kind == "word" else ""

    @property
    def ident(self) -> str:
        """The identifier this token names, unquoted."""
        if self.kind == "dquote":
            return self.text[1:-1].replace('""', '"')
        if self.kind == "bquote":
            return self.text[1:-1].replace("``", "`")
        if self.kind == "bracket":
            return self.text[1:-1]
        if self.kind == "string":
            return self.text[1:-1].replace("''", "'")
        return self.text


def _tokens(sql: str) -> list[_Token]:
    return [
        _Token(match.lastgroup or "other", match.group(0), match.start(), match.end())
        for match in _TOKEN.finditer(sql)
        if match.lastgroup != "space"
    ]


def _group_end(tokens: list[_Token], start: int) -> int:
    """Return the index of the ``)`` closing the ``(`` at ``start``."""
    depth = 0
    for i in range(start, len(tokens)):
        if tokens[i].kind == "lparen":
            depth += 1
        elif tokens[i].kind == "rparen":
            depth -= 1
            if depth == 0:
                return i
    raise ValueError("Unbalanced parentheses in stored SQL")


def _split(tokens: list[_Token]) -> list[list[_Token]]:
    """Split tokens at commas outside parentheses."""
    items: list[list[_Token]] = [[]]
    depth = 0
    for token in tokens:
        if token.kind == "lparen":
            depth += 1
        elif token.kind == "rparen":
            depth -= 1
        if token.kind == "comma" and depth == 0:
            items.append([])
        else:
            items[-1].append(token)
    return [item for item in items if item]


def _inner(sql: str, tokens: list[_Token], open_index: int) -> tuple[str, int]:
    """Return the SQL text inside the parenthesised group at ``open_index``, and its end."""
    close = _group_end(tokens, open_index)
    return sql[tokens[open_index].end : tokens[close].start].strip(), close


@dataclass
class ColumnSpec:
    """What a column definition says beyond name and type."""

    name: str
    checks: list[tuple[str | None, str]] = field(default_factory=list)
    unique: bool = False
    unique_name: str | None = None
    autoincrement: bool = False
    generated: str | None = None
    stored: bool = False


@dataclass
class TableSpec:
    """The constraints a stored ``CREATE TABLE`` declares."""

    columns: list[ColumnSpec] = field(default_factory=list)
    checks: list[tuple[str | None, str]] = field(default_factory=list)


@dataclass
class IndexSpec:
    """A stored ``CREATE INDEX``: name, uniqueness, column expressions, partial condition."""

    name: str
    unique: bool
    expressions: list[str]
    where: str | None


_TABLE_CONSTRAINT_WORDS = {"CONSTRAINT", "PRIMARY", "UNIQUE", "CHECK", "FOREIGN"}


def parse_create_table(sql: str) -> TableSpec:
    """Parse a stored ``CREATE TABLE`` statement's column and table constraints."""
    tokens = _tokens(sql)
    start = next(i for i, tok in enumerate(tokens) if tok.kind == "lparen")
    end = _group_end(tokens, start)
    spec = TableSpec()
    for item in _split(tokens[start + 1 : end]):
        if item[0].upper in _TABLE_CONSTRAINT_WORDS:
            _table_constraint(sql, item, spec)
        else:
            spec.columns.append(_column(sql, item))
    return spec


def _table_constraint(sql: str, item: list[_Token], spec: TableSpec) -> None:
    name: str | None = None
    i = 0
    while i < len(item):
        word = item[i].upper
        if word == "CONSTRAINT" and i + 1 < len(item):
            name = item[i + 1].ident
            i += 2
            continue
        if word == "CHECK" and i + 1 < len(item) and item[i + 1].kind == "lparen":
            text, _ = _inner(sql, item, i + 1)
            spec.checks.append((name, text))
            return
        i += 1


def _column(sql: str, item: list[_Token]) -> ColumnSpec:
    column = ColumnSpec(item[0].ident)
    pending: str | None = None
    i = 1
    while i < len(item):
        token = item[i]
        word = token.upper
        following = item[i + 1] if i + 1 < len(item) else None
        if word == "CONSTRAINT" and following is not None:
            pending = following.ident
            i += 2
            continue
        if word == "CHECK" and following is not None and following.kind == "lparen":
            text, close = _inner(sql, item, i + 1)
            column.checks.append((pending, text))
            pending = None
            i = close + 1
            continue
        if word == "UNIQUE":
            column.unique = True
            column.unique_name = pending
            pending = None
        elif word == "AUTOINCREMENT":
            column.autoincrement = True
        elif word == "AS" and following is not None and following.kind == "lparen":
            text, close = _inner(sql, item, i + 1)
            column.generated = text
            column.stored = any(tok.upper == "STORED" for tok in item[close + 1 :])
            i = close + 1
            continue
        elif word in ("PRIMARY", "NOT", "NULL", "DEFAULT", "REFERENCES", "COLLATE", "GENERATED"):
            pending = None
        if token.kind == "lparen":
            i = _group_end(item, i) + 1
            continue
        i += 1
    return column


def parse_create_index(sql: str) -> IndexSpec:
    """Parse a stored ``CREATE [UNIQUE] INDEX name ON table (...) [WHERE ...]`` statement."""
    tokens = _tokens(sql)
    unique = any(tok.upper == "UNIQUE" for tok in tokens[:3])
    on = next(i for i, tok in enumerate(tokens) if tok.upper == "ON")
    name_token = tokens[on - 1]
    open_index = next(i for i in range(on, len(tokens)) if tokens[i].kind == "lparen")
    close = _group_end(tokens, open_index)
    expressions = [
        sql[item[0].start : item[-1].end].strip()
        for item in _split(tokens[open_index + 1 : close])
    ]
    where = None
    rest = tokens[close + 1 :]
    if rest and rest[0].upper == "WHERE":
        where = sql[rest[0].end :].strip().rstrip(";").strip()
    return IndexSpec(name_token.ident, unique, expressions, where)
