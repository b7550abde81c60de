"""A real OAuth2 client library (Authlib's httpx client) against the token endpoint."""

from __future__ import annotations

import warnings
from collections.abc import AsyncIterator

import httpx
import pytest
from authlib.deprecate import AuthlibDeprecationWarning
from fastapi import FastAPI

with warnings.catch_warnings():
    # Authlib 1.9 nudges towards the httpx2 fork on import; its httpx client is the one
    # under test here. (Authlib's own "always" filter is installed by the import above.)
    warnings.simplefilter("ignore", AuthlibDeprecationWarning)
    from authlib.integrations.httpx_client import AsyncOAuth2Client, OAuthError

from tests.support import UserFactory


@pytest.fixture
async def oauth2_client(app: FastAPI) -> AsyncIterator[AsyncOAuth2Client]:
    # A public client (RFC 6749 §2.1): identified by client_id, authenticated by nothing.
    async with AsyncOAuth2Client(
        client_id="authlib-test",
        token_endpoint_auth_method="none",
        transport=httpx.ASGITransport(app=app),
        base_url="http://testserver",
    ) as client:
        yield client


async def test_password_grant_then_users_me_then_refresh_grant(
    oauth2_client: AsyncOAuth2Client, user_factory: UserFactory
) -> None:
    user = await user_factory()
    token = await oauth2_client.fetch_token(
        "/auth/token", username=user.email, password=user.password
    )
    assert token["token_type"] == "bearer"
    assert token["expires_in"] == 1800

    me = await oauth2_client.get("/users/me")  # Authlib adds the bearer header itself
    assert me.status_code == 200
    assert me.json()["email"] == user.email

    refreshed = await oauth2_client.refresh_token("/auth/token")
    assert refreshed["access_token"]
    assert refreshed["refresh_token"]
    assert oauth2_client.token["access_token"] == refreshed["access_token"]
    again = await oauth2_client.get("/users/me")
    assert again.status_code == 200
    assert again.json()["id"] == user.id


async def test_wrong_password_surfaces_as_invalid_grant_in_the_client(
    oauth2_client: AsyncOAuth2Client, user_factory: UserFactory
) -> None:
    user = await user_factory()
    with pytest.raises(OAuthError) as raised:
        await oauth2_client.fetch_token("/auth/token", username=user.email, password="wrong-pw")
    assert raised.value.error == "invalid_grant"
