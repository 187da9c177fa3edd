"""OpenTelemetry spans: one per command and per step, with ids, durations, outcomes, masked URLs."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import URL

from asyncmigrate import command
from asyncmigrate.exceptions import MigrationError

from .project import Rev, make_project

pytest.importorskip("opentelemetry.sdk.trace")

from opentelemetry import trace  # noqa: E402
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402
from opentelemetry.trace import StatusCode  # noqa: E402

REVS = [
    Rev("a1", None, "op.execute('CREATE TABLE t1 (id INTEGER PRIMARY KEY)')", "op.execute('DROP TABLE t1')"),
    Rev("b2", "a1", "op.execute('CREATE TABLE t2 (id INTEGER PRIMARY KEY)')", "op.execute('DROP TABLE t2')"),
    Rev("c3", "b2", "op.execute('SELECT * FROM missing')"),
]

_EXPORTER = InMemorySpanExporter()


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """The spans finished during the test (one provider for the process: OpenTelemetry allows one)."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
        trace.set_tracer_provider(provider)
    _EXPORTER.clear()
    yield _EXPORTER
    _EXPORTER.clear()


def named(found: tuple[ReadableSpan, ...], prefix: str) -> list[ReadableSpan]:
    return [s for s in found if s.name.startswith(prefix)]


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


async def test_command_and_step_spans(tmp_path: Path, sqlite_or_pg_db: URL, spans: InMemorySpanExporter) -> None:
    url = sqlite_or_pg_db
    if url.get_backend_name() == "postgresql":  # trust authentication: the password is never asked for
        url = url.set(password="s3cret")
    config = make_project(tmp_path, REVS, url=url)
    events: list[Any] = []
    await command.upgrade(config, "b2", on_step=events.append)

    found = spans.get_finished_spans()
    [cmd] = named(found, "asyncmigrate upgrade")
    steps = named(found, "asyncmigrate step")
    assert [s.name for s in steps] == ["asyncmigrate step upgrade a1", "asyncmigrate step upgrade b2"]
    a = attrs(cmd)
    assert a["asyncmigrate.command"] == "upgrade" and a["asyncmigrate.target"] == "b2"
    assert a["asyncmigrate.outcome"] == "ok" and a["asyncmigrate.steps"] == 2
    assert a["asyncmigrate.to_heads"] == ("b2",) and a["asyncmigrate.duration"] > 0
    assert a["db.system.name"] == url.get_backend_name()
    assert "s3cret" not in a["asyncmigrate.url"]
    if url.password:
        assert "***" in a["asyncmigrate.url"]
    for step, rev in zip(steps, ("a1", "b2"), strict=True):
        assert step.parent is not None and step.parent.span_id == cmd.context.span_id
        s = attrs(step)
        assert s["asyncmigrate.revision"] == rev and s["asyncmigrate.direction"] == "upgrade"
        assert s["asyncmigrate.outcome"] == "committed" and s["asyncmigrate.duration"] >= 0
    assert [e.kind for e in events if e.revision == "a1"][-1] == "committed"  # the handler still ran

    spans.clear()
    with pytest.raises(MigrationError):
        await command.upgrade(config, "head")
    found = spans.get_finished_spans()
    [cmd] = named(found, "asyncmigrate upgrade")
    assert cmd.status.status_code == StatusCode.ERROR and attrs(cmd)["asyncmigrate.outcome"] == "error"
    [step] = named(found, "asyncmigrate step")
    assert attrs(step)["asyncmigrate.outcome"] == "failed"
    assert step.status.status_code == StatusCode.ERROR and "missing" in (step.status.description or "")


async def test_stamp_and_downgrade_spans(tmp_path: Path, sqlite_db: URL, spans: InMemorySpanExporter) -> None:
    config = make_project(tmp_path, [Rev("a1", None), Rev("b2", "a1")], url=sqlite_db)
    await command.stamp(config, "b2")
    await command.downgrade(config, "a1")
    found = spans.get_finished_spans()
    assert [s.name for s in found] == [
        "asyncmigrate step upgrade b2", "asyncmigrate stamp",
        "asyncmigrate step downgrade b2", "asyncmigrate downgrade",
    ]
    assert attrs(found[0])["asyncmigrate.stamp"] is True


def test_no_opentelemetry_import_without_it(tmp_path: Path) -> None:
    """A process that does not use OpenTelemetry never imports it through asyncmigrate."""
    make_project(tmp_path, REVS[:2], url=f"sqlite+aiosqlite:///{tmp_path / 'app.db'}")
    script = textwrap.dedent(f"""
        import sys, anyio
        from asyncmigrate import Config, command
        anyio.run(command.upgrade, Config({str(tmp_path / 'alembic.ini')!r}), "head")
        print(sorted(m for m in sys.modules if m.startswith("opentelemetry")))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
