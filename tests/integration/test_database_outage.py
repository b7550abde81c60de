"""A database that cannot serve: bounded 503s, never a 500, and the breaker counts only that.

The SQLite cases break the file itself; the hung-server case is a TCP listener that accepts
connections and never answers (a frozen host behind a live port). PostgreSQL crashing and
coming back is in test_postgres_outage.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from app.database import Database
from app.utils.circuit_breaker import BreakerState
from tests.support import (
    FakeClock,
    UserFactory,
    assert_unavailable,
    build_settings,
    login,
    prepare_schema,
    register,
    running_app,
)

HANG_BOUND = 15.0  # seconds; far above every configured timeout, only there to catch a hang


def _directory(path: Path) -> None:
    path.mkdir()


def _not_a_database(path: Path) -> None:
    path.write_bytes(b"this file holds no SQLite database, only these words\n" * 200)


def _missing_parent(path: Path) -> None:
    pass  # the URL points below a directory that does not exist


@pytest.mark.parametrize(
    ("breakage", "relative_path"),
    [
        (_directory, "auth.db"),
        (_not_a_database, "auth.db"),
        (_missing_parent, "no/such/dir/auth.db"),
    ],
    ids=["path-is-a-directory", "file-is-not-a-database", "directory-missing"],
)
async def test_sqlite_file_that_cannot_be_opened_gives_503_not_500(
    tmp_path: Path, breakage: Any, relative_path: str
) -> None:
    path = tmp_path / relative_path
    breakage(path)
    settings = build_settings(f"sqlite+aiosqlite:///{path}", tmp_path)
    async with running_app(settings) as (_, client):
        assert_unavailable(await login(client, "alice"))
        assert_unavailable(await register(client, "alice"))
        health = await client.get("/health")
    assert health.status_code == 503
    assert health.json()["checks"]["database"]["status"] == "failing"


async def test_sqlite_file_that_cannot_be_written_gives_503_on_writes(tmp_path: Path) -> None:
    path = tmp_path / "auth.db"
    await prepare_schema(f"sqlite+aiosqlite:///{path}")
    async with running_app(build_settings(f"sqlite+aiosqlite:///{path}", tmp_path)) as (_, c):
        registered = await register(c, "alice")
        assert registered.status_code == 201
    token = registered.json()["access_token"]
    # Opened read-only, as from a read-only mount (root ignores file permissions).
    read_only = f"sqlite+aiosqlite:///file:{path}?mode=ro&uri=true"
    async with running_app(build_settings(read_only, tmp_path)) as (_, client):
        assert_unavailable(await register(client, "bob"))
        assert_unavailable(await login(client, "alice"))  # a login records last_login
        # A failed login writes its audit event: refused rather than left unrecorded.
        assert_unavailable(await login(client, "nobody"))
        me = await client.get("/users/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200  # reading still works


async def test_sqlite_outage_opens_the_breaker_and_recovers_without_restart(
    tmp_path: Path,
) -> None:
    path = tmp_path / "auth.db"
    path.mkdir()  # cannot be opened until an operator fixes it
    clock = FakeClock()
    settings = build_settings(
        f"sqlite+aiosqlite:///{path}",
        tmp_path,
        circuit_breaker_threshold=2,
        circuit_breaker_timeout=30,
        circuit_breaker_initial_timeout=30,  # a sustained outage: one fixed period
        # The operator migrates below; the start-up migration's retry (on a real-time
        # back-off) would race that on a slow machine: "table alembic_version already exists".
        db_auto_migrate=False,
    )
    async with running_app(settings, clock=clock) as (app, client):
        database: Database = app.state.database
        assert_unavailable(await register(client, "alice"))
        assert_unavailable(await register(client, "alice"))
        open_response = await register(client, "alice")
        assert_unavailable(open_response, "CIRCUIT_BREAKER_OPEN")
        assert open_response.headers["Retry-After"] == "30"
        clock.advance(0.5)
        health = await client.get("/health")
        assert health.status_code == 503
        assert health.json()["checks"]["circuit_breaker"] == {"state": "open"}
        assert health.headers["Retry-After"] == "30"  # 29.5 s, rounded up
        assert (await client.get("/health/live")).status_code == 200

        path.rmdir()
        await prepare_schema(f"sqlite+aiosqlite:///{path}")
        assert_unavailable(await register(client, "alice"), "CIRCUIT_BREAKER_OPEN")
        clock.advance(30)
        assert (await register(client, "alice")).status_code == 201
        assert database.breaker.state is BreakerState.CLOSED
        assert (await login(client, "alice")).status_code == 200


async def test_a_trial_that_runs_no_query_still_asks_the_database(tmp_path: Path) -> None:
    path = tmp_path / "auth.db"
    path.mkdir()
    clock = FakeClock()
    settings = build_settings(
        f"sqlite+aiosqlite:///{path}",
        tmp_path,
        circuit_breaker_threshold=1,
        circuit_breaker_timeout=30,
    )
    async with running_app(settings, clock=clock) as (app, client):
        assert_unavailable(await register(client, "alice"))
        clock.advance(30)
        # A malformed token fails before any query; as the half-open trial it must not
        # close the breaker on the word of a database it never reached.
        garbage = {"Authorization": "Bearer garbage"}
        response = await client.get("/users/me/sessions", headers=garbage)
        assert_unavailable(response)
        assert app.state.database.breaker.state is BreakerState.OPEN
        # /users/me checks the token before it needs the database: a bad one is a 401
        # whatever the database's state, and it leaves the breaker alone.
        response = await client.get("/users/me", headers=garbage)
        assert response.status_code == 401
        assert app.state.database.breaker.state is BreakerState.OPEN


@pytest.fixture
async def silent_server() -> AsyncIterator[int]:
    """A port that accepts TCP connections and never says a word."""
    held: list[asyncio.StreamWriter] = []

    async def swallow(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_a_database_that_never_answers_gives_503_within_the_connect_timeout(
    silent_server: int, tmp_path: Path
) -> None:
    settings = build_settings(
        f"postgresql+asyncpg://postgres@127.0.0.1:{silent_server}/authsvc",
        tmp_path,
        db_connect_timeout=0.5,
        db_health_timeout=0.5,
        # The pool is checked for what requests leave behind; the start-up migration's
        # retries (tests/integration/test_startup.py) would connect in the background.
        db_auto_migrate=False,
    )
    async with running_app(settings) as (app, client):
        async with asyncio.timeout(HANG_BOUND):
            response = await login(client, "alice")
            health = await client.get("/health")
        assert_unavailable(response)
        assert health.status_code == 503
        assert health.json()["checks"]["database"]["status"] == "failing"
        assert app.state.database.breaker.failure_count == 1  # /health does not count
        assert app.state.database.engine.pool.checkedout() == 0  # nothing left half-open


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {
        "db_pool_size": 1,
        "db_max_overflow": 0,
        "db_pool_timeout": 0.2,
        "circuit_breaker_threshold": 2,
    }


async def test_an_exhausted_pool_is_a_503_that_counts_and_leaves_no_connection_behind(
    client: httpx.AsyncClient, database: Database, user_factory: UserFactory
) -> None:
    user = await user_factory()
    async with database.session() as session:
        await session.execute(text("SELECT 1"))  # holds the pool's only connection
        async with asyncio.timeout(HANG_BOUND):
            response = await login(client, user.username)
        assert_unavailable(response)
        assert database.breaker.failure_count == 1
    assert (await login(client, user.username)).status_code == 200
    assert database.breaker.failure_count == 0
    assert database.engine.pool.checkedout() == 0  # type: ignore[attr-defined]


async def test_business_errors_never_trip_the_breaker(
    client: httpx.AsyncClient, database: Database, user_factory: UserFactory
) -> None:
    user = await user_factory()
    threshold = database.breaker.failure_threshold
    for _ in range(threshold + 1):
        duplicate = await register(client, user.username)
        assert duplicate.status_code == 409
        wrong = await client.post(
            "/auth/login", json={"username": user.username, "password": "not the password"}
        )
        assert wrong.status_code == 401
    assert database.breaker.state is BreakerState.CLOSED
    assert database.breaker.failure_count == 0
