"""The README's integration sections run as written."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager

from ..project import Rev, make_project

pytest_plugins = ["pytester"]

README = Path(__file__).resolve().parents[2] / "README.md"

QUICK_START = [
    Rev("0001", None, """
        op.create_table(
            "account",
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("name", sa.String(50), nullable=False),
        )
    """, "op.drop_table('account')"),
    Rev("0002", "0001", "op.add_column('account', sa.Column('email', sa.String(200)))",
        "op.drop_column('account', 'email')"),
]


def section(title: str) -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(f"### {title}\n")
    end = re.compile(r"^##+ ", re.M).search(text, start + 4)
    return text[start : end.start() if end else len(text)]


def blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, re.S)


async def test_fastapi_section(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_project(tmp_path, QUICK_START, url="sqlite:///app.db")
    monkeypatch.chdir(tmp_path)
    code = blocks(section("FastAPI / ASGI start-up"), "python")
    assert len(code) == 3
    namespace: dict[str, object] = {"__name__": "readme_app"}
    exec(compile(code[0], "README:fastapi", "exec"), namespace)
    app = namespace["app"]
    async with LifespanManager(app) as manager:  # type: ignore[arg-type]
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            health = await client.get("/health")
            ready = await client.get("/ready")
    assert health.status_code == 200
    assert health.json()["heads"] == ["0002"]
    assert ready.json()["ready"] is True
    for index, extra in enumerate(code[1:], start=1):
        exec(compile(extra, f"README:fastapi:{index}", "exec"), namespace)
        async with LifespanManager(namespace["app"]):  # type: ignore[arg-type]
            pass
    assert (tmp_path / "acme.db").exists()


def test_pytest_section(pytester: pytest.Pytester) -> None:
    make_project(pytester.path, QUICK_START, url="sqlite:///app.db")
    text = section("pytest plugin")
    (ini,) = blocks(text, "ini")
    tests, conftest = blocks(text, "python")
    namespace: dict[str, object] = {}
    exec(compile(conftest, "README:pytest:conftest", "exec"), namespace)  # the options example builds
    assert callable(namespace["free_plan"])
    pytester.makefile(".ini", pytest=ini)
    pytester.makepyfile(test_accounts=tests)
    # No warning at all: the example ini is clean under current pytest and pytest-asyncio.
    result = pytester.runpytest_subprocess("-v", "-W", "error")
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) == 0, result.stdout.str()
    assert outcomes["passed"] >= 6  # two tests and the checks (models skips without autogenerate)
