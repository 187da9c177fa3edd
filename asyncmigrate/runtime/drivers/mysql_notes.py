"""asyncmy's log of server notes, without the ones that only say what asyncmigrate expects.

asyncmy logs every server warning at WARNING on the ``asyncmy`` logger.
The filter installed here drops two kinds of noise:

* the note that a primary key's name was ignored: MySQL and MariaDB name
  every primary key ``PRIMARY`` -- and the version table's
  (``alembic_version_pkc``, as Alembic names it) and
  ``op.create_primary_key`` always give one, on every first migration;
* "already exists" after asyncmigrate's own ``CREATE ... IF NOT EXISTS``
  of its history table or of a schema tenant's database
  (:func:`expect_existing`): the ``IF NOT EXISTS`` is there because it may.

The same notes about a revision's own statements still show.
"""

from __future__ import annotations

import logging
import re
from typing import Literal

__all__ = ["expect_existing"]

_EXISTS_NOTE = re.compile(r"Table '([^']*)' already exists|Can't create database '([^']*)'; database exists")
#: (kind, name) of what asyncmigrate creates with IF NOT EXISTS: ``table`` or ``database``.
_EXPECTED: set[tuple[str, str]] = set()


def expect_existing(kind: Literal["table", "database"], name: str) -> None:
    """asyncmigrate creates the table or database ``name`` with ``IF NOT EXISTS``: its note is noise."""
    _EXPECTED.add((kind, name))


class _ExpectedNotes(logging.Filter):
    """Drop the notes described above; pass everything else."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "ignored for PRIMARY key" in message:
            return False
        found = _EXISTS_NOTE.search(message)
        if found is None:
            return True
        table, database = found.groups()
        return (("table", table) if table is not None else ("database", database)) not in _EXPECTED


if not any(isinstance(f, _ExpectedNotes) for f in logging.getLogger("asyncmy").filters):
    logging.getLogger("asyncmy").addFilter(_ExpectedNotes())
