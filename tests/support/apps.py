"""The application and the CLI as tests drive them."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import fastapi.dependencies.models
import httpx
from fastapi import FastAPI
from typer.testing import Result

from app.config import Settings
from app.main import create_app
from app.models import Base

# What the `run_cli` fixture returns: `await run_cli("users", "show", "alice")`.
CliInvoker = Callable[..., Awaitable[Result]]


def release_finished_apps() -> None:
    """Let go of the applications (and engines) that finished tests built.

    Two caches of the libraries, harmless in a service that builds one application, keep
    every one a test suite builds, for as long as they have room:

    - FastAPI's, which tell whether an endpoint or dependency is a coroutine or a
      generator (4,096 entries each), keyed by the callable: the few callables that each
      application makes for itself (its OpenAPI and Swagger UI routes, its middleware's
      closures) keep it, its routes, engines and metrics alive;
    - each ORM mapper's statements compiled for the unit of work, keyed by the dialect,
      so by the engine: they keep the engines and their compiled statements.

    A suite that builds an application per test kept the last several hundred, two
    gigabytes a worker, and the garbage collector's passes over them came to take more
    time than the tests. Emptying both costs only some compiling in the next test.
    """
    for value in vars(fastapi.dependencies.models).values():
        if isinstance(value, functools._lru_cache_wrapper):
            value.cache_clear()
    for mapper in Base.registry.mappers:
        # A memoized attribute: present once the mapper has flushed an object.
        cache = mapper.__dict__.get("_compiled_cache")
        if cache is not None:
            cache.clear()


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
