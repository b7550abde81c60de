"""Brute-force throttling over HTTP, on in-memory counters and on the real Redis.

Time is moved with time-machine, which the `limits` library reads through `time.time()`;
nothing sleeps.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import time_machine
from fastapi import FastAPI

from tests.support import PASSWORD, UserFactory, assert_error

WRONG = "not the right password"
ClientFrom = Callable[[str], AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def limits() -> dict[str, Any]:
    """Limits small enough to reach; the account limits are the defaults."""
    return {
        "rate_limit_login_ip": "1000/minute",
        "rate_limit_register_ip": "3/minute",
        "rate_limit_refresh_ip": "3/minute",
    }


@pytest.fixture
def settings_overrides(throttle_redis_url: str | None, limits: dict[str, Any]) -> dict[str, Any]:
    return {"redis_url": throttle_redis_url, **limits}


@pytest.fixture
def client_from(app: FastAPI) -> ClientFrom:
    """A client whose requests come from the socket address `ip`."""

    @asynccontextmanager
    async def make(ip: str) -> AsyncIterator[httpx.AsyncClient]:
        transport = httpx.ASGITransport(app=app, client=(ip, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c

    return make


async def _login(client: httpx.AsyncClient, password: str = WRONG, **who: str) -> httpx.Response:
    return await client.post("/auth/login", json={**who, "password": password})


def _retry_after(response: httpx.Response) -> int:
    assert_error(response, 429, "RATE_LIMITED")
    return int(response.headers["Retry-After"])


# --- per account ------------------------------------------------------------------------


async def test_sixth_failure_for_an_account_is_429_even_with_the_right_password(
    client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    user = await user_factory()
    for _ in range(5):
        assert_error(await _login(client, email=user.email), 401, "INVALID_CREDENTIALS")
    response = await _login(client, user.password, email=user.email)
    assert 1 <= _retry_after(response) <= 300


async def test_unknown_account_is_throttled_exactly_like_a_real_one(
    client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    user = await user_factory()
    answers = {}
    for email in (user.email, "nobody@example.com"):
        for _ in range(5):
            await _login(client, email=email)
        answers[email] = await _login(client, email=email)
    real, unknown = answers.values()
    assert real.status_code == unknown.status_code == 429
    assert real.json()["detail"] == unknown.json()["detail"]
    # Measured a few milliseconds apart, the waits may straddle a second boundary.
    assert abs(int(real.headers["Retry-After"]) - int(unknown.headers["Retry-After"])) <= 1


async def test_the_account_key_is_the_normalised_identifier(client: httpx.AsyncClient) -> None:
    for spelling in ("Eve@Example.com", "eve@example.com", " EVE@EXAMPLE.COM", "eve@EXAMPLE.com"):
        assert_error(await _login(client, email=spelling), 401, "INVALID_CREDENTIALS")
    await _login(client, email="eve@example.com")
    _retry_after(await _login(client, email="EVE@example.com"))
    for spelling in ("Mallory", "mallory", "MALLORY", "mAllory", "malloRY"):
        await _login(client, username=spelling)
    _retry_after(await _login(client, username="mallory"))


async def test_other_accounts_are_not_affected(
    client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    victim, bystander = await user_factory(), await user_factory()
    for _ in range(6):
        await _login(client, email=victim.email)
    response = await _login(client, bystander.password, email=bystander.email)
    assert response.status_code == 200


async def test_successful_login_resets_the_accounts_failures(
    client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    user = await user_factory()
    for _ in range(4):
        await _login(client, username=user.username)
    assert (await _login(client, user.password, username=user.username)).status_code == 200
    for _ in range(4):
        assert_error(await _login(client, username=user.username), 401, "INVALID_CREDENTIALS")


async def test_successful_login_by_username_also_resets_the_failures_by_email(
    client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    user = await user_factory()
    for _ in range(4):
        await _login(client, email=user.email)
    assert (await _login(client, user.password, username=user.username)).status_code == 200
    # The email's count starts again: five more failures pass, the sixth is refused.
    for _ in range(5):
        assert_error(await _login(client, email=user.email), 401, "INVALID_CREDENTIALS")
    assert_error(await _login(client, email=user.email), 429, "RATE_LIMITED")


async def test_back_off_grows_and_the_lock_lifts_when_the_window_passes(
    client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    user = await user_factory()
    with time_machine.travel(datetime.now(UTC), tick=False) as clock:
        for _ in range(5):
            await _login(client, email=user.email)
        first_wait = _retry_after(await _login(client, email=user.email))
        assert first_wait <= 300

        clock.shift(first_wait + 1)  # the 5-minute window has room again...
        for _ in range(5):
            assert_error(await _login(client, email=user.email), 401, "INVALID_CREDENTIALS")
        second_wait = _retry_after(await _login(client, email=user.email))
        assert second_wait > 300 * 5  # ...but 10 failures fill the hour: a longer wait

        clock.shift(second_wait + 1)
        response = await _login(client, user.password, email=user.email)
        assert response.status_code == 200


# --- per client IP ----------------------------------------------------------------------


PER_IP = pytest.mark.parametrize("limits", [{"rate_limit_login_ip": "8/minute"}])


@PER_IP
async def test_many_accounts_from_one_client_are_throttled_per_ip(
    client: httpx.AsyncClient, client_from: ClientFrom
) -> None:
    for n in range(8):
        assert_error(await _login(client, username=f"guess{n}"), 401, "INVALID_CREDENTIALS")
    _retry_after(await _login(client, username="guess9"))
    async with client_from("198.51.100.20") as other:
        assert_error(await _login(other, username="guess10"), 401, "INVALID_CREDENTIALS")


@PER_IP
async def test_a_spoofed_x_forwarded_for_changes_nothing(client: httpx.AsyncClient) -> None:
    for n in range(8):
        headers = {"X-Forwarded-For": f"192.0.2.{n}"}
        response = await client.post(
            "/auth/login", json={"username": f"spoof{n}", "password": WRONG}, headers=headers
        )
        assert response.status_code == 401
    response = await client.post(
        "/auth/login",
        json={"username": "spoof9", "password": WRONG},
        headers={"X-Forwarded-For": "192.0.2.200"},
    )
    _retry_after(response)


@pytest.mark.parametrize(
    "limits",
    [{"rate_limit_login_ip": "2/minute", "trusted_proxies": "203.0.113.0/24, 10.0.0.1"}],
)
async def test_x_forwarded_for_from_a_trusted_proxy_names_the_client(
    client: httpx.AsyncClient,
) -> None:
    accounts = iter(range(100))

    async def attempt(forwarded_for: str) -> httpx.Response:
        return await client.post(
            "/auth/login",
            json={"username": f"someone{next(accounts)}", "password": WRONG},
            headers={"X-Forwarded-For": forwarded_for},
        )

    # Each client gets its own budget; the trusted hops (10.0.0.1) are skipped.
    for client_ip in ("192.0.2.1", "192.0.2.2", "192.0.2.3"):
        for _ in range(2):
            assert (await attempt(f"{client_ip}, 10.0.0.1")).status_code == 401
    _retry_after(await attempt("192.0.2.1, 10.0.0.1"))
    # A client cannot escape by prepending a made-up hop: the rightmost untrusted one counts.
    _retry_after(await attempt("198.18.0.1, 192.0.2.1, 10.0.0.1"))


async def test_registration_is_throttled_per_ip(client: httpx.AsyncClient) -> None:
    for n in range(3):
        payload = {"email": f"r{n}@example.com", "username": f"reg{n}", "password": PASSWORD}
        assert (await client.post("/auth/register", json=payload)).status_code == 201
    payload = {"email": "r9@example.com", "username": "reg9", "password": PASSWORD}
    _retry_after(await client.post("/auth/register", json=payload))


async def test_refresh_is_throttled_per_ip(
    client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    user = await user_factory()
    for _ in range(3):
        response = await client.post("/auth/refresh", json={"refresh_token": user.refresh_token})
        assert response.status_code == 200
    _retry_after(await client.post("/auth/refresh", json={"refresh_token": user.refresh_token}))


# --- the store itself -------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.mark.parametrize("limits", [{"redis_url": f"redis://127.0.0.1:{_closed_port()}/0"}])
async def test_unreachable_redis_fails_closed_with_503(client: httpx.AsyncClient) -> None:
    response = await _login(client, username="anyone")
    assert_error(response, 503, "SERVICE_UNAVAILABLE")
    assert int(response.headers["Retry-After"]) >= 1
