"""Run Python in a real interpreter that lacks some installed packages (their import truly fails).

The interpreter starts with ``-S`` (no site-packages) and gets, on its path,
this checkout and a directory of links to every entry of the test
environment's site-packages except the excluded ones.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import sqlalchemy

import asyncmigrate


def run_without(
    packages: Sequence[str], code: str, scratch: Path, *, args: Sequence[str] = (), cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``code`` (with ``sys.argv[1:] == args``) where ``packages`` are not installed."""
    site = Path(sqlalchemy.__file__).parent.parent
    isolated = scratch / "site-packages"
    isolated.mkdir(exist_ok=True)
    for entry in site.iterdir():
        if not any(entry.name.lower().startswith(p.lower()) for p in packages):
            link = isolated / entry.name
            if not link.exists():
                link.symlink_to(entry)
    script = scratch / "isolated_run.py"
    script.write_text(code, encoding="utf-8")
    repo = Path(asyncmigrate.__file__).parent.parent
    bootstrap = (
        f"import sys; sys.path[:0] = [{str(repo)!r}, {str(isolated)!r}]; "
        f"sys.argv = [{str(script)!r}, *{list(args)!r}]; "
        f"exec(compile(open({str(script)!r}).read(), {str(script)!r}, 'exec'))"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(
        [sys.executable, "-S", "-c", bootstrap], capture_output=True, text=True, env=env, timeout=120,
        cwd=cwd,
    )
