"""Shared fixtures: real databases (SQLite always, PostgreSQL when TEST_DATABASE_URL is set),
an app built by `create_app(settings)` with its lifespan running, and an async HTTP client.

Each test starts from empty tables. The schema is created once per backend by the Alembic
migrations themselves, so every test run also proves the migrations.
"""

from __future__ import annotations

import asyncio
import gc
import io
import logging
import os
import socket
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from playwright.async_api import Browser, async_playwright
from sqlalchemy.ext.asyncio import AsyncSession
from typer.testing import CliRunner, Result

from app.cli import cli as authsvc_cli
from app.config import Settings
from app.database import Database
from app.main import create_app
from app.throttle import build_storage
from app.utils.logger import setup_logging
from app.wiring import log_secrets
from tests.support import (
    BACKENDS,
    PASSWORD,
    THROTTLE_STORES,
    CliInvoker,
    LogCapture,
    RegisteredUser,
    UserFactory,
    build_settings,
    prepare_schema,
    prepared,
    truncate,
)
from tests.support.admin import grant, sign_in
from tests.support.apps import CLI_THREAD, release_finished_apps
from tests.support.backends import store_pairs
from tests.support.browsers import CHROMIUM, CHROMIUM_FLAGS
from tests.support.databases import worker_database_url
from tests.support.mailbox import Mailbox
from tests.support.markers import (
    MAY_START_PROCESSES,
    PROCESS_EVENTS,
    keep_on_one_worker,
    started_by,
    starts,
)
from tests.support.servers import serve_in_thread

# The test being run (set for its setup, call and teardown), for the process guard below.
_running: list[pytest.Item] = []


def pytest_configure(config: pytest.Config) -> None:
    # Under pytest-xdist every worker gets a PostgreSQL database of its own (`<name>_gw0`,
    # ...), so parallel tests never empty or migrate each other's tables. Everything that
    # reads TEST_DATABASE_URL (fixtures, modules' own servers) then reads the worker's.
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    url = os.environ.get("TEST_DATABASE_URL")
    if worker and url and not os.environ.get("AUTHSVC_TEST_WORKER_DB"):
        os.environ["TEST_DATABASE_URL"] = worker_database_url(url, worker)
        os.environ["AUTHSVC_TEST_WORKER_DB"] = worker


@pytest.hookimpl(tryfirst=True)
def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # tests.support.backends: a test whose subject cannot differ by backend runs on SQLite.
    if "database_url" in metafunc.fixturenames and metafunc.definition.get_closest_marker(
        "backend_independent"
    ):
        # As a parametrize mark, which the fixture's own parameters give way to.
        metafunc.definition.add_marker(
            pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
        )
    fixtures = {"database_url", "throttle_redis_url"}
    if fixtures <= set(metafunc.fixturenames) and metafunc.definition.get_closest_marker(
        "stores_paired"
    ):
        pairs = store_pairs()
        metafunc.definition.add_marker(
            pytest.mark.parametrize(
                ("database_url", "throttle_redis_url"),
                pairs,
                indirect=True,
                ids=[f"{backend}-{store}" for backend, store in pairs],
            )
        )


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark each test with what its fixtures start (tests.support.markers.starts), and keep
    a module's process tests on one xdist worker (`--dist loadgroup`): the servers of its
    module-scoped fixtures then start once, not once per worker. Without TEST_DATABASE_URL
    the tests marked `postgres` (about PostgreSQL itself) are deselected, not skipped."""
    if not os.environ.get("TEST_DATABASE_URL"):
        unrunnable = [item for item in items if item.get_closest_marker("postgres")]
        if unrunnable:
            config.hook.pytest_deselected(items=unrunnable)
            items[:] = [item for item in items if not item.get_closest_marker("postgres")]
    for item in items:
        info = getattr(item, "_fixtureinfo", None)
        if info is None:
            continue
        for name in info.names_closure:
            fixturedefs = info.name2fixturedefs.get(name)
            if fixturedefs:  # the last definition is the one in force (overrides)
                kind = started_by(fixturedefs[-1].func)
                if kind is not None:
                    item.add_marker(kind)
        if item.get_closest_marker("process"):
            keep_on_one_worker(item, item.nodeid.split("::")[0])


def pytest_collection_finish(session: pytest.Session) -> None:
    """What is alive once the tests are collected (the modules, the app's models, the
    test items) lives until the end: moved out of the garbage collector's sight, it is not
    traversed again at each full collection, which the applications the tests build and
    drop set off every few tests."""
    gc.collect()
    gc.freeze()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> object:
    _running.append(item)
    try:
        return (yield)
    finally:
        _running.pop()
        # The test's applications are finished: nothing in FastAPI may keep them.
        release_finished_apps()


def _process_guard(event: str, args: tuple[object, ...]) -> None:
    """A test that starts a process must say so (`make test-fast` leaves those out)."""
    if event in PROCESS_EVENTS and _running:
        item = _running[-1]
        if not any(item.get_closest_marker(kind) for kind in MAY_START_PROCESSES):
            raise RuntimeError(
                f"{item.nodeid} starts a process ({event}) but is not marked: use"
                " @pytest.mark.process, or a fixture decorated with"
                " @starts('process') from tests.support.markers"
            )


sys.addaudithook(_process_guard)


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("db") / "auth.db"
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture(params=BACKENDS)
async def database_url(request: pytest.FixtureRequest, sqlite_url: str) -> str:
    """A migrated, empty database of each configured backend."""
    url = sqlite_url if request.param == "sqlite" else os.environ["TEST_DATABASE_URL"]
    if url not in prepared:
        await prepare_schema(url)
        prepared.add(url)
    else:
        await truncate(url)
    return url


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Override in a test module to change settings for its tests."""
    return {}


