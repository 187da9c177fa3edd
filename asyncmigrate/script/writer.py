"""Write files from Mako templates (new revision files, ``init``'s templates).

Post-write hooks, which then format a new revision file, are
:mod:`asyncmigrate.script.write_hooks`'.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..exceptions import ScriptError

__all__ = ["render_template"]


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
