"""What a fan-out reports: each tenant's outcome, the run's counts, and shard reports merged.

A tenant's record tells the truth about its database: ``applied`` lists
only the revisions whose steps *committed* (not those that ran and rolled
back), and ``from``/``to`` are where the tenant stood before and stands
after -- ``None`` (JSON ``null``) when that is not known, never an empty
tuple that would read as "base". Reports are data; :func:`printable`
makes any text from them (names, errors) safe for one line of a terminal
or a CI log.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeAlias

from ..events import StepEvent
from ..exceptions import ConfigError
from ..lines import printable

__all__ = [
    "FanoutReport",
    "TenantEvent",
    "TenantEventHandler",
    "TenantResult",
    "TenantStatus",
    "merge_reports",
    "printable",
]

TenantStatus: TypeAlias = Literal["ok", "unchanged", "failed", "skipped"]
_STATUSES: tuple[TenantStatus, ...] = ("ok", "unchanged", "failed", "skipped")

@dataclass(frozen=True)
class TenantResult:
    """What happened to one tenant."""

    name: str
    url: str
    """The tenant's URL, password masked."""
    schema: str | None
    status: TenantStatus
    from_heads: tuple[str, ...] | None = ()
    """Where the tenant stood before the run; None when not known (a failure before reading it)."""
    to_heads: tuple[str, ...] | None = ()
    """Where the tenant stands after the run; None when not known."""
    migrations: int = 0
    """Steps committed (migrations run, or stamp moves)."""
    seconds: float = 0.0
    error: str | None = None
    attempts: int = 0
    started: float | None = None
    """Seconds from the start of the run to when this tenant started."""
    finished: float | None = None
    """Seconds from the start of the run to when this tenant finished."""
    applied: tuple[str, ...] = ()
    """The revisions whose steps committed in this run, in order (``base`` for a step to base)."""
    step_retries: int = 0
    """Steps rolled back and tried again after waiting too long for a lock (``step_lock_timeout``)."""
    details: tuple[str, ...] = ()
    """Further lines about the tenant (``validate``: each drift, each repair)."""

    def to_dict(self) -> dict[str, Any]:
        """Return the result as JSON-ready data."""
        data = asdict(self)
        from_heads, to_heads = data.pop("from_heads"), data.pop("to_heads")
        data["from"] = None if from_heads is None else list(from_heads)
        data["to"] = None if to_heads is None else list(to_heads)
        data["applied"] = list(self.applied)
        data["details"] = list(self.details)
        data["seconds"] = round(self.seconds, 6)
        for key in ("started", "finished"):
            if data[key] is not None:
                data[key] = round(data[key], 6)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TenantResult:
        """Read a result written by :meth:`to_dict`."""
        heads = {
            key: None if data.get(key, ()) is None else tuple(str(h) for h in data.get(key, ()))
            for key in ("from", "to")
        }
        status = data["status"]
        if status not in _STATUSES:
            raise ValueError(f"unknown status {status!r}")
        return cls(
            name=str(data["name"]), url=str(data["url"]), schema=data.get("schema"), status=status,
            from_heads=heads["from"], to_heads=heads["to"],
            migrations=int(data.get("migrations", 0)), seconds=float(data.get("seconds", 0.0)),
            error=data.get("error"), attempts=int(data.get("attempts", 0)),
            started=data.get("started"), finished=data.get("finished"),
            applied=tuple(str(r) for r in data.get("applied", ())),
            step_retries=int(data.get("step_retries", 0)),
            details=tuple(str(d) for d in data.get("details", ())),
        )


@dataclass(frozen=True)
class TenantEvent:
    """Progress of a fan-out: a tenant started, made a step, or finished."""

    kind: Literal["started", "step", "finished"]
    tenant: str
    result: TenantResult | None = None
    """Set when ``kind == "finished"``."""
    step: StepEvent | None = None
    """Set when ``kind == "step"``."""
    total: int = 0
    """How many tenants the run covers."""


TenantEventHandler: TypeAlias = Callable[[TenantEvent], None]


