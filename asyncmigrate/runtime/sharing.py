"""What may be reused across runs and tenants: only what is keyed by its complete content.

A fan-out runs the same revisions against thousands of databases. Reusing
SQL built for one tenant in another is sound only when the key covers
everything the SQL depends on; a key made of names or positions is not
enough once revision files and env.py run arbitrary Python. The one thing
shared here is the version table: its description depends only on the
implementation that describes it, its name, schema and primary-key flag,
and its ``CREATE TABLE`` only on those and the dialect. Migrations' own
statements are built and compiled by each tenant's own run.

Pure, no I/O: bounded memo tables and the keys that index them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

__all__ = ["Memo"]

V = TypeVar("V")


class Memo(Generic[V]):
    """A small, bounded, thread-safe memo table (cleared when it outgrows ``limit``)."""

    def __init__(self, limit: int = 256) -> None:
        self._limit = limit
        self._values: dict[Hashable, V] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable, build: Callable[[], V]) -> V:
        """Return the value for ``key``, building it with ``build()`` the first time."""
        with self._lock:
            if key in self._values:
                return self._values[key]
        value = build()
        with self._lock:
            if len(self._values) >= self._limit:
                self._values.clear()
            return self._values.setdefault(key, value)
