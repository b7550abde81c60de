"""Helpers for tests that build their own application (their own database URL or clock)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from app.config import Settings
from app.main import create_app

TEST_SECRET = "test-secret-key-that-is-long-enough-for-hs256-0123456789"
PASSWORD = "correct horse battery staple"

# Cheap argon2 parameters keep the suite fast; tests/unit/test_password.py checks the
# production defaults separately.
FAST_HASHING: dict[str, Any] = {"argon2_memory_kib": 1024, "argon2_time_cost": 1}
# Every test talks from one address; per-client limits that suit production would trip the
# suites that register dozens of users. Per-account limits keep their production defaults,
# and tests/integration/test_throttling.py sets its own per-client ones.
GENEROUS_CLIENT_LIMITS: dict[str, Any] = {
    "rate_limit_login_ip": "10000/minute",
    "rate_limit_register_ip": "10000/minute",
    "rate_limit_refresh_ip": "10000/minute",
}


class FakeClock:
    """A monotonic clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 5_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def build_settings(database_url: str, tmp_path: Path, **overrides: Any) -> Settings:
    """Test settings (fixed key, cheap hashing) for any database URL."""
    values: dict[str, Any] = {
        "database_url": database_url,
        "secret_key": TEST_SECRET,
        "environment": "test",
        "secret_key_file": tmp_path / ".secret_key",
        **FAST_HASHING,
        **GENEROUS_CLIENT_LIMITS,
        **overrides,
    }
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


async def register(client: httpx.AsyncClient, name: str) -> httpx.Response:
    return await client.post(
        "/auth/register",
        json={"email": f"{name}@example.com", "username": name, "password": PASSWORD},
    )


async def login(client: httpx.AsyncClient, name: str) -> httpx.Response:
    return await client.post("/auth/login", json={"username": name, "password": PASSWORD})


def assert_unavailable(response: httpx.Response, error_code: str = "SERVICE_UNAVAILABLE") -> None:
    """A 503 in the contract's body, with Retry-After, that names no internals."""
    assert response.status_code == 503, response.text
    body = response.json()
    assert set(body) == {"detail", "error_code", "timestamp", "request_id"}
    assert body["error_code"] == error_code
    assert body["request_id"] == response.headers["X-Request-ID"]
    assert int(response.headers["Retry-After"]) >= 1
    for leak in ("Traceback", "OperationalError", "sqlite", "auth.db", "asyncpg", "127.0.0.1"):
        assert leak not in response.text


@asynccontextmanager
async def running_app(
    settings: Settings,
    *,
    clock: Callable[[], float] | None = None,
    utc_clock: Callable[[], datetime] | None = None,
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """The application with its lifespan running, and a client talking to it."""
    clocks: dict[str, Any] = {"clock": clock, "utc_clock": utc_clock}
    application = create_app(settings, **{k: v for k, v in clocks.items() if v is not None})
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application, client=("203.0.113.9", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield application, client
