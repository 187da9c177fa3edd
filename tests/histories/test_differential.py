"""asyncmigrate against Alembic on real-world histories, step by step (see README.md beside this file).

For each history and backend, two runs of the same plan (up one revision a step to
the heads, down to base, up again; then one-shot ``upgrade heads`` / ``downgrade base``
/ ``upgrade heads``), each in its own process and on its own fresh database:

* Alembic's (:func:`alembic_side.reference`, cached by fingerprint: the
  ``test_alembic_reference`` run of the same session is reused);
* asyncmigrate's (``python -m tests.histories.asyncmigrate_side run``), started at the
  same time.

The test asserts: Alembic's run is what the catalog says (``check_reference``);
asyncmigrate computes the same plan; after every step both databases hold the same
version rows and the same schema snapshot, and each step succeeds or fails in both
(with the same database error code or exception class); where Alembic fails,
asyncmigrate raises an ``asyncmigrate.exceptions`` error of one line naming the
revision and carrying the catalogued message. The only accepted differences are the
catalog's ``asyncmigrate_deviations`` (each of which must occur).

Selection (``ASYNCMIGRATE_HISTORIES``) and skips as in ``test_alembic_reference``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from .. import backends
from . import alembic_side, asyncmigrate_side, catalog, fetch, selection

pytestmark = pytest.mark.histories

REPO = Path(__file__).resolve().parents[2]
CASES = [(h.name, b) for h in catalog.HISTORIES for b in h.backends]
#: Seconds one side may take (the longest, zenml or ckan stepwise with snapshots, takes
#: a few minutes on a loaded two-core machine).
SIDE_TIMEOUT = 1500


def _start_asyncmigrate(name: str, backend: str, out: Path) -> subprocess.Popen[str]:
    pythonpath = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    return subprocess.Popen(
        [sys.executable, "-m", "tests.histories.asyncmigrate_side", "run", name, backend,
         "--out", str(out)],
        cwd=REPO, env={**os.environ, "PYTHONPATH": pythonpath},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


@pytest.mark.timeout(SIDE_TIMEOUT + 300)
@pytest.mark.parametrize(("name", "backend"), CASES, ids=[f"{n}-{b}" for n, b in CASES])
def test_differential(name: str, backend: str, tmp_path: Path) -> None:
    pytest.importorskip("alembic")
    history = catalog.get(name)
    selection.prepare_or_skip(name)
    backends.require(backend)
    out = tmp_path / "asyncmigrate.json"
    proc = _start_asyncmigrate(name, backend, out)
    try:
        try:
            reference = alembic_side.reference(name, backend)
        except fetch.HistoryUnavailable as exc:
            pytest.skip(str(exc))
        stdout, stderr = proc.communicate(timeout=SIDE_TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    if proc.returncode == 3:
        pytest.skip(stderr.strip().removeprefix("SKIP: "))
    assert proc.returncode == 0, (stdout + stderr)[-6000:]
    mine = json.loads(out.read_text())
    with contextlib.suppress(OSError):  # for `python -m tests.histories.asyncmigrate_side summary`
        shutil.copyfile(out, asyncmigrate_side._default_out(name, backend))

    problems = [f"Alembic's run: {p}" for p in alembic_side.check_reference(history, reference)]
    problems += asyncmigrate_side.compare(history, reference, mine)
    problems += asyncmigrate_side.check_errors(mine)
    problems += asyncmigrate_side.check_expected_messages(history, mine)
    print(_timings(reference, mine))
    assert not problems, f"{len(problems)} differences:\n" + "\n".join(p[:600] for p in problems[:60])


def _timings(reference: Mapping[str, Any], mine: Mapping[str, Any]) -> str:
    """One line per tool: seconds per phase and one-shot command."""
    lines = []
    for label, rec in (("alembic", reference), ("asyncmigrate", mine)):
        phases, oneshot = rec.get("phases") or {}, rec.get("oneshot") or {}
        parts = [f"{p}={phases[p]['seconds']:.2f}s/{phases[p]['steps']}"
                 for p in ("up", "down", "up2") if p in phases]
        parts += [f"{k}={oneshot[k]['seconds']:.2f}s" for k, _c, _t in asyncmigrate_side.ONESHOT
                  if k in oneshot]
        lines.append(f"{label:<13} " + " ".join(parts))
    return "\n".join(lines)


# ------------------------------------------------------------ no database needed


def test_deviations_name_real_steps() -> None:
    """Every catalogued deviation names a backend the history runs on and a known kind."""
    for history in catalog.HISTORIES:
        for backend, deviations in history.asyncmigrate_deviations.items():
            assert history.supports(backend), (history.name, backend)
            for deviation in deviations:
                assert deviation.kind in ("rolled_back", "succeeds", "differs")
                assert deviation.why, (history.name, deviation)
                oneshot = {label for label, _c, _t in asyncmigrate_side.ONESHOT}
                if deviation.phase in oneshot:
                    assert deviation.target is None
                else:
                    assert deviation.phase in ("up", "down", "up2")
                    assert deviation.target
                if deviation.kind != "differs":
                    expected = {(e.phase, e.target) for e in history.alembic_expected.get(backend, ())}
                    if deviation.phase not in oneshot:
                        assert (deviation.phase, deviation.target) in expected, (history.name, deviation)
