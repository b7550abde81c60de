"""Helpers for tests that build their own application (their own database URL or clock)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from app.config import Settings
from app.main import create_app
from tests.conftest import FAST_HASHING, GENEROUS_CLIENT_LIMITS, TEST_SECRET


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


@asynccontextmanager
async def running_app(
    settings: Settings, *, clock: Callable[[], float] | None = None
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """The application with its lifespan running, and a client talking to it."""
    application = create_app(settings) if clock is None else create_app(settings, clock=clock)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application, client=("203.0.113.9", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield application, client
