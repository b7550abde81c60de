"""Security headers, body size and media type limits, docs switch: the safe defaults."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.support import PASSWORD, UserFactory, assert_error
from tests.support.backends import backend_independent

pytestmark = backend_independent

LIMIT = 64 * 1024


# --- headers ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/health/live", "/auth/login", "/nowhere"])
async def test_api_responses_carry_the_security_headers(
    client: httpx.AsyncClient, path: str
) -> None:
    response = await client.get(path)
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["X-Frame-Options"] == "DENY"
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp
    assert "frame-ancestors 'none'" in csp
    assert "server" not in response.headers


async def test_responses_carrying_tokens_or_account_data_are_not_cached(
    client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    user = await user_factory()
    responses = [
        await client.post(
            "/auth/login", json={"username": user.username, "password": user.password}
        ),
        await client.post("/auth/refresh", json={"refresh_token": user.refresh_token}),
        await client.get("/users/me", headers=user.auth),
    ]
    for response in responses:
        assert response.status_code == 200
        assert response.headers["Cache-Control"] == "no-store"


async def test_docs_pages_get_a_policy_that_lets_their_own_assets_run(
    client: httpx.AsyncClient,
) -> None:
    for path in ("/docs", "/redoc"):
        csp = (await client.get(path)).headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp
        assert "connect-src 'self'" in csp
        assert "frame-ancestors 'none'" in csp
        assert "http" not in csp  # nothing from another origin


# --- body size --------------------------------------------------------------------------


async def test_declared_oversized_body_is_413_in_the_error_body(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/auth/login",
        content=b"{" + b" " * LIMIT + b"}",
        headers={"Content-Type": "application/json"},
    )
    assert_error(response, 413, "PAYLOAD_TOO_LARGE")


async def test_chunked_oversized_body_is_refused_before_it_is_read_whole(
    client: httpx.AsyncClient,
) -> None:
    sent = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal sent
        for _ in range(1000):  # 1 MB offered in 1 KB chunks, with no Content-Length
            sent += 1
            yield b" " * 1024

    response = await client.post(
        "/auth/register", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert "content-length" not in response.request.headers
    assert_error(response, 413, "PAYLOAD_TOO_LARGE")
    assert sent <= LIMIT // 1024 + 2  # stopped just past the limit, not at the end


async def test_body_just_under_the_limit_is_accepted(
    client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    user = await user_factory()
    body = f'{{"username": "{user.username}", "password": "{user.password}"}}'.encode()
    padded = body[:-1] + b" " * (LIMIT - len(body)) + b"}"
    assert len(padded) == LIMIT
    response = await client.post(
        "/auth/login", content=padded, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 200


@pytest.mark.parametrize("settings_overrides", [{"max_body_bytes": 2048}])
async def test_the_limit_is_configurable(client: httpx.AsyncClient) -> None:
    response = await client.post("/auth/login", json={"username": "x" * 3000, "password": PASSWORD})
    assert_error(response, 413, "PAYLOAD_TOO_LARGE")


# --- media type -------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/auth/register", "/auth/login", "/auth/refresh", "/auth/logout"])
@pytest.mark.parametrize(
    "content_type", ["application/x-www-form-urlencoded", "text/plain", "multipart/form-data", None]
)
async def test_json_endpoints_refuse_other_media_types_with_415(
    client: httpx.AsyncClient, path: str, content_type: str | None
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    response = await client.post(path, content=b'{"refresh_token": "x"}', headers=headers)
    assert_error(response, 415, "UNSUPPORTED_MEDIA_TYPE")


async def test_json_with_a_charset_parameter_is_accepted(
    client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    user = await user_factory()
    response = await client.post(
        "/auth/logout",
        content=f'{{"refresh_token": "{user.refresh_token}"}}'.encode(),
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    assert response.status_code == 204


# --- docs switch ------------------------------------------------------------------------


@pytest.mark.parametrize("settings_overrides", [{"docs_enabled": False}])
async def test_docs_can_be_turned_off(client: httpx.AsyncClient) -> None:
    for path in ("/docs", "/redoc", "/openapi.json"):
        assert_error(await client.get(path), 404, "NOT_FOUND")


# --- passwords over HTTP ----------------------------------------------------------------


@pytest.mark.parametrize("settings_overrides", [{"password_scheme": "argon2id"}])
async def test_a_long_password_is_never_truncated(
    client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    password = "long passphrase that keeps going " * 3 + "and ends here"  # 100+ chars
    assert len(password.encode()) > 72
    user = await user_factory(password=password)
    for typed in (password[:72], password[:-1]):
        response = await client.post(
            "/auth/login", json={"username": user.username, "password": typed}
        )
        assert_error(response, 401, "INVALID_CREDENTIALS")


async def test_password_with_the_email_local_part_is_400_naming_the_rule(
    client: httpx.AsyncClient,
) -> None:
    payload: dict[str, Any] = {
        "email": "quetzalcoatl@example.com",
        "username": "feathered",
        "password": "my quetzalcoatl passphrase",
    }
    body = assert_error(await client.post("/auth/register", json=payload), 400, "VALIDATION_ERROR")
    assert "email" in str(body["detail"]).lower()
