"""MigrationTestOptions: pytest-alembic's option names, validation, template fingerprints."""

from __future__ import annotations

import pytest

from asyncmigrate.exceptions import ConfigError
from asyncmigrate.integrations.testing import MigrationTestOptions
from asyncmigrate.integrations.testing.options import template_fingerprint


def test_pytest_alembic_mapping_is_read() -> None:
    options = MigrationTestOptions.from_mapping({
        "file": "alembic.ini",  # pytest-alembic's own keys are ignored
        "before_revision_data": {"b2": {"__tablename__": "t", "id": 1}},
        "minimum_downgrade_revision": "a1",
        "skip_revisions": ["c3", "d4"],
    })
    assert options.minimum_downgrade_revision == "a1"
    assert options.skip_revisions == frozenset({"c3", "d4"})
    assert options.seeds
    assert options.steps_one_by_one
    with pytest.raises(ConfigError, match="Unknown migration test option"):
        MigrationTestOptions.from_mapping({"minimum_downgrade_revisoin": "a1"})
    with pytest.raises(ConfigError, match="must be one of warn, fail, ignore"):
        MigrationTestOptions(not_implemented_downgrade="maybe")  # type: ignore[arg-type]
    assert MigrationTestOptions(allowed_heads="x, y").allowed_heads == frozenset({"x", "y"})


def first(connection: object) -> None:
    """A seeding callable."""


def second(connection: object) -> None:
    """Another one, with another body."""
    print(connection)


def test_fingerprint_follows_what_builds_the_template() -> None:
    plain = MigrationTestOptions()
    assert template_fingerprint(plain, True) == template_fingerprint(None, True) == ""
    seeded = MigrationTestOptions(at_revision_data={"a1": first})
    assert template_fingerprint(seeded, False) == ""  # data only counts when migrating
    assert template_fingerprint(seeded, True) != template_fingerprint(
        MigrationTestOptions(at_revision_data={"a1": second}), True)
    assert template_fingerprint(MigrationTestOptions(setup=["CREATE SCHEMA a"]), False) != \
        template_fingerprint(MigrationTestOptions(setup=["CREATE SCHEMA b"]), False)
    assert "key:v2" in template_fingerprint(MigrationTestOptions(setup=first, setup_key="v2"), False)
