"""What a project tells the migration tests: data at revisions, downgrade policy, set-up, allowances.

:class:`MigrationTestOptions` gathers everything pytest-alembic users put in
their ``alembic_config`` fixture, under the same names where the idea is the
same, plus what asyncmigrate adds (a set-up hook, allowed branches, model
packages). The pytest plugin builds it from the ini file and hands it to
every built-in check and to the runner; a ``conftest.py`` (or a test module)
overrides the ``asyncmigrate_options`` fixture to pass Python objects
(seeding callables, a set-up coroutine)::

    @pytest.fixture
    def asyncmigrate_options():
        return MigrationTestOptions(
            at_revision_data={"a1b2": {"__tablename__": "account", "id": 1, "name": "ada"}},
            minimum_downgrade_revision="0007",
            setup=["CREATE SCHEMA IF NOT EXISTS billing"],
        )
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from ...exceptions import ConfigError

__all__ = [
    "MigrationTestOptions",
    "NotImplementedPolicy",
    "RevisionData",
    "Rows",
    "Seed",
    "Setup",
]

#: One row (a mapping of column to value; ``"__tablename__"`` names its table,
#: optionally ``"schema.table"``) or a list of rows.
Rows: TypeAlias = Mapping[str, Any] | Sequence[Mapping[str, Any]]
#: Data for one revision: rows, or a callable given the connection -- a plain
#: function receives a SQLAlchemy ``Connection`` (run in a worker greenlet),
#: a coroutine function an ``AsyncConnection``.
Seed: TypeAlias = Rows | Callable[[Connection], Any] | Callable[[AsyncConnection], Awaitable[Any]]
#: Data at revisions: ``{revision: seed}``, or one callable given
#: ``(revision, connection)`` for every revision (sync or async, as for :data:`Seed`).
RevisionData: TypeAlias = (
    Mapping[str, Seed]
    | Callable[[str, Connection], Any]
    | Callable[[str, AsyncConnection], Awaitable[Any]]
)
#: Run on each new database before the history: SQL statements (one per
#: string), or a callable given the connection (sync: ``Connection``; async:
#: ``AsyncConnection``).
Setup: TypeAlias = (
    str | Sequence[str] | Callable[[Connection], Any] | Callable[[AsyncConnection], Awaitable[Any]]
)
#: What a downgrade raising ``NotImplementedError`` does to ``stairway`` and
#: ``downgrade_clean``: ``warn`` (a warning; downgrades stop there, as with
#: ``minimum_downgrade_revision``), ``fail`` (the check fails), ``ignore``
#: (as ``warn``, silently).
NotImplementedPolicy: TypeAlias = Literal["warn", "fail", "ignore"]

_POLICIES = ("warn", "fail", "ignore")


@dataclass(frozen=True)
class MigrationTestOptions:
    """The settings of a project's migration tests (checks and runner alike).

    It owns only settings; inserting rows lives in
    :mod:`~asyncmigrate.integrations.testing.seeding`, running the set-up in
    :mod:`~asyncmigrate.integrations.testing.databases`, and applying the
    downgrade policy in the checks.
    """

    before_revision_data: RevisionData | None = None
    """Rows inserted just *before* upgrading to a revision (the database is at its parent)."""
    at_revision_data: RevisionData | None = None
    """Rows inserted right *after* upgrading to a revision."""
    minimum_downgrade_revision: str | None = None
    """Downgrades stop above this revision: checks never take a database down to it or below."""
    skip_revisions: frozenset[str] = frozenset()
    """Revisions stamped instead of run (slow data migrations you vouch for)."""
    not_implemented_downgrade: NotImplementedPolicy = "warn"
    """What a downgrade raising ``NotImplementedError`` does (see :data:`NotImplementedPolicy`)."""
    setup: Setup | None = None
    """Run on each new database before the history (``CREATE SCHEMA``, ``CREATE EXTENSION``)."""
    setup_key: str | None = None
    """Names a callable ``setup`` for the template cache (default: a hash of its source code)."""
    allowed_heads: frozenset[str] = frozenset()
    """Branch labels or revision ids that may stay unmerged (the ``branches`` check)."""
    model_packages: tuple[str, ...] = ()
    """Packages holding the models (``all_models_register``; default: found from the metadata)."""
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Room for settings of checks added later (read by the check that owns the key)."""

    def __post_init__(self) -> None:
        if self.not_implemented_downgrade not in _POLICIES:
            raise ConfigError(
                f"not_implemented_downgrade must be one of {', '.join(_POLICIES)}, "
                f"not {self.not_implemented_downgrade!r}"
            )
        for name in ("skip_revisions", "allowed_heads"):
            object.__setattr__(self, name, as_revision_set(getattr(self, name)))
        if isinstance(self.model_packages, str):
            object.__setattr__(self, "model_packages", tuple(sorted(as_revision_set(self.model_packages))))

    @property
    def steps_one_by_one(self) -> bool:
        """True when migrating must go one revision at a time (data to insert, revisions to skip)."""
        return self.seeds or bool(self.skip_revisions)

    @property
    def seeds(self) -> bool:
        """True when rows are inserted at some revision."""
        return bool(self.before_revision_data) or bool(self.at_revision_data)

    def replace(self, **changes: Any) -> MigrationTestOptions:
        """Return a copy with ``changes`` applied."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> MigrationTestOptions:
        """Build options from a plain mapping (pytest-alembic's ``alembic_config`` dict works).

        Unknown keys are an error, except pytest-alembic's keys asyncmigrate
        reads from elsewhere (``file``, ``script_location``, ``sqlalchemy.url``...),
        which are ignored: the project's config says those.
        """
        names = {f.name for f in dataclasses.fields(cls)}
        ignored = {"file", "config_file_name", "script_location", "sqlalchemy.url", "target_metadata",
                   "process_revision_directives", "include_schemas", "alembic_config"}
        unknown = sorted(set(values) - names - ignored)
        if unknown:
            raise ConfigError(f"Unknown migration test option(s): {', '.join(unknown)}")
        return cls(**{k: v for k, v in values.items() if k in names})


def _callable_text(fn: Callable[..., Any]) -> str:
    try:
        source = inspect.getsource(fn)
    except (OSError, TypeError):
        source = ""
    name = f"{getattr(fn, '__module__', '')}.{getattr(fn, '__qualname__', repr(fn))}"
    return f"callable:{name}:{hashlib.sha256(source.encode()).hexdigest()}"


def _text(value: Any) -> str:
    if callable(value):
        return _callable_text(value)
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{k!r}:{_text(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_text(v) for v in value) + "]"
    return repr(value)


def template_fingerprint(options: MigrationTestOptions | None, migrating: bool) -> str:
    """Return text that changes whenever the options would build a template differently.

    The set-up always counts; data at revisions and skipped revisions only
    when the template is migrated. A callable counts by its name and source
    (or by ``setup_key`` when given).
    """
    if options is None:
        return ""
    parts = []
    if options.setup is not None:
        parts.append(f"key:{options.setup_key}" if options.setup_key else f"setup:{_text(options.setup)}")
    if migrating and (options.seeds or options.skip_revisions):
        parts.append(f"before:{_text(options.before_revision_data)}")
        parts.append(f"at:{_text(options.at_revision_data)}")
        parts.append(f"skip:{sorted(options.skip_revisions)}")
    return "\n".join(parts)


def as_revision_set(value: str | Collection[str] | None) -> frozenset[str]:
    """Read a list of revisions from ini text (spaces, commas or new lines) or a collection."""
    if not value:
        return frozenset()
    if isinstance(value, str):
        return frozenset(value.replace(",", " ").split())
    return frozenset(value)
