"""POST /auth/token: the OAuth2 password (RFC 6749 §4.3) and refresh (§6) grants."""

from __future__ import annotations

import base64

import httpx
import pytest
from sqlalchemy import update

from app.database import Database
from app.models import User
from tests.support import UserFactory

SWAGGER_UI_EMPTY_CLIENT = {"Authorization": "Basic Og=="}  # base64(":")


def assert_oauth2_error(response: httpx.Response, status: int, error: str) -> dict[str, str]:
    """RFC 6749 §5.2 body, with the contract's request id and no contract-only fields."""
    assert response.status_code == status, response.text
    body: dict[str, str] = response.json()
    assert set(body) == {"error", "error_description", "request_id"}
    assert body["error"] == error
    assert body["error_description"]
    assert body["request_id"] == response.headers["X-Request-ID"]
    assert response.headers["Cache-Control"] == "no-store"
    return body


async def _token(client: httpx.AsyncClient, **kwargs: object) -> httpx.Response:
    return await client.post("/auth/token", **kwargs)  # type: ignore[arg-type]


async def test_password_grant_with_email_returns_rfc6749_token_response(
    client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    user = await user_factory()
    response = await _token(
        client, data={"grant_type": "password", "username": user.email, "password": user.password}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "refresh_token"}
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 1800
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Pragma"] == "no-cache"
    me = await client.get("/users/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200
    assert me.json()["id"] == user.id


async def test_password_grant_with_username_in_any_case(
    client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    user = await user_factory(username="Carol")
    response = await _token(
        client, data={"grant_type": "password", "username": "cAROL", "password": user.password}
    )
    assert response.status_code == 200, response.text


async def test_swagger_ui_empty_basic_client_credentials_are_accepted(
    client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    user = await user_factory()
    response = await _token(
        client,
        headers=SWAGGER_UI_EMPTY_CLIENT,
        # What the Swagger UI posts: an empty scope besides the credentials.
        data={
            "grant_type": "password",
            "username": user.email,
            "password": user.password,
            "scope": "",
        },
    )
    assert response.status_code == 200, response.text


async def test_public_client_may_identify_itself_without_secret(
    client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    user = await user_factory()
    identified = {"Authorization": "Basic " + base64.b64encode(b"my-cli:").decode()}
    data = {"grant_type": "password", "username": user.email, "password": user.password}
    assert (await _token(client, headers=identified, data=data)).status_code == 200
    assert (await _token(client, data={**data, "client_id": "my-cli"})).status_code == 200


async def test_unknown_parameters_are_ignored(
    client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    user = await user_factory()
    response = await _token(
        client,
        data={
            "grant_type": "password",
            "username": user.email,
            "password": user.password,
            "is_admin": "true",
        },
    )
    assert response.status_code == 200, response.text


async def test_wrong_password_and_unknown_user_are_the_same_invalid_grant(
    client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    user = await user_factory()
    wrong = await _token(
        client, data={"grant_type": "password", "username": user.email, "password": "nope-nope"}
    )
    unknown = await _token(
        client,
        data={"grant_type": "password", "username": "ghost@example.com", "password": "nope-nope"},
    )
    first = assert_oauth2_error(wrong, 400, "invalid_grant")
    second = assert_oauth2_error(unknown, 400, "invalid_grant")
    assert first["error_description"] == second["error_description"]


async def test_inactive_user_is_invalid_grant(
    client: httpx.AsyncClient, user_factory: UserFactory, database: Database
) -> None:
    user = await user_factory()
    async with database.session() as session:
        await session.execute(update(User).where(User.id == user.id).values(is_active=False))
    response = await _token(
        client, data={"grant_type": "password", "username": user.email, "password": user.password}
    )
    assert_oauth2_error(response, 400, "invalid_grant")


async def test_refresh_grant_issues_an_access_token_that_works(
    client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    user = await user_factory()
    response = await _token(
        client, data={"grant_type": "refresh_token", "refresh_token": user.refresh_token}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "refresh_token"}
    assert response.headers["Cache-Control"] == "no-store"
    me = await client.get("/users/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200


@pytest.mark.parametrize("kind", ["access", "garbage"])
async def test_refresh_grant_with_a_non_refresh_token_is_invalid_grant(
    client: httpx.AsyncClient, user_factory: UserFactory, kind: str
) -> None:
    user = await user_factory()
    token = user.access_token if kind == "access" else "not.a.jwt"
    response = await _token(client, data={"grant_type": "refresh_token", "refresh_token": token})
    assert_oauth2_error(response, 400, "invalid_grant")


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"username": "a@example.com", "password": "x"}, "invalid_request"),
        ({"grant_type": "password", "username": "a@example.com"}, "invalid_request"),
        # RFC 6749 §3.2: a parameter without a value counts as omitted.
        (
            {"grant_type": "password", "username": "a@example.com", "password": ""},
            "invalid_request",
        ),
        ({"grant_type": "refresh_token"}, "invalid_request"),
        ({"grant_type": "client_credentials"}, "unsupported_grant_type"),
        ({"grant_type": "implicit"}, "unsupported_grant_type"),
    ],
)
async def test_malformed_requests_get_oauth2_errors(
    client: httpx.AsyncClient, data: dict[str, str], error: str
) -> None:
    assert_oauth2_error(await _token(client, data=data), 400, error)


async def test_repeated_parameter_is_invalid_request(client: httpx.AsyncClient) -> None:
    response = await _token(
        client,
        content=b"grant_type=password&username=a%40example.com&password=x&password=y",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert_oauth2_error(response, 400, "invalid_request")


async def test_json_body_is_invalid_request(
    client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    user = await user_factory()
    response = await _token(
        client, json={"grant_type": "password", "username": user.email, "password": user.password}
    )
    body = assert_oauth2_error(response, 400, "invalid_request")
    assert "application/x-www-form-urlencoded" in body["error_description"]


async def test_oversized_field_is_invalid_request(client: httpx.AsyncClient) -> None:
    response = await _token(
        client, data={"grant_type": "password", "username": "a" * 255, "password": "x"}
    )
    assert "username" in assert_oauth2_error(response, 400, "invalid_request")["error_description"]


@pytest.mark.parametrize(
    ("headers", "data"),
    [
        ({}, {"client_id": "app", "client_secret": "s3cret"}),
        ({"Authorization": "Basic " + base64.b64encode(b"app:s3cret").decode()}, {}),
        ({"Authorization": "Basic !!!not-base64"}, {}),
        ({"Authorization": "Basic " + base64.b64encode(b"no-colon").decode()}, {}),
        ({"Authorization": "Bearer something"}, {}),
    ],
    ids=["secret-in-body", "secret-in-basic", "bad-base64", "no-colon", "other-scheme"],
)
async def test_client_authentication_other_than_public_is_invalid_client(
    client: httpx.AsyncClient,
    user_factory: UserFactory,
    headers: dict[str, str],
    data: dict[str, str],
) -> None:
    user = await user_factory()
    response = await _token(
        client,
        headers=headers,
        data={"grant_type": "password", "username": user.email, "password": user.password, **data},
    )
    assert_oauth2_error(response, 401, "invalid_client")
    assert response.headers["WWW-Authenticate"].startswith("Basic")


async def test_username_with_nul_is_invalid_grant_not_a_crash(client: httpx.AsyncClient) -> None:
    # Found by Schemathesis: PostgreSQL refused the NUL and the request ended in a 500.
    response = await _token(
        client, data={"grant_type": "password", "username": "ali\x00ce", "password": "x"}
    )
    assert_oauth2_error(response, 400, "invalid_grant")
