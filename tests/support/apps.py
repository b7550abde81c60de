"""The application and the CLI as tests drive them."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime

import httpx
from fastapi import FastAPI
from typer.testing import Result

from app.config import Settings
from app.main import create_app
from app.utils.jwt import utc_now

# What the `run_cli` fixture returns: `await run_cli("users", "show", "alice")`.
CliInvoker = Callable[..., Awaitable[Result]]


@asynccontextmanager
async def running_app(
    settings: Settings,
    *,
    clock: Callable[[], float] | None = None,
    utc_clock: Callable[[], datetime] | None = None,
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """The application with its lifespan running, and a client talking to it."""
    application = create_app(
        settings, clock=clock or time.monotonic, utc_clock=utc_clock or utc_now
    )
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application, client=("203.0.113.9", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield application, client
