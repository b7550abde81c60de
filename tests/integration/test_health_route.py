"""GET /health (readiness with a real database check) and GET /health/live."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from fastapi import FastAPI

from app import __version__
from app.database import Database


async def test_health_reports_ok_with_database_latency(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["version"] == __version__
    assert body["checks"]["database"]["status"] == "ok"
    assert body["checks"]["database"]["latency_ms"] >= 0
    assert body["checks"]["circuit_breaker"] == {"state": "closed"}


async def test_live_answers_without_touching_the_database(
    client: httpx.AsyncClient, app: FastAPI, database: Database
) -> None:
    await database.engine.dispose()
    app.state.database = None  # any database access would now fail loudly
    response = await client.get("/health/live")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response.headers["X-Request-ID"]
    app.state.database = database


UNREACHABLE = "sqlite+aiosqlite:////nonexistent-dir/sub/auth.db"


@asynccontextmanager
async def serving_database(app: FastAPI, url: str) -> AsyncIterator[None]:
    """Point the running app at another database for the body of the block."""
    original: Database = app.state.database
    other = Database(original.settings.model_copy(update={"database_url": url}))
    app.state.database = other
    try:
        yield
    finally:
        app.state.database = original
        await other.dispose()


async def test_health_is_503_when_the_database_is_unreachable(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    async with serving_database(app, UNREACHABLE):
        response = await client.get("/health")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"]["status"] == "failing"
    assert response.headers["Retry-After"].isdigit()


async def test_health_is_503_when_the_database_was_never_migrated(
    client: httpx.AsyncClient, app: FastAPI, tmp_path: Path
) -> None:
    async with serving_database(app, f"sqlite+aiosqlite:///{tmp_path}/empty.db"):
        response = await client.get("/health")
    # A bare `SELECT 1` answered 200 here while every request failed with 503.
    assert response.status_code == 503
    assert response.json()["checks"]["database"]["status"] == "failing"


async def test_head_probes_get_the_status_without_a_body(client: httpx.AsyncClient) -> None:
    for path in ("/health", "/health/live"):
        response = await client.head(path)
        assert response.status_code == 200, path
        assert response.content == b""
        assert response.headers["X-Request-ID"]


async def test_head_probe_of_health_is_503_when_the_database_is_unreachable(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    async with serving_database(app, UNREACHABLE):
        response = await client.head("/health")
    assert response.status_code == 503
    assert response.headers["Retry-After"].isdigit()
