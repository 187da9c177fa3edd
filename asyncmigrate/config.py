"""Configuration: alembic.ini, ``[tool.asyncmigrate]``/``[tool.alembic]``, -x arguments, environment."""

from __future__ import annotations

import copy
import os
import re
import sys
from argparse import Namespace
from collections.abc import Mapping
from configparser import ConfigParser
from configparser import Error as ConfigParserError
from pathlib import Path
from typing import Any, TextIO, cast, overload

from .exceptions import ConfigError
from .urls import mask_password, to_async_url

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

__all__ = ["DEFAULT_LOCK_TIMEOUT", "URL_ENVIRONMENT_VARIABLE", "Config", "missing_url_error"]

#: When set, this environment variable overrides the configured ``sqlalchemy.url``.
URL_ENVIRONMENT_VARIABLE = "ASYNCMIGRATE_DATABASE_URL"


def missing_url_error(pass_it: str) -> ConfigError:
    """The error for a command that needs a database and was given no URL (``pass_it``: the last way out)."""
    return ConfigError(
        f"No database URL: set sqlalchemy.url in the config, the {URL_ENVIRONMENT_VARIABLE} "
        f"environment variable, or {pass_it}"
    )

#: Seconds to wait for another process's migration before giving up (``lock_timeout``).
DEFAULT_LOCK_TIMEOUT = 300.0

_URL_OPTION = "sqlalchemy.url"
_ENV_REFERENCE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")
_SPLIT_SPACE_COMMA = re.compile(r", *|(?: +)")
_SEPARATORS = {"space": " ", "newline": "\n", "os": os.pathsep, ":": ":", ";": ";"}


def expand_environment(value: str, environ: Mapping[str, str] | None = None) -> str:
    """Replace ``${VAR}`` and ``${VAR:-default}`` in ``value`` from the environment.

    :raises ConfigError: when a referenced variable is unset and has no default.
    """
    env = os.environ if environ is None else environ

    def substitute(match: re.Match[str]) -> str:
        name, default = match["name"], match["default"]
        if name in env and env[name] != "":
            return env[name]
        if default is not None:
            return default
        raise ConfigError(f"Environment variable {name} is not set (referenced as ${{{name}}})")

    return _ENV_REFERENCE.sub(substitute, value)


