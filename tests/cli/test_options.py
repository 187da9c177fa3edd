"""Global options: ``-x``, ``-n``, ``-c`` (ini and pyproject.toml), ``--url`` and the URL variable."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from .conftest import Projects
from .harness import Project, Rev, alembic_init, run_alembic, run_asyncmigrate, write_history
from .histories import LABELS
from .normalize import normalize, normalize_current

X_PROBE = '''
import json as _json
print("X-DICT " + _json.dumps(context.get_x_argument(as_dictionary=True), sort_keys=True))
print("X-LIST " + _json.dumps(context.get_x_argument()))
'''


def _probe_x(project: Project) -> None:
    env_py = project.script_dir / "env.py"
    text = env_py.read_text(encoding="utf-8")
    text = text.replace("config = context.config\n", "config = context.config\n" + X_PROBE, 1)
    env_py.write_text(text, encoding="utf-8")


def _x_lines(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if line.startswith("X-")]


@pytest.mark.parametrize("template", ["generic", "async"])
def test_x_arguments_reach_env_py(tmp_path: Path, template: str) -> None:
    project = alembic_init(tmp_path, template)
    _probe_x(project)
    args = ["-x", "tenant=acme", "-x", "dry", "-x", "dsn=postgresql://u@h/db?a=1", "current"]
    ours = run_asyncmigrate(project, args)
    assert ours.code == 0, ours.stderr
    lines = _x_lines(ours.stdout)
    assert json.loads(lines[0].removeprefix("X-DICT ")) == {
        "tenant": "acme", "dry": "", "dsn": "postgresql://u@h/db?a=1"
    }
    assert json.loads(lines[1].removeprefix("X-LIST ")) == ["tenant=acme", "dry", "dsn=postgresql://u@h/db?a=1"]
    assert lines == _x_lines(run_alembic(project, args).stdout)


def test_no_x_arguments(tmp_path: Path) -> None:
    project = alembic_init(tmp_path, "generic")
    _probe_x(project)
    ours = run_asyncmigrate(project, "current")
    assert _x_lines(ours.stdout) == ["X-DICT {}", "X-LIST []"]
    assert _x_lines(run_alembic(project, "current").stdout) == _x_lines(ours.stdout)


def test_x_with_attached_value(tmp_path: Path) -> None:
    project = alembic_init(tmp_path, "generic")
    _probe_x(project)
    args = ["-x=tenant=acme", "current"]
    assert _x_lines(run_asyncmigrate(project, args).stdout)[0] == 'X-DICT {"tenant": "acme"}'
    assert _x_lines(run_alembic(project, args).stdout) == _x_lines(run_asyncmigrate(project, args).stdout)


def _two_section_ini(projects: Projects, tmp_path: Path) -> Path:
    rich = projects.get("rich", "generic")
    ini = tmp_path / "multi.ini"
    ini.write_text(
        "[alembic]\n"
        f"script_location = {tmp_path.as_posix()}/nowhere\n"
        "sqlalchemy.url = sqlite:///%(here)s/unused.db\n\n"
        "[tenant_b]\n"
        f"script_location = {rich.script_dir.as_posix()}\n"
        "path_separator = os\n"
        "sqlalchemy.url = sqlite:///%(here)s/tenant_b.db\n",
        encoding="utf-8",
    )
    return ini


def test_name_selects_the_ini_section(projects: Projects, tmp_path: Path) -> None:
    ini = _two_section_ini(projects, tmp_path)
    place = Project(tmp_path, "generic", tmp_path, ini)
    for command in ("heads", "history", "current"):
        args = f"-c multi.ini -n tenant_b {command}"
        alembic, ours = run_alembic(place, args), run_asyncmigrate(place, args)
        assert ours.code == alembic.code == 0, ours.stderr
        assert normalize(ours.stdout, LABELS) == normalize(alembic.stdout, LABELS)
    assert "7a8b" in run_asyncmigrate(place, "-c multi.ini --name tenant_b heads").stdout
    assert run_asyncmigrate(place, "-c multi.ini heads").code != 0  # [alembic] points nowhere


def test_upgrade_in_a_named_section(projects: Projects, tmp_path: Path) -> None:
    ini = _two_section_ini(projects, tmp_path)
    place = Project(tmp_path, "generic", tmp_path, ini)
    done = run_asyncmigrate(place, "-c multi.ini -n tenant_b upgrade v3.1")
    assert done.code == 0, done.stderr
    assert (tmp_path / "tenant_b.db").exists()
    assert not (tmp_path / "unused.db").exists()
    current = run_asyncmigrate(place, "-c multi.ini -n tenant_b current").stdout
    assert current == run_alembic(place, "-c multi.ini -n tenant_b current").stdout == "v3.1\n"


def test_pyproject_toml_named_with_c(projects: Projects, tmp_path: Path) -> None:
    """``-c pyproject.toml`` works from anywhere, alone or with ``-c alembic.ini``."""
    project = projects.get("rich", "pyproject")
    elsewhere = Project(tmp_path, "pyproject", project.script_dir, project.ini, project.toml)
    toml, ini = project.toml.as_posix(), project.ini.as_posix()  # type: ignore[union-attr]
    for args in (f"-c {toml} -c {ini} heads", f"-c {ini} -c {toml} history", f"-c {toml} heads -v"):
        alembic, ours = run_alembic(elsewhere, args), run_asyncmigrate(elsewhere, args)
        assert ours.code == alembic.code == 0, ours.stderr
        assert normalize(ours.stdout, LABELS) == normalize(alembic.stdout, LABELS)
        assert "7a8b" in ours.stdout


def test_pyproject_toml_without_an_ini_file(projects: Projects, tmp_path: Path) -> None:
    source = projects.get("rich", "pyproject")
    shutil.copytree(source.script_dir, tmp_path / "migrations")
    toml = tmp_path / "pyproject.toml"
    toml.write_text(source.toml.read_text(encoding="utf-8"), encoding="utf-8")  # type: ignore[union-attr]
    place = Project(tmp_path, "pyproject", tmp_path / "migrations", tmp_path / "alembic.ini", toml)
    for args in ("-c pyproject.toml heads", "heads", "history"):
        alembic, ours = run_alembic(place, args), run_asyncmigrate(place, args)
        assert ours.code == alembic.code == 0, ours.stderr
        assert normalize(ours.stdout, LABELS) == normalize(alembic.stdout, LABELS)


def test_two_pyproject_files_are_refused(projects: Projects) -> None:
    project = projects.get("rich", "pyproject")
    ours = run_asyncmigrate(project, "-c pyproject.toml -c sub/pyproject.toml heads")
    assert ours.code != 0
    assert ours.stderr.count("\n") == 1


@pytest.fixture
def upgraded(projects: Projects) -> tuple[Project, dict[str, str]]:
    """The rich generic project and the URLs of two databases asyncmigrate upgraded."""
    project = projects.get("rich", "generic")
    urls = {}
    for target in ("v3.1", "a1b1"):
        ini = project.root / projects.database(project, "asyncmigrate", target)
        urls[target] = re.search(r"^sqlalchemy\.url = (.*)$", ini.read_text(), re.M).group(1)  # type: ignore[union-attr]
    return project, urls


def test_url_option_overrides_the_ini(projects: Projects, upgraded: tuple[Project, dict[str, str]]) -> None:
    project, urls = upgraded
    for target, url in urls.items():
        ours = run_asyncmigrate(project, ["--url", url, "current", "-v"])
        reference = run_alembic(project, ["-c", projects.database(project, "asyncmigrate", target),
                                          "current", "-v"])
        assert normalize_current(ours.stdout, LABELS, True) == normalize_current(
            reference.stdout, LABELS, True
        )
        assert target.split("@")[0] in ours.stdout


def test_url_environment_variable_overrides_the_ini(upgraded: tuple[Project, dict[str, str]]) -> None:
    project, urls = upgraded
    ours = run_asyncmigrate(project, "current", env={"ASYNCMIGRATE_DATABASE_URL": urls["v3.1"]})
    assert ours.stdout == "v3.1\n"
    assert run_asyncmigrate(project, "current").stdout == ""  # the ini's own database is empty


def test_url_option_beats_the_environment_variable(upgraded: tuple[Project, dict[str, str]]) -> None:
    project, urls = upgraded
    ours = run_asyncmigrate(
        project, ["--url", urls["a1b1"], "current"], env={"ASYNCMIGRATE_DATABASE_URL": urls["v3.1"]}
    )
    assert ours.code == 0, ours.stderr
    assert "a1b1" in ours.stdout
    assert "v3.1" not in ours.stdout


def test_url_with_a_percent_sign(tmp_path: Path) -> None:
    project = alembic_init(tmp_path, "generic")
    write_history(project, [Rev("aaaa1111", None)])
    target = tmp_path / "100%done.db"
    done = run_asyncmigrate(project, ["--url", f"sqlite:///{target.as_posix()}", "upgrade", "head"])
    assert done.code == 0, done.stderr
    assert target.exists()


def test_quiet_keeps_results_and_drops_progress(tmp_path: Path) -> None:
    project = alembic_init(tmp_path, "generic")
    write_history(project, [Rev("aaaa1111", None), Rev("bbbb2222", "aaaa1111")])
    done = run_asyncmigrate(project, "-q upgrade head")
    assert done.code == 0
    assert done.stdout == done.stderr == ""
    assert run_asyncmigrate(project, "-q current").stdout == "bbbb2222 (head)\n"


def test_downgrade_by_a_relative_step(tmp_path: Path) -> None:
    """``downgrade -1`` is a revision, not an unknown option (as in Alembic)."""
    project = alembic_init(tmp_path, "generic")
    write_history(project, [Rev("aaaa1111", None), Rev("bbbb2222", "aaaa1111"), Rev("cccc3333", "bbbb2222")])
    assert run_asyncmigrate(project, "upgrade head").code == 0
    done = run_asyncmigrate(project, "downgrade -1")
    assert done.code == 0, done.stderr
    assert run_asyncmigrate(project, "current").stdout == "bbbb2222\n"
    assert run_asyncmigrate(project, "downgrade --sql -2").code != 0  # --sql still needs a range
    # Alembic's stamp takes no relative steps; the refusal is about the revision, not an option.
    assert run_alembic(project, "stamp -1").code != 0
    refused = run_asyncmigrate(project, "stamp -1")
    assert refused.code != 0
    assert "'-1'" in refused.stderr


@pytest.mark.parametrize(("args", "hint"), [
    ("upgrade head --url sqlite:///x.db", "(asyncmigrate --url URL upgrade ...)"),
    ("current -q", "(asyncmigrate -q current ...)"),
    ("upgrade head -x a=b", "(asyncmigrate -x KEY=VALUE upgrade ...)"),
])
def test_an_option_of_the_tool_after_the_command_says_where_it_goes(
    tmp_path: Path, args: str, hint: str
) -> None:
    project = alembic_init(tmp_path, "generic")
    outcome = run_asyncmigrate(project, args)
    assert outcome.code == 2, outcome  # a usage error, as click reports them
    option = hint.split()[1]
    assert f"Error: {option} is an option of asyncmigrate itself: give it before the command {hint}" in (
        outcome.stderr
    ), outcome.stderr
    assert not (tmp_path / "x.db").exists()
    # An option nobody has is still click's own error.
    unknown = run_asyncmigrate(project, "upgrade head --nope")
    assert unknown.code == 2 and "No such option" in unknown.stderr and "itself" not in unknown.stderr
