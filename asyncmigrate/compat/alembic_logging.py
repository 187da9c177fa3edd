"""Let a project's ``[logger_alembic]`` configuration govern asyncmigrate's log lines.

Alembic projects configure the ``alembic`` logger (alembic.ini's
``[logger_alembic]``, level INFO, applied by env.py's ``fileConfig``) to see
"Running upgrade a -> b, message". asyncmigrate logs under ``asyncmigrate.*``;
:func:`follow_alembic_logger` makes the ``asyncmigrate`` logger take the
``alembic`` logger's level, handlers (through :class:`AlembicHandlers`) and
propagation -- unless the application configured the ``asyncmigrate``
logger itself, which then wins. It is called each time env.py's logging
set-up runs, so it follows the configuration in force for the run.
"""

from __future__ import annotations

import logging

__all__ = ["AlembicHandlers", "follow_alembic_logger"]

#: Set on the ``asyncmigrate`` logger while its configuration is the ``alembic`` logger's:
#: the state :func:`follow_alembic_logger` left it in.
_FOLLOWING = "_asyncmigrate_follows_alembic"


class AlembicHandlers(logging.Handler):
    """Hand records to the handlers of the ``alembic`` logger, as if it had logged them."""

    def __init__(self, alembic_logger: logging.Logger) -> None:
        super().__init__()
        self.alembic_logger = alembic_logger

    def emit(self, record: logging.LogRecord) -> None:
        """Pass ``record`` to each of the ``alembic`` logger's handlers whose level admits it."""
        if self.alembic_logger.disabled:
            return
        for handler in self.alembic_logger.handlers:
            if record.levelno >= handler.level:
                handler.handle(record)


def follow_alembic_logger() -> None:
    """Give the ``asyncmigrate`` logger the ``alembic`` logger's configuration (see the module doc).

    The application's own configuration of the ``asyncmigrate`` logger wins,
    whether it came before the first call or between two (env.py's
    ``fileConfig`` with a ``[logger_asyncmigrate]`` section): the logger is
    followed only while it is as this function last left it.
    """
    ours = logging.getLogger("asyncmigrate")
    theirs = logging.getLogger("alembic")
    left: tuple[object, ...] | None = getattr(ours, _FOLLOWING, None)
    if left is None and (ours.level != logging.NOTSET or ours.handlers or not ours.propagate):
        return  # the application configured asyncmigrate's logging: leave it alone
    if left is not None and _state(ours) != left:
        setattr(ours, _FOLLOWING, None)  # configured since: the application's now
        return
    for handler in [h for h in ours.handlers if isinstance(h, AlembicHandlers)]:
        ours.removeHandler(handler)
    ours.setLevel(theirs.level)
    if theirs.handlers:
        ours.addHandler(AlembicHandlers(theirs))
    ours.propagate = theirs.propagate
    setattr(ours, _FOLLOWING, _state(ours))


def _state(logger: logging.Logger) -> tuple[object, ...]:
    return (logger.level, logger.propagate, tuple(logger.handlers))
