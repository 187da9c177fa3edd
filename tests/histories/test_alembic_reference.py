"""Alembic's reference runs of the real-world histories (see README.md beside this file).

For each history and backend: fetch the pinned artifacts (cached outside git), run the
history with Alembic in a subprocess (up, down, up again, one revision a step, snapshot
after each step), and check the recording against the catalog: the steps Alembic
fails on, the version rows, downgrade reversibility, one-shot vs stepwise. The
recording is cached by fingerprint for ``test_differential`` (asyncmigrate vs Alembic).

Which histories run (:mod:`tests.histories.selection`): ``ASYNCMIGRATE_HISTORIES`` unset
or ``default`` runs the ``default`` tier (ckan, phoenix, optuna, invenio: one history per
shape), ``all`` runs every history, ``0`` none. Other skips: the package index
unreachable (and nothing cached); a database server not reachable (a failure under
``ASYNCMIGRATE_REQUIRE_BACKENDS=1``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from .. import backends
from . import alembic_side, catalog, fetch, headers, selection
from .schema_snapshot import diff, snapshot

pytestmark = pytest.mark.histories

CASES = [(h.name, b) for h in catalog.HISTORIES for b in h.backends]


def _prepare(name: str) -> fetch.PreparedHistory:
    return selection.prepare_or_skip(name)


@pytest.mark.parametrize("name", catalog.names())
def test_catalog_matches_artifacts(name: str) -> None:
    history = catalog.get(name)
    prepared = _prepare(name)
    stats = headers.graph_stats(headers.read_headers(prepared.version_locations))
    assert stats["count"] == history.revision_count
    assert stats["heads"] == sorted(history.heads)
    assert stats["bases"] == sorted(history.bases)
    assert stats["missing_down_revisions"] == []
    shapes = set(history.shapes)
    assert ("annotated_ids" in shapes) == (stats["annotated"] > 0)
    assert ("non_hex_ids" in shapes) == bool(stats["non_hex_ids"])
    assert ("merges" in shapes) == bool(stats["merges"])
    assert ("branch_labels" in shapes) == bool(stats["branch_labels"])
    assert ("depends_on" in shapes) == bool(stats["depends_on"])
    assert ("multiple_heads" in shapes) == (len(stats["heads"]) > 1)
    assert ("linear" in shapes) == (
        len(stats["heads"]) == 1 and len(stats["bases"]) == 1 and not stats["merges"]
    )
    assert ("long" in shapes) == (stats["count"] >= 100)
    assert (prepared.script_location / "env.py").is_file()
    assert (prepared.script_location / "script.py.mako").is_file()


@pytest.mark.timeout(900)
@pytest.mark.parametrize(("name", "backend"), CASES, ids=[f"{n}-{b}" for n, b in CASES])
def test_alembic_reference(name: str, backend: str) -> None:
    """Alembic's run of the history fails exactly where the catalog says, and nowhere else.

    The recording is cached by :func:`alembic_side.fingerprint` (``test_differential``
    reuses it); ``ASYNCMIGRATE_HISTORIES_FRESH=1`` records again.
    """
    pytest.importorskip("alembic")
    history = catalog.get(name)
    _prepare(name)
    backends.require(backend)
    try:
        recording = alembic_side.reference(name, backend)
    except fetch.HistoryUnavailable as exc:
        pytest.skip(str(exc))
    problems = alembic_side.check_reference(history, recording)
    assert not problems, "\n".join(problems)


# ------------------------------------------------------------ no network needed


def test_snapshot_is_normalized_and_comparable(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'a.db'}")
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)"))
            conn.execute(sa.text("INSERT INTO alembic_version VALUES ('b'), ('a')"))
            conn.execute(sa.text(
                "CREATE TABLE parent (id INTEGER PRIMARY KEY, name VARCHAR(20) DEFAULT 'x' NOT NULL,"
                " CONSTRAINT uq_name UNIQUE (name), CONSTRAINT ck_len CHECK (length(name) > 0))"
            ))
            conn.execute(sa.text(
                "CREATE TABLE child (id INTEGER PRIMARY KEY, parent_id INTEGER,"
                " CONSTRAINT fk_child_parent FOREIGN KEY (parent_id) REFERENCES parent (id)"
                " ON DELETE CASCADE)"
            ))
            conn.execute(sa.text("CREATE INDEX ix_child_parent ON child (parent_id)"))
            conn.execute(sa.text("INSERT INTO parent (name) VALUES ('p')"))
        with engine.connect() as conn:
            snap = snapshot(conn)
        assert snap["version"] == ["a", "b"]
        parent, child = snap["tables"]["parent"], snap["tables"]["child"]
        assert [c["name"] for c in parent["columns"]] == ["id", "name"]
        assert parent["columns"][1] == {
            "name": "name", "type": "VARCHAR(20)", "nullable": False, "default": "'x'",
        }
        assert parent["uniques"] == [{"name": "uq_name", "columns": ["name"]}]
        assert parent["checks"] == [{"name": "ck_len", "sqltext": "length(name) > 0"}]
        assert parent["rows"] == 1
        assert child["indexes"] == [{"name": "ix_child_parent", "columns": ["parent_id"], "unique": False}]
        assert child["foreign_keys"] == [{
            "name": "fk_child_parent", "columns": ["parent_id"], "referred_table": "parent",
            "referred_columns": ["id"], "options": {"ondelete": "CASCADE"},
        }]
        json.dumps(snap)  # JSON-able
        with engine.begin() as conn:
            conn.execute(sa.text("DROP INDEX ix_child_parent"))
        with engine.connect() as conn:
            other = snapshot(conn)
        assert diff(snap, other) == [
            "/tables/child/indexes: [{'name': 'ix_child_parent', 'columns': ['parent_id'], "
            "'unique': False}] != []"
        ]
    finally:
        engine.dispose()


def _write_revision(directory: Path, rev: str, down: object, **extra: object) -> None:
    lines = [
        "from alembic import op",
        "import sqlalchemy as sa",
        f"revision = {rev!r}",
        f"down_revision = {down!r}",
        *(f"{key} = {value!r}" for key, value in extra.items()),
        "",
        "def upgrade():",
        f"    op.create_table('t_{rev}', sa.Column('id', sa.Integer, primary_key=True))",
        "",
        "def downgrade():",
        f"    op.drop_table('t_{rev}')",
        "",
    ]
    (directory / f"{rev}_r.py").write_text("\n".join(lines))


def test_plan_and_recording_on_a_branchy_history(tmp_path: Path) -> None:
    """Plan and run a small local history with a branch point, a merge and depends_on."""
    pytest.importorskip("alembic")
    versions = tmp_path / "versions"
    versions.mkdir()
    _write_revision(versions, "a", None)
    _write_revision(versions, "b", "a")
    _write_revision(versions, "c", "a")
    _write_revision(versions, "d", ("b", "c"))
    _write_revision(versions, "x", None, branch_labels=("other",), depends_on="b")
    history = catalog.History(
        name="local", artifacts=(), revision_count=5, heads=("d", "x"), bases=("a", "x"),
        shapes=(), backends=("sqlite",), notes="",
    )
    script = tmp_path / "script"
    script.mkdir()
    (script / "env.py").write_text(fetch._ENV_PY)
    (script / "history.json").write_text(json.dumps({"configure": {}}))
    prepared = fetch.PreparedHistory(
        history=history, script_location=script, version_locations=(versions,),
    )
    with fetch.activated(prepared):
        steps = alembic_side.plan(prepared)
    ups = [t for _, t in steps["up"]]
    assert sorted(ups) == ["a", "b", "c", "d", "x"]
    assert ups.index("b") < ups.index("x")
    assert ups.index("c") < ups.index("d")
    downs = [t for _, t in steps["down"]]
    assert len(downs) == 5
    assert downs[ups[::-1].index("d")] in ("b", "c")  # a merge steps down to a parent
    recording: dict[str, object] = {"history": "local", "backend": "sqlite", "failures": [],
                                    "failure": None, "plan": steps}
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    engine = sa.create_engine(url)
    try:
        recording["initial"] = alembic_side._take(engine, history)
        with fetch.activated(prepared):
            alembic_side._run_stepwise(prepared, engine, steps, recording, snapshots=True)
    finally:
        engine.dispose()
    assert recording["failures"] == []
    assert alembic_side.check_reference(history, recording) == []
    up_steps = [s for s in recording["steps"] if s["phase"] == "up"]  # type: ignore[union-attr]
    assert [len(s["snapshot"]["tables"]) - 1 for s in up_steps] == [1, 2, 3, 4, 5]
    assert alembic_side.compare(recording, recording) == []


def test_same_error_across_drivers() -> None:
    pg2 = {"error_type": "InternalError", "code": "2BP01"}
    apg = {"error_type": "ProgrammingError", "code": "2BP01"}
    other = {"error_type": "ProgrammingError", "code": "42P07"}
    assert alembic_side.same_error(pg2, apg)
    assert not alembic_side.same_error(pg2, other)
    assert alembic_side.same_error({"error_type": "OperationalError", "code": None}, other)
    assert not alembic_side.same_error({"error_type": "TypeError"}, {"error_type": "ValueError"})
    assert alembic_side.same_error({"error_type": "TypeError"}, {"error_type": "TypeError"})
