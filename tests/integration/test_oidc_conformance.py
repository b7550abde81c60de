"""Conformance-lite: one test per module of the OpenID Foundation's Basic OP certification
plan (oidcc-basic-certification-test-plan) that applies to this provider (a static client,
response_type=code, client_secret_basic unless the module says otherwise), plus
oidcc-server-rotate-keys and oidcc-refresh-token. Each checks what the module checks, over
HTTP, with a browser that signs in on the hosted page. docs/openid-provider.md lists the
modules covered and those that do not apply.

The modules check the protocol over HTTP, so they run on SQLite only: what lies beneath
them in the database (a code used once, refresh token rotation, key rotation, consent)
runs on both backends in test_oidc_flow.py and the scale-out tests.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode

import httpx
import jwt
import pytest
from fastapi import FastAPI

from app.config import Settings
from app.database import Database
from app.main import create_app
from tests.support import CliInvoker, RegisteredUser, UserFactory
from tests.support.backends import backend_independent
from tests.support.mfa import WallClock
from tests.support.oidc import (
    Application,
    Flow,
    code_for,
    exchange,
    follow,
    query_of,
    register_application,
    tokens_for,
)
from tests.support.pages import sign_in

pytestmark = backend_independent


@pytest.fixture
def wall_clock() -> WallClock:
    return WallClock()


@pytest.fixture
async def app(settings: Settings, wall_clock: WallClock) -> AsyncIterator[FastAPI]:
    application = create_app(settings, wall_clock=wall_clock)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def person(user_factory: UserFactory) -> RegisteredUser:
    return await user_factory(username="alice", email="alice@example.com")


@pytest.fixture
async def rp(database: Database) -> Application:
    """The suite's static client: confidential, client_secret_basic."""
    return await register_application(database)


async def verified_id_token(
    client: httpx.AsyncClient, token: str, rp: Application, *, nonce: str | None
) -> dict[str, Any]:
    """What every module checks of an ID token (OIDC Core §3.1.3.7): signature with a key
    of the JWKS named by `kid`, iss, aud, azp, exp, iat, nonce, at_hash's presence."""
    discovery = (await client.get("/.well-known/openid-configuration")).json()
    jwks = (await client.get(discovery["jwks_uri"].replace("http://localhost:8000", ""))).json()
    header = jwt.get_unverified_header(token)
    assert header["alg"] in discovery["id_token_signing_alg_values_supported"]
    jwk = next(k for k in jwks["keys"] if k["kid"] == header["kid"])
    claims: dict[str, Any] = jwt.decode(
        token,
        jwt.PyJWK(jwk),
        algorithms=[header["alg"]],
        audience=rp.client_id,
        issuer=discovery["issuer"],
        options={"require": ["iss", "sub", "aud", "exp", "iat"], "verify_iat": False},
        leeway=3600,
    )
    assert claims["azp"] == rp.client_id
    assert isinstance(claims["sub"], str)
    assert claims["sub"]
    assert claims.get("nonce") == nonce
    assert "at_hash" in claims
    return claims


async def _userinfo(client: httpx.AsyncClient, access_token: str) -> dict[str, Any]:
    response = await client.get(
        "/oauth2/userinfo", headers={"Authorization": f"Bearer {access_token}"}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_oidcc_server(
    client: httpx.AsyncClient, rp: Application, person: RegisteredUser, settings: Settings
) -> None:
    flow = Flow(rp)
    answer = await code_for(client, flow, "alice")
    assert answer["state"] == flow.state
    assert answer["iss"] == settings.jwt_issuer  # RFC 9207
    tokens = (await exchange(client, flow, answer["code"])).json()
    assert tokens["token_type"].lower() == "bearer"
    await verified_id_token(client, tokens["id_token"], rp, nonce=flow.nonce)


async def test_oidcc_server_client_secret_post(
    client: httpx.AsyncClient, rp: Application, person: RegisteredUser
) -> None:
    flow = Flow(rp)
    code = (await code_for(client, flow, "alice"))["code"]
    assert rp.secret is not None
    response = await client.post(
        "/auth/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": rp.redirect_uri,
            "code_verifier": flow.verifier,
            "client_id": rp.client_id,
            "client_secret": rp.secret,
        },
    )
    assert response.status_code == 200, response.text
    await verified_id_token(client, response.json()["id_token"], rp, nonce=flow.nonce)


