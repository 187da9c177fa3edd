"""What ``alembic.config`` gives revision files, env.py and scripts under asyncmigrate.

:class:`~asyncmigrate.config.Config` is asyncmigrate's own; :func:`main` and
:class:`CommandLine` run asyncmigrate's command line as Alembic's run
Alembic's, for scripts that call ``alembic.config.main(argv=[...])``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, TypedDict

from ..config import Config

__all__ = ["CommandFunction", "CommandLine", "Config", "MessagingOptions", "main"]


class MessagingOptions(TypedDict, total=False):
    """Options about messages (Alembic's ``quiet``), as Alembic types them."""

    quiet: bool


class CommandFunction(Protocol):
    """A command function: ``fn(config, *args, **kwargs)``, as in :mod:`asyncmigrate.command`."""

    def __call__(self, config: Config, *args: Any, **kwargs: Any) -> Any: ...


class CommandLine:
    """Run asyncmigrate's command line from Python, as ``alembic.config.CommandLine`` does Alembic's."""

    def __init__(self, prog: str | None = None) -> None:
        self.prog = prog or "asyncmigrate"

    def main(self, argv: Sequence[str] | None = None) -> None:
        """Run the command ``argv`` names (``["-c", "alembic.ini", "upgrade", "head"]``).

        Returns on success; a failing command prints its one-line error and
        raises :class:`SystemExit` with a non-zero code, as Alembic's does.
        """
        from ..cli import cli

        try:
            cli.main(args=list(argv) if argv is not None else None, prog_name=self.prog)
        except SystemExit as exc:
            if exc.code not in (0, None):
                raise


def main(argv: Sequence[str] | None = None, prog: str | None = None, **kwargs: Any) -> None:
    """Run the command line with ``argv`` (``alembic.config.main``); see :meth:`CommandLine.main`."""
    CommandLine(prog=prog).main(argv=argv)
