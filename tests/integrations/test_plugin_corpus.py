"""The built-in checks give pytest-alembic's verdicts on a corpus of projects (where both have the check).

pytest-alembic (a test-only reference) runs through its own API on SQLite,
each of its tests on a new database; asyncmigrate's checks run through
:func:`run_check`. Checks only one side has: asyncmigrate's ``branches`` and
``offline_sql`` (their verdicts are asserted from the project's design).
On purpose different: ``models`` is skipped, not failed, when env.py has
no ``target_metadata``.
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import anyio
import pytest
from sqlalchemy import create_engine

from asyncmigrate import Config
from asyncmigrate.integrations.testing import DatabaseFactory, MigrationTestOptions, run_check
from asyncmigrate.integrations.testing.checks import CheckFailed

from .plugin_corpus import PROJECTS, Project

#: asyncmigrate's check -> pytest-alembic's test of the same thing.
SHARED = {
    "single_head": "test_single_head_revision",
    "upgrade": "test_upgrade",
    "models": "test_model_definitions_match_ddl",
    "stairway": "test_up_down_consistency",
    "downgrade_clean": "test_downgrade_leaves_no_trace",
    "all_models_register": "test_all_models_register_on_metadata",
}
ONLY_OURS = ("branches", "offline_sql")


def reference_verdicts(
    project: Project, ini: Path, root: Path, reasons: dict[str, str]
) -> dict[str, str]:
    """Run pytest-alembic's tests on the project; return passed/failed per shared check."""
    from pytest_alembic import runner
    from pytest_alembic.config import Config as ReferenceConfig
    from pytest_alembic.tests import default, experimental

    verdicts = {}
    for ours, theirs in SHARED.items():
        test = getattr(default, theirs, None) or getattr(experimental, theirs)
        engine = create_engine(f"sqlite:///{root / f'reference-{ours}.db'}")
        config = ReferenceConfig.from_raw_config({"file": str(ini), **copy.deepcopy(project.options)})
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with runner(config, engine) as alembic_runner:
                    test(alembic_runner)
            verdicts[ours] = "passed"
        except Exception as exc:
            verdicts[ours] = "failed"
            reasons[ours] = f"{type(exc).__name__}: {exc}"
        finally:
            engine.dispose()
    return verdicts


async def our_verdicts(project: Project, ini: Path, root: Path) -> dict[str, tuple[str, str]]:
    """Run asyncmigrate's checks; return (verdict, message) per check."""
    options = MigrationTestOptions.from_mapping(copy.deepcopy(project.options))
    config = Config(str(ini))
    verdicts: dict[str, tuple[str, str]] = {}
    async with DatabaseFactory(root / "cache", root / "work") as factory:
        for name in (*SHARED, *ONLY_OURS):
            try:
                outcome = await run_check(name, factory, config, f"sqlite:///{root / 'app.db'}",
                                          options=options)
            except CheckFailed as exc:
                verdicts[name] = ("failed", str(exc))
                continue
            verdicts[name] = ("skipped", outcome.skipped) if outcome.skipped else (
                "passed", "; ".join(outcome.warnings))
    return verdicts


@pytest.mark.parametrize("project", PROJECTS, ids=[p.name for p in PROJECTS])
async def test_same_verdicts_as_pytest_alembic(
    project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ini = project.write(tmp_path, "sqlite:///app.db")
    monkeypatch.chdir(tmp_path)  # pytest-alembic reads alembic.ini from the working directory
    monkeypatch.syspath_prepend(str(tmp_path))
    # Ours first: pytest-alembic's all_models_register imports every model module into this process.
    ours = await our_verdicts(project, ini, tmp_path)
    reasons: dict[str, str] = {}
    reference = await anyio.to_thread.run_sync(reference_verdicts, project, ini, tmp_path, reasons)

    different = {
        name: (reference[name], ours[name][0]) for name in SHARED if reference[name] != ours[name][0]
    }
    # Where the verdicts differ, it is on purpose and the reason is recorded in the corpus.
    assert different == project.known_differences, (
        f"{project.about}: (pytest-alembic, asyncmigrate) differ: {different}; pytest-alembic: {reasons}"
    )
    # The corpus means what it says: each project fails exactly the checks it was built to fail.
    failed = {name for name, (verdict, _) in ours.items() if verdict == "failed"}
    assert failed == set(project.expected_failures), {n: ours[n] for n in failed}
    if not project.models:
        assert ours["models"][0] == "skipped"
    if project.name == "downgrade_not_implemented":
        assert "bbbb0002 raised NotImplementedError" in ours["stairway"][1]
