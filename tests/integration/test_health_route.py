"""GET /health (readiness with a real database check) and GET /health/live."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from app import __version__
from app.config import Settings
from app.database import Database
from app.wiring import build_throttle
from tests.support.servers import free_port


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


async def test_without_redis_url_health_has_no_redis_check(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    assert "redis" not in response.json()["checks"]


@pytest.fixture
def redis_url() -> str:
    """The real Redis of the test run (TEST_REDIS_URL), else the usual local one."""
    return os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


async def test_health_reports_the_redis_latency(
    client: httpx.AsyncClient, app: FastAPI, settings: Settings, redis_url: str
) -> None:
    async with serving_redis(app, settings, redis_url):
        response = await client.get("/health")
    assert response.status_code == 200, response.text
    check = response.json()["checks"]["redis"]
    assert check["status"] == "ok"
    assert check["latency_ms"] >= 0


async def test_health_is_503_when_redis_is_down_as_every_login_is(
    client: httpx.AsyncClient, app: FastAPI, settings: Settings
) -> None:
    async with serving_redis(app, settings, f"redis://127.0.0.1:{free_port()}/0"):
        health = await client.get("/health")
        head = await client.head("/health")
        login = await client.post("/auth/login", json={"username": "a", "password": "b"})
    assert login.status_code == 503
    assert health.status_code == head.status_code == 503
    body = health.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["redis"]["status"] == "failing"
    assert body["checks"]["database"]["status"] == "ok"
    assert health.headers["Retry-After"].isdigit()


@asynccontextmanager
async def serving_redis(app: FastAPI, settings: Settings, url: str) -> AsyncIterator[None]:
    """Point the running app's settings and throttle at another Redis for the block."""
    original_settings, original_throttle = app.state.settings, app.state.throttle
    other = settings.model_copy(update={"redis_url": url})
    app.state.settings, app.state.throttle = other, build_throttle(other)
    try:
        yield
    finally:
        await app.state.throttle.close()
        app.state.settings, app.state.throttle = original_settings, original_throttle
