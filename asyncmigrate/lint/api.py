"""``lint``: choose the revisions, render them offline with a recorder, check, apply suppressions.

Revisions are rendered the way ``upgrade --sql`` renders them: env.py runs in
offline mode against the target dialect (from ``sqlalchemy.url``, ``url=`` or
``dialect=``), and each revision's ``upgrade()`` -- then, in a second run,
its ``downgrade()`` -- issues its operations while an
:class:`~asyncmigrate.lint.recording.OperationRecorder` watches. Nothing
touches a database, except reading the current revision when the pending
revisions are asked for.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio

from ..exceptions import AsyncMigrateError, ConfigError, MigrationError
from ..operations.observe import observing
from ..revision.plan import RevisionStep, upgrade_plan
from ..revision.revision import Revision
from ..urls import mask_passwords_in
from .analysis import DEFAULT_PG_VERSION, Analysis
from .recording import Direction, OperationRecorder, Rendering
from .report import Finding, LintReport
from .rules import RULES, Severity, parse_severities
from .suppressions import Suppression, read_suppressions

if TYPE_CHECKING:
    from sqlalchemy.engine import Dialect
    from sqlalchemy.engine.url import URL
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

    from ..config import Config
    from ..runtime.migration import MigrationContext
    from ..script import Script, ScriptDirectory

__all__ = ["lint"]


async def lint(
    config: Config,
    revisions: str | Sequence[str] | None = None,
    *,
    start: str | None = None,
    target: str = "heads",
    dialect: str | None = None,
    pg_version: int | None = None,
    rules: str | Mapping[str, Severity | None] | None = None,
    downgrades: bool = True,
    each: bool | None = None,
    url: str | URL | None = None,
    engine: AsyncEngine | None = None,
    connection: AsyncConnection | None = None,
    script: ScriptDirectory | None = None,
) -> LintReport:
    """Check revisions for changes that lock or break a live database before they run.

    Which revisions: ``revisions`` (ids, or one ``start:end`` range) if
    given; else those from ``start`` (``"base"`` for all) to ``target``;
    else the *pending* ones -- the database's current revision (read with
    ``url``/``engine``/``connection`` or the configured URL) to ``target``.

    :param dialect: render for this dialect (``postgresql``, ``mysql``,
        ``sqlite``) instead of the configured URL's.
    :param pg_version: PostgreSQL major version for version-dependent rules
        (default: config ``lint_pg_version``, else 12).
    :param rules: severity overrides, ``{"AM404": Severity.WARNING, "AM102": None}``
        (None: off) or the config syntax ``"AM404=warning, AM102=off"``
        (default: config ``lint_rules``).
    :param downgrades: also check each revision's ``downgrade()``.
    :param each: judge each revision as if deployed alone (only what it
        creates itself is new) rather than the selection as one deployment;
        default: on for the whole history (``start="base"``), off otherwise.
    :raises CommandError: when env.py fails before any revision runs.
    """
    from ..command import _script_directory, current

    script = script or await _script_directory(config)
    options = _Options.read(config, pg_version, rules)
    if revisions is None and start is None:
        state = await current(config, url=url, engine=engine, connection=connection, script=script)
        steps = upgrade_plan(script.graph, state.heads, target)
    else:
        steps = _selected(script, revisions, start, target)
    opts: dict[str, Any] = {}
    if dialect is not None:
        opts["url"] = f"{dialect}://"
    elif url is not None:
        from ..urls import to_async_url

        opts["url"] = to_async_url(url).render_as_string(hide_password=False)
    scripts = list(script.get_revisions([step.revision.revision for step in steps]))
    unloadable = await _import_revisions(scripts)
    runnable = [step for step in steps if step.revision.revision not in unloadable]
    renderings, failures, found = await _render_both(config, script, runnable, downgrades, scripts, opts)
    analysis = Analysis(found or _configured_dialect(config, opts), options.pg_version)
    if each is None:
        each = start == "base" and revisions is None
    findings = [f for runs in renderings for f in analysis.check(runs, each_revision=each)]
    findings = _apply_suppressions(
        findings + list(unloadable.values()) + failures, scripts, analysis.name, complete=downgrades
    )
    findings = _apply_overrides(findings, options.overrides)
    return LintReport(
        findings=tuple(sorted(findings, key=Finding.sort_key)),
        revisions=tuple(step.revision.revision for step in steps),
        dialect=analysis.name,
        pg_version=options.pg_version,
        not_applicable=tuple(r.id for r in RULES.values() if not r.applies_to(analysis.name)),
        disabled=tuple(sorted(k for k, v in options.overrides.items() if v is None)),
    )


async def _render_both(
    config: Config,
    script: ScriptDirectory,
    steps: list[RevisionStep],
    downgrades: bool,
    scripts: Sequence[Script],
    opts: Mapping[str, Any],
) -> tuple[list[list[Rendering]], list[Finding], Dialect | None]:
    """Render ``steps`` up (and, with ``downgrades``, down again in reverse) with recorders."""
    files = {os.path.realpath(s.path): s.revision for s in scripts}
    plans: list[tuple[Direction, list[RevisionStep]]] = [("upgrade", steps)]
    if downgrades and steps:
        plans.append(
            ("downgrade", [RevisionStep(script.graph, s.revision, False) for s in reversed(steps)])
        )
    renderings: list[list[Rendering]] = []
    failures: list[Finding] = []
    dialect: Dialect | None = None
    for direction, plan in plans:
        runs, errors, run_dialect = await _render(config, script, plan, direction, files, opts)
        renderings.append(runs)
        failures.extend(errors)
        dialect = dialect or run_dialect
    return renderings, failures, dialect


@dataclass(frozen=True)
class _Options:
    pg_version: int
    overrides: Mapping[str, Severity | None]

    @classmethod
    def read(
        cls, config: Config, pg_version: int | None, rules: str | Mapping[str, Severity | None] | None
    ) -> _Options:
        if pg_version is None:
            configured = config.get_alembic_option("lint_pg_version")
            if configured is not None:
                try:
                    pg_version = int(float(str(configured)))
                except ValueError:
                    raise ConfigError(
                        f"lint_pg_version must be a PostgreSQL major version, not {configured!r}"
                    ) from None
        if pg_version is not None and not 9 <= pg_version <= 99:
            raise ConfigError(f"PostgreSQL version {pg_version} is not a major version (e.g. 12, 16)")
        if rules is None:
            rules = config.get_alembic_option("lint_rules")
        overrides = parse_severities(rules) if isinstance(rules, str) or rules is None else dict(rules)
        return cls(pg_version or DEFAULT_PG_VERSION, overrides)


def _selected(
    script: ScriptDirectory, revisions: str | Sequence[str] | None, start: str | None, target: str
) -> list[RevisionStep]:
    graph = script.graph
    if isinstance(revisions, str) and ":" in revisions:
        start, target = revisions.split(":", 1)
        revisions = None
    if revisions is None:
        heads: tuple[str, ...] = () if start in (None, "base", "") else tuple(
            r.revision for r in script.get_revisions(start or "base")
        )
        return upgrade_plan(graph, heads, target or "heads")
    wanted = {s.revision for s in script.get_revisions(list(revisions) if not isinstance(revisions, str)
                                                         else [revisions])}
    order = [rev for rev in reversed(list(script.walk_revisions())) if rev.revision in wanted]
    return [RevisionStep(graph, rev, True) for rev in order]


def _starting_heads(plan: Sequence[RevisionStep]) -> tuple[str, ...]:
    """Version rows from which ``plan`` runs step by step (what the offline run starts from)."""
    heads: set[str] = set()
    start: set[str] = set()
    for step in plan:
        for _ in range(3):
            trial = set(heads)
            try:
                step.advance(trial)
            except AsyncMigrateError:
                missing = set(step.from_revisions) - heads
                extra = set(step.to_revisions) & heads
                if not missing and not extra:
                    break
                heads |= missing
                start |= missing
                heads -= extra
                continue
            heads = trial
            break
    return tuple(sorted(start))


async def _render(
    config: Config,
    script: ScriptDirectory,
    plan: list[RevisionStep],
    direction: Direction,
    files: Mapping[str, str],
    opts: Mapping[str, Any],
) -> tuple[list[Rendering], list[Finding], Dialect | None]:
    """Render ``plan`` offline; after a revision that fails, render the rest without it."""
    from ..command import _run

    runs: list[Rendering] = []
    failures: list[Finding] = []
    dialect: Dialect | None = None
    remaining = list(plan)
    while remaining:
        recorder = OperationRecorder(files, direction)
        steps = list(remaining)

        def fn(
            heads: tuple[str, ...], context: MigrationContext, steps: list[RevisionStep] = steps
        ) -> list[RevisionStep]:
            return steps

        try:
            with observing(recorder):
                env = await _run(
                    config, script, fn, as_sql=True, output_buffer=io.StringIO(),
                    starting_rev=_starting_heads(steps), **opts,
                )
            remaining = []
            if env.migration_contexts:
                dialect = env.migration_contexts[0].dialect
        except anyio.get_cancelled_exc_class():
            raise
        except Exception as exc:
            revision, line = recorder.failing_revision(exc)
            if revision is None and isinstance(exc, MigrationError):
                revision = exc.revision
            index = next((i for i, s in enumerate(steps) if s.revision.revision == revision), None)
            if index is None:
                raise _env_failure(exc) from exc
            failures.append(_not_analysable(steps[index].revision, direction, line, exc))
            remaining = steps[index + 1:]
        runs.append(recorder.rendering())
        dialect = dialect or recorder.dialect
    return runs, failures, dialect


async def _import_revisions(scripts: Sequence[Script]) -> dict[str, Finding]:
    """Import the revision files; a file that cannot be imported is reported, not rendered."""

    def load() -> dict[str, Finding]:
        failed: dict[str, Finding] = {}
        for revision in scripts:
            try:
                revision.module  # noqa: B018 - import it (off the event loop)
            except Exception as exc:
                message = mask_passwords_in((str(exc).strip().splitlines() or [type(exc).__name__])[0])
                failed[revision.revision] = Finding(
                    rule_id="AM006", severity=RULES["AM006"].severity,
                    message=f"the revision file cannot be imported: {message[:200]}",
                    revision=revision.revision, path=revision.path,
                )
        return failed

    return await anyio.to_thread.run_sync(load)


def _configured_dialect(config: Config, opts: Mapping[str, Any]) -> Dialect:
    """The dialect of the URL the run would use, when no revision got far enough to say."""
    from sqlalchemy.dialects import sqlite
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    url = opts.get("url") or config.database_url
    try:
        return make_url(str(url)).get_dialect()() if url else sqlite.dialect()
    except (ArgumentError, NoSuchModuleError, ValueError):
        return sqlite.dialect()


def _env_failure(exc: Exception) -> AsyncMigrateError:
    if isinstance(exc, AsyncMigrateError):
        return exc
    from ..exceptions import CommandError

    first = (str(exc).strip().splitlines() or [""])[0]
    return CommandError(f"Cannot render the revisions offline for lint: {type(exc).__name__}: {first}")


def _not_analysable(revision: Revision, direction: Direction, line: int | None, exc: Exception) -> Finding:
    root: BaseException = exc
    while root.__cause__ is not None:
        root = root.__cause__
    first = mask_passwords_in((str(root).strip().splitlines() or [""])[0] or type(root).__name__)
    exc = root  # type: ignore[assignment]
    return Finding(
        rule_id="AM004",
        severity=RULES["AM004"].severity,
        message=f"{direction}() could not be rendered offline: {type(exc).__name__}: {first[:200]}",
        revision=revision.revision,
        direction=direction,
        path=getattr(revision, "path", None),
        line=line,
    )


def _apply_suppressions(
    findings: list[Finding], scripts: Sequence[Script], dialect: str, *, complete: bool
) -> list[Finding]:
    """Mark the findings markers silence; report bad markers (and unused ones, when ``complete``)."""
    markers: list[Suppression] = []
    for revision in scripts:
        try:
            with open(revision.path, encoding="utf-8") as handle:
                source = handle.read()
        except OSError:
            continue
        markers.extend(read_suppressions(revision.path, source))
    result: list[Finding] = []
    for finding in findings:
        marker = next(
            (
                m
                for m in markers
                if finding.rule.suppressible and m.matches(finding.rule_id, finding.path, finding.line)
            ),
            None,
        )
        if marker is not None:
            marker.used = True
            result.append(_with(finding, suppressed=marker.reason))
        else:
            result.append(finding)
    incomplete = {f.path for f in findings if f.rule_id in ("AM004", "AM006")}
    for marker in markers:
        partial = marker.path in incomplete or not complete
        result.extend(_marker_findings(marker, dialect, partial, scripts))
    return result


def _marker_findings(
    marker: Suppression, dialect: str, incomplete: bool, scripts: Sequence[Script]
) -> list[Finding]:
    revision = next((s.revision for s in scripts if s.path == marker.path), None)
    where: dict[str, Any] = {"revision": revision, "path": marker.path, "line": marker.line}
    found = []
    unknown = [i for i in marker.rule_ids if i not in RULES]
    if unknown or not marker.rule_ids:
        names = ", ".join(unknown) if unknown else "no rule id"
        found.append(Finding("AM001", RULES["AM001"].severity,
                             f"lint-ignore names {names}; give rule ids in brackets, e.g. lint-ignore[AM101]",
                             **where))
    if not marker.reason:
        found.append(Finding("AM002", RULES["AM002"].severity,
                             "lint-ignore without 'reason: ...' is ignored", **where))
    elif not marker.used and not unknown and not incomplete and all(
        RULES[i].applies_to(dialect) for i in marker.rule_ids
    ):
        found.append(Finding("AM003", RULES["AM003"].severity,
                             f"lint-ignore[{', '.join(marker.rule_ids)}] matches no finding", **where))
    return found


def _apply_overrides(findings: list[Finding], overrides: Mapping[str, Severity | None]) -> list[Finding]:
    result = []
    for finding in findings:
        if finding.rule_id in overrides:
            severity = overrides[finding.rule_id]
            if severity is None:
                continue
            finding = finding.with_severity(severity)
        result.append(finding)
    return result


def _with(finding: Finding, **changes: Any) -> Finding:
    from dataclasses import replace

    return replace(finding, **changes)
