"""A real PostgreSQL goes down and comes back: 503s, the breaker opens, the service recovers.

The tests run their own throw-away cluster (tests/support/throwaway_postgres.py) so they can crash
it with `pg_ctl stop -m immediate`. The breaker's recovery timeout runs on a fake clock;
only the real server's start-up is waited for, by a poll with a deadline.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from app.audit.log import Event
from app.config import Settings
from app.core.errors import DatabaseException
from app.database import Database
from app.mail.sender import MailSender
from app.models import OutboxMail
from app.models.audit import AuditEvent
from app.utils.circuit_breaker import BreakerState
from tests.support import (
    FakeClock,
    ThrowawayPostgres,
    assert_unavailable,
    build_settings,
    find_bindir,
    login,
    prepare_schema,
    register,
    running_app,
    truncate,
)
from tests.support.mailbox import Mailbox, smtp_overrides
from tests.support.markers import starts

BREAKER_TIMEOUT = 30.0
THRESHOLD = 3


@pytest.fixture(scope="module")
@starts("process")
def cluster() -> Iterator[ThrowawayPostgres]:
    bindir = find_bindir()
    if bindir is None:
        reason = "PostgreSQL server binaries (initdb, pg_ctl) are not installed"
        if os.environ.get("TEST_REQUIRE_THROWAWAY_POSTGRES"):
            pytest.fail(f"{reason}, but TEST_REQUIRE_THROWAWAY_POSTGRES is set (CI)")
        pytest.skip(reason)
    server = ThrowawayPostgres(bindir)
    try:
        server.create()
        server.start()
        asyncio.run(prepare_schema(server.url))
        yield server
    finally:
        server.destroy()


@pytest.fixture
async def running_cluster(cluster: ThrowawayPostgres) -> ThrowawayPostgres:
    """The cluster, up (a previous test may have left it down) and with empty tables."""
    if not cluster.is_running():
        await asyncio.to_thread(cluster.start)
    await cluster.wait_until_accepting()
    await truncate(cluster.url)
    return cluster


def outage_settings(cluster: ThrowawayPostgres, tmp_path: Path, **overrides: Any) -> Settings:
    return build_settings(
        cluster.url,
        tmp_path,
        circuit_breaker_threshold=THRESHOLD,
        circuit_breaker_timeout=BREAKER_TIMEOUT,
        # One fixed open period: these tests follow a sustained outage through it.
        circuit_breaker_initial_timeout=BREAKER_TIMEOUT,
        db_connect_timeout=2.0,
        db_pool_timeout=2.0,
        db_health_timeout=1.0,
        **overrides,
    )


def bound(settings: Settings) -> float:
    """How long a failing request may take: generous, only there to catch a hang."""
    return settings.db_pool_timeout + settings.db_connect_timeout + 10


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def client(
    running_cluster: ThrowawayPostgres, tmp_path: Path, clock: FakeClock
) -> AsyncIterator[httpx.AsyncClient]:
    settings = outage_settings(running_cluster, tmp_path)
    async with running_app(settings, clock=clock) as (_, client):
        yield client


def database_of(client: httpx.AsyncClient) -> Database:
    transport = client._transport
    assert isinstance(transport, httpx.ASGITransport)
    database: Database = transport.app.state.database  # type: ignore[attr-defined]
    return database


async def test_crash_gives_503s_then_an_open_breaker_and_recovery_loses_nothing(
    running_cluster: ThrowawayPostgres, client: httpx.AsyncClient, clock: FakeClock
) -> None:
    database = database_of(client)
    transitions: list[tuple[str, str]] = []
    database.breaker.add_listener(lambda _, old, new: transitions.append((old.value, new.value)))
    names = [f"before{i}" for i in range(8)]
    tokens = {}
    for name in names:
        response = await register(client, name)
        assert response.status_code == 201, response.text
        tokens[name] = response.json()["access_token"]

    await asyncio.to_thread(running_cluster.stop, "immediate")
    limit = bound(database.settings)

    # Closed breaker: each request meets the dead server and ends in a clean, bounded 503.
    failing: list[Callable[[], Awaitable[httpx.Response]]] = [
        lambda: login(client, names[0]),
        lambda: register(client, "during-outage"),
        lambda: client.get("/users/me", headers={"Authorization": f"Bearer {tokens[names[1]]}"}),
    ]
    assert len(failing) == THRESHOLD
    for request in failing:
        async with asyncio.timeout(limit):
            response = await request()
        assert_unavailable(response, "SERVICE_UNAVAILABLE")
    assert database.breaker.state is BreakerState.OPEN

    # Open breaker: refused without touching the database, Retry-After counts down.
    response = await login(client, names[2])
    assert_unavailable(response, "CIRCUIT_BREAKER_OPEN")
    assert response.headers["Retry-After"] == str(int(BREAKER_TIMEOUT))
    clock.advance(10)
    async with asyncio.timeout(limit):
        burst = await asyncio.gather(*(login(client, name) for name in names))
    for response in burst:
        assert_unavailable(response, "CIRCUIT_BREAKER_OPEN")
        assert response.headers["Retry-After"] == str(int(BREAKER_TIMEOUT - 10))
    assert database.breaker.failure_count == THRESHOLD  # refused calls are not failures

    health = await client.get("/health")
    assert health.status_code == 503
    assert health.json()["status"] == "unavailable"
    assert health.json()["checks"]["database"]["status"] == "failing"
    assert health.json()["checks"]["circuit_breaker"] == {"state": "open"}
    assert health.headers["Retry-After"] == str(int(BREAKER_TIMEOUT - 10))
    live = await client.get("/health/live")
    assert live.status_code == 200

    await asyncio.to_thread(running_cluster.start)
    await running_cluster.wait_until_accepting()
    # The database is back, but the breaker keeps shedding until its timeout has passed.
    assert_unavailable(await login(client, names[0]), "CIRCUIT_BREAKER_OPEN")

    clock.advance(BREAKER_TIMEOUT - 10)
    for name in names:  # the first login is the half-open trial; it closes the breaker
        response = await login(client, name)
        assert response.status_code == 200, response.text
        assert response.json()["user"]["username"] == name
    assert transitions == [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]
    assert database.breaker.failure_count == 0

    health = await client.get("/health")
    assert health.status_code == 200
    assert health.json()["checks"]["circuit_breaker"] == {"state": "closed"}

    # A burst after recovery: the pool holds no dead or leaked connection.
    async def one(i: int) -> httpx.Response:
        if i % 3 == 0:
            return await register(client, f"after{i}")
        if i % 3 == 1:
            return await login(client, names[i % len(names)])
        token = tokens[names[i % len(names)]]
        return await client.get("/users/me", headers={"Authorization": f"Bearer {token}"})

    # Five at a time, the pool's size: on a busy machine a hundred at once would wait longer
    # than the pool timeout for a connection, which says nothing about leaks.
    gate = asyncio.Semaphore(5)

    async def gated(i: int) -> httpx.Response:
        async with gate:
            return await one(i)

    responses = await asyncio.gather(*(gated(i) for i in range(100)))
    assert [r.status_code for r in responses if r.status_code >= 300] == []
    assert database.engine.pool.checkedout() == 0  # type: ignore[attr-defined]


async def test_a_restart_behind_a_closed_breaker_is_invisible_to_clients(
    running_cluster: ThrowawayPostgres, client: httpx.AsyncClient
) -> None:
    assert (await register(client, "steady")).status_code == 201
    await asyncio.to_thread(running_cluster.stop, "immediate")
    await asyncio.to_thread(running_cluster.start)
    await running_cluster.wait_until_accepting()
    # Every pooled connection died with the server; the pre-ping replaces them unseen.
    responses = await asyncio.gather(*(login(client, "steady") for _ in range(5)))
    assert [r.status_code for r in responses] == [200] * 5
    assert database_of(client).breaker.failure_count == 0


async def test_a_statement_over_the_timeout_is_a_503_and_counts(
    running_cluster: ThrowawayPostgres, tmp_path: Path
) -> None:
    settings = outage_settings(running_cluster, tmp_path, db_statement_timeout_ms=200)
    database = Database(settings)
    try:
        async with asyncio.timeout(bound(settings)):
            with pytest.raises(DatabaseException):
                async with database.session() as session:
                    await session.execute(text("SELECT pg_sleep(30)"))
        assert database.breaker.failure_count == 1
        async with database.session() as session:  # the connection went back healthy
            assert (await session.execute(text("SELECT 1"))).scalar_one() == 1
        assert database.breaker.failure_count == 0
    finally:
        await database.dispose()


async def test_a_blip_costs_seconds_of_refusals_with_the_default_breaker(
    running_cluster: ThrowawayPostgres, tmp_path: Path
) -> None:
    """A restart opens the breaker; the database's return is noticed within seconds, not
    after CIRCUIT_BREAKER_TIMEOUT (60 s by default). Real time: the breaker's own clock."""
    settings = build_settings(
        running_cluster.url, tmp_path, db_connect_timeout=2.0, db_pool_timeout=2.0
    )
    assert settings.circuit_breaker_timeout == 60
    async with running_app(settings) as (app, client):
        database: Database = app.state.database
        registered = await register(client, "blip")
        assert registered.status_code == 201
        bearer = {"Authorization": f"Bearer {registered.json()['access_token']}"}
        await asyncio.to_thread(running_cluster.stop, "fast")
        async with asyncio.timeout(bound(settings) * settings.circuit_breaker_threshold):
            while database.breaker.state is not BreakerState.OPEN:
                assert_unavailable(await client.get("/users/me", headers=bearer))
        await asyncio.to_thread(running_cluster.start)
        await running_cluster.wait_until_accepting()

        back = time.monotonic()
        while (response := await client.get("/users/me", headers=bearer)).status_code != 200:
            assert_unavailable(response, "CIRCUIT_BREAKER_OPEN")
            assert int(response.headers["Retry-After"]) <= 10
            assert time.monotonic() - back < 10, "still refusing 10 s after the database is back"
            await asyncio.sleep(0.05)  # a polling interval, as a client's retry
        assert database.breaker.state.value == "closed"  # read afresh: mypy narrowed it


