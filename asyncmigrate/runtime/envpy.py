"""Run env.py inside the caller's event loop.

env.py is ordinary module code. It is executed (compiled once per file
version) in a greenlet of the running loop, with ``alembic`` imports routed
to asyncmigrate and ``context`` bound to the command's environment for this
task only. Inside, database calls over async drivers -- whether env.py opens
an ``AsyncEngine`` and uses ``run_sync``, or, as Alembic's ``generic``
template does, a plain ``Engine`` on the (async-mapped) URL -- switch back
to the loop instead of blocking it. Alembic's ``async`` template calls
``asyncio.run()``; in env.py that name awaits in the running loop instead.
Its ``logging.config.fileConfig`` call is applied once per file and process,
so migrating many tenants does not reconfigure logging each time, and it
leaves the loggers that already exist alone (unless env.py passes
``disable_existing_loggers=True`` itself): migrating inside an application's
lifespan or a test session must not silence the host's own loggers.
"""

from __future__ import annotations

import asyncio
import logging.config
import os
import threading
import types
from pathlib import Path
from typing import Any

from .._greenlet import await_in_loop, run_sync_in_loop
from ..compat.alembic_logging import follow_alembic_logger
from ..config import Config
from ..exceptions import ScriptError
from ..masking import SQL_ECHO_LOGGER, get_logger
from ..script.directory import resolve_location
from ..script.loader import routed_builtins
from .connecting import EarlyConnection
from .environment import EnvironmentContext

__all__ = ["connect_early", "run_env"]

_CODE_CACHE: dict[tuple[str, int, int], tuple[types.CodeType, bool]] = {}
_CACHE_LOCK = threading.Lock()
_LOGGING_APPLIED: set[tuple[str, int]] = set()


def _asyncio_run(main: Any, *, debug: bool | None = None, **_: Any) -> Any:
    """``asyncio.run`` as env.py sees it: await ``main`` in the already running loop."""
    return await_in_loop(main)


class _EnvAsyncio(types.ModuleType):
    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio, name)


_ENV_ASYNCIO = _EnvAsyncio("asyncio", asyncio.__doc__)
_ENV_ASYNCIO.run = _asyncio_run  # type: ignore[attr-defined]


def _file_config(fname: Any, defaults: Any = None, disable_existing_loggers: bool = False,
                 encoding: str | None = None) -> None:
    """``logging.config.fileConfig`` applied once per file version per process.

    Existing loggers stay enabled by default (see the module docstring).
    """
    try:
        stat = os.stat(fname)
        key = (os.path.abspath(fname), stat.st_mtime_ns)
    except (TypeError, OSError):
        key = None
    if key is None or key not in _LOGGING_APPLIED:
        logging.config.fileConfig(
            fname, defaults, disable_existing_loggers=disable_existing_loggers, encoding=encoding
        )
        if key is not None:
            _LOGGING_APPLIED.add(key)
    follow_alembic_logger()  # [logger_alembic] governs asyncmigrate's lines too
    get_logger(SQL_ECHO_LOGGER)  # [logger_sqlalchemy] at INFO echoes SQL: masked too


class _EnvLoggingConfig(types.ModuleType):
    def __getattr__(self, name: str) -> Any:
        return getattr(logging.config, name)


_ENV_LOGGING_CONFIG = _EnvLoggingConfig("logging.config", logging.config.__doc__)
_ENV_LOGGING_CONFIG.fileConfig = _file_config  # type: ignore[attr-defined]

_BASE = routed_builtins()


def _env_import(name: str, globals: Any = None, locals: Any = None, fromlist: Any = (),
                level: int = 0) -> Any:
    if level == 0:
        if name == "asyncio":
            return _ENV_ASYNCIO
        if name == "logging.config" and fromlist:
            return _ENV_LOGGING_CONFIG
    return _BASE["__import__"](name, globals, locals, fromlist, level)


_ENV_BUILTINS: dict[str, Any] = {**_BASE, "__import__": _env_import}


def _compile(path: Path) -> tuple[types.CodeType, bool]:
    """env.py's code, and whether it opens its connection with ``context.connect()``."""
    try:
        stat = path.stat()
    except FileNotFoundError as exc:
        raise ScriptError(f"No env.py found at {path}") from exc
    key = (str(path), stat.st_mtime_ns, stat.st_size)
    with _CACHE_LOCK:
        entry = _CODE_CACHE.get(key)
    if entry is None:
        source = path.read_bytes()
        try:
            code = compile(source, str(path), "exec", dont_inherit=True)
        except SyntaxError as exc:
            raise ScriptError(f"{path}: invalid Python syntax at line {exc.lineno}: {exc.msg}") from exc
        entry = (code, b"context.connect(" in source)
        with _CACHE_LOCK:
            _CODE_CACHE[key] = entry
    return entry


def _execute(code: types.CodeType, path: Path) -> None:
    namespace: dict[str, Any] = {
        "__name__": "env_py",
        "__file__": str(path),
        "__builtins__": _ENV_BUILTINS,
    }
    try:
        exec(code, namespace)
    except ImportError as exc:  # a module env.py (or one it imports) needs is missing or broken
        line = _env_line(exc, code)
        where = f"{path}" + (f" line {line}" if line is not None else "")
        raise ScriptError(f"{where}: {type(exc).__name__}: {exc}") from exc


def _env_line(exc: BaseException, code: types.CodeType) -> int | None:
    """The line of env.py that was running when ``exc`` was raised (its import statement)."""
    line = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code is code:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def connect_early(config: Config, opts: dict[str, Any]) -> EarlyConnection | None:
    """Start opening a command's own connection before anything else, if env.py will want it.

    For a command given a database URL (PostgreSQL over asyncpg) whose
    env.py opens its connection with ``context.connect()``: the server's
    connection set-up (a new backend process, authentication) then overlaps
    loading the script directory and running env.py. The engine
    ``context.connect()`` creates takes the connection only if it would open
    the very same one (same driver arguments); otherwise it is closed unused.
    None where this does not apply.
    """
    url = opts.get("url")
    if (
        not url
        or opts.get("as_sql")
        or opts.get("connection") is not None
        or opts.get("engine") is not None
        or any(k in config.attributes for k in ("connection", "engine"))
    ):
        return None
    try:
        location = config.get_alembic_option("script_location")
        if not location or not _compile(resolve_location(str(location)) / "env.py")[1]:
            return None
    except Exception:  # a missing or broken env.py is reported when the command runs it
        return None
    return EarlyConnection.start(
        str(url),
        opts.get("version_table", "alembic_version"),
        opts.get("version_table_schema") or opts.get("tenant_schema"),
    )


async def run_env(environment: EnvironmentContext) -> None:
    """Execute the script directory's env.py for ``environment`` in the running loop."""
    path = Path(environment.script.env_py_location)
    code, _ = _compile(path)
    follow_alembic_logger()
    with environment:
        try:
            await run_sync_in_loop(_execute, code, path)
        finally:
            await environment.close_early_connection()
