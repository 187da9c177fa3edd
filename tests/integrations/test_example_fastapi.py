"""examples/fastapi's own tests (real uvicorn workers on PostgreSQL), run with the suite."""

from __future__ import annotations

import importlib.util
from pathlib import Path

_PATH = Path(__file__).resolve().parents[2] / "examples" / "fastapi" / "test_app.py"
_spec = importlib.util.spec_from_file_location("examples_fastapi_test_app", _PATH)
assert _spec is not None
assert _spec.loader is not None
_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_module)

test_many_workers_and_replicas_start_on_one_fresh_database = (
    _module.test_many_workers_and_replicas_start_on_one_fresh_database
)
test_a_failing_migration_stops_start_up_with_one_clear_line = (
    _module.test_a_failing_migration_stops_start_up_with_one_clear_line
)