@pytest.fixture
def redis_key_prefix() -> str:
    """A namespace of this test's own in Redis, so tests never see each other's counters."""
    return f"authsvc-test-{uuid.uuid4().hex}"


@pytest.fixture(params=THROTTLE_STORES)
async def throttle_redis_url(
    request: pytest.FixtureRequest, redis_key_prefix: str
) -> AsyncIterator[str | None]:
    """None (in-memory counters), then the real Redis of TEST_REDIS_URL when it is set."""
    if request.param == "memory":
        yield None
        return
    url = os.environ["TEST_REDIS_URL"]
    yield url
    await build_storage(url, key_prefix=redis_key_prefix).reset()


@pytest.fixture
def settings(
    database_url: str,
    tmp_path: Path,
    settings_overrides: dict[str, Any],
    redis_key_prefix: str,
) -> Settings:
    overrides = {"redis_key_prefix": redis_key_prefix, **settings_overrides}
    return build_settings(database_url, tmp_path, **overrides)


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


@pytest.fixture
async def loopback_client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client on this host (socket peer 127.0.0.1): what /metrics serves without a token."""
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50001))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


@pytest.fixture
def database(app: FastAPI) -> Database:
    db: Database = app.state.database
    return db


@pytest.fixture
async def db_session(database: Database) -> AsyncIterator[AsyncSession]:
    async with database.sessionmaker() as session:
        yield session


@pytest.fixture
def user_factory(client: httpx.AsyncClient) -> UserFactory:
    """Registers users through the API, as a client would."""
    counter = iter(range(1, 1_000_000))

    async def make(
        *, email: str | None = None, username: str | None = None, password: str = PASSWORD
    ) -> RegisteredUser:
        n = next(counter)
        email = email or f"user{n}@example.com"
        username = username or f"user{n}"
        response = await client.post(
            "/auth/register", json={"email": email, "username": username, "password": password}
        )
        assert response.status_code == 201, response.text
        body = response.json()
        return RegisteredUser(
            id=body["user"]["id"],
            email=email,
            username=username,
            password=password,
            access_token=body["access_token"],
            refresh_token=body["refresh_token"],
        )

    return make


@pytest.fixture
async def admin(
    user_factory: UserFactory, database: Database, client: httpx.AsyncClient
) -> RegisteredUser:
    """An account with the admin role, signed in after the grant."""
    user = await user_factory(username="root", email="root@example.com")
    await grant(database, user.id, "admin")
    user.access_token = (await sign_in(client, user.username))["access_token"]
    return user


@pytest.fixture
def run_cli(settings: Settings) -> CliInvoker:
    """Runs `authsvc ARGS...` through Typer's test runner with the test's settings.

    The command runs in a worker thread: it starts its own event loop, as it does in a shell.
    That thread lives for the whole session (CLI_THREAD), not for one test's event loop: the
    greenlets SQLAlchemy runs in it are torn down once, when the session ends, instead of
    at every test's loop shutdown, where greenlet's deferred clean-up of a finished
    thread's state has been seen to spin inside pytest's unraisable-exception hook.
    """
    runner = CliRunner()

    async def invoke(*args: str, input: str | None = None, obj: Settings | None = None) -> Result:
        return await asyncio.get_running_loop().run_in_executor(
            CLI_THREAD,
            lambda: runner.invoke(
                authsvc_cli, list(args), input=input, obj=obj or settings, catch_exceptions=False
            ),
        )

    return invoke


@pytest.fixture
def live_socket() -> Iterator[socket.socket]:
    """The bound socket of `live_server`: its port is known before the settings are built
    (PUBLIC_URL, for the links in mails)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield sock
    finally:
        sock.close()


@pytest.fixture
def live_server(settings: Settings, live_socket: socket.socket) -> Iterator[str]:
    """A real uvicorn server on a free port (bound here, so no race for it), in a thread.

    The app runs its own lifespan in the server's event loop; the URL is returned once
    uvicorn reports it started, polled with a deadline.
    """
    app = create_app(settings)
    with serve_in_thread(app, live_socket, access_log=False, workers=1) as server:
        yield server.url


@pytest.fixture
def smtp_server() -> Iterator[Mailbox]:
    """A real SMTP server (aiosmtpd) on a free port, collecting what it receives."""
    box = Mailbox()
    box.start()
    try:
        yield box
    finally:
        box.stop()


@pytest.fixture
@starts("browser")
async def browser() -> AsyncIterator[Browser]:
    """Debian's headless Chromium (tests.support.browsers), closed after the test."""
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS
        )
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def pytest_report_header() -> list[str]:
    redis = os.environ.get("TEST_REDIS_URL") or "not configured (TEST_REDIS_URL)"
    return [f"database backends: {', '.join(BACKENDS)}", f"redis: {redis}"]


@pytest.fixture
def logs(app: FastAPI, settings: Settings) -> Iterator[LogCapture]:
    """Captures the production pipeline's output (the lifespan's call, every logger at DEBUG)."""
    stream = io.StringIO()
    secrets = log_secrets(settings)
    setup_logging("DEBUG", settings.log_format, stream=stream, secrets=secrets)
    # The test's HTTP client is not the service: its own lines stay out of the capture.
    client_loggers = [logging.getLogger(name) for name in ("httpx", "httpcore")]
    for logger in client_loggers:
        logger.disabled = True
    yield LogCapture(stream)
    for logger in client_loggers:
        logger.disabled = False
    setup_logging(settings.log_level, settings.log_format, secrets=secrets)
