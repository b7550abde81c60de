"""Start-up on any database: migrated before the first answer, once across replicas.

The servers are real processes started as a FastAPI user starts one, `uvicorn app.main:app`,
on databases of their own: an empty SQLite file, and a PostgreSQL database created (and
dropped) here, so the shared fixtures' schema is never touched.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from app.main import create_app
from app.migrate import MIGRATION_LOCK_KEY, shipped_revisions, upgrade_on_connection
from tests.support import BACKENDS, build_settings, login, register, running_app
from tests.support.processes import (
    ServerProcess,
    fresh_postgres_database,
    server_env,
    spawn,
    uvicorn_argv,
    wait_until,
)

pytestmark = pytest.mark.timeout(300)

HEAD = sorted(shipped_revisions().heads)


@pytest.fixture(params=BACKENDS)
async def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A database no migration has touched: a new SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        path = tmp_path / "auth.db"
        path.touch()
        yield f"sqlite+aiosqlite:///{path}"
        return
    async with fresh_postgres_database("test_startup_race") as url:
        yield url


async def _revisions(url: str) -> list[str]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(text("SELECT version_num FROM alembic_version"))
            return sorted(rows.scalars())
    finally:
        await engine.dispose()


def _log_lines(server: ServerProcess) -> list[dict[str, Any]]:
    lines = []
    for line in server.output().splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))
    return lines


def _ok(response: httpx.Response) -> bool:
    return response.status_code == 200


@pytest.mark.process
async def test_plain_uvicorn_on_an_empty_database_answers_register_and_login(
    empty_database: str, tmp_path: Path
) -> None:
    server = spawn("uvicorn", uvicorn_argv(), server_env(empty_database), tmp_path)
    try:
        wait_until(server, _ok)
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            registered = await register(client, "newcomer")
            logged_in = await login(client, "newcomer")
    finally:
        server.stop()

    assert registered.status_code == 201, registered.text
    assert logged_in.status_code == 200, logged_in.text
    assert await _revisions(empty_database) == HEAD
    migrated = [line for line in _log_lines(server) if line["message"] == "database migrated"]
    assert [line["to_revision"] for line in migrated] == [HEAD]


@pytest.mark.process
async def test_two_servers_starting_at_once_migrate_one_schema_once(
    empty_database: str, tmp_path: Path
) -> None:
    env = server_env(empty_database)
    servers = [spawn(name, uvicorn_argv(), env, tmp_path) for name in ("a", "b")]
    try:
        for server in servers:
            wait_until(server, _ok)
        async with httpx.AsyncClient(base_url=servers[0].url, timeout=30) as a:
            registered = await register(a, "racer")
        async with httpx.AsyncClient(base_url=servers[1].url, timeout=30) as b:
            logged_in = await login(b, "racer")
    finally:
        for server in servers:
            server.stop()

    assert registered.status_code == 201, registered.text
    assert logged_in.status_code == 200, logged_in.text
    assert await _revisions(empty_database) == HEAD
    messages = [line["message"] for server in servers for line in _log_lines(server)]
    # One migrated under the lock; the other waited for it and found the schema current.
    assert messages.count("database migrated") == 1, messages
    assert messages.count("database schema is current") == 1, messages


@pytest.mark.process
async def test_without_auto_migrate_a_schema_behind_is_logged_and_fails_health(
    empty_database: str, tmp_path: Path
) -> None:
    env = server_env(empty_database, DB_AUTO_MIGRATE="false")
    server = spawn("manual", uvicorn_argv(), env, tmp_path)
    try:
        health = wait_until(server, lambda r: r.status_code == 503)
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            registered = await register(client, "early")
    finally:
        server.stop()

    behind = [line for line in _log_lines(server) if "authsvc migrate" in line["message"]]
    assert len(behind) == 1, server.output()
    assert behind[0]["level"] == "ERROR"
    assert behind[0]["current"] == []
    assert behind[0]["head"] == HEAD
    database = health.json()["checks"]["database"]
    assert database["status"] == "failing"
    assert "authsvc migrate" in database["error"]
    assert registered.status_code == 503  # nothing was created behind the operator's back
    engine = create_async_engine(empty_database)
    try:
        async with engine.connect() as connection:
            tables = await connection.run_sync(lambda sync: inspect(sync).get_table_names())
    finally:
        await engine.dispose()
    assert tables == []


async def test_an_older_schema_is_brought_to_head_at_start_up(
    empty_database: str, tmp_path: Path
) -> None:
    engine = create_async_engine(empty_database)
    async with engine.begin() as connection:
        await connection.run_sync(upgrade_on_connection, "0001")
    await engine.dispose()

    settings = build_settings(empty_database, tmp_path)
    async with running_app(settings) as (_, client):
        registered = await register(client, "upgraded")
        health = await client.get("/health")

    assert registered.status_code == 201, registered.text
    assert health.status_code == 200, health.text
    assert await _revisions(empty_database) == HEAD


async def test_a_schema_newer_than_this_version_is_left_alone_and_healthy(
    empty_database: str, tmp_path: Path
) -> None:
    # A newer version migrated during a rolling deploy; this one still serves meanwhile.
    engine = create_async_engine(empty_database)
    async with engine.begin() as connection:
        await connection.run_sync(upgrade_on_connection)
        await connection.execute(text("UPDATE alembic_version SET version_num = 'f00dcafe'"))
    await engine.dispose()

    settings = build_settings(empty_database, tmp_path)
    async with running_app(settings) as (_, client):
        health = await client.get("/health")
        registered = await register(client, "tomorrow")

    assert health.status_code == 200, health.text
    assert registered.status_code == 201, registered.text
    assert await _revisions(empty_database) == ["f00dcafe"]


async def test_a_database_unreachable_at_start_up_is_migrated_once_it_answers(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "not-yet"
    settings = build_settings(f"sqlite+aiosqlite:///{directory / 'auth.db'}", tmp_path)
    async with running_app(settings) as (_, client):
        before = await client.get("/health")
        directory.mkdir()  # the volume is mounted: the database can be created now
        deadline = time.monotonic() + 30
        while (health := await client.get("/health")).status_code != 200:
            assert time.monotonic() < deadline, health.text
            await asyncio.sleep(0.05)  # a polling interval, not a synchronisation
        registered = await register(client, "patient")

    assert before.status_code == 503
    assert registered.status_code == 201, registered.text


async def _waiting_migrators(connection: asyncpg.Connection) -> int:
    count: int = await connection.fetchval(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE application_name = 'authsvc-migrate' AND wait_event_type = 'Lock'"
    )
    return count


@pytest.mark.postgres
async def test_a_replica_waits_for_the_migration_lock_past_the_statement_timeout(
    tmp_path: Path,
) -> None:
    """Another replica holds the lock for longer than DB_STATEMENT_TIMEOUT_MS: this one
    waits for it instead of failing, then finds the schema and starts."""
    async with fresh_postgres_database("test_startup_lock") as url:
        server = make_url(url)
        holder = await asyncpg.connect(
            host=server.host, port=server.port, user=server.username, database=server.database
        )
        settings = build_settings(url, tmp_path, db_statement_timeout_ms=200)
        ready, stop = asyncio.Event(), asyncio.Event()

        async def replica() -> None:
            application = create_app(settings)
            async with application.router.lifespan_context(application):
                ready.set()
                await stop.wait()

        try:
            await holder.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
            task = asyncio.create_task(replica())
            deadline = time.monotonic() + 30
            while not await _waiting_migrators(holder):
                assert time.monotonic() < deadline, "the replica never queued for the lock"
                assert not task.done(), task
                await asyncio.sleep(0.02)  # a polling interval, not a synchronisation
            waiting_since = time.monotonic()
            # Five statement timeouts later it is still queued, not cancelled.
            while time.monotonic() - waiting_since < 1.0:
                assert await _waiting_migrators(holder) == 1
                assert not ready.is_set()
                await asyncio.sleep(0.05)  # a polling interval, not a synchronisation
            await holder.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)
            await asyncio.wait_for(ready.wait(), timeout=30)
            assert await _revisions(url) == HEAD
        finally:
            stop.set()
            await holder.close()
        await task
