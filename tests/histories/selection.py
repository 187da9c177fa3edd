"""Which real-world histories a test run covers (``ASYNCMIGRATE_HISTORIES``), as pytest skips.

Unset or ``default``: the histories of tier ``default`` (see ``README.md`` beside this
file: one history per shape, a few minutes on two cores); ``all`` (or ``1``, ``full``):
every history; ``0`` (or ``no``, ``off``, ``none``): none. A history whose artifacts
cannot be fetched (package index unreachable, nothing cached) is skipped with the reason.
"""

from __future__ import annotations

import os

import pytest

from . import catalog, fetch

__all__ = ["ENV", "enabled", "prepare_or_skip"]

ENV = "ASYNCMIGRATE_HISTORIES"


def enabled(history: catalog.History) -> None:
    """Skip unless ``ASYNCMIGRATE_HISTORIES`` selects ``history``."""
    mode = os.environ.get(ENV, "default").strip().lower()
    if mode in ("0", "no", "off", "none"):
        pytest.skip(f"real-world histories disabled ({ENV}=0)")
    if history.tier != "default" and mode not in ("1", "all", "full"):
        pytest.skip(
            f"history {history.name} is in the full tier (heavy requirements or long run); "
            f"set {ENV}=all to run it"
        )


def prepare_or_skip(name: str) -> fetch.PreparedHistory:
    """Return the prepared history ``name``, skipping when it is not selected or not fetchable."""
    enabled(catalog.get(name))
    try:
        return fetch.prepare(name)
    except fetch.HistoryUnavailable as exc:
        pytest.skip(f"history {name} unavailable: {exc}")