@dataclass
class FanoutReport:
    """Every tenant's outcome, in the order tenants were given."""

    operation: str
    target: str | None
    results: list[TenantResult] = field(default_factory=list)
    started_at: str = ""
    seconds: float = 0.0
    stopped: str | None = None
    """Why the run stopped starting tenants early, if it did."""
    concurrency: int = 0
    shards: list[str] = field(default_factory=list)
    """The shards (``I/N``) this report covers; empty for an unsharded run."""
    warnings: list[str] = field(default_factory=list)
    """What the run found worth a warning (an empty shard, say)."""

    @property
    def counts(self) -> dict[str, int]:
        """Tenants per status."""
        counts = Counter(r.status for r in self.results)
        return {status: counts.get(status, 0) for status in _STATUSES}

    @property
    def failed(self) -> list[TenantResult]:
        """The tenants that failed."""
        return [r for r in self.results if r.status == "failed"]

    @property
    def succeeded(self) -> bool:
        """True when every tenant ended ``ok`` or ``unchanged``."""
        return all(r.status in ("ok", "unchanged") for r in self.results)

    @property
    def exit_code(self) -> int:
        """0 when every tenant succeeded, 1 otherwise."""
        return 0 if self.succeeded else 1

    def histogram(self) -> dict[str, int]:
        """Tenants per revision set they stand at (``base`` when empty), most common first.

        Failed tenants count where it is known where they stand (``check``'s
        tenants not at head, a failed upgrade's committed steps).
        """
        counts = Counter(", ".join(r.to_heads) or "base" for r in self.results if r.to_heads is not None)
        return dict(counts.most_common())

    def to_dict(self) -> dict[str, Any]:
        """Return the report as JSON-ready data."""
        return {
            "operation": self.operation,
            "target": self.target,
            "started_at": self.started_at,
            "seconds": round(self.seconds, 6),
            "concurrency": self.concurrency,
            "stopped": self.stopped,
            "shards": list(self.shards),
            "warnings": list(self.warnings),
            "counts": self.counts,
            "step_retries": sum(r.step_retries for r in self.results),
            "tenants": [r.to_dict() for r in self.results],
        }

    def names(self, *statuses: TenantStatus) -> set[str]:
        """Return the names of the tenants that ended with one of ``statuses``.

        ``report.names("failed", "skipped")`` is what a re-run should cover.
        """
        return {r.name for r in self.results if r.status in statuses}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FanoutReport:
        """The report :meth:`to_dict` described.

        :raises KeyError, TypeError, ValueError: when ``data`` is not such a description.
        """
        return cls(
            str(data.get("operation", "")), data.get("target"),
            [TenantResult.from_dict(t) for t in data["tenants"]],
            started_at=str(data.get("started_at", "")), seconds=float(data.get("seconds", 0.0)),
            stopped=data.get("stopped"), concurrency=int(data.get("concurrency", 0)),
            shards=[str(s) for s in data.get("shards", ())],
            warnings=[str(w) for w in data.get("warnings", ())],
        )

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> FanoutReport:
        """Load a report written by :meth:`write` (to re-run its failed tenants, say).

        :raises ConfigError: when the file is not a fan-out report.
        """
        try:
            return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ConfigError(f"{path} is not a readable fan-out report: {exc}") from exc

    def write(self, path: str | os.PathLike[str]) -> None:
        """Write the report as JSON (atomically: a temp file renamed into place)."""
        target = Path(path)
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        tmp.replace(target)


def _shard_count(shard: str) -> int | None:
    match = re.fullmatch(r"(\d+)/(\d+)", shard)
    return int(match[2]) if match else None


def merge_reports(reports: Sequence[FanoutReport]) -> FanoutReport:
    """Combine the reports of a fleet's shards into one fleet report.

    Tenants keep their shard's order, shards in the order given. The merged
    report says which shards it covers and warns when shards of the same
    split are missing, repeated, or when shards ran different commands.

    :raises ConfigError: when no report is given, or a tenant appears in two reports.
    """
    if not reports:
        raise ConfigError("Nothing to merge: give at least one report")
    merged = FanoutReport(reports[0].operation, reports[0].target)
    seen: dict[str, int] = {}
    for number, report in enumerate(reports):
        if (report.operation, report.target) != (merged.operation, merged.target):
            merged.warnings.append(
                f"report {number + 1} ran {report.operation} {report.target or ''}".rstrip()
                + f", not {merged.operation} {merged.target or ''}".rstrip()
            )
        for result in report.results:
            if result.name in seen:
                raise ConfigError(
                    f"Tenant {result.name!r} appears in reports {seen[result.name] + 1} and {number + 1}"
                )
            seen[result.name] = number
            merged.results.append(result)
        merged.shards += report.shards
        merged.warnings += report.warnings
        merged.concurrency += report.concurrency
        reasons = merged.stopped.split("; ") if merged.stopped else []
        if report.stopped and report.stopped not in reasons:  # each reason once, however many shards gave it
            merged.stopped = "; ".join([*reasons, report.stopped])
    merged.started_at = min((r.started_at for r in reports if r.started_at), default="")
    merged.seconds = max(r.seconds for r in reports)
    counts = {count for count in map(_shard_count, merged.shards) if count is not None}
    if len(counts) > 1:
        merged.warnings.append(f"shards of different splits were merged: {', '.join(merged.shards)}")
    elif counts:
        (count,) = counts
        present = Counter(merged.shards)
        missing = [f"{i}/{count}" for i in range(count) if f"{i}/{count}" not in present]
        repeated = sorted(s for s, n in present.items() if n > 1)
        if missing:
            merged.warnings.append(f"shard report(s) missing: {', '.join(missing)}")
        if repeated:
            merged.warnings.append(f"shard report(s) given twice: {', '.join(repeated)}")
    return merged
