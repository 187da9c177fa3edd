"""Every error asyncmigrate raises, under one root.

The tree::

    AsyncMigrateError
    ├── ConfigError (ValueError)            bad or missing configuration, bad URL
    ├── CommandError                        a command used in a way that cannot work
    │   ├── NotAtHeadError                  `check` / `current --check-heads` found work left
    │   ├── LintError                       `upgrade --lint` refused: the lint found errors
    │   ├── DriftError                      `upgrade --validate` refused: applied revisions drifted
    │   └── NoTargetMetadataError           autogenerate / `check` without env.py's target_metadata
    ├── RevisionError                       the revision graph or a target in it
    │   ├── InvalidRevisionIdError (ValueError)
    │   ├── ResolutionError (LookupError)      an identifier that names no one revision
    │   │   ├── UnknownRevisionError
    │   │   │   └── UnknownBranchError
    │   │   └── AmbiguousRevisionError
    │   ├── MultipleHeadsError
    │   ├── DuplicateRevisionError
    │   ├── DuplicateBranchLabelError
    │   ├── MissingDownRevisionError
    │   ├── CycleError
    │   │   └── DependencyCycleError
    │   ├── RangeNotAncestorError
    │   ├── AmbiguousWalkError
    │   └── RelativeRevisionError
    ├── ScriptError                         a revision file, env.py or template
    │   └── RevisionFileError               a revision file that cannot be read
    ├── MigrationError                      a running migration failed
    │   └── VersionTableError               the version table holds what it should not
    ├── DatabaseError                       reaching or talking to a database
    │   ├── ConnectionFailedError (ConnectionError)
    │   └── LockTimeoutError (TimeoutError)
    └── NoMigrationContextError (RuntimeError)  `op` / `context` used outside a migration

Errors from drivers and SQLAlchemy are translated at the boundary with
``raise ... from``, so the original stays available as ``__cause__``.
"""

from __future__ import annotations

from collections.abc import Sequence

from .masking import mask_secrets

__all__ = [
    "AmbiguousRevisionError",
    "AmbiguousWalkError",
    "AsyncMigrateError",
    "CommandError",
    "ConfigError",
    "ConnectionFailedError",
    "CycleError",
    "DatabaseError",
    "DependencyCycleError",
    "DriftError",
    "DuplicateBranchLabelError",
    "DuplicateRevisionError",
    "InvalidRevisionIdError",
    "LintError",
    "LockTimeoutError",
    "MigrationError",
    "MissingDownRevisionError",
    "MultipleHeadsError",
    "NoMigrationContextError",
    "NoTargetMetadataError",
    "NotAtHeadError",
    "RangeNotAncestorError",
    "RelativeRevisionError",
    "ResolutionError",
    "RevisionError",
    "RevisionFileError",
    "ScriptError",
    "UnknownBranchError",
    "UnknownRevisionError",
    "VersionTableError",
]


class AsyncMigrateError(Exception):
    """Root of every error asyncmigrate raises on purpose.

    Its ``str()`` and ``repr()`` hide passwords (:func:`asyncmigrate.masking.mask_secrets`),
    whatever the message was built from: a URL, a driver's message, SQL.
    """

    def __str__(self) -> str:
        return mask_secrets(super().__str__())

    def __repr__(self) -> str:
        return mask_secrets(super().__repr__())


class ConfigError(AsyncMigrateError, ValueError):
    """Configuration is missing, malformed, or names something that does not exist."""


class CommandError(AsyncMigrateError):
    """A command was asked for something it cannot do."""


class NotAtHeadError(CommandError):
    """The database is not at the head revision(s), or models and database differ."""


class LintError(CommandError):
    """Revisions failed the lint, so the upgrade that asked for it ran nothing.

    :attr:`report` is the :class:`~asyncmigrate.lint.LintReport`.
    """

    def __init__(self, message: str, *, report: object = None) -> None:
        self.report = report
        super().__init__(message)


class DriftError(CommandError):
    """Applied revisions differ from their files (``upgrade --validate`` refused to run).

    :attr:`report` is the :class:`~asyncmigrate.audit.ValidationReport`.
    """

    def __init__(self, message: str, *, report: object = None) -> None:
        self.report = report
        super().__init__(message)


class NoTargetMetadataError(CommandError):
    """Autogenerate (``revision --autogenerate``, ``check``) found no models to compare with.

    env.py passes none to ``context.configure(target_metadata=...)``.
    """

# -- revision graph -----------------------------------------------------------------


class RevisionError(AsyncMigrateError):
    """A problem with the revision graph or a revision target."""


class InvalidRevisionIdError(RevisionError, ValueError):
    """A revision id contains characters the target grammar reserves."""

    def __init__(self, revision: str, characters: Sequence[str]) -> None:
        self.revision = revision
        self.characters = tuple(characters)
        super().__init__(
            f"Character(s) '{', '.join(sorted(self.characters))}' not allowed in "
            f"revision identifier '{revision}'"
        )


class ResolutionError(RevisionError, LookupError):
    """An identifier does not resolve to one revision (Alembic's name, kept for ``except``)."""

    identifier: str

    @property
    def argument(self) -> str:
        """The identifier that did not resolve (Alembic's attribute name)."""
        return self.identifier


class UnknownRevisionError(ResolutionError):
    """No revision (or branch label) matches an identifier."""

    def __init__(self, identifier: str, message: str | None = None) -> None:
        self.identifier = identifier
        super().__init__(message or f"Can't locate revision identified by '{identifier}'")


