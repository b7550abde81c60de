"""The application and the CLI as tests drive them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import httpx
from fastapi import FastAPI
from typer.testing import Result

from app.config import Settings
from app.main import create_app

# What the `run_cli` fixture returns: `await run_cli("users", "show", "alice")`.
CliInvoker = Callable[..., Awaitable[Result]]

# The threads CLI commands run in, kept for the whole session (see the run_cli fixture).
CLI_THREAD = ThreadPoolExecutor(max_workers=2, thread_name_prefix="cli")


@asynccontextmanager
async def running_app(
    settings: Settings,
    *,
    clock: Callable[[], float] | None = None,
    wall_clock: Callable[[], datetime] | None = None,
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """The application with its lifespan running, and a client talking to it."""
    clocks: dict[str, Any] = {}
    if clock is not None:
        clocks["clock"] = clock
    if wall_clock is not None:
        clocks["wall_clock"] = wall_clock
    application = create_app(settings, **clocks)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application, client=("203.0.113.9", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield application, client
