"""The read commands print what Alembic's command line prints, on the same project.

Each test runs ``alembic`` and ``asyncmigrate`` with the same arguments on a
project made by ``alembic init`` and compares standard output after the
normalizations documented in :mod:`tests.cli.normalize` (set orders, and the
driver name in ``current -v``). Exit codes must agree too.
"""

from __future__ import annotations

import pytest

from .conftest import TEMPLATES, Projects
from .harness import Outcome, Project, run_alembic, run_asyncmigrate
from .histories import LABELS, RICH_TARGETS
from .normalize import normalize, normalize_current

READ_COMMANDS = (
    "heads",
    "heads -v",
    "heads --resolve-dependencies",
    "heads -v --resolve-dependencies",
    "branches",
    "branches -v",
    "history",
    "history -v",
)

RICH_COMMANDS = (
    *READ_COMMANDS,
    "history -r 2b3c:6f7a",
    "history -r 2b3c4d5e6f7a:heads",
    "history -r v3.0.0.c:",
    "history -r :v3.1",
    "history -r base:shop@head",
    "history -r reports@base:",
    "history -r 1a2b:7a8b -v",
    "history -r=-2:heads",
    "show v3.0.0.c",
    "show 6f7a",
    "show heads",
    "show reports@head",
    "show shop@head",
    "show release",
    "show base",
    "show -1",
    "show c0ffee",
    "show 1a2b3c4d5e6f",
)

SPREAD_COMMANDS = (
    *READ_COMMANDS,
    "history -r 0002:",
    "show p102",
    "show plugin@head",
    "show 0001",
    "show heads",
)

MADE_COMMANDS = (*READ_COMMANDS, "show heads", "history -r base:other@head", "show other@head")

CURRENT_COMMANDS = (
    "current",
    "current -v",
    "history -i",
    "history -i -v",
    "history -r current:",
    "history -r :current",
    "history -r base:current -i",
    "show current",
)


def _assert_same(project: Project, command: str, *, config: str = "alembic.ini") -> tuple[Outcome, Outcome]:
    args = f"-c {config} {command}"
    alembic = run_alembic(project, args)
    ours = run_asyncmigrate(project, args)
    assert ours.code == 0 if alembic.code == 0 else ours.code != 0, (
        f"alembic exit {alembic.code}, asyncmigrate exit {ours.code}\n"
        f"alembic: {alembic.stdout}{alembic.stderr}\nasyncmigrate: {ours.stdout}{ours.stderr}"
    )
    if alembic.code != 0:
        return alembic, ours  # both failed; their messages are compared in test_errors
    if command.split()[0] == "current" or command == "show current":
        verbose = "-v" in command.split() or command == "show current"
        expected = normalize_current(alembic.stdout, LABELS, verbose)
        got = normalize_current(ours.stdout, LABELS, verbose)
    else:
        expected = normalize(alembic.stdout, LABELS)
        got = normalize(ours.stdout, LABELS)
    assert got == expected
    return alembic, ours


@pytest.mark.parametrize("template", TEMPLATES)
@pytest.mark.parametrize("command", RICH_COMMANDS)
def test_rich_history(projects: Projects, template: str, command: str) -> None:
    alembic, _ = _assert_same(projects.get("rich", template), command)
    if not command.startswith("show base"):
        assert alembic.stdout.strip(), "the reference printed nothing: the case tests nothing"


@pytest.mark.parametrize("template", TEMPLATES)
@pytest.mark.parametrize("command", SPREAD_COMMANDS)
def test_several_recursive_version_locations(projects: Projects, template: str, command: str) -> None:
    alembic, _ = _assert_same(projects.get("spread", template), command)
    if not command.startswith("branches"):  # SPREAD merges but never branches
        assert alembic.stdout.strip()


def test_spread_history_reaches_every_location(projects: Projects) -> None:
    out = run_asyncmigrate(projects.get("spread", "generic"), "history").stdout
    for rev in ("0001", "0002", "0003", "p100", "p101", "p102"):
        assert f"-> {rev}" in out
    assert "notes" not in out


@pytest.mark.parametrize("template", TEMPLATES)
@pytest.mark.parametrize("command", MADE_COMMANDS)
def test_revisions_written_by_alembic(projects: Projects, template: str, command: str) -> None:
    _assert_same(projects.get("made", template), command)