class RecordedRevisionMissingError(UnknownRevisionError):
    """The version table records a revision that no revision file defines."""

    def __init__(self, identifier: str) -> None:
        super().__init__(identifier, (
            f"The database records revision '{identifier}' in its version table, but no revision "
            "file defines it (deleted, renamed, or not pulled yet?): restore the file, or record "
            "the revision the database really is at with 'stamp --purge <revision>'"
        ))


class UnknownBranchError(UnknownRevisionError):
    """A ``label@...`` target names a branch that does not exist."""

    def __init__(self, label: str) -> None:
        super().__init__(label, f"No such branch: '{label}'")
        self.label = label


class AmbiguousRevisionError(ResolutionError):
    """A partial identifier matches more than one revision."""

    def __init__(self, identifier: str, candidates: Sequence[str]) -> None:
        self.identifier = identifier
        self.candidates = tuple(candidates)
        shown = ", ".join(f"'{c}'" for c in self.candidates[:3])
        super().__init__(f"Multiple revisions start with '{identifier}': {shown}...")


class MultipleHeadsError(RevisionError):
    """One revision was needed where several heads exist."""

    def __init__(self, heads: Sequence[str], argument: str | None, message: str | None = None):
        self.heads = tuple(heads)
        self.argument = argument
        super().__init__(
            message
            or (
                f"Multiple head revisions are present for given argument '{argument}'; "
                f"please specify a specific target revision, '<branchname>@{argument}' to "
                f"narrow to a specific head, or 'heads' for all heads "
                f"(heads: {', '.join(self.heads)})"
            )
        )


class DuplicateRevisionError(RevisionError):
    """Two revision files declare the same revision id."""

    def __init__(self, revision: str, paths: Sequence[str]) -> None:
        self.revision = revision
        self.paths = tuple(paths)
        where = " and ".join(self.paths) if self.paths else "two revisions"
        super().__init__(f"Revision {revision} is present more than once: {where}")


class DuplicateBranchLabelError(RevisionError):
    """Two revisions declare the same branch label."""

    def __init__(self, label: str, revision: str, other: str) -> None:
        self.label = label
        self.revision = revision
        self.other = other
        super().__init__(
            f"Branch name '{label}' in revision {revision} already used by revision {other}"
        )


class MissingDownRevisionError(RevisionError):
    """A revision names a down_revision or dependency that does not exist."""

    def __init__(self, missing: str, referenced_from: str, kind: str = "down_revision") -> None:
        self.missing = missing
        self.referenced_from = referenced_from
        self.kind = kind
        super().__init__(
            f"Revision {missing} referenced as {kind} from revision {referenced_from} "
            f"is not present"
        )


class CycleError(RevisionError):
    """The down_revision links form a cycle."""

    kind = "Cycle"

    def __init__(self, revisions: Sequence[str]) -> None:
        self.revisions = tuple(revisions)
        super().__init__(f"{self.kind} is detected in revisions ({', '.join(self.revisions)})")


class DependencyCycleError(CycleError):
    """The down_revision and depends_on links together form a cycle."""

    kind = "Dependency cycle"


class RangeNotAncestorError(RevisionError):
    """The two ends of a range are not on one line of descent."""

    def __init__(self, lower: str | None, upper: str | None, message: str | None = None):
        self.lower = lower
        self.upper = upper
        super().__init__(
            message
            or f"Revision {lower or 'base'} is not an ancestor of revision {upper or 'base'}"
        )


class AmbiguousWalkError(RevisionError):
    """A relative target (``+N``/``-N``) would have to choose between branches."""

    def __init__(self, message: str = "Ambiguous walk") -> None:
        super().__init__(message)


class RelativeRevisionError(RevisionError):
    """A relative target walks past the ends of the graph or makes no sense here."""


# -- files ---------------------------------------------------------------------------


class ScriptError(AsyncMigrateError):
    """A revision file, env.py or template cannot be used."""


class RevisionFileError(ScriptError):
    """A revision file cannot be read: a syntax error, or no revision id."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")


# -- running -------------------------------------------------------------------------


class MigrationError(AsyncMigrateError):
    """A migration step failed; the database was left at the last committed revision.

    :attr:`revision` and :attr:`direction` name the failing step;
    :attr:`database_at` is where the database stands after the rollback
    (the revisions of its last commit), once known.
    """

    def __init__(
        self,
        message: str,
        *,
        revision: str | None = None,
        direction: str | None = None,
    ) -> None:
        self.revision = revision
        self.direction = direction
        self.database_at: tuple[str, ...] | None = None
        super().__init__(message)

    def note_database_at(self, heads: Sequence[str]) -> None:
        """Record (and add to the message) where the database stands after the rollback."""
        if self.database_at is not None:
            return
        self.database_at = tuple(heads)
        where = ", ".join(self.database_at) or "<base>"
        self.args = (f"{self.args[0]}; rolled back, the database is still at {where}", *self.args[1:])


class VersionTableError(MigrationError):
    """The version table does not hold the rows a step expects."""


class DatabaseError(AsyncMigrateError):
    """A database could not be reached or refused a request."""


class ConnectionFailedError(DatabaseError, ConnectionError):
    """A database server could not be reached, or refused the credentials."""


class LockTimeoutError(DatabaseError, TimeoutError):
    """The migration lock was not acquired within the configured time."""


class NoMigrationContextError(AsyncMigrateError, RuntimeError):
    """``op`` or ``context`` was used where no migration is running in this task."""
