"""POST /auth/register, /auth/login, /auth/refresh and GET /users/me over HTTP (the contract)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import update

from app.core.jwt import TokenCodec, TokenType
from app.database import Database
from app.models import User
from tests.support import PASSWORD, TIMESTAMP, UserFactory, assert_error, codec_at


async def _deactivate(database: Database, user_id: int) -> None:
    async with database.session() as session:
        await session.execute(update(User).where(User.id == user_id).values(is_active=False))


# --- register ---------------------------------------------------------------------------


async def test_register_returns_201_with_tokens_and_user(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/auth/register",
        json={"email": "Alice@Example.com", "username": "Alice", "password": PASSWORD},
    )
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"access_token", "refresh_token", "token_type", "expires_in", "user"}
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 1800
    user = body["user"]
    assert set(user) == {
        "id",
        "email",
        "username",
        "is_active",
        "email_verified",
        "created_at",
        "last_login",
        "roles",
        "mfa_enabled",
        "has_password",
    }
    assert user["email_verified"] is False
    assert user["mfa_enabled"] is False
    assert user["email"] == "alice@example.com"
    assert user["username"] == "Alice"
    assert user["is_active"] is True
    assert user["last_login"] is None
    assert TIMESTAMP.match(user["created_at"])
    assert response.headers["Cache-Control"] == "no-store"
    assert "hashed_password" not in response.text


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"email": "not-an-email", "username": "bob", "password": PASSWORD}, "email"),
        ({"email": "b@example.com", "username": "b", "password": PASSWORD}, "username"),
        ({"email": "b@example.com", "username": "bad name!", "password": PASSWORD}, "username"),
        ({"email": "b@example.com", "username": "bob", "password": "short"}, "password"),
        ({"email": "b@example.com", "username": "bob", "password": "password123"}, "password"),
        ({"email": "b@example.com", "username": "bob", "password": "x" * 129}, "password"),
        ({"email": "b@example.com", "username": "bob"}, "password"),
        ({"email": "b" * 95 + "@example.com", "username": "bob", "password": PASSWORD}, "email"),
    ],
)
async def test_register_with_invalid_field_is_400_naming_it(
    client: httpx.AsyncClient, payload: dict[str, str], field: str
) -> None:
    body = assert_error(await client.post("/auth/register", json=payload), 400, "VALIDATION_ERROR")
    assert field in [e["field"] for e in body["errors"]]  # type: ignore[attr-defined]


async def test_register_with_password_containing_username_is_400(
    client: httpx.AsyncClient,
) -> None:
    payload = {"email": "z@example.com", "username": "zebra99", "password": "zebra99-rocks-hard"}
    body = assert_error(await client.post("/auth/register", json=payload), 400, "VALIDATION_ERROR")
    assert "username" in str(body["detail"])


@pytest.mark.parametrize("extra", [{"is_active": False}, {"id": 1}, {"role": "admin"}])
async def test_register_with_unknown_fields_is_400(
    client: httpx.AsyncClient, extra: dict[str, object]
) -> None:
    payload = {"email": "m@example.com", "username": "mallory", "password": PASSWORD, **extra}
    body = assert_error(await client.post("/auth/register", json=payload), 400, "VALIDATION_ERROR")
    assert body["errors"] == [{"field": next(iter(extra)), "message": "Unknown field"}]


@pytest.mark.parametrize(
    ("email", "username"),
    [
        ("taken@example.com", "someone"),
        ("TAKEN@Example.com", "someone"),
        ("free@example.com", "taken"),
        ("free@example.com", "TaKeN"),
    ],
)
async def test_register_duplicate_email_or_username_is_409(
    client: httpx.AsyncClient, user_factory: UserFactory, email: str, username: str
) -> None:
    await user_factory(email="taken@example.com", username="taken")
    response = await client.post(
        "/auth/register", json={"email": email, "username": username, "password": PASSWORD}
    )
    assert_error(response, 409, "USER_ALREADY_EXISTS")


async def test_concurrent_duplicate_registrations_give_one_201_and_409s(
    client: httpx.AsyncClient,
) -> None:
    payload = {"email": "race@example.com", "username": "racer", "password": PASSWORD}
    responses = await asyncio.gather(
        *(client.post("/auth/register", json=payload) for _ in range(10))
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] + [409] * 9
    for response in responses:
        if response.status_code == 409:
            assert_error(response, 409, "USER_ALREADY_EXISTS")


async def test_malformed_json_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/auth/register", content=b'{"email": ', headers={"Content-Type": "application/json"}
    )
    body = assert_error(response, 400, "VALIDATION_ERROR")
    assert body["detail"] == "Request body is not valid JSON"
    assert body["errors"] == [{"field": "body", "message": "Request body is not valid JSON"}]


async def test_over_long_email_names_the_limit_in_characters(client: httpx.AsyncClient) -> None:
    payload = {"email": "b" * 95 + "@example.com", "username": "bob", "password": PASSWORD}
    body = assert_error(await client.post("/auth/register", json=payload), 400, "VALIDATION_ERROR")
    assert {"field": "email", "message": "Must be at most 100 characters"} in body["errors"]  # type: ignore[operator]


@pytest.mark.parametrize("password", [" " * 8, "aaaaaaaaaaaa", "abababababab"])
async def test_repetitive_password_is_refused(client: httpx.AsyncClient, password: str) -> None:
    payload = {"email": "r@example.com", "username": "repeater", "password": password}
    body = assert_error(await client.post("/auth/register", json=payload), 400, "VALIDATION_ERROR")
    assert "repetitive" in str(body["detail"])


@pytest.mark.parametrize(("method", "path"), [("GET", "/users/me/"), ("POST", "/auth/login/")])
async def test_trailing_slash_is_an_unknown_route(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    response = await client.request(method, path, json={})
    assert_error(response, 404, "NOT_FOUND")
    assert "location" not in response.headers


# --- login ------------------------------------------------------------------------------


async def test_login_with_email_returns_tokens_and_sets_last_login(
    client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    user = await user_factory()
    response = await client.post(
        "/auth/login", json={"email": user.email.upper(), "password": user.password}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["user"]["id"] == user.id
    assert TIMESTAMP.match(body["user"]["last_login"])
    assert response.headers["Cache-Control"] == "no-store"


async def test_login_with_username_in_any_case(
    client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    user = await user_factory(username="MixedCase")
    response = await client.post(
        "/auth/login", json={"username": "mixedcase", "password": user.password}
    )
    assert response.status_code == 200
    assert response.json()["user"]["username"] == "MixedCase"


@pytest.mark.parametrize(
    "payload",
    [
        {"email": "known@example.com", "password": "wrong password here"},
        {"email": "unknown@example.com", "password": PASSWORD},
        {"username": "unknown", "password": PASSWORD},
        {"username": "known", "password": PASSWORD.upper()},
    ],
)
async def test_login_failures_are_the_same_401(
    client: httpx.AsyncClient, user_factory: UserFactory, payload: dict[str, str]
) -> None:
    await user_factory(email="known@example.com", username="known")
    body = assert_error(await client.post("/auth/login", json=payload), 401, "INVALID_CREDENTIALS")
    assert body["detail"] == "Invalid credentials"


@pytest.mark.parametrize(
    "payload",
    [
        {"password": PASSWORD},
        {"email": "a@example.com", "username": "a", "password": PASSWORD},
        {"email": "a@example.com", "password": ""},
        {"email": "a@example.com"},
        {},
    ],
)
async def test_login_without_exactly_one_identifier_or_password_is_400(
    client: httpx.AsyncClient, payload: dict[str, str]
) -> None:
    assert_error(await client.post("/auth/login", json=payload), 400, "VALIDATION_ERROR")


async def test_login_of_inactive_user_is_401_user_inactive(
    client: httpx.AsyncClient, user_factory: UserFactory, database: Database
) -> None:
    user = await user_factory()
    await _deactivate(database, user.id)
    response = await client.post(
        "/auth/login", json={"username": user.username, "password": user.password}
    )
    assert_error(response, 401, "USER_INACTIVE")
    assert response.headers["WWW-Authenticate"] == "Bearer"  # no token was sent


async def test_password_is_compared_after_nfkc(
    client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    user = await user_factory(password="\ufb01ne caf\u00e9 tables zq")
    response = await client.post(
        "/auth/login", json={"username": user.username, "password": "fine cafe\u0301 tables zq"}
    )
    assert response.status_code == 200


# --- refresh ----------------------------------------------------------------------------


async def test_refresh_returns_a_new_access_token(
    client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    user = await user_factory()
    response = await client.post("/auth/refresh", json={"refresh_token": user.refresh_token})
    assert response.status_code == 200
    body = response.json()
    assert body["access_token"] != user.access_token
    assert body["user"]["id"] == user.id
    me = await client.get("/users/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200


async def test_refresh_token_can_be_used_again_until_it_expires(
    client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    user = await user_factory()
    for _ in range(3):
        response = await client.post("/auth/refresh", json={"refresh_token": user.refresh_token})
        assert response.status_code == 200


@pytest.mark.parametrize("token", ["garbage", "a.b.c", "eyJhbGciOiJub25lIn0.e30."])
async def test_refresh_with_invalid_token_is_401(client: httpx.AsyncClient, token: str) -> None:
    response = await client.post("/auth/refresh", json={"refresh_token": token})
    assert_error(response, 401, "INVALID_TOKEN")


async def test_refresh_with_access_token_is_401(
    client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    user = await user_factory()
    response = await client.post("/auth/refresh", json={"refresh_token": user.access_token})
    assert_error(response, 401, "INVALID_TOKEN")


async def test_refresh_with_expired_token_is_401_token_expired(
    client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    user = await user_factory()
    eight_days_ago = datetime.now(UTC) - timedelta(days=8)
    expired = codec_at(eight_days_ago).issue(str(user.id), TokenType.REFRESH).token
    response = await client.post("/auth/refresh", json={"refresh_token": expired})
    assert_error(response, 401, "TOKEN_EXPIRED")


async def test_refresh_for_deactivated_user_is_401(
    client: httpx.AsyncClient, user_factory: UserFactory, database: Database
) -> None:
    user = await user_factory()
    await _deactivate(database, user.id)
    response = await client.post("/auth/refresh", json={"refresh_token": user.refresh_token})
    assert_error(response, 401, "USER_INACTIVE")


# --- /users/me --------------------------------------------------------------------------


async def test_me_with_valid_token_returns_the_user(
    client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    user = await user_factory()
    response = await client.get("/users/me", headers=user.auth)
    assert response.status_code == 200
    assert response.json()["email"] == user.email
    assert "hashed_password" not in response.json()


async def test_me_without_token_is_401_not_authenticated(client: httpx.AsyncClient) -> None:
    response = await client.get("/users/me")
    assert_error(response, 401, "NOT_AUTHENTICATED")
    assert response.headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize("header", ["NotBearer abc", "Basic dXNlcjpwYXNz", "Bearer", "bearer"])
async def test_me_with_malformed_authorization_header_is_401(
    client: httpx.AsyncClient, header: str
) -> None:
    response = await client.get("/users/me", headers={"Authorization": header})
    assert_error(response, 401, "NOT_AUTHENTICATED")
    assert response.headers["WWW-Authenticate"] == "Bearer"


async def test_me_with_invalid_token_is_401_invalid_token(client: httpx.AsyncClient) -> None:
    response = await client.get("/users/me", headers={"Authorization": "Bearer invalid"})
    assert_error(response, 401, "INVALID_TOKEN")
    assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'


async def test_me_with_expired_token_is_401_token_expired(
    client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    user = await user_factory()
    hour_ago = datetime.now(UTC) - timedelta(hours=1)
    expired = codec_at(hour_ago).issue(str(user.id), TokenType.ACCESS).token
    response = await client.get("/users/me", headers={"Authorization": f"Bearer {expired}"})
    assert_error(response, 401, "TOKEN_EXPIRED")
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


async def test_me_with_refresh_token_is_401_invalid_token(
    client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    user = await user_factory()
    response = await client.get(
        "/users/me", headers={"Authorization": f"Bearer {user.refresh_token}"}
    )
    assert_error(response, 401, "INVALID_TOKEN")


async def test_me_of_deactivated_user_is_401_user_inactive(
    client: httpx.AsyncClient, user_factory: UserFactory, database: Database
) -> None:
    user = await user_factory()
    await _deactivate(database, user.id)
    assert_error(await client.get("/users/me", headers=user.auth), 401, "USER_INACTIVE")


async def test_token_in_query_string_is_ignored(
    client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    user = await user_factory()
    response = await client.get("/users/me", params={"access_token": user.access_token})
    assert_error(response, 401, "NOT_AUTHENTICATED")


async def test_token_signed_with_another_key_is_401(
    client: httpx.AsyncClient, app: FastAPI, user_factory: UserFactory
) -> None:
    user = await user_factory()
    forged = TokenCodec(
        key="x" * 64,
        issuer=app.state.settings.jwt_issuer,
        audience="authsvc",
        access_ttl=timedelta(minutes=30),
        refresh_ttl=timedelta(days=7),
    ).issue(str(user.id), TokenType.ACCESS)
    response = await client.get("/users/me", headers={"Authorization": f"Bearer {forged.token}"})
    assert_error(response, 401, "INVALID_TOKEN")
