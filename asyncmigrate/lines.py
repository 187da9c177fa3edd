"""Text from outside (errors, tenant names, messages) made into one inert line.

:func:`printable` escapes control characters, so a newline or an ANSI
escape in a name or an error can neither forge a second line of a CI log
nor restyle a terminal. :func:`one_line` renders a whole message that
way: every line of it kept, the line breaks shown as ``\\n``.
"""

from __future__ import annotations

import re

__all__ = ["one_line", "printable"]

#: C0/C1 controls, line and paragraph separators, and the bidirectional controls that can
#: visually reorder a log line (LRM/RLM/ALM, embeddings, overrides, isolates).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
#: Characters of a message shown at most; the rest is counted, not shown.
LIMIT = 1000


def printable(text: str) -> str:
    """Escape control characters (newlines, ANSI escapes...) so ``text`` stays one inert line."""

    def escape(match: re.Match[str]) -> str:
        char = match.group()
        named = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
        return named.get(char) or (f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}")

    return _CONTROL.sub(escape, text)


def one_line(text: str, limit: int = LIMIT) -> str:
    """``text`` as one line: outer blank space dropped, line breaks escaped, at most ``limit`` characters."""
    line = printable("\n".join(part.rstrip() for part in text.strip().splitlines()))
    if len(line) > limit:
        line = f"{line[:limit]}... ({len(line) - limit} more characters)"
    return line
