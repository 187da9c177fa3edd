"""The applied record of a database, and how its revision files drifted from it.

:func:`applied_record` and :func:`find_drift` are pure: they take the
version rows, the history table's rows and the revision graph (with the
current checksums of its files) and answer without I/O. The commands
:func:`asyncmigrate.command.log` and :func:`asyncmigrate.command.validate`
read those inputs from a database and hand back the records defined here.

Drift is one of:

* ``changed`` -- an applied revision whose file's checksum differs from
  the checksum recorded when it was applied (or last repaired);
* ``missing`` -- a revision the record says is applied, whose file is no
  longer among the scripts;
* ``unknown`` -- a version row naming a revision the scripts do not know.

Revisions the database holds but the record never saw (applied before the
history table existed, or by Alembic) are *before the record*: listed,
never an error.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from .revision.graph import RevisionGraph
from .revision.revision import Revision
from .runtime.history import HistoryRow

__all__ = ["AppliedRecord", "Drift", "HistoryRow", "ValidationReport", "applied_record", "find_drift"]

DriftKind = Literal["changed", "missing", "unknown"]


@dataclass(frozen=True)
class Drift:
    """One difference between a database's record and the revision files."""

    kind: DriftKind
    """``changed``, ``missing`` or ``unknown`` (see the module docstring)."""
    revision: str
    """The revision concerned."""
    recorded: str | None = None
    """The checksum the record holds (``changed``)."""
    current: str | None = None
    """The checksum of the file now (``changed``)."""

    @property
    def message(self) -> str:
        """One line saying what drifted."""
        if self.kind == "changed":
            return (
                f"{self.revision}: file changed since it was applied "
                f"(recorded {(self.recorded or '')[:12]}, now {(self.current or '')[:12]})"
            )
        if self.kind == "missing":
            return f"{self.revision}: applied, but its file is missing from the scripts"
        return f"{self.revision}: in the version table, but not a known revision"

    def to_dict(self) -> dict[str, Any]:
        """The drift as JSON-ready data."""
        return {"kind": self.kind, "revision": self.revision, "recorded": self.recorded,
                "current": self.current, "message": self.message}


@dataclass(frozen=True)
class AppliedRecord:
    """What one database's history table and version table say was applied."""

    heads: tuple[str, ...]
    """The version table's rows."""
    rows: tuple[HistoryRow, ...]
    """The history table, oldest first (empty when it does not exist)."""
    before_record: tuple[str, ...] = ()
    """Applied revisions the record has no row for (oldest first)."""
    table: str = ""
    """The history table's name."""
    table_exists: bool = True
    """False when the database has no history table (yet)."""
    url: str | None = None
    """The database, password masked."""

    def to_dict(self) -> dict[str, Any]:
        """The record as JSON-ready data."""
        return {
            "url": self.url, "table": self.table, "table_exists": self.table_exists,
            "heads": list(self.heads), "before_record": list(self.before_record),
            "rows": [row.to_dict() for row in self.rows],
        }


@dataclass(frozen=True)
class ValidationReport:
    """The outcome of ``validate`` on one database."""

    record: AppliedRecord
    """The record validated."""
    drift: tuple[Drift, ...] = ()
    """What differs (after a repair: what a repair cannot fix)."""
    repaired: tuple[str, ...] = field(default=())
    """Revisions whose current checksum ``--repair`` recorded."""

    @property
    def ok(self) -> bool:
        """True when nothing drifted."""
        return not self.drift

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data."""
        return {
            "url": self.record.url, "ok": self.ok, "heads": list(self.record.heads),
            "drift": [d.to_dict() for d in self.drift], "repaired": list(self.repaired),
            "before_record": list(self.record.before_record),
        }


def _applied_in_graph(graph: RevisionGraph, heads: Sequence[str]) -> list[Revision]:
    """The revisions ``heads`` stand for (they and their ancestors), oldest first."""
    known = [graph.get_revision(h) for h in heads if h in graph]
    applied = set(graph.ancestors([r for r in known if r is not None]))
    return [rev for rev in graph if rev in applied]


def _baselines(rows: Iterable[HistoryRow]) -> dict[str, HistoryRow]:
    """For each revision, the last applied row that vouches for its file's content."""
    found: dict[str, HistoryRow] = {}
    for row in rows:
        if row.outcome != "applied" or row.revision is None:
            continue
        if row.direction == "upgrade" or row.kind in ("stamp", "repair"):
            found[row.revision] = row
    return found


def _applied_by_record(rows: Iterable[HistoryRow]) -> list[str]:
    """Revisions whose last applied row moved up to them (the record's view, without a graph)."""
    last: dict[str, HistoryRow] = {}
    for row in rows:
        if row.outcome == "applied" and row.revision is not None:
            last[row.revision] = row
    return [rev for rev, row in last.items() if row.direction == "upgrade" or row.kind == "repair"]


def applied_record(
    graph: RevisionGraph, heads: Sequence[str], rows: Sequence[HistoryRow] | None, **kw: Any
) -> AppliedRecord:
    """The :class:`AppliedRecord` of a database at ``heads`` with history ``rows`` (None: no table)."""
    recorded = {row.revision for row in rows or () if row.outcome == "applied"}
    before = tuple(
        rev.revision for rev in _applied_in_graph(graph, heads) if rev.revision not in recorded
    )
    return AppliedRecord(
        heads=tuple(heads), rows=tuple(rows or ()), before_record=before,
        table_exists=rows is not None, **kw,
    )


def find_drift(
    graph: RevisionGraph,
    heads: Sequence[str],
    rows: Sequence[HistoryRow],
    checksums: Mapping[str, str | None],
) -> list[Drift]:
    """What differs between the record and the revision files, one :class:`Drift` per revision.

    :param checksums: the current checksum of each revision file, by revision id.
    """
    drift: list[Drift] = []
    baselines = _baselines(rows)
    for rev in _applied_in_graph(graph, heads):
        row = baselines.get(rev.revision)
        current = checksums.get(rev.revision)
        if row is not None and row.checksum and current and row.checksum != current:
            drift.append(Drift("changed", rev.revision, row.checksum, current))
    unknown = [h for h in heads if h not in graph]
    for revision in _applied_by_record(rows):
        if revision not in graph and revision not in unknown:
            drift.append(Drift("missing", revision))
    drift.extend(Drift("unknown", h) for h in unknown)
    return drift
