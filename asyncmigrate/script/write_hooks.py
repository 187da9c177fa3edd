"""Post-write hooks: programs or functions run on a revision file once it is written.

``[post_write_hooks]`` in alembic.ini names hooks by ``type``. The built-in
types run a console script (``console_scripts``), an executable (``exec``)
or a module (``module``, as ``python -m``) on the file; a project or a
package adds its own type with :func:`register`, as with Alembic's
``alembic.script.write_hooks.register`` (which asyncmigrate also honours:
types registered there are found too)::

    from asyncmigrate.script import write_hooks

    @write_hooks.register("spaces_to_tabs")
    def convert(filename, options):
        ...

A hook function is called as ``fn(filename, options)``, ``options`` being
the hook's settings (``_hook_name``, ``type`` and its own keys).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from ..compat import extensions
from ..exceptions import CommandError
from ..masking import get_logger

__all__ = [
    "REVISION_SCRIPT_TOKEN",
    "PostWriteHook",
    "WriteHooks",
    "console_scripts",
    "exec_",
    "hooks",
    "module",
    "register",
    "run_post_write_hooks",
]

log = get_logger("asyncmigrate.script")

#: In a hook's ``options``, replaced by the new file's path (prepended when absent).
REVISION_SCRIPT_TOKEN = "REVISION_SCRIPT_FILENAME"

#: One hook's settings: ``_hook_name``, ``type`` and the type's own keys.
PostWriteHook = Mapping[str, str]

HookFunction = Callable[[str, PostWriteHook], Any]
_H = TypeVar("_H", bound=HookFunction)


class WriteHooks:
    """Map hook type names to the functions that run them (the built-ins and registered ones)."""

    def __init__(self) -> None:
        self._by_name: dict[str, HookFunction] = {}

    def register(self, name: str) -> Callable[[_H], _H]:
        """Register the decorated ``fn(filename, options)`` as the hook type ``name``."""

        def decorate(fn: _H) -> _H:
            self._by_name[name] = fn
            return fn

        return decorate

    def function(self, name: str) -> HookFunction | None:
        """Return the function for hook type ``name`` (asyncmigrate's, else Alembic's), or None."""
        return self._by_name.get(name) or extensions.alembic_write_hook(name)


#: The hook types post-write hooks are looked up in.
hooks = WriteHooks()
register = hooks.register


def _run(
    name: str, command: Sequence[str], path: str, options: PostWriteHook, ignore_output: bool
) -> None:
    arguments = options.get("options", "")
    if REVISION_SCRIPT_TOKEN not in arguments:
        arguments = f"{REVISION_SCRIPT_TOKEN} {arguments}"
    args = [part.replace(REVISION_SCRIPT_TOKEN, path) for part in shlex.split(arguments)]
    try:
        done = subprocess.run(
            [*command, *args], cwd=options.get("cwd"), capture_output=True, text=True, check=False
        )
    except OSError as exc:
        raise CommandError(f"Post write hook {name!r} could not start: {exc}") from exc
    output = (done.stdout + done.stderr).strip()
    if output and not ignore_output:
        log.info("post write hook %r: %s", name, output)
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()
        raise CommandError(
            f"Post write hook {name!r} exited with {done.returncode}"
            + (f": {detail[-1]}" if detail else "")
        )


def _required(options: PostWriteHook, key: str) -> str:
    try:
        return options[key]
    except KeyError as exc:
        name = options.get("_hook_name", "?")
        raise CommandError(f"Key {name}.{key} is required for post write hook {name!r}") from exc


@register("console_scripts")
def console_scripts(
    path: str,
    options: PostWriteHook,
    ignore_output: bool = False,
    verify_version: tuple[int, ...] | None = None,
) -> None:
    """Run the console script ``entrypoint`` names (e.g. ``black``) on ``path``.

    The hook's output is logged (``asyncmigrate.script``, INFO) unless
    ``ignore_output``; ``verify_version`` is the lowest version of the
    script's distribution to accept.
    """
    entrypoint = _required(options, "entrypoint")
    matches = [
        ep for ep in importlib.metadata.entry_points(group="console_scripts") if ep.name == entrypoint
    ]
    if not matches:
        raise CommandError(f"Could not find entrypoint console_scripts.{entrypoint}")
    found = matches[0]
    if verify_version is not None and found.dist is not None:
        installed = tuple(int(p) for p in found.dist.version.split(".") if p.isdigit())
        if installed < verify_version:
            raise CommandError(
                f"{entrypoint} {found.dist.version} is older than the required "
                f"{'.'.join(map(str, verify_version))}"
            )
    module_name, _, attr = found.value.partition(":")
    command = [sys.executable, "-c", f"import {module_name}; {module_name}.{attr}()"]
    _run(options.get("_hook_name", "?"), command, path, options, ignore_output)


@register("exec")
def exec_(path: str, options: PostWriteHook, ignore_output: bool = False) -> None:
    """Run the program ``executable`` names (looked up on ``PATH``) on ``path``."""
    executable = _required(options, "executable")
    command = [shutil.which(executable) or executable]
    _run(options.get("_hook_name", "?"), command, path, options, ignore_output)


@register("module")
def module(path: str, options: PostWriteHook, ignore_output: bool = False) -> None:
    """Run the module ``module`` names as ``python -m`` on ``path``."""
    module_name = _required(options, "module")
    if importlib.util.find_spec(module_name) is None:
        raise CommandError(f"Could not find module {module_name}")
    _run(options.get("_hook_name", "?"), [sys.executable, "-m", module_name], path, options, ignore_output)


def run_post_write_hooks(path: Path, configured: Sequence[PostWriteHook]) -> None:
    """Run each configured post-write hook on ``path``, in order.

    :raises CommandError: when a hook is misconfigured or fails.
    """
    for options in configured:
        name = options.get("_hook_name", "?")
        kind = options.get("type")
        if kind is None:
            raise CommandError(
                f"Key '{name}.type' (or 'type' in toml) is required for post write hook {name!r}"
            )
        fn = hooks.function(kind)
        if fn is None:
            raise CommandError(f"No formatter with name '{kind}' registered")
        fn(str(path), options)