async def test_a_mail_accepted_while_postgres_restarts_is_recorded_and_sent_once(
    running_cluster: ThrowawayPostgres, tmp_path: Path
) -> None:
    """The SMTP server answers 250 while the database is down: the sender keeps the outcome
    and writes it when the database is back, instead of sending the mail again after its
    lease."""
    box = Mailbox()
    box.start()
    settings = build_settings(
        running_cluster.url, tmp_path, db_connect_timeout=2.0, **smtp_overrides(box)
    )
    try:
        async with running_app(settings) as (app, client):
            sender: MailSender = app.state.mail_sender
            box.hold()
            assert (await register(client, "restart")).status_code == 201
            await box.wait_until_held()  # the verification mail is on its way
            await asyncio.to_thread(running_cluster.stop, "fast")
            box.release()
            await box.wait_for(lambda m: m.to == "restart@example.com")
            deadline = time.monotonic() + 20
            # The server said 250; recording it met the database away.
            while app.state.database.breaker.failure_count == 0:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.02)

            await asyncio.to_thread(running_cluster.start)
            await running_cluster.wait_until_accepting()
            engine = create_async_engine(running_cluster.url)
            try:
                while (await _statuses(engine)) != ["sent"]:
                    assert time.monotonic() < deadline + 20, await _statuses(engine)
                    await asyncio.sleep(0.05)
                async with engine.connect() as connection:
                    events = (
                        await connection.execute(
                            select(AuditEvent.event).where(
                                AuditEvent.event == Event.EMAIL_VERIFICATION_SENT.value
                            )
                        )
                    ).all()
            finally:
                await engine.dispose()
        assert len(events) == 1  # recorded once, with the sent mark
        assert len(box.received(lambda m: m.to == "restart@example.com")) == 1
        assert sender.unrecorded == 0
    finally:
        box.stop()


async def _statuses(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as connection:
        return list((await connection.execute(select(OutboxMail.status))).scalars())
