"""The checksum of a revision file: what changed in it, not how it was saved.

Two copies of a revision file have the same checksum when they differ only
in line endings (``\\r\\n``, ``\\r``, ``\\n``), in trailing whitespace, in
blank lines at the start or end, or in the module docstring (the header
``revision`` writes: message, ``Revision ID``, ``Revises``, ``Create
Date``). Any other edit -- a statement, a comment, the revision
identifiers -- changes it. Loose ``Create Date:`` lines outside the
docstring do not count either.
"""

from __future__ import annotations

import hashlib
import io
import re
import tokenize
from pathlib import Path

from ..runtime.sharing import Memo

__all__ = ["file_checksum", "source_checksum"]

_CREATE_DATE = re.compile(r"^\s*#?\s*Create Date:.*$")
_NOISE = frozenset({
    tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENCODING,
})


_LEADING_DOCSTRING = re.compile(
    r"""\A((?:[ \t]*(?:\#[^\n]*)?\n)*)[ \t]*[rRuU]?(\"\"\"|\'\'\')(?:(?!\2)[^\\]|\\.)*?\2""", re.DOTALL
)
_MEMO: Memo[str] = Memo()


def _without_docstring(text: str) -> str:
    """``text`` without a leading module docstring (unchanged when it has none or does not tokenize)."""
    match = _LEADING_DOCSTRING.match(text)
    if match is not None:  # the usual triple-quoted header: no tokenizer needed
        return match.group(1) + text[match.end():]
    try:
        for token in tokenize.generate_tokens(io.StringIO(text).readline):
            if token.type in _NOISE:
                continue
            if token.type != tokenize.STRING:
                return text
            lines = text.split("\n")
            end_row, end_col = token.end
            rest = lines[end_row - 1][end_col:]
            return "\n".join([*lines[: token.start[0] - 1], rest, *lines[end_row:]])
    except (tokenize.TokenError, SyntaxError):
        return text
    return text


def source_checksum(text: str) -> str:
    """Return the SHA-256 (hex) of a revision file's normalised source."""
    return _MEMO.get(text, lambda: _checksum(text))


def _checksum(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n").lstrip("\ufeff")
    text = _without_docstring(text)
    lines = [line.rstrip() for line in text.split("\n") if not _CREATE_DATE.match(line)]
    normalised = "\n".join(lines).strip("\n")
    return hashlib.sha256(normalised.encode("utf-8")).hexdigest()


def file_checksum(path: str | Path) -> str:
    """Return the checksum of the revision file at ``path`` (see :func:`source_checksum`).

    :raises OSError: when the file cannot be read.
    """
    raw = Path(path).read_bytes()
    return source_checksum(raw.decode("utf-8", errors="replace"))
