"""Config mirrors alembic.config.Config and resolves the database URL."""

from __future__ import annotations

import os
from argparse import Namespace
from pathlib import Path

import pytest

from asyncmigrate import Config
from asyncmigrate.config import URL_ENVIRONMENT_VARIABLE, expand_environment
from asyncmigrate.exceptions import ConfigError


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_ini_main_section_and_here(tmp_path: Path) -> None:
    ini = write(tmp_path / "alembic.ini", "[alembic]\nscript_location = %(here)s/migrations\nfoo = bar\n")
    config = Config(ini)
    assert config.get_main_option("script_location") == f"{tmp_path.as_posix()}/migrations"
    assert config.get_main_option("foo") == "bar"
    assert config.get_main_option("missing", "dflt") == "dflt"
    assert config.get_section("alembic")["foo"] == "bar"  # type: ignore[index]
    assert config.get_section("nope") is None
    assert config.get_section("nope", {}) == {}


def test_named_section(tmp_path: Path) -> None:
    ini = write(tmp_path / "a.ini", "[alembic]\nfoo = a\n[other]\nfoo = b\n")
    assert Config(ini, ini_section="other").get_main_option("foo") == "b"


def test_missing_section_is_a_clear_error(tmp_path: Path) -> None:
    ini = write(tmp_path / "a.ini", "[something]\nfoo = a\n")
    with pytest.raises(ConfigError, match=r"\[alembic\]"):
        Config(ini).get_main_option("foo")


def test_set_main_option_and_attributes(tmp_path: Path) -> None:
    config = Config(attributes={"connection": 1})
    config.set_main_option("script_location", "x")
    config.set_section_option("hooks", "a", "b")
    assert config.get_main_option("script_location") == "x"
    assert config.get_section_option("hooks", "a") == "b"
    assert config.attributes == {"connection": 1}
    config.remove_main_option("script_location")
    assert config.get_main_option("script_location") is None


def test_pyproject_tool_alembic_and_asyncmigrate_overlay(tmp_path: Path) -> None:
    toml = write(
        tmp_path / "pyproject.toml",
        '[tool.alembic]\nscript_location = "%(here)s/alembic"\nsourceless = false\n'
        'version_locations = ["%(here)s/a", "%(here)s/b"]\n'
        '[tool.asyncmigrate]\nscript_location = "%(here)s/mig"\nlock_timeout = 30\n',
    )
    config = Config(tmp_path / "alembic.ini", toml_file=toml)
    assert config.get_alembic_option("script_location") == f"{tmp_path.as_posix()}/mig"
    assert config.get_alembic_option("lock_timeout") == 30
    assert config.get_version_locations_list() == [f"{tmp_path.as_posix()}/a", f"{tmp_path.as_posix()}/b"]
    assert config.get_alembic_boolean_option("sourceless") is False


def test_ini_wins_over_pyproject(tmp_path: Path) -> None:
    ini = write(tmp_path / "alembic.ini", "[alembic]\nscript_location = ini_loc\n")
    toml = write(tmp_path / "pyproject.toml", '[tool.alembic]\nscript_location = "toml_loc"\n')
    assert Config(ini, toml_file=toml).get_alembic_option("script_location") == "ini_loc"


def test_version_locations_with_path_separator(tmp_path: Path) -> None:
    ini = write(
        tmp_path / "alembic.ini",
        "[alembic]\npath_separator = ;\nversion_locations = %(here)s/a dir;%(here)s/b\n",
    )
    assert Config(ini).get_version_locations_list() == [f"{tmp_path.as_posix()}/a dir", f"{tmp_path.as_posix()}/b"]
    ini2 = write(tmp_path / "legacy.ini", "[alembic]\nversion_locations = a b, c\n")
    assert Config(ini2).get_version_locations_list() == ["a", "b", "c"]


def test_bad_path_separator(tmp_path: Path) -> None:
    ini = write(tmp_path / "alembic.ini", "[alembic]\npath_separator = |\nversion_locations = a|b\n")
    with pytest.raises(ConfigError, match="path_separator"):
        Config(ini).get_version_locations_list()


def test_x_arguments() -> None:
    config = Config(cmd_opts=Namespace(x=["tenant=acme", "dry"]))
    assert config.x_arguments == {"tenant": "acme", "dry": ""}


def test_hooks_from_ini(tmp_path: Path) -> None:
    ini = write(
        tmp_path / "alembic.ini",
        "[alembic]\n[post_write_hooks]\nhooks = ruff, black\nruff.type = module\nruff.module = ruff\n"
        "black.type = console_scripts\nblack.entrypoint = black\n",
    )
    hooks = Config(ini).get_hooks_list()
    assert [h["_hook_name"] for h in hooks] == ["ruff", "black"]
    assert hooks[0] == {"type": "module", "module": "ruff", "_hook_name": "ruff"}


def test_url_is_mapped_to_async_driver(tmp_path: Path) -> None:
    ini = write(tmp_path / "alembic.ini", "[alembic]\nsqlalchemy.url = postgres://u:p%%40ss@h/db\n")
    config = Config(ini)
    assert config.get_main_option("sqlalchemy.url") == "postgresql+asyncpg://u:p%40ss@h/db"
    assert config.masked_database_url == "postgresql+asyncpg://u:***@h/db"


def test_url_from_environment_reference(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ini = write(tmp_path / "alembic.ini", "[alembic]\nsqlalchemy.url = ${APP_DB:-sqlite:///x.db}\n")
    monkeypatch.delenv("APP_DB", raising=False)
    assert Config(ini).database_url == "sqlite+aiosqlite:///x.db"
    monkeypatch.setenv("APP_DB", "postgresql://app@db/prod")
    assert Config(ini).database_url == "postgresql+asyncpg://app@db/prod"


def test_unset_environment_reference_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ini = write(tmp_path / "alembic.ini", "[alembic]\nsqlalchemy.url = ${NOT_SET_ANYWHERE_123}\n")
    monkeypatch.delenv("NOT_SET_ANYWHERE_123", raising=False)
    with pytest.raises(ConfigError, match="NOT_SET_ANYWHERE_123"):
        Config(ini).database_url  # noqa: B018


def test_environment_variable_overrides_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ini = write(tmp_path / "alembic.ini", "[alembic]\nsqlalchemy.url = sqlite:///file.db\n")
    monkeypatch.setenv(URL_ENVIRONMENT_VARIABLE, "postgres://over@ride/db")
    assert Config(ini).database_url == "postgresql+asyncpg://over@ride/db"


def test_set_main_option_url_is_mapped() -> None:
    config = Config()
    config.set_main_option("sqlalchemy.url", "sqlite:///a.db")
    assert config.database_url == "sqlite+aiosqlite:///a.db"


def test_expand_environment() -> None:
    env = {"A": "1", "EMPTY": ""}
    assert expand_environment("x${A}y${B:-2}z${EMPTY:-3}", env) == "x1y2z3"


def test_no_file_gives_in_memory_section() -> None:
    config = Config()
    assert config.get_main_option("anything") is None
    assert os.fspath(config.get_template_directory()).endswith("templates")