@pytest.mark.parametrize("template", TEMPLATES)
@pytest.mark.parametrize("command", [*READ_COMMANDS, "current", "current -v", "history -i"])
def test_freshly_initialized_project(projects: Projects, template: str, command: str) -> None:
    alembic, _ = _assert_same(projects.get("empty", template), command)
    if command != "current -v":  # that one names the database, then lists nothing
        assert alembic.stdout == ""


def _current_cases() -> list[tuple[str, str]]:
    cases = [("generic", target) for target in RICH_TARGETS]
    cases += [("async", "a1b1"), ("async", "heads"), ("pyproject", "shop@head"), ("pyproject", "c0ffee")]
    return cases


@pytest.mark.parametrize(("template", "target"), _current_cases())
@pytest.mark.parametrize("command", CURRENT_COMMANDS)
def test_current_database(projects: Projects, template: str, target: str, command: str) -> None:
    """Both tools read databases either tool upgraded; they agree on every one."""
    project = projects.get("rich", template)
    outputs = []
    for upgraded_by in ("alembic", "asyncmigrate"):
        ini = projects.database(project, upgraded_by, target)
        alembic, ours = _assert_same(project, command, config=ini)
        if alembic.ok:  # (from c0ffee, ``history -r current:`` fails in both; see test_errors)
            assert alembic.stdout.strip()
        outputs.append(normalize_current(ours.stdout.replace(ini.removesuffix(".ini"), "DB"),
                                         LABELS, verbose=True))
    # A database upgraded by Alembic and one upgraded by asyncmigrate look the same.
    assert outputs[0] == outputs[1]


def test_current_on_database_without_version_table(projects: Projects) -> None:
    project = projects.get("rich", "generic")
    ini = projects.database(project, "nobody", None)
    for command in ("current", "current -v", "history -i"):
        _assert_same(project, command, config=ini)


def test_history_lines_are_hash_seed_free(projects: Projects) -> None:
    """Unpinned, Alembic may walk dependency branches in another order -- but prints the same lines."""
    project = projects.get("rich", "generic")
    for command in ("history", "history -r reports@base:"):
        alembic = run_alembic(project, command, pinned=False)
        ours = run_asyncmigrate(project, command)
        assert sorted(normalize(ours.stdout, LABELS).splitlines()) == sorted(
            normalize(alembic.stdout, LABELS).splitlines()
        )


@pytest.mark.parametrize("template", TEMPLATES)
def test_check_heads(projects: Projects, template: str) -> None:
    """``current --check-heads`` fails, printing no revisions, when an upgrade is pending."""
    rich = projects.get("rich", template)
    behind = projects.database(rich, "alembic", "v3.1")
    alembic, ours = _assert_same(rich, "current --check-heads", config=behind)
    assert alembic.code != 0
    assert ours.stdout == ""
    assert ours.stderr.count("\n") == 1
    assert "at v3.1, 7 revision(s) to apply" in ours.stderr
    made = projects.get("made", template)
    at_head = projects.database(made, "alembic", "heads")
    alembic, ours = _assert_same(made, "current --check-heads", config=at_head)
    assert ours.code == 0
    assert ours.stdout


def test_check_heads_with_a_dependency_only_head(projects: Projects) -> None:
    """A deliberate difference: asyncmigrate is at head when ``upgrade heads`` has nothing to do.

    In RICH, ``c0ffee`` is a head only through ``a1b1``'s ``depends_on``. After
    ``upgrade heads`` the version table holds 7a8b and a1b1; Alembic's check
    compares that with every head including c0ffee and fails, although its own
    ``upgrade heads`` then finds nothing to run. asyncmigrate's check asks that
    second question, so it passes.
    """
    project = projects.get("rich", "generic")
    ini = projects.database(project, "alembic", "heads")
    assert run_alembic(project, f"-c {ini} current --check-heads").code != 0
    ours = run_asyncmigrate(project, f"-c {ini} current --check-heads")
    assert ours.code == 0, ours.stderr
    assert run_asyncmigrate(project, f"-c {ini} current").stdout == ours.stdout
    done = run_asyncmigrate(project, f"-c {ini} upgrade heads")
    assert done.code == 0
    assert "Nothing to do" in done.stdout