class Config:
    """Hold one run's configuration, read once and passed down explicitly.

    It mirrors :class:`alembic.config.Config`: the ``[alembic]`` section of an
    ini file (or the section ``ini_section`` names), ``[tool.alembic]`` and
    ``[tool.asyncmigrate]`` in pyproject.toml (the latter wins), ``-x``
    arguments in :attr:`cmd_opts`, and :attr:`attributes` for objects such as
    a shared connection. On top of Alembic it resolves the database URL:
    ``${VAR}`` references expand from the environment,
    ``ASYNCMIGRATE_DATABASE_URL`` overrides the file, and sync-style URLs
    are mapped to async drivers, so ``get_main_option("sqlalchemy.url")``
    returns a URL an ``AsyncEngine`` accepts.

    :param file_: path of the ini file (it need not exist when pyproject.toml holds the settings).
    :param toml_file: path of a pyproject.toml.
    :param ini_section: the ini section with the main options (``-n``).
    :param output_buffer: where :meth:`print_stdout` writes, if not ``stdout``.
    :param stdout: the default output stream for :meth:`print_stdout`.
    :param cmd_opts: parsed command-line options (``x`` holds the ``-x`` values).
    :param config_args: extra values for ``%(name)s`` interpolation.
    :param attributes: objects to hand to env.py (``connection``, ``engine``...).
    """

    def __init__(
        self,
        file_: str | os.PathLike[str] | None = None,
        toml_file: str | os.PathLike[str] | None = None,
        ini_section: str = "alembic",
        output_buffer: TextIO | None = None,
        stdout: TextIO = sys.stdout,
        cmd_opts: Namespace | None = None,
        config_args: Mapping[str, Any] | None = None,
        attributes: Mapping[str, Any] | None = None,
    ) -> None:
        self.config_file_name: str | None = os.fspath(file_) if file_ else None
        """Path of the ini file in use."""
        self.toml_file_name: str | None = os.fspath(toml_file) if toml_file else None
        """Path of the pyproject.toml in use."""
        self.config_ini_section: str = ini_section
        """Name of the main ini section (``alembic`` unless ``-n`` says otherwise)."""
        self.output_buffer = output_buffer
        self.stdout = stdout
        self.cmd_opts: Namespace = cmd_opts if cmd_opts is not None else Namespace(x=None)
        """The command-line options; ``cmd_opts.x`` holds the ``-x`` strings."""
        self.config_args: dict[str, Any] = dict(config_args or {})
        self.attributes: dict[str, Any] = dict(attributes or {})
        """Objects passed to env.py, e.g. ``attributes["connection"]``."""
        self._file_config: ConfigParser | None = None
        self._toml_config: dict[str, Any] | None = None
        # Copies share the parsed file and keep their own values here.
        self._shared = False
        self._overrides: dict[str, dict[str, str]] = {}

    def __repr__(self) -> str:
        return (
            f"Config(file_={self.config_file_name!r}, toml_file={self.toml_file_name!r}, "
            f"ini_section={self.config_ini_section!r})"
        )

    def copy(self, *, url: str | None = None, attributes: Mapping[str, Any] | None = None) -> Config:
        """Return an independent copy, optionally pointing at another database URL.

        The parsed files are copied, not re-read; ``attributes`` is a shallow
        copy updated with the given values. Fan-out gives every tenant its own
        copy, so env.py files that read ``sqlalchemy.url`` see the tenant's.
        """
        clone = Config(
            self.config_file_name,
            self.toml_file_name,
            self.config_ini_section,
            self.output_buffer,
            self.stdout,
            self.cmd_opts,
            self.config_args,
            {**self.attributes, **(attributes or {})},
        )
        # Share the parsed file read-only; the copy's own settings live in an overlay.
        clone._file_config = self.file_config
        clone._shared = True
        clone._overrides = {section: dict(values) for section, values in self._overrides.items()}
        clone._toml_config = self._toml_config
        if url is not None:
            clone.set_main_option(_URL_OPTION, _escape(url))
        return clone

    # -- output ---------------------------------------------------------------------

    def print_stdout(self, text: str, *args: Any) -> None:
        """Write a line to the output buffer or stdout (for env.py compatibility)."""
        output = str(text) % args if args else str(text)
        stream = self.output_buffer or self.stdout
        stream.write(output + "\n")
        stream.flush()

    # -- the ini file --------------------------------------------------------------------

    @property
    def file_config(self) -> ConfigParser:
        """The parsed ini file (an empty main section when there is no file)."""
        if self._file_config is None:
            self._file_config = self._read_ini()
        return self._file_config

    def _read_ini(self) -> ConfigParser:
        path = Path(self.config_file_name) if self.config_file_name else None
        here = path.absolute().parent if path else Path.cwd()
        self.config_args.setdefault("here", here.as_posix())
        parser = ConfigParser({k: str(v) for k, v in self.config_args.items()})
        if path is not None and path.is_file():
            try:
                with path.open(encoding="utf-8") as fh:
                    parser.read_file(fh, str(path))
            except (ConfigParserError, UnicodeDecodeError) as exc:
                raise ConfigError(f"Cannot parse {path}: {exc}") from exc
        if path is None:
            parser.add_section(self.config_ini_section)
        self._resolve_url(parser)
        return parser

    def _resolve_url(self, parser: ConfigParser) -> None:
        section = self.config_ini_section
        override = os.environ.get(URL_ENVIRONMENT_VARIABLE)
        if override:
            raw: str | None = override
        elif parser.has_section(section) and parser.has_option(section, _URL_OPTION):
            try:
                raw = parser.get(section, _URL_OPTION)
            except ConfigParserError as exc:
                raise ConfigError(f"Cannot read {_URL_OPTION}: {exc}") from exc
        else:
            return
        if raw is None:
            return
        if not parser.has_section(section):
            parser.add_section(section)
        parser.set(section, _URL_OPTION, _escape(self._normalize_url(raw)))

    @staticmethod
    def _normalize_url(raw: str) -> str:
        value = expand_environment(raw.strip())
        if not value or value.startswith("driver://"):
            return value
        return to_async_url(value).render_as_string(hide_password=False)

    def get_section(
        self, name: str, default: Mapping[str, str] | None = None
    ) -> dict[str, str] | None:
        """Return every option of ini section ``name`` as a dict (``default`` if absent)."""
        if not self.file_config.has_section(name):
            return dict(default) if default is not None else None
        return dict(self.file_config.items(name, vars=self._overrides.get(name)))

    def set_main_option(self, name: str, value: str) -> None:
        """Set an option in the main section (``%`` must be escaped as ``%%``)."""
        self.set_section_option(self.config_ini_section, name, value)

    def remove_main_option(self, name: str) -> None:
        """Remove an option from the main section."""
        self._own_parser().remove_option(self.config_ini_section, name)

    def _own_parser(self) -> ConfigParser:
        """Return a parser this config may change (un-sharing a copy's parser first)."""
        parser = self.file_config
        if self._shared:
            parser = copy.deepcopy(parser)
            for section, values in self._overrides.items():
                if not parser.has_section(section):
                    parser.add_section(section)
                for key, value in values.items():
                    parser.set(section, key, value)
            self._file_config, self._shared, self._overrides = parser, False, {}
        return parser

    def set_section_option(self, section: str, name: str, value: str) -> None:
        """Set an option in ``section``, creating the section when needed."""
        if section == self.config_ini_section and name == _URL_OPTION:
            value = _escape(self._normalize_url(value.replace("%%", "%")))
        if self._shared and self.file_config.has_section(section):
            self._overrides.setdefault(section, {})[name] = value
            return
        parser = self._own_parser()
        if not parser.has_section(section):
            parser.add_section(section)
        parser.set(section, name, value)

    def _has_option(self, section: str, name: str) -> bool:
        return name in self._overrides.get(section, ()) or self.file_config.has_option(
            section, name
        )

    def _get(self, section: str, name: str) -> str:
        try:
            return self.file_config.get(section, name, vars=self._overrides.get(section))
        except ConfigParserError as exc:
            raise ConfigError(f"Cannot read option {name!r}: {exc}") from exc

    def get_section_option(
        self, section: str, name: str, default: str | None = None
    ) -> str | None:
        """Return an option of ``section``.

        :raises ConfigError: when the section does not exist.
        """
        parser = self.file_config
        if not parser.has_section(section):
            raise ConfigError(
                f"No config file {self.config_file_name!r} found, or file has no "
                f"'[{section}]' section"
            )
        if self._has_option(section, name):
            return self._get(section, name)
        return default

    @overload
    def get_main_option(self, name: str, default: str) -> str: ...

    @overload
    def get_main_option(self, name: str, default: str | None = None) -> str | None: ...

    def get_main_option(self, name: str, default: str | None = None) -> str | None:
        """Return an option of the main ini section."""
        return self.get_section_option(self.config_ini_section, name, default)

    # -- pyproject.toml -------------------------------------------------------------

    @property
    def toml_alembic_config(self) -> dict[str, Any]:
        """``[tool.alembic]`` overlaid with ``[tool.asyncmigrate]`` from pyproject.toml."""
        if self._toml_config is None:
            self._toml_config = self._read_toml()
        return self._toml_config

    def _read_toml(self) -> dict[str, Any]:
        if not self.toml_file_name:
            return {}
        path = Path(self.toml_file_name)
        if not path.is_file():
            return {}
        try:
            with path.open("rb") as fh:
                data = tomllib.load(fh)
        except (tomllib.TOMLDecodeError, OSError) as exc:
            raise ConfigError(f"Cannot parse {path}: {exc}") from exc
        tool = data.get("tool", {})
        merged: dict[str, Any] = {}
        for key in ("alembic", "asyncmigrate"):
            section = tool.get(key, {})
            if not isinstance(section, dict):
                raise ConfigError(f"[tool.{key}] in {path} must be a table")
            merged.update(section)
        self.config_args.setdefault("here", path.absolute().parent.as_posix())
        return merged

    def _toml_value(self, name: str, default: Any = None) -> Any:
        if name not in self.toml_alembic_config:
            return default
        value = self.toml_alembic_config[name]
        args = {"here": Path(self.toml_file_name or ".").absolute().parent.as_posix()}
        args.update({k: str(v) for k, v in self.config_args.items() if k != "here"})

        def interpolate(text: str) -> str:
            try:
                return text % args
            except (KeyError, ValueError) as exc:
                raise ConfigError(f"Cannot interpolate {name!r} = {text!r}: {exc}") from exc

        if isinstance(value, str):
            return interpolate(value)
        if isinstance(value, list):
            return [
                {k: interpolate(v) for k, v in item.items()}
                if isinstance(item, dict)
                else interpolate(item)
                for item in value
            ]
        if isinstance(value, dict):
            return {k: interpolate(v) for k, v in value.items()}
        if isinstance(value, (bool, int, float)):
            return value
        raise ConfigError(f"unsupported TOML value type for key: {name!r}")

    # -- combined lookups --------------------------------------------------------------

    def get_alembic_option(self, name: str, default: Any = None) -> Any:
        """Return an option from the ini main section, else from pyproject.toml."""
        if self._has_option(self.config_ini_section, name):
            return self._get(self.config_ini_section, name)
        return self._toml_value(name, default)

    def get_alembic_boolean_option(self, name: str) -> bool:
        """Return a boolean option (ini ``true``/``false`` or a TOML boolean)."""
        if self._has_option(self.config_ini_section, name):
            return self._get(self.config_ini_section, name).strip().lower() in ("true", "1", "yes")
        value = self._toml_value(name, False)
        if not isinstance(value, bool):
            raise ConfigError(f"boolean value expected for TOML parameter {name!r}")
        return value

    def _separator(self, *names: str) -> str | None:
        for name in names:
            value = self.get_main_option(name) if self.file_config.has_section(
                self.config_ini_section
            ) else None
            if value is not None:
                try:
                    return _SEPARATORS[value]
                except KeyError as exc:
                    raise ConfigError(
                        f"'{value}' is not a valid value for {name}; expected 'space', "
                        f"'newline', 'os', ':', ';'"
                    ) from exc
        return None

    def _path_list(self, option: str, *separator_names: str, legacy: re.Pattern[str]) -> Any:
        parser = self.file_config
        raw = (
            parser.get(self.config_ini_section, option, fallback=None)
            if parser.has_section(self.config_ini_section)
            else None
        )
        if raw:
            sep = self._separator(*separator_names)
            parts = legacy.split(raw) if sep is None else raw.split(sep)
            return [p.strip() for p in parts if p.strip()]
        return self._toml_value(option, None)

    def get_version_locations_list(self) -> list[str] | None:
        """Return ``version_locations`` split by ``path_separator`` (or a TOML list)."""
        result = self._path_list(
            "version_locations",
            "path_separator",
            "version_path_separator",
            legacy=_SPLIT_SPACE_COMMA,
        )
        return cast("list[str] | None", result)

    def get_prepend_sys_paths_list(self) -> list[str] | None:
        """Return ``prepend_sys_path`` split by ``path_separator`` (or a TOML list)."""
        result = self._path_list(
            "prepend_sys_path", "path_separator", legacy=re.compile(r", *|(?: +)|\:")
        )
        return cast("list[str] | None", result)

    def get_hooks_list(self) -> list[dict[str, str]]:
        """Return the post-write hooks from ``[post_write_hooks]`` or TOML ``post_write_hooks``."""
        parser = self.file_config
        hooks: list[dict[str, str]] = []
        if not parser.has_section("post_write_hooks"):
            for item in self._toml_value("post_write_hooks", []) or []:
                opts = dict(item)
                opts["_hook_name"] = opts.pop("name", "?")
                hooks.append(opts)
            return hooks
        section = dict(parser.items("post_write_hooks"))
        for name in _SPLIT_SPACE_COMMA.split(section.get("hooks", "")):
            if not name:
                continue
            prefix = name + "."
            opts = {k[len(prefix) :]: v for k, v in section.items() if k.startswith(prefix)}
            opts["_hook_name"] = name
            hooks.append(opts)
        return hooks

    # -- asyncmigrate additions ----------------------------------------------------------

    def describe_sources(self) -> str:
        """Name the files this configuration was looked for in, for error messages."""
        names = [n for n in (self.config_file_name, self.toml_file_name) if n]
        return " and ".join(names) if names else "arguments only"

    def get_template_directory(self) -> str:
        """Return the directory holding the ``init`` templates."""
        here = Path(__file__).resolve().parent
        for candidate in (here / "templates", here.parent / "templates"):
            if candidate.is_dir():
                return str(candidate)
        raise ConfigError("asyncmigrate's templates are missing from this installation")

    @property
    def x_arguments(self) -> dict[str, str]:
        """The ``-x key=value`` arguments as a dict (a bare ``-x key`` maps to ``""``)."""
        result: dict[str, str] = {}
        for item in getattr(self.cmd_opts, "x", None) or []:
            key, _, value = str(item).partition("=")
            result[key.strip()] = value
        return result

    @property
    def database_url(self) -> str | None:
        """The resolved database URL (async driver; environment applied), or None."""
        if not self._has_option(self.config_ini_section, _URL_OPTION):
            return None
        return self._get(self.config_ini_section, _URL_OPTION) or None

    @property
    def masked_database_url(self) -> str | None:
        """:attr:`database_url` with the password replaced by ``***``."""
        url = self.database_url
        return mask_password(url) if url else None


def _escape(value: str) -> str:
    return value.replace("%", "%%")
