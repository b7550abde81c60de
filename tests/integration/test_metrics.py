"""GET /metrics: Prometheus text that moves with what the service does."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from app.config import Settings
from app.core.errors import DatabaseException
from app.database import Database
from app.main import create_app
from tests.support import UserFactory

Labels = dict[str, str]
METRICS_TOKEN = "scrape-token-0b9e4c1d7a2f4e6b"


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Scraped from another host, as Prometheus usually is: with the bearer token."""
    return {"metrics_token": METRICS_TOKEN}


async def scrape(client: httpx.AsyncClient) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = await client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def test_auth_counters_move_with_logins_registrations_and_refreshes(
    client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    before = await scrape(client)
    assert value(before, "authsvc_login_failures_total", reason="wrong_password") == 0
    alice = await user_factory()
    await user_factory()
    for _ in range(3):
        await client.post("/auth/login", json={"email": alice.email, "password": alice.password})
    await client.post("/auth/login", json={"email": alice.email, "password": "wrong password"})
    await client.post("/auth/login", json={"username": "ghost", "password": "whatever pw"})
    await client.post("/auth/refresh", json={"refresh_token": alice.refresh_token})
    await client.post("/auth/refresh", json={"refresh_token": alice.access_token})
    await client.get("/users/me", headers={"Authorization": "Bearer a.b.c"})

    after = await scrape(client)
    assert value(after, "authsvc_registrations_total") == 2
    assert value(after, "authsvc_login_successes_total") == 3
    assert value(after, "authsvc_login_failures_total", reason="wrong_password") == 1
    assert value(after, "authsvc_login_failures_total", reason="unknown_user") == 1
    assert value(after, "authsvc_login_failures_total", reason="inactive") == 0
    assert value(after, "authsvc_token_refreshes_total") == 1
    rejected = "authsvc_tokens_rejected_total"
    assert value(after, rejected, reason="wrong_type", token_type="refresh") == 1
    assert value(after, rejected, reason="malformed", token_type="access") == 1


async def test_requests_are_counted_by_route_template_and_status(
    client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    user = await user_factory()
    await client.get("/users/me", headers=user.auth)
    await client.get("/users/me", headers=user.auth)
    await client.get("/users/me")
    await client.get("/no/such/path/12345")
    await client.request("BREW", "/health/live")
    asset = re.search(r'src="([^"]+\.js)"', (await client.get("/docs")).text)
    assert asset is not None
    await client.get(asset.group(1))

    samples = await scrape(client)
    count = "authsvc_http_requests_total"
    assert value(samples, count, method="GET", route="/users/me", status="200") == 2
    assert value(samples, count, method="GET", route="/users/me", status="401") == 1
    assert value(samples, count, method="POST", route="/auth/register", status="201") == 1
    assert value(samples, count, method="GET", route="unmatched", status="404") == 1
    static = "/static-offline-docs/{path:path}"
    assert value(samples, count, method="GET", route=static, status="200") == 1
    # An invented method or path never becomes a label value of its own.
    assert value(samples, count, method="OTHER", route="/health/live", status="405") == 1
    assert not any("12345" in str(labels) or "BREW" in str(labels) for _, labels in samples)
    latency = "authsvc_http_request_duration_seconds_count"
    assert value(samples, latency, method="GET", route="/users/me") == 3
    assert not any(dict(labels).get("route") == "/metrics" for _, labels in samples)


async def test_the_database_check_latency_is_observed_by_outcome(
    client: httpx.AsyncClient, app: FastAPI, database: Database
) -> None:
    await client.get("/health")
    await client.get("/health")
    broken = Database(
        database.settings.model_copy(
            update={"database_url": "sqlite+aiosqlite:////nonexistent-dir/sub/auth.db"}
        )
    )
    app.state.database = broken
    try:
        assert (await client.get("/health")).status_code == 503
    finally:
        app.state.database = database
        await broken.dispose()

    samples = await scrape(client)
    check = "authsvc_database_check_duration_seconds"
    assert value(samples, f"{check}_count", outcome="ok") == 2
    assert value(samples, f"{check}_count", outcome="failing") == 1
    assert value(samples, f"{check}_sum", outcome="ok") > 0


async def test_the_breaker_gauge_follows_the_database_breaker(
    client: httpx.AsyncClient, database: Database
) -> None:
    assert value(await scrape(client), "authsvc_circuit_breaker_state", breaker="database") == 0
    for _ in range(database.breaker.failure_threshold):
        with pytest.raises(DatabaseException):
            async with database.breaker.guard():
                raise DatabaseException()

    opened = await scrape(client)
    assert value(opened, "authsvc_circuit_breaker_state", breaker="database") == 2
    assert (await client.get("/health")).status_code == 503
    database.breaker.reset()

    closed = await scrape(client)
    assert value(closed, "authsvc_circuit_breaker_state", breaker="database") == 0
    transitions = "authsvc_circuit_breaker_transitions_total"
    assert value(closed, transitions, breaker="database", state="open") == 1
    assert value(closed, transitions, breaker="database", state="closed") == 1


async def test_metrics_is_not_in_the_openapi_document(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    assert "/metrics" not in document["paths"]


async def test_openmetrics_is_served_when_asked_for(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/metrics",
        headers={
            "Accept": "application/openmetrics-text; version=1.0.0",
            "Authorization": f"Bearer {METRICS_TOKEN}",
        },
    )
    assert response.headers["Content-Type"].startswith("application/openmetrics-text")
    assert response.text.endswith("# EOF\n")


async def test_two_apps_in_one_process_keep_their_own_counts(
    client: httpx.AsyncClient, settings: Settings, user_factory: UserFactory
) -> None:
    other = create_app(settings)
    async with other.router.lifespan_context(other):
        transport = httpx.ASGITransport(app=other)
        async with httpx.AsyncClient(transport=transport, base_url="http://other") as other_client:
            await user_factory()
            other_samples = await scrape(other_client)
    assert value(await scrape(client), "authsvc_registrations_total") == 1
    assert value(other_samples, "authsvc_registrations_total") == 0
