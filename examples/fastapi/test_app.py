"""The example app under real uvicorn workers against one fresh PostgreSQL database."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psycopg2
import pytest

from tests import backends

HERE = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(url: str, port: int, workers: int) -> subprocess.Popen[str]:
    env = {**os.environ, "DATABASE_URL": url, "PYTHONPATH": str(HERE)}
    return subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "app:app", "--host", "127.0.0.1", "--port", str(port),
         "--workers", str(workers)],
        cwd=HERE, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def wait_healthy(port: int, proc: subprocess.Popen[str], timeout: float = 60) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"uvicorn exited with {proc.returncode}: {proc.stdout.read() if proc.stdout else ''}")
        try:
            return httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
        except httpx.TransportError:
            time.sleep(0.1)
    pytest.fail("uvicorn did not answer in time")


def stop(proc: subprocess.Popen[str]) -> str:
    proc.terminate()
    try:
        out, _ = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return out


@pytest.mark.slow
@pytest.mark.postgresql
async def test_many_workers_and_replicas_start_on_one_fresh_database() -> None:
    backends.require("postgresql")
    async with backends.scratch_database("postgresql") as url:
        sync_url = url.set(drivername="postgresql").render_as_string(hide_password=False)
        # "Replicas": two uvicorn masters (4 + 2 workers) started together, as on two hosts.
        ports = [free_port(), free_port()]
        procs = [start(sync_url, ports[0], 4), start(sync_url, ports[1], 2)]
        outputs = []
        try:
            for port, proc in zip(ports, procs, strict=True):
                for _ in range(6):  # several requests reach several workers
                    response = wait_healthy(port, proc)
                    assert response.status_code == 200, response.text
                    assert response.json()["heads"] == ["0002"]
                assert httpx.get(f"http://127.0.0.1:{port}/ready").json()["ready"] is True
                assert httpx.get(f"http://127.0.0.1:{port}/accounts").json() == []
        finally:
            outputs = [stop(proc) for proc in procs]
        log = "\n".join(outputs)
        # Each migration ran exactly once, in exactly one of the six workers.
        conn = psycopg2.connect(sync_url)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT revision FROM migration_runs ORDER BY revision")
                assert cur.fetchall() == [("0001",), ("0002",)]
        finally:
            conn.close()
        assert log.count("Application startup complete") == 6, log
        assert log.count("asyncmigrate: migrated") == 1, log
        assert log.count("another process migrated it") + log.count("is already at 0002") == 5, log


@pytest.mark.slow
@pytest.mark.postgresql
async def test_a_failing_migration_stops_start_up_with_one_clear_line() -> None:
    backends.require("postgresql")
    async with backends.scratch_database("postgresql") as url:
        sync_url = url.set(drivername="postgresql").render_as_string(hide_password=False)
        conn = psycopg2.connect(sync_url)
        conn.autocommit = True
        with conn.cursor() as cur:  # something in the way of 0001's CREATE TABLE
            cur.execute("CREATE TABLE account (id integer)")
        conn.close()
        proc = start(sync_url, free_port(), 1)
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode != 0
        errors = [line for line in out.splitlines() if "start-up migration to head failed" in line]
        assert len(errors) == 1, out
        assert "already exists" in errors[0]
        assert "will not start" in errors[0]
        assert "Traceback" not in out, out  # the one line, not the server's copy of the traceback
