"""The pytest plugin's ``lint`` check: every revision, rendered for the test database's dialect."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from .api import lint
from .formats import render_text

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

    from ..config import Config

__all__ = ["lint_errors"]


async def lint_errors(config: Config, url: str | URL) -> str | None:
    """Lint the whole history for ``url``'s dialect; describe the errors, or None when there are none.

    Each revision is judged as if deployed on its own (a table it did not
    create is assumed to hold live data); nothing connects to ``url``.
    """
    report = await lint(config, start="base", url=url, each=True)
    if report.ok:
        return None
    details = render_text(report, explain=False).rstrip()
    first = report.errors[0]
    where = f"{os.path.basename(first.path)}:{first.line}" if first.path else first.revision
    return (
        f"lint found {len(report.errors)} error(s); first: {first.rule_id} {first.message} ({where})\n"
        f"{details}"
    )