async def test_oidcc_response_type_missing(client: httpx.AsyncClient, rp: Application) -> None:
    params = Flow(rp).params()
    del params["response_type"]
    response = await client.get(f"/oauth2/authorize?{urlencode(params)}")
    assert response.status_code == 302
    error = query_of(response.headers["location"])["error"]
    assert error in ("invalid_request", "unsupported_response_type")


async def test_oidcc_id_token_signature(
    client: httpx.AsyncClient, rp: Application, person: RegisteredUser
) -> None:
    flow = Flow(rp)
    tokens = await tokens_for(client, flow, "alice")
    header = jwt.get_unverified_header(tokens["id_token"])
    assert header["alg"] == "RS256"
    assert header["kid"]
    await verified_id_token(client, tokens["id_token"], rp, nonce=flow.nonce)


async def test_oidcc_userinfo_get(
    client: httpx.AsyncClient, rp: Application, person: RegisteredUser
) -> None:
    flow = Flow(rp)
    tokens = await tokens_for(client, flow, "alice")
    claims = await verified_id_token(client, tokens["id_token"], rp, nonce=flow.nonce)
    assert (await _userinfo(client, tokens["access_token"]))["sub"] == claims["sub"]


async def test_oidcc_userinfo_post_header(
    client: httpx.AsyncClient, rp: Application, person: RegisteredUser
) -> None:
    tokens = await tokens_for(client, Flow(rp), "alice")
    response = await client.post(
        "/oauth2/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert response.status_code == 200
    assert response.json()["sub"] == str((await _userinfo(client, tokens["access_token"]))["sub"])


async def test_oidcc_userinfo_post_body(
    client: httpx.AsyncClient, rp: Application, person: RegisteredUser
) -> None:
    tokens = await tokens_for(client, Flow(rp), "alice")
    response = await client.post("/oauth2/userinfo", data={"access_token": tokens["access_token"]})
    assert response.status_code == 200
    assert response.json()["sub"] == str(person.id)


async def test_oidcc_ensure_request_without_nonce_succeeds_for_code_flow(
    client: httpx.AsyncClient, rp: Application, person: RegisteredUser
) -> None:
    flow = Flow(rp, nonce=None)
    tokens = await tokens_for(client, flow, "alice")
    claims = await verified_id_token(client, tokens["id_token"], rp, nonce=None)
    assert "nonce" not in claims


async def test_oidcc_scope_profile(
    client: httpx.AsyncClient, rp: Application, person: RegisteredUser
) -> None:
    tokens = await tokens_for(client, Flow(rp, scope="openid profile"), "alice")
    info = await _userinfo(client, tokens["access_token"])
    assert info["preferred_username"] == "alice"
    assert isinstance(info["updated_at"], int)
    assert "email" not in info


async def test_oidcc_scope_email(
    client: httpx.AsyncClient, rp: Application, person: RegisteredUser
) -> None:
    tokens = await tokens_for(client, Flow(rp, scope="openid email"), "alice")
    info = await _userinfo(client, tokens["access_token"])
    assert info["email"] == "alice@example.com"
    assert info["email_verified"] is False
    assert "preferred_username" not in info


async def test_oidcc_scope_all(
    client: httpx.AsyncClient, rp: Application, person: RegisteredUser
) -> None:
    # address and phone are not supported (not in scopes_supported): they are left out.
    flow = Flow(rp, scope="openid profile email address phone")
    tokens = await tokens_for(client, flow, "alice")
    assert tokens["scope"] == "openid profile email"
    info = await _userinfo(client, tokens["access_token"])
    assert {"sub", "email", "email_verified", "preferred_username", "updated_at"} <= info.keys()


async def test_oidcc_ensure_other_scope_order_succeeds(
    client: httpx.AsyncClient, rp: Application, person: RegisteredUser
) -> None:
    tokens = await tokens_for(client, Flow(rp, scope="email openid"), "alice")
    assert (await _userinfo(client, tokens["access_token"]))["email"] == "alice@example.com"


@pytest.mark.parametrize("display", ["page", "popup"])
async def test_oidcc_display_page_and_popup(
    client: httpx.AsyncClient, rp: Application, person: RegisteredUser, display: str
) -> None:
    answer = await code_for(client, Flow(rp, extra={"display": display}), "alice")
    assert answer["code"]


async def test_oidcc_prompt_login(
    client: httpx.AsyncClient, rp: Application, person: RegisteredUser, wall_clock: WallClock
) -> None:
    first = await tokens_for(client, Flow(rp), "alice")
    wall_clock.advance(2)
    flow = Flow(rp, extra={"prompt": "login"})
    page = await follow(client, await client.get(flow.url()))
    assert page.status_code == 200
    assert ">Sign in</button>" in page.text  # the sign-in page, although signed in
    return_to = query_of(str(page.url))["return_to"]
    answer = await follow(client, await sign_in(client, "alice", return_to=return_to))
    second = (await exchange(client, flow, query_of(answer.headers["location"])["code"])).json()
    before = jwt.decode(first["id_token"], options={"verify_signature": False})
    after = jwt.decode(second["id_token"], options={"verify_signature": False})
    assert after["auth_time"] > before["auth_time"]


async def test_oidcc_prompt_none_not_logged_in(client: httpx.AsyncClient, rp: Application) -> None:
    flow = Flow(rp, extra={"prompt": "none"})
    answer = query_of((await client.get(flow.url())).headers["location"])
    assert answer["error"] in ("login_required", "interaction_required")
    assert answer["state"] == flow.state


async def test_oidcc_prompt_none_logged_in(
    client: httpx.AsyncClient, rp: Application, person: RegisteredUser
) -> None:
    first = await tokens_for(client, Flow(rp), "alice")
    flow = Flow(rp, extra={"prompt": "none"})
    response = await client.get(flow.url())
    second = (await exchange(client, flow, query_of(response.headers["location"])["code"])).json()
    assert await verified_id_token(client, second["id_token"], rp, nonce=flow.nonce)
    before = jwt.decode(first["id_token"], options={"verify_signature": False})
    after = jwt.decode(second["id_token"], options={"verify_signature": False})
    assert after["sub"] == before["sub"]
    assert after["auth_time"] == before["auth_time"]


async def test_oidcc_max_age_1(
    client: httpx.AsyncClient, rp: Application, person: RegisteredUser, wall_clock: WallClock
) -> None:
    first = await tokens_for(client, Flow(rp), "alice")
    wall_clock.advance(2)
    flow = Flow(rp, extra={"max_age": "1"})
    page = await follow(client, await client.get(flow.url()))
    assert ">Sign in</button>" in page.text
    return_to = query_of(str(page.url))["return_to"]
    answer = await follow(client, await sign_in(client, "alice", return_to=return_to))
    second = (await exchange(client, flow, query_of(answer.headers["location"])["code"])).json()
    before = jwt.decode(first["id_token"], options={"verify_signature": False})
    after = jwt.decode(second["id_token"], options={"verify_signature": False})
    assert after["auth_time"] > before["auth_time"]  # a new sign-in happened


async def test_oidcc_max_age_10000(
    client: httpx.AsyncClient, rp: Application, person: RegisteredUser, wall_clock: WallClock
) -> None:
    first = await tokens_for(client, Flow(rp), "alice")
    wall_clock.advance(2)
    flow = Flow(rp, extra={"max_age": "10000"})
    response = await client.get(flow.url())
    code = query_of(response.headers["location"])["code"]
    second = (await exchange(client, flow, code)).json()
    before = jwt.decode(first["id_token"], options={"verify_signature": False})
    after = jwt.decode(second["id_token"], options={"verify_signature": False})
    assert after["auth_time"] == before["auth_time"]  # no new sign-in


async def test_oidcc_ensure_request_with_unknown_parameter_succeeds(
    client: httpx.AsyncClient, rp: Application, person: RegisteredUser
) -> None:
    flow = Flow(rp, extra={"extra_parameter": "was ignored"})
    assert (await code_for(client, flow, "alice"))["code"]


async def test_oidcc_id_token_hint(
    client: httpx.AsyncClient, rp: Application, person: RegisteredUser
) -> None:
    first = await tokens_for(client, Flow(rp), "alice")
    flow = Flow(rp, extra={"prompt": "none", "id_token_hint": first["id_token"]})
    response = await client.get(flow.url())
    second = (await exchange(client, flow, query_of(response.headers["location"])["code"])).json()
    before = jwt.decode(first["id_token"], options={"verify_signature": False})
    after = await verified_id_token(client, second["id_token"], rp, nonce=flow.nonce)
    assert after["sub"] == before["sub"]


async def test_oidcc_login_hint(
    client: httpx.AsyncClient, rp: Application, person: RegisteredUser
) -> None:
    flow = Flow(rp, extra={"login_hint": "alice@example.com"})
    first = await client.get(flow.url())
    assert "login_hint=alice%40example.com" in first.headers["location"]
    # The sign-in page has the hinted identifier filled in, the person types the password.
    page = await client.get(first.headers["location"])
    assert 'id="identifier"' in page.text
    assert 'value="alice@example.com"' in page.text
    assert (await code_for(client, flow, "alice"))["code"]


async def test_oidcc_ui_locales(
    client: httpx.AsyncClient, rp: Application, person: RegisteredUser
) -> None:
    assert (await code_for(client, Flow(rp, extra={"ui_locales": "se"}), "alice"))["code"]


async def test_oidcc_claims_locales(
    client: httpx.AsyncClient, rp: Application, person: RegisteredUser
) -> None:
    tokens = await tokens_for(client, Flow(rp, extra={"claims_locales": "se"}), "alice")
    assert (await _userinfo(client, tokens["access_token"]))["sub"] == str(person.id)


async def test_oidcc_ensure_request_with_acr_values_succeeds(
    client: httpx.AsyncClient, rp: Application, person: RegisteredUser
) -> None:
    assert (await code_for(client, Flow(rp, extra={"acr_values": "1 2"}), "alice"))["code"]


async def test_oidcc_codereuse(
    client: httpx.AsyncClient, rp: Application, person: RegisteredUser
) -> None:
    flow = Flow(rp)
    code = (await code_for(client, flow, "alice"))["code"]
    assert (await exchange(client, flow, code)).status_code == 200
    again = await exchange(client, flow, code)
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"


async def test_oidcc_codereuse_30seconds(
    client: httpx.AsyncClient, rp: Application, person: RegisteredUser, wall_clock: WallClock
) -> None:
    flow = Flow(rp)
    code = (await code_for(client, flow, "alice"))["code"]
    tokens = (await exchange(client, flow, code)).json()
    wall_clock.advance(30)
    again = await exchange(client, flow, code)
    assert again.json()["error"] == "invalid_grant"
    # OP-OAuth-2nd-Revokes: the access token of the first exchange no longer works.
    revoked = await client.get(
        "/oauth2/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert revoked.status_code == 401


async def test_oidcc_ensure_registered_redirect_uri(
    client: httpx.AsyncClient, rp: Application
) -> None:
    params = {**Flow(rp).params(), "redirect_uri": "https://app.example.com/callback/unknown"}
    response = await client.get(f"/oauth2/authorize?{urlencode(params)}")
    assert response.status_code == 400  # an error shown to the person, not a redirect
    assert "location" not in response.headers


async def test_oidcc_ensure_post_request_succeeds(
    client: httpx.AsyncClient, rp: Application, person: RegisteredUser
) -> None:
    await sign_in(client, "alice")
    flow = Flow(rp)
    response = await client.post("/oauth2/authorize", data=flow.params())
    assert response.status_code == 302
    answer = query_of(response.headers["location"])
    assert answer["state"] == flow.state
    assert (await exchange(client, flow, answer["code"])).status_code == 200


async def test_oidcc_request_uri_unsigned_rejected_as_unsupported(
    client: httpx.AsyncClient, rp: Application
) -> None:
    flow = Flow(rp, extra={"request_uri": "https://app.example.com/request.jwt"})
    answer = query_of((await client.get(flow.url())).headers["location"])
    assert answer["error"] == "request_uri_not_supported"


async def test_oidcc_unsigned_request_object_rejected_as_unsupported(
    client: httpx.AsyncClient, rp: Application
) -> None:
    flow = Flow(rp, extra={"request": "eyJhbGciOiJub25lIn0.eyJzdGF0ZSI6IngifQ."})
    answer = query_of((await client.get(flow.url())).headers["location"])
    assert answer["error"] == "request_not_supported"
    discovery = (await client.get("/.well-known/openid-configuration")).json()
    assert discovery["request_parameter_supported"] is False


async def test_oidcc_claims_essential(
    client: httpx.AsyncClient, rp: Application, person: RegisteredUser
) -> None:
    # The claims parameter is not supported (claims_parameter_supported: false): ignored.
    claims = '{"userinfo": {"name": {"essential": true}}}'
    tokens = await tokens_for(client, Flow(rp, extra={"claims": claims}), "alice")
    assert (await _userinfo(client, tokens["access_token"]))["sub"] == str(person.id)


async def test_oidcc_refresh_token(
    client: httpx.AsyncClient, rp: Application, person: RegisteredUser
) -> None:
    flow = Flow(rp)
    tokens = await tokens_for(client, flow, "alice")
    response = await client.post(
        "/auth/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        auth=rp.basic(),
    )
    assert response.status_code == 200, response.text
    refreshed = response.json()
    first = await verified_id_token(client, tokens["id_token"], rp, nonce=flow.nonce)
    second = await verified_id_token(client, refreshed["id_token"], rp, nonce=None)
    # OIDC Core §12.2: same iss, sub, aud, auth_time; a new iat.
    for claim in ("iss", "sub", "aud", "auth_time"):
        assert second[claim] == first[claim]
    assert (await _userinfo(client, refreshed["access_token"]))["sub"] == first["sub"]


async def test_oidcc_ensure_request_with_valid_pkce_succeeds(
    client: httpx.AsyncClient, rp: Application, person: RegisteredUser
) -> None:
    flow = Flow(rp)
    code = (await code_for(client, flow, "alice"))["code"]
    assert (await exchange(client, flow, code)).status_code == 200


async def test_oidcc_server_rotate_keys(
    client: httpx.AsyncClient, rp: Application, person: RegisteredUser, run_cli: CliInvoker
) -> None:
    first_flow = Flow(rp)
    first = await tokens_for(client, first_flow, "alice")
    old_kid = jwt.get_unverified_header(first["id_token"])["kid"]
    rotated = await run_cli("keys", "rotate", "--id-token")
    assert rotated.exit_code == 0, rotated.output
    # Relying parties refetch the JWKS; that reload also puts the new key to work here
    # (other workers within SIGNING_KEY_REFRESH_SECONDS).
    published = {k["kid"] for k in (await client.get("/.well-known/jwks.json")).json()["keys"]}
    assert old_kid in published
    assert len(published) == 2
    flow = Flow(rp)
    response = await client.get(flow.url())
    second = (await exchange(client, flow, query_of(response.headers["location"])["code"])).json()
    new_kid = jwt.get_unverified_header(second["id_token"])["kid"]
    assert new_kid != old_kid
    # Both verify against the JWKS fetched now: the old key stays published.
    await verified_id_token(client, second["id_token"], rp, nonce=flow.nonce)
    await verified_id_token(client, first["id_token"], rp, nonce=first_flow.nonce)
