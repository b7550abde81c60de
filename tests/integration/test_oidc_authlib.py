"""A real OpenID Connect client library (Authlib's httpx client and its ID-token claims
validation) against the provider, in-process: authorization URL with PKCE, the code at the
redirect URI after a sign-in on the hosted page, the exchange, the ID token's checks
(OIDC Core §3.1.3.7, at_hash included), userinfo, refresh."""

from __future__ import annotations

import warnings
from collections.abc import AsyncIterator

import httpx
import pytest
from authlib.deprecate import AuthlibDeprecationWarning
from fastapi import FastAPI

with warnings.catch_warnings():
    warnings.simplefilter("ignore", AuthlibDeprecationWarning)
    from authlib.common.security import generate_token
    from authlib.integrations.httpx_client import AsyncOAuth2Client
    from authlib.jose import JsonWebKey, jwt
    from authlib.oidc.core import CodeIDToken

from app.database import Database
from tests.support import UserFactory
from tests.support.oidc import REDIRECT_URI, follow, query_of, register_application
from tests.support.pages import browser_client, sign_in


@pytest.fixture
async def browser(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with browser_client(app) as client:
        yield client


async def test_authlib_runs_the_code_flow_with_pkce_and_validates_the_id_token(
    app: FastAPI, browser: httpx.AsyncClient, database: Database, user_factory: UserFactory
) -> None:
    await user_factory(username="alice", email="alice@example.com")
    registered = await register_application(database)
    async with AsyncOAuth2Client(
        client_id=registered.client_id,
        client_secret=registered.secret,
        token_endpoint_auth_method="client_secret_basic",
        scope="openid email profile",
        redirect_uri=REDIRECT_URI,
        code_challenge_method="S256",
        transport=httpx.ASGITransport(app=app),
        base_url="http://testserver",
    ) as rp:
        metadata = (
            await rp.request("GET", "/.well-known/openid-configuration", withhold_token=True)
        ).json()
        verifier = generate_token(48)
        nonce = generate_token(16)
        url, state = rp.create_authorization_url(
            metadata["authorization_endpoint"], code_verifier=verifier, nonce=nonce
        )
        # The person's browser: the authorization request, the sign-in page, and back.
        path = url.replace("http://localhost:8000", "")
        login = await follow(browser, await browser.get(path))
        return_to = query_of(str(login.url))["return_to"]
        back = await follow(browser, await sign_in(browser, "alice", return_to=return_to))
        callback = back.headers["location"]
        assert callback.startswith(REDIRECT_URI)

        token = await rp.fetch_token(
            "/auth/token", authorization_response=callback, code_verifier=verifier, state=state
        )
        assert token["token_type"] == "Bearer"
        keys = (await rp.request("GET", "/.well-known/jwks.json", withhold_token=True)).json()
        jwks = JsonWebKey.import_key_set(keys)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AuthlibDeprecationWarning)
            claims = jwt.decode(
                token["id_token"],
                jwks,
                claims_cls=CodeIDToken,
                claims_options={"iss": {"essential": True, "value": metadata["issuer"]}},
                claims_params={
                    "nonce": nonce,
                    "client_id": registered.client_id,
                    "access_token": token["access_token"],
                },
            )
            claims.validate(leeway=5)
        assert claims["email"] == "alice@example.com"

        info = await rp.get("/oauth2/userinfo")  # Authlib adds the bearer token itself
        assert info.json()["sub"] == claims["sub"]

        refreshed = await rp.refresh_token("/auth/token")
        assert refreshed["id_token"]
        assert refreshed["access_token"] != token["access_token"]
