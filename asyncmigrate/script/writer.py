"""Write files from Mako templates and run post-write hooks on new revision files."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import shlex
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..exceptions import CommandError, ScriptError

__all__ = ["REVISION_SCRIPT_TOKEN", "PostWriteHook", "render_template", "run_post_write_hooks"]

#: In a hook's ``options``, replaced by the new file's path (prepended when absent).
REVISION_SCRIPT_TOKEN = "REVISION_SCRIPT_FILENAME"

#: One hook's settings: ``_hook_name``, ``type`` and the type's own keys.
PostWriteHook = Mapping[str, str]


def render_template(
    template: Path, destination: Path, output_encoding: str = "utf-8", **values: Any
) -> None:
    """Render the Mako ``template`` with ``values`` into ``destination``.

    :raises ScriptError: when the template is missing or fails to render.
    """
    from mako.exceptions import text_error_template
    from mako.template import Template

    if not template.is_file():
        raise ScriptError(f"Template {template} does not exist")
    try:
        text = Template(filename=str(template)).render_unicode(**values)
    except Exception as exc:
        detail = text_error_template().render().strip().splitlines()
        last = detail[-1] if detail else str(exc)
        raise ScriptError(f"Template {template} failed to render: {last}") from exc
    destination.write_bytes(text.encode(output_encoding))


def run_post_write_hooks(path: Path, hooks: Sequence[PostWriteHook]) -> None:
    """Run each configured post-write hook (``console_scripts``, ``exec``, ``module``) on ``path``.

    :raises CommandError: when a hook is misconfigured or exits non-zero.
    """
    for hook in hooks:
        name = hook.get("_hook_name", "?")
        kind = hook.get("type")
        if kind is None:
            raise CommandError(
                f"Key '{name}.type' (or 'type' in toml) is required for post write hook {name!r}"
            )
        if kind == "console_scripts":
            entrypoint = _required(hook, "entrypoint")
            matches = [
                ep
                for ep in importlib.metadata.entry_points(group="console_scripts")
                if ep.name == entrypoint
            ]
            if not matches:
                raise CommandError(f"Could not find entrypoint console_scripts.{entrypoint}")
            ep = matches[0]
            module, _, attr = ep.value.partition(":")
            command = [sys.executable, "-c", f"import {module}; {module}.{attr}()"]
        elif kind == "exec":
            executable = _required(hook, "executable")
            command = [shutil.which(executable) or executable]
        elif kind == "module":
            module_name = _required(hook, "module")
            if importlib.util.find_spec(module_name) is None:
                raise CommandError(f"Could not find module {module_name}")
            command = [sys.executable, "-m", module_name]
        else:
            raise CommandError(f"No formatter with name '{kind}' registered")
        options = hook.get("options", "")
        if REVISION_SCRIPT_TOKEN not in options:
            options = f"{REVISION_SCRIPT_TOKEN} {options}"
        args = [part.replace(REVISION_SCRIPT_TOKEN, str(path)) for part in shlex.split(options)]
        try:
            done = subprocess.run(
                [*command, *args], cwd=hook.get("cwd"), capture_output=True, text=True, check=False
            )
        except OSError as exc:
            raise CommandError(f"Post write hook {name!r} could not start: {exc}") from exc
        if done.returncode != 0:
            detail = (done.stderr or done.stdout).strip().splitlines()
            raise CommandError(
                f"Post write hook {name!r} exited with {done.returncode}"
                + (f": {detail[-1]}" if detail else "")
            )


def _required(hook: PostWriteHook, key: str) -> str:
    try:
        return hook[key]
    except KeyError as exc:
        name = hook.get("_hook_name", "?")
        raise CommandError(
            f"Key {name}.{key} is required for post write hook {name!r}"
        ) from exc
