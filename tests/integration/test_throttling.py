"""Brute-force throttling over HTTP, on in-memory counters and on the real Redis.

Time is moved with time-machine, which the `limits` library reads through `time.time()`;
nothing sleeps.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import redis.asyncio as redis
import time_machine
from fastapi import FastAPI

from app.config import Settings
from app.throttle import Throttle
from app.utils.keyed_hash import KeyedHash
from app.wiring import THROTTLE_KEY_INFO, build_identifier_hash
from tests.support import PASSWORD, LogCapture, UserFactory, assert_error
from tests.support.backends import stores_paired
from tests.support.servers import free_port

pytestmark = stores_paired

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


# --- per (account, client) and the account's ceiling ---------------------------------


async def test_failures_from_rotating_addresses_do_not_lock_the_owner_out_at_home(
    client_from: ClientFrom, user_factory: UserFactory
) -> None:
    """The finding: five wrong passwords from rotating addresses, then the victim's right
    password from their own address, answered 429. The tight limit is per (account, client)."""
    victim = await user_factory()
    for n in range(6):
        async with client_from(f"198.51.100.{n + 1}") as attacker:
            assert_error(await _login(attacker, email=victim.email), 401, "INVALID_CREDENTIALS")
    async with client_from("192.0.2.44") as home:
        response = await _login(home, victim.password, email=victim.email)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("limits", [{"rate_limit_login_account_ceiling": "8/day"}])
async def test_the_accounts_ceiling_holds_across_every_address(
    client_from: ClientFrom, user_factory: UserFactory
) -> None:
    victim = await user_factory()
    for n in range(8):
        async with client_from(f"198.51.100.{n + 1}") as attacker:
            assert_error(await _login(attacker, email=victim.email), 401, "INVALID_CREDENTIALS")
    async with client_from("198.51.100.99") as attacker:
        assert 1 <= _retry_after(await _login(attacker, email=victim.email)) <= 24 * 3600
    # The price of a ceiling (docs/security.md): past it, the owner waits too.
    async with client_from("192.0.2.44") as home:
        _retry_after(await _login(home, victim.password, email=victim.email))


async def test_a_success_resets_its_own_clients_failures_not_another_clients(
    client_from: ClientFrom, user_factory: UserFactory
) -> None:
    user = await user_factory()
    async with client_from("192.0.2.10") as home, client_from("198.51.100.10") as other:
        for _ in range(4):
            await _login(home, email=user.email)
            await _login(other, email=user.email)
        assert (await _login(home, user.password, email=user.email)).status_code == 200
        for _ in range(5):
            assert_error(await _login(home, email=user.email), 401, "INVALID_CREDENTIALS")
        assert_error(await _login(other, email=user.email), 401, "INVALID_CREDENTIALS")
        _retry_after(await _login(other, email=user.email))


def _stored_keys(app: FastAPI) -> list[str]:
    throttle: Throttle = app.state.throttle
    return [str(key) for key in getattr(throttle.storage, "events", {})]


async def _redis_keys(settings: Settings) -> list[str]:
    assert settings.redis_url is not None
    async with redis.Redis.from_url(settings.redis_url) as client:
        pattern = f"{settings.redis_key_prefix}*"
        return [key.decode() async for key in client.scan_iter(match=pattern)]


async def test_throttle_keys_are_a_keyed_hash_of_the_identifier(
    client: httpx.AsyncClient, app: FastAPI, settings: Settings
) -> None:
    await _login(client, email="Eve@Example.com")
    keys = await _redis_keys(settings) if settings.redis_url else _stored_keys(app)
    throttle: Throttle = app.state.throttle
    keyed = throttle.account_key("eve@example.com")
    plain = hashlib.sha256(b"eve@example.com").hexdigest()
    assert [key for key in keys if "login-account-ceiling" in key and keyed in key]
    assert [key for key in keys if "login-account-ip" in key and f"{keyed}:203.0.113.7" in key]
    assert not [key for key in keys if "eve" in key.lower() or plain in key]
    # Another SECRET_KEY, or another purpose (the log's `info`), gives another digest.
    other_deployment = KeyedHash.from_secret("x" * 40, THROTTLE_KEY_INFO)("eve@example.com")
    log_digest = build_identifier_hash(settings)("eve@example.com")
    assert keyed != other_deployment
    assert not keyed.startswith(log_digest)


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


@PER_IP
async def test_addresses_of_one_ipv6_64_share_one_budget(client_from: ClientFrom) -> None:
    """A /64 is one customer's (RFC 6177): rotating inside it does not escape the limit."""
    for n in range(8):
        async with client_from(f"2001:db8:1:2::{n + 1:x}") as rotating:
            assert_error(await _login(rotating, username=f"v6-{n}"), 401, "INVALID_CREDENTIALS")
    async with client_from("2001:db8:1:2:ffff:ffff:ffff:fffe") as same_64:
        _retry_after(await _login(same_64, username="v6-9"))
    async with client_from("2001:db8:1:3::1") as next_64:
        assert_error(await _login(next_64, username="v6-10"), 401, "INVALID_CREDENTIALS")


@PER_IP
async def test_an_ipv4_mapped_address_counts_as_its_ipv4_address(client_from: ClientFrom) -> None:
    for n in range(8):
        peer = "::ffff:198.51.100.77" if n % 2 else "198.51.100.77"
        async with client_from(peer) as mapped:
            assert_error(await _login(mapped, username=f"v4-{n}"), 401, "INVALID_CREDENTIALS")
    async with client_from("198.51.100.77") as plain:
        _retry_after(await _login(plain, username="v4-9"))


@PER_IP
async def test_requests_without_an_address_share_one_bucket_and_warn_once(
    app: FastAPI, logs: LogCapture
) -> None:
    """What a Unix socket gives (no peer address): fail closed, never unthrottled."""
    transport = httpx.ASGITransport(app=app, client=None)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as no_address:
        for n in range(8):
            headers = {"X-Forwarded-For": f"192.0.2.{n}"}  # no trusted proxy: ignored
            response = await no_address.post(
                "/auth/login", json={"username": f"uds{n}", "password": WRONG}, headers=headers
            )
            assert_error(response, 401, "INVALID_CREDENTIALS")
        _retry_after(await _login(no_address, username="uds9"))
    warnings = [line for line in logs.lines() if "without a client address" in line["message"]]
    assert len(warnings) == 1
    assert {line["client_ip"] for line in logs.lines() if "client_ip" in line} == {None}


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


@pytest.mark.parametrize("limits", [{"redis_url": f"redis://127.0.0.1:{free_port()}/0"}])
async def test_unreachable_redis_fails_closed_with_503(client: httpx.AsyncClient) -> None:
    response = await _login(client, username="anyone")
    assert_error(response, 503, "SERVICE_UNAVAILABLE")
    assert int(response.headers["Retry-After"]) >= 1
