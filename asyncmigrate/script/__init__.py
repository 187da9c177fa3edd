"""The script directory: finding, reading, importing and writing revision files."""

from __future__ import annotations

from .directory import Script, ScriptDirectory
from .headers import RevisionHeader, read_header

__all__ = ["RevisionHeader", "Script", "ScriptDirectory", "read_header"]
