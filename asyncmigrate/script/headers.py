"""Read a revision file's header -- its ids and docstring -- without importing it.

Three tiers, cheapest first:

1. a line scan for the module-level assignments ``revision``, ``down_revision``,
   ``branch_labels`` and ``depends_on`` (plain or annotated), each value read
   with :func:`ast.literal_eval`;
2. if a value is not a plain literal on its own lines, a full :func:`ast.parse`
   of the file, still evaluating only literals;
3. if a value is computed, the header says so (``needs_import``) and the
   script layer imports the file to read it.
"""

from __future__ import annotations

import ast
import importlib.util
import io
import re
import tokenize
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..exceptions import RevisionFileError

__all__ = ["HEADER_FIELDS", "RevisionHeader", "parse_header", "read_header"]

HEADER_FIELDS = ("revision", "down_revision", "branch_labels", "depends_on")

_ASSIGNMENT = re.compile(
    r"^(revision|down_revision|branch_labels|depends_on)[ \t]*(?::[^=\n]*)?=(?!=)[ \t]*",
    re.MULTILINE,
)
_MAX_VALUE_LINES = 64
_MISSING = object()


@dataclass(frozen=True)
class RevisionHeader:
    """What a revision file declares about itself."""

    revision: str | None
    """The ``revision`` value, or None when the file does not set it."""
    down_revision: str | tuple[str, ...] | None
    branch_labels: str | tuple[str, ...] | None
    depends_on: str | tuple[str, ...] | None
    doc: str
    """The module docstring, stripped ("" when there is none)."""
    needs_import: bool = False
    """True when a value is computed and only importing the file can tell it."""


def read_header(path: str | Path) -> RevisionHeader:
    """Read the header of the revision file at ``path``.

    The file is decoded as Python decodes source (and as Alembic, which
    imports it, reads it): a PEP 263 coding line or a UTF-8 BOM decides,
    UTF-8 otherwise (``output_encoding`` is how new files are *written*).

    :raises RevisionFileError: when the file cannot be read or is not valid Python.
    """
    try:
        source = importlib.util.decode_source(Path(path).read_bytes())
    except (OSError, UnicodeDecodeError, SyntaxError, LookupError) as exc:
        raise RevisionFileError(str(path), f"cannot be read: {exc}") from exc
    return parse_header(source, str(path))


def parse_header(source: str, filename: str = "<revision>") -> RevisionHeader:
    """Parse the header fields out of revision-file source text."""
    doc, body_start = _docstring(source)
    values = _scan(source, body_start)
    if values is None:
        values = _from_ast(source, filename)
    if values is None:
        return RevisionHeader(None, None, None, None, doc, needs_import=True)
    for name in ("down_revision", "branch_labels", "depends_on"):
        _check_ids(values.get(name), name, filename)
    revision = values.get("revision")
    if revision is not None and not isinstance(revision, str):
        raise RevisionFileError(filename, f"'revision' must be a string, not {revision!r}")
    return RevisionHeader(
        revision=revision,
        down_revision=_normalize(values.get("down_revision")),
        branch_labels=_normalize(values.get("branch_labels")),
        depends_on=_normalize(values.get("depends_on")),
        doc=doc,
    )


def _normalize(value: Any) -> str | tuple[str, ...] | None:
    if value is None or isinstance(value, str):
        return value
    items = tuple(value)
    return items or None


def _check_ids(value: Any, name: str, filename: str) -> None:
    if value is None or isinstance(value, str):
        return
    if isinstance(value, (tuple, list, set, frozenset)) and all(isinstance(v, str) for v in value):
        return
    raise RevisionFileError(
        filename, f"'{name}' must be None, a string, or a tuple of strings, not {value!r}"
    )


# A module docstring: optional blank and comment lines, then a (triple-)quoted string.
_LEADING_DOCSTRING = re.compile(
    r"""\A(?:[ \t]*(?:\#[^\n]*)?\r?\n)*[ \t]*(?P<prefix>[rRuU]?)(?P<quote>\"\"\"|\'\'\'|\"|\')"""
)
_NONE = re.compile(r"None[ \t]*(?:#[^\n]*)?(?:\r?\n|\Z)")
_SIMPLE_STRING = re.compile(r"""(['"])([^'"\\\n]*)\1[ \t]*(?:\#[^\n]*)?\r?\n?""")


def _docstring(source: str) -> tuple[str, int]:
    """Return the module docstring and the offset just past it."""
    match = _LEADING_DOCSTRING.match(source)
    if match is None:
        return "", 0
    quote = match["quote"]
    end = source.find(quote, match.end())
    if end >= 0 and "\\" not in source[match.end() : end]:
        end += len(quote)
        try:
            value = ast.literal_eval(source[match.start("prefix") : end])
        except (ValueError, SyntaxError):
            pass
        else:
            return str(value).strip(), end
    return _tokenized_docstring(source)


def _tokenized_docstring(source: str) -> tuple[str, int]:
    """The slow, exact way to find the docstring (escapes, odd prefixes)."""
    reader = io.StringIO(source).readline
    try:
        for tok in tokenize.generate_tokens(reader):
            if tok.type in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.ENCODING):
                continue
            if tok.type != tokenize.STRING:
                return "", 0
            try:
                value = ast.literal_eval(tok.string)
            except (ValueError, SyntaxError):
                return "", 0
            if isinstance(value, bytes):
                value = value.decode("utf-8", "replace")
            end = _offset(source, tok.end)
            return str(value).strip(), end
    except (tokenize.TokenError, SyntaxError, IndentationError):
        return "", 0
    return "", 0


def _offset(source: str, position: tuple[int, int]) -> int:
    line, col = position
    offset = 0
    for _ in range(line - 1):
        offset = source.index("\n", offset) + 1
    return offset + col


def _scan(source: str, start: int) -> dict[str, Any] | None:
    """Read the header assignments by line; None when one is not a simple literal."""
    found: dict[str, Any] = {}
    for match in _ASSIGNMENT.finditer(source, start):
        value = _literal_from(source, match.end())
        if value is _MISSING:
            return None
        found[match.group(1)] = value
    return found


def _literal_from(source: str, offset: int) -> Any:
    simple = _SIMPLE_STRING.match(source, offset)
    if simple is not None:
        return simple.group(2)
    if _NONE.match(source, offset):
        return None
    end = offset
    for _ in range(_MAX_VALUE_LINES):
        newline = source.find("\n", end)
        end = len(source) if newline < 0 else newline + 1
        try:
            return ast.literal_eval(source[offset:end].strip())
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            if newline < 0:
                return _MISSING
    return _MISSING


def _from_ast(source: str, filename: str) -> dict[str, Any] | None:
    try:
        tree = ast.parse(source, filename)
    except SyntaxError as exc:
        raise RevisionFileError(
            filename, f"invalid Python syntax at line {exc.lineno}: {exc.msg}"
        ) from exc
    found: dict[str, Any] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign):
            targets = [t.id for t in node.targets if isinstance(t, ast.Name)]
            value_node: ast.expr | None = node.value
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            targets, value_node = [node.target.id], node.value
        else:
            continue
        for name in targets:
            if name in HEADER_FIELDS and value_node is not None:
                try:
                    found[name] = ast.literal_eval(value_node)
                except ValueError:
                    return None
    return found
