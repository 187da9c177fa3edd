"""The command line interface (the only layer that prints)."""

from __future__ import annotations

from .app import cli, main

__all__ = ["cli", "main"]
