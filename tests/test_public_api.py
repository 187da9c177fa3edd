"""The public API is curated: what ``__all__`` lists exists, is documented, and does not drift."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import asyncmigrate

EXPECTED = {
    "AsyncMigrateError", "Config", "CurrentState", "FanoutReport", "MigrationResult", "StepEvent",
    "Tenant", "TenantEvent", "TenantResult", "__version__", "context", "exceptions", "lifespan",
    "migrate_tenants", "op",
}


def test_top_level_exports_do_not_drift() -> None:
    assert set(asyncmigrate.__all__) == EXPECTED


def public_modules() -> list[str]:
    names = ["asyncmigrate"]
    for info in pkgutil.walk_packages(asyncmigrate.__path__, "asyncmigrate."):
        if not any(part.startswith("_") for part in info.name.split(".")[1:]):
            names.append(info.name)
    return sorted(names)


@pytest.mark.parametrize("module_name", public_modules())
def test_every_listed_name_exists_and_is_documented(module_name: str) -> None:
    if module_name == "asyncmigrate.__main__":
        pytest.skip("running it starts the CLI")
    module = importlib.import_module(module_name)
    assert module.__doc__, f"{module_name} has no module docstring"
    for name in getattr(module, "__all__", ()):
        assert hasattr(module, name), f"{module_name}.__all__ lists missing {name}"
        value = getattr(module, name)
        if inspect.isclass(value) or inspect.isfunction(value):
            assert inspect.getdoc(value), f"{module_name}.{name} has no docstring"


def test_commands_are_coroutines_taking_config_first() -> None:
    from asyncmigrate import command

    for name in command.__all__:
        fn = getattr(command, name)
        assert inspect.iscoroutinefunction(fn), name
        first = next(iter(inspect.signature(fn).parameters))
        assert first == "config", name


def test_lint_exports_do_not_drift() -> None:
    import asyncmigrate.lint
    from asyncmigrate import command, exceptions
    from asyncmigrate.operations import observe

    assert set(asyncmigrate.lint.__all__) == {
        "RULES", "Finding", "LintReport", "Rule", "Severity", "lint", "render_json", "render_sarif",
        "render_text",
    }
    assert set(observe.__all__) == {"OperationObserver", "observed", "observing"}
    assert "lint" in command.__all__
    assert "LintError" in exceptions.__all__


def test_the_command_line_starts_without_the_linter_or_sqlalchemy() -> None:
    """``asyncmigrate --version`` (every command's start-up) imports neither: they cost ~300 ms."""
    import subprocess
    import sys

    probe = (
        "import sys\nfrom asyncmigrate.cli import main\n"
        "try:\n    main(['--version'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('sqlalchemy', 'asyncmigrate.lint') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout
