"""Operations autogenerate emits for schema objects that have no ``op`` directive.

PostgreSQL enum types and sequences live outside tables; Alembic's
directive set has nothing for them, so these operations render as
``op.execute("...")`` with the DDL written out (a reviewer reads the SQL
that will run). Like every operation they are plain data with a
:meth:`reverse`, so downgrades and ``process_revision_directives`` hooks
treat them as they treat the others.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..operations.ops import MigrateOperation

__all__ = [
    "AlterEnumTypeOp",
    "CreateEnumTypeOp",
    "CreateSequenceOp",
    "DropEnumTypeOp",
    "DropSequenceOp",
    "EnumColumn",
]

#: A column using an enum type: ``(schema, table, column, server default SQL or None)``.
EnumColumn = tuple[str | None, str, str, str | None]


def _qualified(name: str, schema: str | None) -> str:
    return f"{schema}.{name}" if schema else name


class CreateEnumTypeOp(MigrateOperation):
    """Create a PostgreSQL enum type with ``labels``, in order."""


    def __init__(self, name: str, labels: Sequence[str], *, schema: str | None = None) -> None:
        self.name = name
        self.labels = tuple(labels)
        self.schema = schema

    def reverse(self) -> DropEnumTypeOp:
        """Return the drop of the type."""
        return DropEnumTypeOp(self.name, self.labels, schema=self.schema)

    def to_diff_tuple(self) -> tuple[Any, ...]:
        """Return ``("add_enum", schema, name, labels)``."""
        return ("add_enum", self.schema, self.name, self.labels)

    @property
    def description(self) -> str:
        """A one-line human description of the change."""
        return f"Create enum type {_qualified(self.name, self.schema)}"


class DropEnumTypeOp(MigrateOperation):
    """Drop a PostgreSQL enum type (``labels`` are what it had, for :meth:`reverse`)."""


    def __init__(self, name: str, labels: Sequence[str], *, schema: str | None = None) -> None:
        self.name = name
        self.labels = tuple(labels)
        self.schema = schema

    def reverse(self) -> CreateEnumTypeOp:
        """Return the re-creation of the type."""
        return CreateEnumTypeOp(self.name, self.labels, schema=self.schema)

    def to_diff_tuple(self) -> tuple[Any, ...]:
        """Return ``("remove_enum", schema, name, labels)``."""
        return ("remove_enum", self.schema, self.name, self.labels)

    @property
    def description(self) -> str:
        """A one-line human description of the change."""
        return f"Drop enum type {_qualified(self.name, self.schema)}"


class AlterEnumTypeOp(MigrateOperation):
    """Change the labels of a PostgreSQL enum type.

    Labels only added are added in place (``ALTER TYPE ... ADD VALUE``);
    otherwise the type is recreated and ``columns`` (the columns using it,
    with their server defaults) are converted to the new type.
    """


    def __init__(
        self,
        name: str,
        labels: Sequence[str],
        *,
        existing_labels: Sequence[str],
        schema: str | None = None,
        columns: Sequence[EnumColumn] = (),
    ) -> None:
        self.name = name
        self.labels = tuple(labels)
        self.existing_labels = tuple(existing_labels)
        self.schema = schema
        self.columns = tuple(columns)

    @property
    def only_adds(self) -> bool:
        """True when every existing label stays, in the same order, and only new ones appear."""
        kept = [label for label in self.labels if label in self.existing_labels]
        return kept == list(self.existing_labels)

    def reverse(self) -> AlterEnumTypeOp:
        """Return the change back to the existing labels."""
        return AlterEnumTypeOp(
            self.name,
            self.existing_labels,
            existing_labels=self.labels,
            schema=self.schema,
            columns=self.columns,
        )

    def to_diff_tuple(self) -> tuple[Any, ...]:
        """Return ``("modify_enum", schema, name, existing_labels, labels)``."""
        return ("modify_enum", self.schema, self.name, self.existing_labels, self.labels)

    @property
    def description(self) -> str:
        """A one-line human description of the change."""
        return f"Change the labels of enum type {_qualified(self.name, self.schema)}"


class CreateSequenceOp(MigrateOperation):
    """Create a sequence; ``options`` are :class:`sqlalchemy.Sequence` keyword arguments."""


    def __init__(self, name: str, *, schema: str | None = None, **options: Any) -> None:
        self.name = name
        self.schema = schema
        self.options = options

    def reverse(self) -> DropSequenceOp:
        """Return the drop of the sequence."""
        return DropSequenceOp(self.name, schema=self.schema, **self.options)

    def to_diff_tuple(self) -> tuple[Any, ...]:
        """Return ``("add_sequence", schema, name)``."""
        return ("add_sequence", self.schema, self.name)

    @property
    def description(self) -> str:
        """A one-line human description of the change."""
        return f"Create sequence {_qualified(self.name, self.schema)}"


class DropSequenceOp(MigrateOperation):
    """Drop a sequence (``options`` are what it had, for :meth:`reverse`)."""


    def __init__(self, name: str, *, schema: str | None = None, **options: Any) -> None:
        self.name = name
        self.schema = schema
        self.options = options

    def reverse(self) -> CreateSequenceOp:
        """Return the re-creation of the sequence."""
        return CreateSequenceOp(self.name, schema=self.schema, **self.options)

    def to_diff_tuple(self) -> tuple[Any, ...]:
        """Return ``("remove_sequence", schema, name)``."""
        return ("remove_sequence", self.schema, self.name)

    @property
    def description(self) -> str:
        """A one-line human description of the change."""
        return f"Drop sequence {_qualified(self.name, self.schema)}"
