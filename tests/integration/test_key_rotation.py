"""Rotation: old tokens keep verifying, new ones carry the new `kid`, every worker switches
within the refresh interval, and a retired key leaves the JWKS once its last token expired."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
from fastapi import FastAPI

from app.config import Settings
from app.database import Database
from app.keys.keyring import purge_retired_keys
from app.main import create_app, key_lifetime
from app.utils.clock import utc_now
from tests.support import PASSWORD, CliInvoker, UserFactory, assert_error
from tests.support.admin import audit_events

REFRESH_SECONDS = 0.2
SWITCH_DEADLINE_S = 10.0


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    # ID tokens share the access keys (same algorithm): the JWKS holds only those.
    return {
        "jwt_algorithm": "EdDSA",
        "id_token_algorithm": "EdDSA",
        "signing_key_refresh_seconds": REFRESH_SECONDS,
    }


class WallClock:
    def __init__(self) -> None:
        self.now = utc_now()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


def kid_of(token: str) -> str:
    kid: str = jwt.get_unverified_header(token)["kid"]
    return kid


@asynccontextmanager
async def serving(settings: Settings, **kwargs: Any) -> AsyncIterator[tuple[FastAPI, Any]]:
    application = create_app(settings, **kwargs)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application, client=("203.0.113.9", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield application, client


async def rotate(run_cli: CliInvoker) -> dict[str, Any]:
    result = await run_cli("keys", "rotate", "--json")
    assert result.exit_code == 0, result.output
    entry: dict[str, Any] = json.loads(result.stdout)
    return entry


async def login_kid(client: httpx.AsyncClient, username: str) -> str:
    response = await client.post("/auth/login", json={"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return kid_of(response.json()["access_token"])


async def test_after_a_rotation_new_tokens_carry_the_new_kid_and_old_ones_still_verify(
    client: httpx.AsyncClient, user_factory: UserFactory, run_cli: CliInvoker
) -> None:
    user = await user_factory()
    old_kid = kid_of(user.access_token)

    entry = await rotate(run_cli)
    assert entry["status"] == "current"
    assert entry["alg"] == "EdDSA"
    new_kid = entry["kid"]
    assert new_kid != old_kid
    # The worker rereads its keys every SIGNING_KEY_REFRESH_SECONDS: poll, with a deadline.
    deadline = time.monotonic() + SWITCH_DEADLINE_S
    while await login_kid(client, user.username) != new_kid:
        assert time.monotonic() < deadline, "the worker did not switch to the new key"

    fresh = await client.post("/auth/login", json={"username": user.username, "password": PASSWORD})
    assert (await client.get("/users/me", headers=user.auth)).status_code == 200
    new_auth = {"Authorization": f"Bearer {fresh.json()['access_token']}"}
    assert (await client.get("/users/me", headers=new_auth)).status_code == 200
    refreshed = await client.post("/auth/refresh", json={"refresh_token": user.refresh_token})
    assert refreshed.status_code == 200
    assert kid_of(refreshed.json()["access_token"]) == new_kid
    jwks = (await client.get("/.well-known/jwks.json")).json()
    assert [key["kid"] for key in jwks["keys"]] == [new_kid, old_kid]

    listed = await run_cli("keys", "list", "--json")
    assert [(k["kid"], k["status"]) for k in json.loads(listed.stdout)] == [
        (new_kid, "current"),
        (old_kid, "retired"),
    ]
    assert set(json.loads(listed.stdout)[0]) == {"kid", "alg", "status", "created_at"}
    # The table says which set each key signs for (the ID tokens may have their own).
    table = (await run_cli("keys", "list")).stdout
    assert new_kid in table
    assert "access" in table


async def test_a_retired_key_stays_published_until_its_last_token_expired_then_is_purged(
    settings: Settings, run_cli: CliInvoker
) -> None:
    wall = WallClock()
    async with serving(settings, wall_clock=wall) as (app, client):
        registered = await client.post(
            "/auth/register",
            json={"email": "old@example.com", "username": "old", "password": PASSWORD},
        )
        old_token = registered.json()["access_token"]
        old_kid = kid_of(old_token)
        new_kid = (await rotate(run_cli))["kid"]
        await app.state.keyring.reload()

        lifetime = key_lifetime(settings)
        wall.advance(lifetime - timedelta(minutes=1))
        published = (await client.get("/.well-known/jwks.json")).json()["keys"]
        assert {key["kid"] for key in published} == {old_kid, new_kid}

        wall.advance(timedelta(minutes=2))
        published = (await client.get("/.well-known/jwks.json")).json()["keys"]
        assert [key["kid"] for key in published] == [new_kid]
        gone = await client.get("/users/me", headers={"Authorization": f"Bearer {old_token}"})
        assert gone.status_code == 401

        purged = await purge_retired_keys(app.state.database, max_lifetime=lifetime, clock=wall)
        assert purged == 1
    listed = json.loads((await run_cli("keys", "list", "--json")).stdout)
    assert [key["kid"] for key in listed] == [new_kid]


async def test_a_worker_meeting_a_kid_it_does_not_know_reloads_once_and_accepts_it(
    settings: Settings, run_cli: CliInvoker
) -> None:
    """Host B rotated and signs with the new key before host A's periodic refresh."""
    slow = settings.model_copy(update={"signing_key_refresh_seconds": 3600})
    async with serving(slow) as (app_a, client_a), serving(slow) as (app_b, client_b):
        registered = await client_a.post(
            "/auth/register",
            json={"email": "ann@example.com", "username": "ann", "password": PASSWORD},
        )
        assert registered.status_code == 201
        new_kid = (await rotate(run_cli))["kid"]
        await app_b.state.keyring.reload()
        signed_by_b = await client_b.post(
            "/auth/login", json={"username": "ann", "password": PASSWORD}
        )
        token = signed_by_b.json()["access_token"]
        assert kid_of(token) == new_kid
        assert app_a.state.keyring.current_kid != new_kid

        me = await client_a.get("/users/me", headers={"Authorization": f"Bearer {token}"})

        assert me.status_code == 200, me.text
        assert app_a.state.keyring.current_kid == new_kid  # and A now signs with it too
        assert await login_kid(client_a, "ann") == new_kid


async def test_a_token_of_an_unknown_kid_is_refused_after_the_reload(
    client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    user = await user_factory()
    header_b64, payload, signature = user.access_token.split(".")
    header = json.loads(jwt.utils.base64url_decode(header_b64))
    forged_header = jwt.utils.base64url_encode(json.dumps({**header, "kid": "x" * 43}).encode())
    token = f"{forged_header.decode()}.{payload}.{signature}"

    response = await client.get("/users/me", headers={"Authorization": f"Bearer {token}"})

    assert_error(response, 401, "INVALID_TOKEN")


async def test_the_cli_creates_users_with_an_asymmetric_algorithm_too(
    client: httpx.AsyncClient, run_cli: CliInvoker
) -> None:
    created = await run_cli(
        "users", "create", "--email", "cli@example.com", "--username", "cliuser",
        "--password-stdin", input=f"{PASSWORD}\n",
    )  # fmt: skip

    assert created.exit_code == 0, created.output
    assert await login_kid(client, "cliuser")


async def test_rotating_keys_from_the_command_line_is_recorded(
    run_cli: CliInvoker, database: Database
) -> None:
    kid = (await rotate(run_cli))["kid"]
    [rotated] = await audit_events(database, "key.rotated")
    assert (rotated.user_id, rotated.actor_id) == (None, None)
    assert rotated.details["via"] == "cli"
    assert rotated.details["kid"] == kid
