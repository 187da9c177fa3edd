"""OpenTelemetry spans for commands, tenants and steps -- when the process already uses OpenTelemetry.

asyncmigrate never imports OpenTelemetry itself: it makes spans only when
``opentelemetry.trace`` is already imported (your application set up a
tracer provider, or the command line runs under ``opentelemetry-instrument``).
Without it, each command pays one dictionary look-up, and nothing else.

Spans (all named ``asyncmigrate ...``):

* ``asyncmigrate fanout <operation>`` -- one across tenants (the command line's fan-out);
* ``asyncmigrate <command>`` -- one per command on one database (in a
  fan-out, one per tenant: ``asyncmigrate.tenant`` names it);
* ``asyncmigrate step <direction> <revision>`` -- one per migration step,
  a child of its command's span.

Attributes use the ``asyncmigrate.`` prefix, plus ``db.system.name``:
revision ids, directions, durations (seconds), outcomes (``ok``/``error``
for commands; ``committed``/``failed``/``rolled_back`` for steps) and the
database URL with its password masked. A failing span's status is ERROR,
with the one-line error as its description.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from .events import StepEvent
from .urls import mask_password

__all__ = ["CommandSpan", "StepSpans", "command_span", "span", "tracer"]

_PREFIX = "asyncmigrate."


def tracer() -> Any | None:
    """The asyncmigrate tracer, or None when the process does not use OpenTelemetry."""
    trace = sys.modules.get("opentelemetry.trace")
    if trace is None:
        return None
    from . import _version

    return trace.get_tracer("asyncmigrate", _version())


def _attributes(values: Mapping[str, Any]) -> dict[str, Any]:
    """Span attributes from ``values``: prefixed, Nones left out, sequences as lists of strings."""
    found: dict[str, Any] = {}
    for key, value in values.items():
        if value is None:
            continue
        if isinstance(value, (tuple, list, set, frozenset)):
            value = [str(v) for v in value]
        elif not isinstance(value, (str, bool, int, float)):
            value = str(value)
        found[key if key.startswith(("db.", _PREFIX)) else _PREFIX + key] = value
    return found


def _fail(span: Any, error: BaseException | str) -> None:
    from opentelemetry.trace import Status, StatusCode

    text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    line = text.strip().splitlines()[0] if text.strip() else type(error).__name__
    span.set_status(Status(StatusCode.ERROR, line[:500]))
    if isinstance(error, BaseException):
        span.record_exception(error)


class StepSpans:
    """Turn a run's :class:`~asyncmigrate.events.StepEvent` stream into one span per step.

    A step's span starts with its ``started`` event and ends when its
    outcome is known: ``committed``, ``failed`` or ``rolled_back`` (or
    ``retried``, when its transaction starts over); a ``retrying`` event
    becomes a span event.
    Events are passed on to ``forward`` unchanged.
    """

    def __init__(self, tracer: Any, forward: Callable[[StepEvent], None] | None) -> None:
        self._tracer = tracer
        self._forward = forward
        self._open: dict[str, Any] = {}

    def __call__(self, event: StepEvent) -> None:
        """Handle one event (an ``on_step`` handler)."""
        try:
            self._observe(event)
        finally:
            if self._forward is not None:
                self._forward(event)

    def _observe(self, event: StepEvent) -> None:
        kind = str(event.kind)
        if kind == "started":
            retried = self._open.pop(event.description, None)
            if retried is not None:  # its transaction is tried again from the start
                retried.set_attribute(_PREFIX + "outcome", "retried")
                retried.end()
            self._open[event.description] = self._tracer.start_span(
                f"asyncmigrate step {event.direction} {event.revision or 'base'}",
                attributes=_attributes({
                    "revision": event.revision, "direction": event.direction,
                    "stamp": event.is_stamp, "step": event.description, "target": event.target,
                }),
            )
            return
        span = self._open.get(event.description)
        if span is None:
            return
        if event.duration is not None:
            span.set_attribute(_PREFIX + "duration", event.duration)
        if kind == "retrying":
            span.add_event("retrying", {_PREFIX + "error": event.error or ""})
        if kind in ("committed", "failed", "rolled_back", "in_doubt"):
            del self._open[event.description]
            span.set_attribute(_PREFIX + "outcome", kind)
            if kind == "failed":
                _fail(span, event.error or "failed")
            span.end()

    def close(self) -> None:
        """End the spans whose outcome never came (the run was interrupted)."""
        open_, self._open = self._open, {}
        for span in open_.values():
            span.set_attribute(_PREFIX + "outcome", "interrupted")
            span.end()


class CommandSpan:
    """The span of one command on one database (a no-op without a tracer)."""

    def __init__(self, span: Any, tracer: Any) -> None:
        self._span = span
        self._tracer = tracer
        self._steps: StepSpans | None = None

    def on_step(self, handler: Callable[[StepEvent], None] | None) -> Callable[[StepEvent], None] | None:
        """``handler`` wrapped so that each step also gets a span (``handler`` itself without a tracer)."""
        if self._span is None:
            return handler
        self._steps = StepSpans(self._tracer, handler)
        return self._steps

    def set(self, **values: Any) -> None:
        """Add attributes (prefixed with ``asyncmigrate.``) to the span."""
        if self._span is not None:
            self._span.set_attributes(_attributes(values))

    def set_url(self, url: Any) -> None:
        """Record the database: its URL with the password masked, and its system (``db.system.name``)."""
        if self._span is None or url is None:
            return
        attributes: dict[str, Any] = {_PREFIX + "url": mask_password(url)}
        try:
            from sqlalchemy.engine import make_url

            attributes["db.system.name"] = make_url(str(url)).get_backend_name()
        except Exception:
            pass
        self._span.set_attributes(attributes)

    def _close_steps(self) -> None:
        if self._steps is not None:
            self._steps.close()


@contextmanager
def command_span(name: str, url: Any = None, tenant: Any = None, **values: Any) -> Iterator[CommandSpan]:
    """Run the block inside the span ``asyncmigrate <name>`` (current for the block's steps).

    :param url: the database URL (recorded with its password masked).
    :param tenant: the tenant being migrated (its name and schema are recorded).
    """
    current = tracer()
    if current is None:
        yield CommandSpan(None, None)
        return
    attributes = dict(values, command=name)
    if tenant is not None:
        attributes.update(tenant=getattr(tenant, "name", str(tenant)), schema=getattr(tenant, "schema", None))
    started = time.perf_counter()
    with current.start_as_current_span(
        f"asyncmigrate {name}", attributes=_attributes(attributes),
        record_exception=False, set_status_on_exception=False,
    ) as span:
        handle = CommandSpan(span, current)
        handle.set_url(url)
        try:
            yield handle
        except BaseException as exc:
            span.set_attribute(_PREFIX + "outcome", "error")
            _fail(span, exc)
            raise
        else:
            span.set_attribute(_PREFIX + "outcome", "ok")
        finally:
            handle._close_steps()
            span.set_attribute(_PREFIX + "duration", time.perf_counter() - started)


@contextmanager
def span(name: str, **values: Any) -> Iterator[CommandSpan]:
    """Run the block inside a span ``asyncmigrate <name>`` (e.g. a fan-out across tenants)."""
    with command_span(name, **values) as handle:
        yield handle
