"""Revocation (RFC 7009) and introspection (RFC 7662), with registered clients."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from typing import Any

import httpx
import jwt
import pytest
from sqlalchemy import select, update

from app.database import Database
from app.models import OAuthClient, User
from tests.support import TEST_SECRET, CliInvoker, RegisteredUser, UserFactory
from tests.support.admin import audit_events

FORM = "application/x-www-form-urlencoded"
ACTIVE_KEYS = {
    "active", "sub", "username", "token_type", "exp", "iat", "iss", "aud", "sid", "roles", "scope",
}  # fmt: skip


def basic(client_id: str, secret: str) -> dict[str, str]:
    encoded = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {encoded}"}


@pytest.fixture
async def credentials(run_cli: CliInvoker) -> dict[str, str]:
    result = await run_cli("clients", "create", "billing-api", "--json")
    assert result.exit_code == 0, result.output
    created: dict[str, str] = json.loads(result.stdout)
    return basic(created["client_id"], created["client_secret"])


async def introspect(
    client: httpx.AsyncClient, credentials: dict[str, str], token: str, **form: str
) -> dict[str, Any]:
    response = await client.post(
        "/auth/introspect", data={"token": token, **form}, headers=credentials
    )
    assert response.status_code == 200, response.text
    assert response.headers["Cache-Control"] == "no-store"
    body: dict[str, Any] = response.json()
    return body


async def me(client: httpx.AsyncClient, user: RegisteredUser) -> int:
    return (await client.get("/users/me", headers=user.auth)).status_code


# --- revocation ---------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["access_token", "refresh_token"])
async def test_revoking_either_token_ends_its_whole_session(
    client: httpx.AsyncClient, user_factory: UserFactory, which: str
) -> None:
    user = await user_factory()
    other = await user_factory()

    response = await client.post("/auth/revoke", data={"token": getattr(user, which)})

    assert response.status_code == 200
    assert response.content == b""
    assert await me(client, user) == 401
    refreshed = await client.post("/auth/refresh", json={"refresh_token": user.refresh_token})
    assert refreshed.status_code == 401
    assert await me(client, other) == 200


async def test_revoking_a_token_records_a_logout_in_the_audit_trail(
    client: httpx.AsyncClient, user_factory: UserFactory, database: Database
) -> None:
    user = await user_factory()
    sid = jwt.decode(user.refresh_token, options={"verify_signature": False})["sid"]

    response = await client.post("/auth/revoke", data={"token": user.refresh_token})
    again = await client.post("/auth/revoke", data={"token": user.refresh_token})

    assert (response.status_code, again.status_code) == (200, 200)
    # One event: the second call found nothing to end.
    (event,) = await audit_events(database, "logout")
    assert (event.user_id, event.actor_id) == (user.id, user.id)
    assert event.details == {"session_id": sid, "via": "revoke"}


@pytest.mark.parametrize("token", ["garbage", "a.b.c", "eyJhbGciOiJIUzI1NiJ9.e30.sig", "x" * 5000])
async def test_revoking_an_unknown_or_malformed_token_is_200(
    client: httpx.AsyncClient, token: str
) -> None:
    response = await client.post("/auth/revoke", data={"token": token})

    assert response.status_code == 200
    assert response.content == b""


async def test_revoking_an_expired_token_is_200_and_the_hint_only_orders_the_search(
    client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    user = await user_factory()
    claims = jwt.decode(user.access_token, options={"verify_signature": False})
    expired = jwt.encode(
        {**claims, "exp": claims["iat"] - 60, "iat": claims["iat"] - 120}, TEST_SECRET
    )

    assert (await client.post("/auth/revoke", data={"token": expired})).status_code == 200
    assert await me(client, user) == 200
    # A wrong or unknown hint does not stop the search (RFC 7009 §2.1).
    hinted = await client.post(
        "/auth/revoke", data={"token": user.access_token, "token_type_hint": "refresh_token"}
    )
    assert hinted.status_code == 200
    assert await me(client, user) == 401


async def test_revocation_takes_public_clients_and_checks_registered_ones(
    client: httpx.AsyncClient, user_factory: UserFactory, credentials: dict[str, str]
) -> None:
    user = await user_factory()
    swagger = {"Authorization": "Basic Og=="}

    wrong = await client.post(
        "/auth/revoke", data={"token": user.access_token}, headers=basic("nobody", "guess")
    )
    assert wrong.status_code == 401
    assert wrong.json()["error"] == "invalid_client"
    assert wrong.headers["WWW-Authenticate"].startswith("Basic")
    assert await me(client, user) == 200
    as_public = await client.post(
        "/auth/revoke", data={"token": user.access_token, "client_id": "spa"}, headers=swagger
    )
    assert as_public.status_code == 200
    second = await user_factory()
    as_client = await client.post(
        "/auth/revoke", data={"token": second.refresh_token}, headers=credentials
    )
    assert as_client.status_code == 200
    assert await me(client, second) == 401


@pytest.mark.parametrize("body", [{}, {"token": ""}, {"token_type_hint": "access_token"}])
async def test_revocation_without_a_token_is_400_invalid_request(
    client: httpx.AsyncClient, body: dict[str, str]
) -> None:
    response = await client.post("/auth/revoke", data=body)

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert set(response.json()) == {"error", "error_description", "request_id"}


async def test_revocation_wants_a_form(client: httpx.AsyncClient) -> None:
    response = await client.post("/auth/revoke", json={"token": "x"})

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


async def test_a_repeated_parameter_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/auth/revoke", content="token=a&token=b", headers={"Content-Type": FORM}
    )

    assert response.status_code == 400


# --- introspection ------------------------------------------------------------------------


async def test_an_active_access_token_introspects_with_its_facts(
    client: httpx.AsyncClient, user_factory: UserFactory, credentials: dict[str, str]
) -> None:
    user = await user_factory()
    claims = jwt.decode(user.access_token, options={"verify_signature": False})

    body = await introspect(client, credentials, user.access_token)

    assert set(body) == ACTIVE_KEYS
    assert body["active"] is True
    assert body["sub"] == str(user.id)
    assert body["username"] == user.username
    assert body["token_type"] == "access_token"
    assert (body["exp"], body["iat"], body["sid"]) == (claims["exp"], claims["iat"], claims["sid"])
    assert (body["iss"], body["aud"]) == ("http://localhost:8000", "authsvc")
    assert body["roles"] == []
    assert body["scope"] == ""


async def test_introspection_reports_the_users_roles_of_now_not_of_the_token(
    client: httpx.AsyncClient,
    user_factory: UserFactory,
    credentials: dict[str, str],
    run_cli: CliInvoker,
) -> None:
    user = await user_factory()
    assert (await introspect(client, credentials, user.access_token))["roles"] == []

    granted = await run_cli("users", "roles", user.username, "--add", "billing", "--add", "ops")
    assert granted.exit_code == 0, granted.output
    assert (await introspect(client, credentials, user.access_token))["roles"] == [
        "billing",
        "ops",
    ]

    revoked = await run_cli("users", "roles", user.username, "--remove", "billing")
    assert revoked.exit_code == 0, revoked.output
    # The token still claims nothing, then both; a resource server asking is told "ops".
    body = await introspect(client, credentials, user.access_token)
    assert (body["active"], body["roles"]) == (True, ["ops"])


async def test_a_refresh_token_introspects_as_a_refresh_token(
    client: httpx.AsyncClient, user_factory: UserFactory, credentials: dict[str, str]
) -> None:
    user = await user_factory()

    body = await introspect(
        client, credentials, user.refresh_token, token_type_hint="refresh_token"
    )

    assert body["active"] is True
    assert body["token_type"] == "refresh_token"


@pytest.mark.parametrize("token", ["garbage", "a.b.c", "eyJhbGciOiJub25lIn0.e30."])
async def test_garbage_introspects_as_inactive_and_nothing_else(
    client: httpx.AsyncClient, credentials: dict[str, str], token: str
) -> None:
    assert await introspect(client, credentials, token) == {"active": False}


async def test_a_revoked_session_is_inactive_at_once(
    client: httpx.AsyncClient, user_factory: UserFactory, credentials: dict[str, str]
) -> None:
    user = await user_factory()
    assert (await introspect(client, credentials, user.access_token))["active"] is True

    await client.post("/auth/logout", json={"refresh_token": user.refresh_token})

    assert await introspect(client, credentials, user.access_token) == {"active": False}
    assert await introspect(client, credentials, user.refresh_token) == {"active": False}


async def test_an_expired_token_is_inactive(
    client: httpx.AsyncClient, user_factory: UserFactory, credentials: dict[str, str]
) -> None:
    user = await user_factory()
    claims = jwt.decode(user.access_token, options={"verify_signature": False})
    past = timedelta(hours=1).total_seconds()
    expired = jwt.encode(
        {**claims, "exp": int(claims["iat"] - past), "iat": int(claims["iat"] - 2 * past)},
        TEST_SECRET,
    )

    assert await introspect(client, credentials, expired) == {"active": False}


async def test_a_token_of_a_deactivated_user_is_inactive(
    client: httpx.AsyncClient,
    user_factory: UserFactory,
    credentials: dict[str, str],
    database: Database,
) -> None:
    user = await user_factory()
    async with database.session() as session:
        await session.execute(update(User).where(User.id == user.id).values(is_active=False))

    assert await introspect(client, credentials, user.access_token) == {"active": False}


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Basic Og=="},
        {"Authorization": "Bearer abc"},
        {"Authorization": "Basic !!!"},
        basic("nobody", "secret"),
    ],
    ids=["none", "empty", "bearer", "malformed", "unknown client"],
)
async def test_introspection_without_valid_client_credentials_is_401_invalid_client(
    client: httpx.AsyncClient, user_factory: UserFactory, headers: dict[str, str]
) -> None:
    user = await user_factory()

    response = await client.post(
        "/auth/introspect", data={"token": user.access_token}, headers=headers
    )

    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert response.headers["WWW-Authenticate"].startswith("Basic")
    assert "active" not in response.text


async def test_a_wrong_secret_and_a_deleted_client_are_refused(
    client: httpx.AsyncClient, user_factory: UserFactory, run_cli: CliInvoker
) -> None:
    user = await user_factory()
    created = json.loads((await run_cli("clients", "create", "crm", "--json")).stdout)
    right = basic(created["client_id"], created["client_secret"])
    wrong = basic(created["client_id"], created["client_secret"][:-1] + "x")
    data = {"token": user.access_token}

    assert (await client.post("/auth/introspect", data=data, headers=wrong)).status_code == 401
    assert (await client.post("/auth/introspect", data=data, headers=right)).status_code == 200
    deleted = await run_cli("clients", "delete", created["client_id"])
    assert deleted.exit_code == 0, deleted.output
    assert (await client.post("/auth/introspect", data=data, headers=right)).status_code == 401


async def test_introspection_without_a_token_is_400(
    client: httpx.AsyncClient, credentials: dict[str, str]
) -> None:
    response = await client.post("/auth/introspect", data={}, headers=credentials)

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


# --- the clients command ------------------------------------------------------------------


async def test_a_client_secret_is_shown_once_and_stored_only_as_a_hash(
    run_cli: CliInvoker, database: Database
) -> None:
    created = await run_cli("clients", "create", "reports")
    assert created.exit_code == 0, created.output
    secret = created.stdout.split("client_secret:")[1].split()[0]
    assert len(secret) >= 43  # 256 bits, base64url

    listed = await run_cli("clients", "list", "--json")
    (entry,) = json.loads(listed.stdout)
    assert set(entry) == {
        "client_id",
        "name",
        "created_at",
        "redirect_uris",
        "post_logout_redirect_uris",
        "public",
        "first_party",
    }
    assert entry["redirect_uris"] == []  # a resource server: no redirect URI
    assert entry["name"] == "reports"
    assert secret not in listed.stdout
    async with database.session() as session:
        row = (await session.scalars(select(OAuthClient))).one()
    assert secret not in repr(row.__dict__)
    assert row.secret_hash != secret
    table = await run_cli("clients", "list")
    assert entry["client_id"] in table.stdout


async def test_deleting_an_unknown_client_fails(run_cli: CliInvoker) -> None:
    result = await run_cli("clients", "delete", "nope")

    assert result.exit_code == 1
    assert "no client with id 'nope'" in result.stderr


@pytest.mark.parametrize("name", ["", "x" * 101])
async def test_a_client_name_must_be_1_to_100_characters(run_cli: CliInvoker, name: str) -> None:
    assert (await run_cli("clients", "create", name)).exit_code == 1
