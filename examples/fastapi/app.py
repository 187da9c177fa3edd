"""A FastAPI app that migrates its database at start-up, safely with many workers.

Run it::

    DATABASE_URL=postgresql://postgres@127.0.0.1/app uvicorn app:app --workers 4

Every worker runs the lifespan; the first to find work takes the migration
lock and migrates, the others wait for it and find the database at head.
``/health`` says whether start-up migration succeeded (503 if not);
``/ready`` asks the database itself.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

import asyncmigrate
from asyncmigrate import Config
from asyncmigrate.integrations import StartupStatus, readiness
from asyncmigrate.urls import to_async_url

logging.basicConfig(level=logging.INFO, format="%(levelname)s %(process)d %(name)s: %(message)s")

HERE = Path(__file__).resolve().parent
config = Config(str(HERE / "alembic.ini"))


@asynccontextmanager
async def database(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
    """The app's own lifespan: one engine for the whole app, entered after migrating."""
    engine = create_async_engine(to_async_url(os.environ["DATABASE_URL"]))
    try:
        yield {"engine": engine}
    finally:
        await engine.dispose()


app = FastAPI(
    lifespan=asyncmigrate.lifespan(
        config,
        on_failure=os.environ.get("MIGRATION_FAILURE_POLICY", "fail"),  # type: ignore[arg-type]
        app_lifespan=database,
    )
)


@app.get("/health")
async def health(request: Request) -> JSONResponse:
    """Report what start-up migration did (200 when ready, 503 when it failed)."""
    status: StartupStatus = request.state.asyncmigrate
    return JSONResponse(status.as_dict(), status_code=200 if status.ready else 503)


@app.get("/ready")
async def ready() -> JSONResponse:
    """Ask the database whether it is at head (one query)."""
    answer = await readiness(config)
    return JSONResponse(answer.as_dict(), status_code=200 if answer.ready else 503)


@app.get("/accounts")
async def accounts(request: Request) -> list[dict[str, Any]]:
    """List the accounts."""
    engine: AsyncEngine = request.state.engine
    async with engine.connect() as conn:
        rows = await conn.execute(text("SELECT id, name, email FROM account ORDER BY id"))
        return [dict(row._mapping) for row in rows]
