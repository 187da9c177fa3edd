"""click's ``CliRunner`` with stdout and stderr captured apart, on every click pyproject.toml allows."""

from __future__ import annotations

import inspect

from click.testing import CliRunner

__all__ = ["cli_runner"]

# click 8.2 always captures stderr apart; 8.1 does so only when asked (and has no such option after).
_APART = {"mix_stderr": False} if "mix_stderr" in inspect.signature(CliRunner.__init__).parameters else {}


def cli_runner() -> CliRunner:
    """A ``CliRunner`` whose results have ``stdout`` and ``stderr`` apart."""
    return CliRunner(**_APART)
