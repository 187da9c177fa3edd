"""Errors: one line on stderr, a non-zero exit, no traceback, no password; ``--raiseerr`` for more.

Where Alembic fails in the same situation, the test checks that too, so the
two tools refuse the same things.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from asyncmigrate.exceptions import AmbiguousRevisionError, UnknownRevisionError

from .. import backends
from .conftest import Projects
from .harness import Outcome, Project, Rev, alembic_init, run_alembic, run_asyncmigrate, write_history

SECRET = "Sup3rSecretPw"


def assert_one_line_error(outcome: Outcome, *mentions: str) -> str:
    """Check the shape of a failed run and return its error line."""
    assert outcome.code != 0, outcome
    assert "Traceback" not in outcome.stderr, outcome.stderr
    assert outcome.stderr.endswith("\n"), outcome.stderr
    assert outcome.stderr.count("\n") == 1, outcome.stderr
    assert outcome.stderr.startswith("ERROR: "), outcome.stderr
    assert outcome.stdout == ""
    assert SECRET not in outcome.stdout + outcome.stderr
    for text in mentions:
        assert text in outcome.stderr
    return outcome.stderr.strip()


@pytest.mark.parametrize(
    ("command", "mentions"),
    [
        ("show zzzz", ["'zzzz'"]),
        ("upgrade zzzz", ["'zzzz'"]),
        ("history -r zzzz:", ["'zzzz'"]),
        ("show nolabel@head", ["nolabel"]),
        ("show shop@v3.1", ["v3.1", "shop"]),
        ("show head", ["head"]),
        ("upgrade head", ["Multiple head revisions", "7a8b"]),
        ("history -r 1a2b", ["[start]:[end]"]),
        ("show -2", ["Ambiguous walk"]),
        ("show zz", ["four characters"]),
        # Alembic fails here with an AssertionError traceback; asyncmigrate says why.
        ("history -r c0ffee:", ["c0ffee", "cannot be ordered"]),
    ],
)
def test_revision_errors(projects: Projects, command: str, mentions: list[str]) -> None:
    project = projects.get("rich", "generic")
    assert run_alembic(project, command).code != 0, "Alembic accepts it: not an error case"
    assert_one_line_error(run_asyncmigrate(project, command), *mentions)


def test_ambiguous_prefix(tmp_path: Path) -> None:
    project = alembic_init(tmp_path, "generic")
    write_history(project, [Rev("abcd1111", None), Rev("abcd2222", "abcd1111")])
    assert run_alembic(project, "show abcd").code != 0
    line = assert_one_line_error(run_asyncmigrate(project, "show abcd"), "abcd")
    assert "abcd1111" in line
    assert "abcd2222" in line


def test_raiseerr_raises_the_error_itself(tmp_path: Path) -> None:
    project = alembic_init(tmp_path, "generic")
    write_history(project, [Rev("abcd1111", None), Rev("abcd2222", "abcd1111")])
    from ..clirunner import cli_runner

    from asyncmigrate.cli import cli

    from .harness import working_directory

    with working_directory(project.root):
        result = cli_runner().invoke(cli, ["--raiseerr", "show", "abcd"])
        assert isinstance(result.exception, AmbiguousRevisionError)
        result = cli_runner().invoke(cli, ["--raiseerr", "show", "zzzz"])
        assert isinstance(result.exception, UnknownRevisionError)


def test_config_file_that_does_not_exist(projects: Projects) -> None:
    project = projects.get("rich", "generic")
    assert run_alembic(project, "-c missing.ini heads").code != 0
    assert_one_line_error(run_asyncmigrate(project, "-c missing.ini heads"), "missing.ini")


def test_no_config_file_at_all(tmp_path: Path) -> None:
    assert_one_line_error(run_asyncmigrate(tmp_path, "heads"), "script_location")


def test_missing_script_location(tmp_path: Path) -> None:
    project = alembic_init(tmp_path, "generic")
    text = project.ini.read_text(encoding="utf-8")
    project.ini.write_text(re.sub(r"^script_location\s*=.*\n", "", text, flags=re.M), encoding="utf-8")
    assert run_alembic(project, "heads").code != 0
    assert_one_line_error(run_asyncmigrate(project, "heads"), "script_location")


def test_script_location_that_does_not_exist(tmp_path: Path) -> None:
    project = alembic_init(tmp_path, "generic")
    project.set_ini_options(script_location="%(here)s/nowhere")
    assert run_alembic(project, "heads").code != 0
    assert_one_line_error(run_asyncmigrate(project, "heads"), "nowhere")


def test_unknown_ini_section(projects: Projects) -> None:
    project = projects.get("rich", "generic")
    assert run_alembic(project, "-n nosuchsection heads").code != 0
    assert_one_line_error(run_asyncmigrate(project, "-n nosuchsection heads"))


def _broken_project(tmp_path: Path, where: str) -> Project:
    project = alembic_init(tmp_path, "generic")
    write_history(project, [Rev("aaaa1111", None, message="fine")])
    broken = project.versions / "bbbb2222_broken.py"
    if where == "header":
        broken.write_text(
            '"""broken"""\nrevision = "bbbb2222\ndown_revision = "aaaa1111"\n'
            "def upgrade():\n    pass\n",
            encoding="utf-8",
        )
    else:
        broken.write_text(
            '"""broken"""\nfrom alembic import op\nrevision = "bbbb2222"\ndown_revision = "aaaa1111"\n'
            "def upgrade():\n    op.execute('SELECT 1'\n\ndef downgrade():\n    pass\n",
            encoding="utf-8",
        )
    return project


@pytest.mark.parametrize("command", ["heads", "history", "current", "upgrade head"])
def test_revision_file_with_a_syntax_error_in_its_header(tmp_path: Path, command: str) -> None:
    project = _broken_project(tmp_path, "header")
    assert run_alembic(project, command).code != 0
    assert_one_line_error(run_asyncmigrate(project, command), "bbbb2222_broken.py", "line 2")


def test_revision_file_with_a_syntax_error_in_its_body(tmp_path: Path) -> None:
    """Headers are read without importing: a broken body fails only the run that imports it.

    Alembic imports every file on every command, so there even ``heads``
    fails; asyncmigrate lists heads and history, and reports the file when
    ``upgrade`` has to run it.
    """
    project = _broken_project(tmp_path, "body")
    assert run_alembic(project, "heads").code != 0
    assert run_asyncmigrate(project, "heads").stdout == "bbbb2222 (head)\n"
    line = assert_one_line_error(run_asyncmigrate(project, "upgrade head"), "bbbb2222_broken.py")
    assert "syntax" in line


UNREACHABLE = [
    f"postgresql://alice:{SECRET}@127.0.0.1:1/app",
    f"mysql+asyncmy://alice:{SECRET}@127.0.0.1:1/app",
    f"postgresql+asyncpg://alice:{SECRET}@no-such-host.invalid:5432/app",
]


@pytest.mark.parametrize("url", UNREACHABLE)
@pytest.mark.parametrize("how", ["--url", "environment", "ini"])
def test_unreachable_database_hides_the_password(tmp_path: Path, url: str, how: str) -> None:
    project = alembic_init(tmp_path, "generic")
    write_history(project, [Rev("aaaa1111", None)])
    env = None
    if how == "--url":
        args = ["--url", url, "current"]
    elif how == "environment":
        args, env = ["current"], {"ASYNCMIGRATE_DATABASE_URL": url}
    else:
        project.set_url(url.replace("%", "%%"))
        args = ["current"]
    line = assert_one_line_error(run_asyncmigrate(project, args, env=env), "alice:***@")
    assert "connect" in line.lower()


def test_wrong_password_on_a_real_server(tmp_path: Path) -> None:
    backends.require("mysql")
    server = backends.server_url("mysql")
    url = server.set(password=SECRET).render_as_string(hide_password=False)
    project = alembic_init(tmp_path, "generic")
    line = assert_one_line_error(run_asyncmigrate(project, ["--url", url, "current"]))
    assert "Access denied" in line


def test_malformed_url_hides_the_password(tmp_path: Path) -> None:
    project = alembic_init(tmp_path, "generic")
    url = f"postgresql://alice:{SECRET}@host:notaport/app"
    assert_one_line_error(run_asyncmigrate(project, ["--url", url, "current"]))
    assert_one_line_error(run_asyncmigrate(project, ["current"], env={"ASYNCMIGRATE_DATABASE_URL": url}))


def test_unknown_dialect(tmp_path: Path) -> None:
    project = alembic_init(tmp_path, "generic")
    assert_one_line_error(
        run_asyncmigrate(project, ["--url", f"nosuchdb://alice:{SECRET}@host/app", "current"])
    )


def test_failing_migration_reports_once(tmp_path: Path) -> None:
    project = alembic_init(tmp_path, "generic")
    write_history(project, [
        Rev("aaaa1111", None, message="fine"),
        Rev("bbbb2222", "aaaa1111", message="fails", upgrade="raise RuntimeError('boom in upgrade')"),
    ])
    line = assert_one_line_error(run_asyncmigrate(project, "-q upgrade head"), "bbbb2222", "boom in upgrade")
    assert "RuntimeError" in line
    # Without -q the finished steps are listed first; the failure is still told once.
    loud = run_asyncmigrate(project, "upgrade head")
    assert loud.stderr.splitlines()[-1] == line
    assert loud.stderr.count("bbbb2222") == 1


def test_a_multi_line_error_keeps_every_line_escaped(tmp_path: Path) -> None:
    project = alembic_init(tmp_path, "generic")
    write_history(project, [
        Rev("aaaa1111", None, message="fails", upgrade=r"raise RuntimeError('boom\nsecond line\x1b[31m')"),
    ])
    line = assert_one_line_error(run_asyncmigrate(project, "-q upgrade head"), "aaaa1111")
    assert r"RuntimeError: boom\nsecond line\x1b[31m" in line, line


def test_a_recorded_revision_without_its_file_is_named_as_such(tmp_path: Path) -> None:
    project = alembic_init(tmp_path, "generic")
    write_history(project, [Rev("aaaa1111", None, message="one"), Rev("bbbb2222", "aaaa1111", message="two")])
    assert run_asyncmigrate(project, "-q upgrade head").code == 0
    next(project.versions.glob("bbbb2222*.py")).unlink()
    for command in ("current", "upgrade head", "downgrade -1"):
        line = assert_one_line_error(run_asyncmigrate(project, command), "'bbbb2222'", "stamp --purge")
        assert "The database records revision 'bbbb2222'" in line, (command, line)
    # A revision the user typed stays the user's typo.
    assert "The database records" not in assert_one_line_error(run_asyncmigrate(project, "upgrade cccc3333"))


def test_an_import_error_in_env_py_names_env_py_and_its_line(tmp_path: Path) -> None:
    project = alembic_init(tmp_path, "generic")
    env = project.script_dir / "env.py"
    env.write_text("from logging.config import fileConfig\nimport no_such_module_xyz\n" + env.read_text())
    line = assert_one_line_error(run_asyncmigrate(project, "current"), "env.py line 2", "no_such_module_xyz")
    assert "ModuleNotFoundError" in line


def test_a_relative_target_past_the_end_says_where_the_database_is(tmp_path: Path) -> None:
    project = alembic_init(tmp_path, "generic")
    write_history(project, [Rev("aaaa1111", None, message="one"), Rev("bbbb2222", "aaaa1111", message="two")])
    assert run_asyncmigrate(project, "-q upgrade aaaa1111").code == 0
    assert_one_line_error(
        run_asyncmigrate(project, "upgrade +2"),
        "Relative revision +2 didn't produce 2 migrations: fewer than 2 revision(s) lie past aaaa1111",
    )
    assert_one_line_error(
        run_asyncmigrate(project, "downgrade -2"),
        "Relative revision -2 didn't produce 2 migrations: fewer than 2 revision(s) lie below aaaa1111",
    )
