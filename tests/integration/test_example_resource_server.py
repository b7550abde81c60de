"""`examples/resource_server.py` against a real authsvc server: local verification with
the JWKS across a rotation without a restart, and introspection for instant revocation."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import jwt
import pytest

from app.core.signing_keys import generate_private_key
from examples.resource_server import Config, create_app
from tests.support import PASSWORD, CliInvoker

SWITCH_DEADLINE_S = 10.0
COOLDOWN_S = 1.0


@pytest.fixture
def settings_overrides(live_socket: socket.socket) -> dict[str, Any]:
    # PUBLIC_URL is where the live server answers: the issuer the resource server expects.
    public_url = f"http://127.0.0.1:{live_socket.getsockname()[1]}"
    return {"jwt_algorithm": "EdDSA", "signing_key_refresh_seconds": 0.2, "public_url": public_url}


@asynccontextmanager
async def resource_server(config: Config) -> AsyncIterator[httpx.AsyncClient]:
    application = create_app(config)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://rs") as client:
            yield client


async def hello(rs: httpx.AsyncClient, token: str) -> httpx.Response:
    return await rs.get("/hello", headers={"Authorization": f"Bearer {token}"})


async def sign_up(authsvc: httpx.AsyncClient, name: str) -> dict[str, Any]:
    response = await authsvc.post(
        "/auth/register",
        json={"email": f"{name}@example.com", "username": name, "password": PASSWORD},
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_it_accepts_tokens_of_the_old_and_the_new_key_without_a_restart(
    live_server: str, run_cli: CliInvoker
) -> None:
    async with (
        httpx.AsyncClient(base_url=live_server) as authsvc,
        resource_server(
            Config(
                authsvc_url=live_server,
                jwks_url=f"{live_server}/.well-known/jwks.json",
                jwks_refetch_cooldown=COOLDOWN_S,
            )
        ) as rs,
    ):
        user = await sign_up(authsvc, "rosa")
        old_token = user["access_token"]
        assert (await hello(rs, old_token)).json()["hello"] == str(user["user"]["id"])

        rotated = await run_cli("keys", "rotate", "--json")
        new_kid = json.loads(rotated.stdout)["kid"]
        deadline = time.monotonic() + SWITCH_DEADLINE_S
        while True:
            login = await authsvc.post(
                "/auth/login", json={"username": "rosa", "password": PASSWORD}
            )
            new_token = login.json()["access_token"]
            if jwt.get_unverified_header(new_token)["kid"] == new_kid:
                break
            assert time.monotonic() < deadline, "authsvc did not switch to the new key"

        # PyJWKClient refetches the JWKS for the unknown kid once its cool-down has passed.
        while (await hello(rs, new_token)).status_code != 200:
            assert time.monotonic() < deadline + COOLDOWN_S, "the new key was never fetched"
        assert (await hello(rs, old_token)).status_code == 200


async def test_it_refuses_a_forged_token_and_a_refresh_token(live_server: str) -> None:
    config = Config(authsvc_url=live_server, jwks_url=f"{live_server}/.well-known/jwks.json")
    async with httpx.AsyncClient(base_url=live_server) as authsvc, resource_server(config) as rs:
        user = await sign_up(authsvc, "finn")
        header = jwt.get_unverified_header(user["access_token"])
        claims = jwt.decode(user["access_token"], options={"verify_signature": False})
        forged = jwt.encode(claims, generate_private_key("EdDSA"), "EdDSA", headers=header)

        assert (await hello(rs, forged)).status_code == 401
        assert (await hello(rs, user["refresh_token"])).status_code == 401
        assert (await rs.get("/hello")).status_code == 401


async def test_local_verification_alone_accepts_a_logged_out_token_until_it_expires(
    live_server: str,
) -> None:
    """The trade-off of verifying without a round trip (docs/tokens.md)."""
    config = Config(authsvc_url=live_server, jwks_url=f"{live_server}/.well-known/jwks.json")
    async with httpx.AsyncClient(base_url=live_server) as authsvc, resource_server(config) as rs:
        user = await sign_up(authsvc, "lou")
        await authsvc.post("/auth/logout", json={"refresh_token": user["refresh_token"]})

        assert (await hello(rs, user["access_token"])).status_code == 200


async def test_with_introspection_it_refuses_a_logged_out_token_at_once(
    live_server: str, run_cli: CliInvoker
) -> None:
    created = json.loads((await run_cli("clients", "create", "example-rs", "--json")).stdout)
    config = Config(
        authsvc_url=live_server,
        jwks_url=f"{live_server}/.well-known/jwks.json",
        introspect=True,
        client_id=created["client_id"],
        client_secret=created["client_secret"],
    )
    async with httpx.AsyncClient(base_url=live_server) as authsvc, resource_server(config) as rs:
        user = await sign_up(authsvc, "ida")
        assert (await hello(rs, user["access_token"])).status_code == 200

        await authsvc.post("/auth/logout", json={"refresh_token": user["refresh_token"]})

        refused = await hello(rs, user["access_token"])
        assert refused.status_code == 401
        assert refused.json() == {"detail": "Token revoked"}


async def test_with_wrong_client_credentials_introspection_mode_fails_closed(
    live_server: str,
) -> None:
    config = Config(
        authsvc_url=live_server,
        jwks_url=f"{live_server}/.well-known/jwks.json",
        introspect=True,
        client_id="nobody",
        client_secret="wrong",
    )
    async with httpx.AsyncClient(base_url=live_server) as authsvc, resource_server(config) as rs:
        user = await sign_up(authsvc, "max")

        assert (await hello(rs, user["access_token"])).status_code == 503


def test_the_configuration_is_read_from_the_environment() -> None:
    config = Config.from_env(
        {"AUTHSVC_URL": "https://auth.example.com/", "AUTHSVC_INTROSPECT": "true"}
    )

    assert config.jwks_url == "https://auth.example.com/.well-known/jwks.json"
    assert config.issuer == "https://auth.example.com"
    assert config.introspect is True
    assert config.algorithm == "EdDSA"
