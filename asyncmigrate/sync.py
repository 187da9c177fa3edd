"""Synchronous versions of :mod:`asyncmigrate.command`, for callers that have no event loop.

Code that called ``alembic.command.upgrade(cfg, "head")`` from synchronous
code -- a script, a Celery task, a Django-style management command -- keeps
its shape::

    from asyncmigrate import Config, sync

    sync.upgrade(Config("alembic.ini"), "head")

Each function takes the same arguments as its coroutine in
:mod:`asyncmigrate.command` and returns the same result. It runs its own
event loop for the duration of the call, so it cannot be called where a
loop is already running (inside ``async def`` code, a FastAPI lifespan,
pytest-asyncio): there it raises :class:`~asyncmigrate.exceptions.CommandError`
naming the coroutine to ``await`` instead. From a worker thread of an async
application it works, as that thread runs no loop.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

import anyio

from . import command
from .exceptions import CommandError

#: The same names as :mod:`asyncmigrate.command`.
__all__ = list(command.__all__)

P = ParamSpec("P")
R = TypeVar("R")


def _synchronous(coroutine_function: Callable[P, Awaitable[R]]) -> Callable[P, R]:
    """Wrap one command coroutine as a function that runs it on a loop of its own."""
    name = coroutine_function.__name__

    @functools.wraps(coroutine_function)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass  # no loop running in this thread: run one for this call
        else:
            raise CommandError(
                f"asyncmigrate.sync.{name}() cannot run inside a running event loop; "
                f"use 'await asyncmigrate.command.{name}(...)' there instead"
            )

        async def call() -> R:
            return await coroutine_function(*args, **kwargs)

        return anyio.run(call)

    run.__doc__ = (
        f"Run :func:`asyncmigrate.command.{name}` to completion on an event loop of its own "
        f"(synchronous callers only).\n\n{inspect.cleandoc(coroutine_function.__doc__ or '')}"
    )
    return run


branches = _synchronous(command.branches)
check = _synchronous(command.check)
current = _synchronous(command.current)
downgrade = _synchronous(command.downgrade)
edit = _synchronous(command.edit)
ensure_version = _synchronous(command.ensure_version)
heads = _synchronous(command.heads)
history = _synchronous(command.history)
init = _synchronous(command.init)
lint = _synchronous(command.lint)
list_templates = _synchronous(command.list_templates)
log = _synchronous(command.log)
merge = _synchronous(command.merge)
revision = _synchronous(command.revision)
show = _synchronous(command.show)
stamp = _synchronous(command.stamp)
upgrade = _synchronous(command.upgrade)
validate = _synchronous(command.validate)
