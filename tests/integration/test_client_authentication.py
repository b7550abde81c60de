"""One client authentication for the token, revocation and introspection endpoints
(RFC 6749 §2.3.1): HTTP Basic or `client_id`/`client_secret` in the form, never both."""

from __future__ import annotations

import base64
import json

import httpx
import pytest

from tests.integration.test_oauth2_token import assert_oauth2_error
from tests.support import CliInvoker, UserFactory


@pytest.fixture
async def registered(run_cli: CliInvoker) -> tuple[str, str]:
    result = await run_cli("clients", "create", "billing-api", "--json")
    assert result.exit_code == 0, result.output
    created: dict[str, str] = json.loads(result.stdout)
    return created["client_id"], created["client_secret"]


def _basic(client_id: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


async def test_introspection_accepts_the_secret_in_the_form(
    client: httpx.AsyncClient, user_factory: UserFactory, registered: tuple[str, str]
) -> None:
    user = await user_factory()
    client_id, secret = registered

    posted = await client.post(
        "/auth/introspect",
        data={"token": user.access_token, "client_id": client_id, "client_secret": secret},
    )
    wrong = await client.post(
        "/auth/introspect",
        data={"token": user.access_token, "client_id": client_id, "client_secret": "nope"},
    )

    assert posted.status_code == 200, posted.text
    assert posted.json()["active"] is True
    assert_oauth2_error(wrong, 401, "invalid_client")


@pytest.mark.parametrize("path", ["/auth/token", "/auth/revoke", "/auth/introspect"])
async def test_two_methods_at_once_are_an_invalid_request(
    client: httpx.AsyncClient, registered: tuple[str, str], path: str
) -> None:
    client_id, secret = registered

    response = await client.post(
        path,
        data={"token": "t", "grant_type": "refresh_token", "refresh_token": "t",
              "client_id": client_id, "client_secret": secret},
        headers=_basic(client_id, secret),
    )  # fmt: skip

    assert_oauth2_error(response, 400, "invalid_request")


async def test_a_registered_client_authenticates_at_the_token_endpoint(
    client: httpx.AsyncClient, user_factory: UserFactory, registered: tuple[str, str]
) -> None:
    user = await user_factory()
    client_id, secret = registered
    grant = {"grant_type": "password", "username": user.email, "password": user.password}

    as_basic = await client.post("/auth/token", data=grant, headers=_basic(client_id, secret))
    as_post = await client.post(
        "/auth/token", data={**grant, "client_id": client_id, "client_secret": secret}
    )
    wrong = await client.post("/auth/token", data=grant, headers=_basic(client_id, "x" + secret))

    assert as_basic.status_code == 200, as_basic.text
    assert as_post.status_code == 200, as_post.text
    assert_oauth2_error(wrong, 401, "invalid_client")
