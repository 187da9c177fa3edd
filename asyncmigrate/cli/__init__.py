"""The command line interface (the only layer that prints)."""

from __future__ import annotations

from .app import cli, main
from .tenants import report_group, tenants_group

cli.add_command(tenants_group)
cli.add_command(report_group, "report")  # `asyncmigrate report merge`, short for `tenants report merge`

__all__ = ["cli", "main"]
