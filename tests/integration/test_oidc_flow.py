"""The authorization code flow over HTTP, with a browser that signs in on /login: codes,
PKCE, consent, prompt and max_age, the token endpoint, ID tokens, userinfo, end session."""

from __future__ import annotations

import asyncio
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
from app.oidc.authorization import purge_authorizations
from tests.support import RegisteredUser, UserFactory
from tests.support.admin import audit_events
from tests.support.mfa import WallClock
from tests.support.oidc import (
    LOGOUT_URI,
    Application,
    Flow,
    code_for,
    exchange,
    follow,
    query_of,
    register_application,
    tokens_for,
)
from tests.support.pages import csrf_of, sign_in


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
async def app_client(database: Database) -> Application:
    return await register_application(database)


async def id_claims(client: httpx.AsyncClient, token: str, audience: str) -> dict[str, Any]:
    keys = (await client.get("/.well-known/jwks.json")).json()
    kid = jwt.get_unverified_header(token)["kid"]
    jwk = next(k for k in keys["keys"] if k["kid"] == kid)
    key = jwt.PyJWK(jwk)
    claims: dict[str, Any] = jwt.decode(
        token, key, algorithms=[jwk["alg"]], audience=audience, leeway=300
    )
    return claims


async def test_code_flow_from_sign_in_to_tokens_ids_and_userinfo(
    client: httpx.AsyncClient,
    app_client: Application,
    person: RegisteredUser,
    settings: Settings,
    database: Database,
) -> None:
    flow = Flow(app_client)
    answer = await code_for(client, flow, "alice")
    assert answer["state"] == flow.state
    assert answer["iss"] == settings.jwt_issuer
    response = await exchange(client, flow, answer["code"])
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["scope"] == "openid profile email"
    assert {"access_token", "expires_in", "id_token", "refresh_token"} <= body.keys()
    assert response.headers["cache-control"].startswith("no-store")
    claims = await id_claims(client, body["id_token"], app_client.client_id)
    assert jwt.get_unverified_header(body["id_token"])["alg"] == "RS256"
    assert claims["iss"] == settings.jwt_issuer
    assert claims["sub"] == str(person.id)
    assert claims["aud"] == claims["azp"] == app_client.client_id
    assert claims["nonce"] == flow.nonce
    assert claims["amr"] == ["pwd"]
    assert claims["email"] == "alice@example.com"
    assert claims["email_verified"] is False
    assert claims["preferred_username"] == "alice"
    assert {"auth_time", "sid", "at_hash", "iat", "exp", "updated_at"} <= claims.keys()
    auth = {"Authorization": f"Bearer {body['access_token']}"}
    access = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert access["client_id"] == app_client.client_id
    assert access["scope"] == body["scope"]
    # Every bearer route accepts the application's access token.
    assert (await client.get("/users/me", headers=auth)).json()["username"] == "alice"
    info = await client.get("/oauth2/userinfo", headers=auth)
    assert info.status_code == 200
    assert info.json()["sub"] == claims["sub"]
    assert info.json()["email"] == "alice@example.com"
    posted = await client.post("/oauth2/userinfo", data={"access_token": body["access_token"]})
    assert posted.json()["sub"] == claims["sub"]
    signed_in = await audit_events(database, "login.succeeded")
    # The sign-in on the page served the application's request: it names the client.
    assert [e.details.get("client_id") for e in signed_in] == [app_client.client_id]


# --- the authorization endpoint's errors ------------------------------------------------


async def test_an_unknown_client_gets_an_error_page_never_a_redirect(
    client: httpx.AsyncClient, app_client: Application
) -> None:
    flow = Flow(app_client)
    params = {**flow.params(), "client_id": "nobody"}
    response = await client.get(f"/oauth2/authorize?{urlencode(params)}")
    assert response.status_code == 400
    assert "location" not in response.headers
    assert response.headers["content-type"].startswith("text/html")
    assert 'role="alert"' in response.text


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "https://evil.example/callback",
        "https://app.example.com/callback/",
        "https://app.example.com/callback?x=1",
        "https://app.example.com/callback#f",
        None,
    ],
)
async def test_an_unregistered_redirect_uri_gets_an_error_page(
    client: httpx.AsyncClient, app_client: Application, redirect_uri: str | None
) -> None:
    params = Flow(app_client).params()
    if redirect_uri is None:
        del params["redirect_uri"]
    else:
        params["redirect_uri"] = redirect_uri
    for method in ("GET", "POST"):
        if method == "GET":
            response = await client.get(f"/oauth2/authorize?{urlencode(params)}")
        else:
            response = await client.post("/oauth2/authorize", data=params)
        assert response.status_code == 400, method
        assert "location" not in response.headers


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"response_type": None}, "invalid_request"),
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"response_type": "code id_token"}, "unsupported_response_type"),
        ({"scope": "profile email"}, "invalid_scope"),
        ({"scope": None}, "invalid_scope"),
        ({"code_challenge": None}, "invalid_request"),
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"code_challenge_method": None}, "invalid_request"),
        ({"code_challenge": "short"}, "invalid_request"),
        ({"prompt": "none login"}, "invalid_request"),
        ({"prompt": "sometimes"}, "invalid_request"),
        ({"max_age": "-1"}, "invalid_request"),
        ({"nonce": "n" * 513}, "invalid_request"),
        ({"login_hint": "a" * 321}, "invalid_request"),
        ({"request": "eyJhbGciOiJub25lIn0.e30."}, "request_not_supported"),
        ({"request_uri": "https://app.example.com/r"}, "request_uri_not_supported"),
    ],
)
async def test_other_problems_go_back_to_the_application_with_error_state_and_iss(
    client: httpx.AsyncClient,
    app_client: Application,
    settings: Settings,
    change: dict[str, str | None],
    error: str,
) -> None:
    flow = Flow(app_client)
    params: dict[str, str] = flow.params()
    for name, value in change.items():
        if value is None:
            params.pop(name, None)
        else:
            params[name] = value
    response = await client.get(f"/oauth2/authorize?{urlencode(params)}")
    assert response.status_code == 302
    location = response.headers["location"]
    assert location.startswith(f"{app_client.redirect_uri}?")
    answer = query_of(location)
    assert answer["error"] == error
    assert answer["state"] == flow.state
    assert answer["iss"] == settings.jwt_issuer
    assert "code" not in answer


async def test_a_repeated_parameter_is_invalid_request(
    client: httpx.AsyncClient, app_client: Application
) -> None:
    flow = Flow(app_client)
    url = f"{flow.url()}&scope=openid"
    answer = query_of((await client.get(url)).headers["location"])
    assert answer["error"] == "invalid_request"


# --- signing in, prompt and max_age -----------------------------------------------------


async def test_not_signed_in_goes_to_the_sign_in_page_and_back_to_the_request(
    client: httpx.AsyncClient, app_client: Application, person: RegisteredUser
) -> None:
    flow = Flow(app_client)
    response = await client.get(flow.url())
    assert response.status_code == 302
    location = response.headers["location"]
    assert location.startswith("/login?")
    return_to = query_of(location)["return_to"]
    # Only an opaque id of the kept request travels: nothing of it can be changed.
    assert return_to.startswith("/oauth2/authorize/resume?request=")
    assert flow.challenge not in location
    assert app_client.redirect_uri not in location
    answer = await code_for(client, flow, "alice")
    assert answer["state"] == flow.state
    assert answer["code"]


async def test_the_sign_in_form_allows_the_applications_origin_in_form_action(
    client: httpx.AsyncClient, app_client: Application
) -> None:
    login = await follow(client, await client.get(Flow(app_client).url()))
    assert login.status_code == 200
    csp = login.headers["content-security-policy"]
    assert "form-action 'self' https://app.example.com" in csp


async def test_prompt_none_without_a_sign_in_is_login_required(
    client: httpx.AsyncClient, app_client: Application
) -> None:
    flow = Flow(app_client, extra={"prompt": "none"})
    answer = query_of((await client.get(flow.url())).headers["location"])
    assert answer["error"] == "login_required"
    assert answer["state"] == flow.state


async def test_prompt_none_when_signed_in_gives_a_code_at_once(
    client: httpx.AsyncClient, app_client: Application, person: RegisteredUser
) -> None:
    await code_for(client, Flow(app_client), "alice")
    answer = query_of(
        (await client.get(Flow(app_client, extra={"prompt": "none"}).url())).headers["location"]
    )
    assert "code" in answer


async def test_prompt_login_asks_again_once_and_does_not_loop(
    client: httpx.AsyncClient,
    app_client: Application,
    person: RegisteredUser,
    wall_clock: WallClock,
) -> None:
    first = await tokens_for(client, Flow(app_client), "alice")
    first_claims = await id_claims(client, first["id_token"], app_client.client_id)
    wall_clock.advance(30)
    flow = Flow(app_client, extra={"prompt": "login"})
    response = await client.get(flow.url())
    assert response.headers["location"].startswith("/login?")
    return_to = query_of(response.headers["location"])["return_to"]
    signed_in = await sign_in(client, "alice", return_to=return_to)
    assert signed_in.status_code == 303
    answer = await follow(client, signed_in)
    assert answer.status_code == 302
    code = query_of(answer.headers["location"])["code"]
    tokens = (await exchange(client, flow, code)).json()
    claims = await id_claims(client, tokens["id_token"], app_client.client_id)
    assert claims["auth_time"] >= first_claims["auth_time"] + 30


async def test_a_sign_in_older_than_max_age_goes_to_the_sign_in_page(
    client: httpx.AsyncClient,
    app_client: Application,
    person: RegisteredUser,
    wall_clock: WallClock,
) -> None:
    await code_for(client, Flow(app_client), "alice")
    wall_clock.advance(20)
    recent = await client.get(Flow(app_client, extra={"max_age": "60"}).url())
    assert "code" in query_of(recent.headers["location"])
    too_old = await client.get(Flow(app_client, extra={"max_age": "10"}).url())
    assert too_old.headers["location"].startswith("/login?")
    none = await client.get(Flow(app_client, extra={"max_age": "10", "prompt": "none"}).url())
    assert query_of(none.headers["location"])["error"] == "login_required"


async def test_a_deactivated_account_gets_no_code(
    client: httpx.AsyncClient,
    app_client: Application,
    person: RegisteredUser,
    database: Database,
) -> None:
    await code_for(client, Flow(app_client), "alice")
    async with database.session() as session:
        from app.users.service import UserService

        user = await UserService(session).get_by_id(person.id)
        assert user is not None
        user.is_active = False
    response = await client.get(Flow(app_client).url())
    assert response.headers["location"].startswith("/login?")
    none = await client.get(Flow(app_client, extra={"prompt": "none"}).url())
    assert query_of(none.headers["location"])["error"] == "login_required"


# --- consent ---------------------------------------------------------------------------


@pytest.fixture
async def third_party(database: Database) -> Application:
    return await register_application(database, first_party=False, name="Partner <App>")


async def _consent_page(client: httpx.AsyncClient, flow: Flow) -> httpx.Response:
    response = await follow(client, await client.get(flow.url()))
    if response.status_code == 200 and "/login" in str(response.url):
        return_to = query_of(str(response.url))["return_to"]
        response = await follow(client, await sign_in(client, "alice", return_to=return_to))
    return response


async def _decide(client: httpx.AsyncClient, page: httpx.Response, decision: str) -> httpx.Response:
    token = query_of(str(page.url))["request"]
    return await client.post(
        "/consent", data={"csrf_token": csrf_of(page), "request": token, "decision": decision}
    )


async def test_a_third_party_asks_consent_once_per_set_of_scopes(
    client: httpx.AsyncClient,
    third_party: Application,
    person: RegisteredUser,
    database: Database,
) -> None:
    flow = Flow(third_party, scope="openid email")
    page = await _consent_page(client, flow)
    assert page.status_code == 200
    assert str(page.url).startswith("http://testserver/consent?")
    assert "Partner &lt;App&gt;" in page.text  # escaped
    assert "email address" in page.text
    assert ">Allow</button>" in page.text
    assert ">Deny</button>" in page.text
    csp = page.headers["content-security-policy"]
    assert "form-action 'self' https://app.example.com" in csp
    allowed = await _decide(client, page, "allow")
    assert allowed.status_code == 302
    answer = query_of(allowed.headers["location"])
    assert answer["state"] == flow.state
    assert answer["code"]
    # Remembered: the same scopes (or fewer) go straight back.
    again = await client.get(Flow(third_party, scope="openid").url())
    assert "code" in query_of(again.headers["location"])
    # A new scope asks again; prompt=consent asks again.
    more = await client.get(Flow(third_party, scope="openid profile").url())
    assert more.headers["location"].startswith("/consent?")
    forced = await client.get(Flow(third_party, scope="openid", extra={"prompt": "consent"}).url())
    assert forced.headers["location"].startswith("/consent?")
    granted = await audit_events(database, "oauth2.consent_granted")
    assert granted[0].details == {"client_id": third_party.client_id, "scope": "openid email"}


async def test_deny_is_access_denied(
    client: httpx.AsyncClient,
    third_party: Application,
    person: RegisteredUser,
    database: Database,
) -> None:
    flow = Flow(third_party)
    page = await _consent_page(client, flow)
    denied = await _decide(client, page, "deny")
    answer = query_of(denied.headers["location"])
    assert answer["error"] == "access_denied"
    assert answer["state"] == flow.state
    assert [e.event for e in await audit_events(database, "oauth2.consent_denied")] == [
        "oauth2.consent_denied"
    ]
    # Answered once: the same form again changes nothing.
    replay = await _decide(client, page, "allow")
    assert replay.status_code == 400


async def test_prompt_none_without_consent_is_consent_required(
    client: httpx.AsyncClient, third_party: Application, person: RegisteredUser
) -> None:
    await sign_in(client, "alice")
    answer = query_of(
        (await client.get(Flow(third_party, extra={"prompt": "none"}).url())).headers["location"]
    )
    assert answer["error"] == "consent_required"


async def test_the_consent_form_without_its_csrf_token_is_refused(
    client: httpx.AsyncClient, third_party: Application, person: RegisteredUser
) -> None:
    page = await _consent_page(client, Flow(third_party))
    token = query_of(str(page.url))["request"]
    refused = await client.post("/consent", data={"request": token, "decision": "allow"})
    assert refused.status_code == 403
    assert "location" not in refused.headers


async def test_a_first_party_client_needs_no_consent(
    client: httpx.AsyncClient, app_client: Application, person: RegisteredUser
) -> None:
    answer = await code_for(client, Flow(app_client), "alice")
    assert answer["code"]


# --- the token endpoint ----------------------------------------------------------------


async def test_a_code_used_twice_is_invalid_grant_and_its_tokens_die(
    client: httpx.AsyncClient,
    app_client: Application,
    person: RegisteredUser,
    database: Database,
) -> None:
    flow = Flow(app_client)
    code = (await code_for(client, flow, "alice"))["code"]
    first = await exchange(client, flow, code)
    assert first.status_code == 200
    tokens = first.json()
    auth = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert (await client.get("/users/me", headers=auth)).status_code == 200
    second = await exchange(client, flow, code)
    assert second.status_code == 400
    assert second.json()["error"] == "invalid_grant"
    assert (await client.get("/users/me", headers=auth)).status_code == 401
    refreshed = await client.post(
        "/auth/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        auth=app_client.basic(),
    )
    assert refreshed.json()["error"] == "invalid_grant"
    reused = await audit_events(database, "oauth2.code_reused")
    assert reused[0].details["client_id"] == app_client.client_id
    # The browser session itself lives on: the next request gets a code at once.
    assert "code" in query_of((await client.get(Flow(app_client).url())).headers["location"])


async def test_a_code_expires_after_60_seconds(
    client: httpx.AsyncClient,
    app_client: Application,
    person: RegisteredUser,
    wall_clock: WallClock,
) -> None:
    flow = Flow(app_client)
    code = (await code_for(client, flow, "alice"))["code"]
    wall_clock.advance(61)
    expired = await exchange(client, flow, code)
    assert expired.json()["error"] == "invalid_grant"


@pytest.mark.parametrize(
    ("override", "error", "status"),
    [
        ({"code_verifier": "x" * 43}, "invalid_grant", 400),
        ({"code_verifier": ""}, "invalid_grant", 400),
        ({"redirect_uri": "https://app.example.com/other"}, "invalid_grant", 400),
        ({"code": "not-a-code"}, "invalid_grant", 400),
    ],
)
async def test_a_wrong_verifier_redirect_uri_or_code_is_invalid_grant(
    client: httpx.AsyncClient,
    app_client: Application,
    person: RegisteredUser,
    override: dict[str, str],
    error: str,
    status: int,
) -> None:
    flow = Flow(app_client)
    code = (await code_for(client, flow, "alice"))["code"]
    response = await exchange(client, flow, code, **override)
    assert response.status_code == status
    assert response.json()["error"] == error
    # A failed attempt does not use the code up.
    assert (await exchange(client, flow, code)).status_code == 200


async def test_client_authentication_at_the_code_exchange(
    client: httpx.AsyncClient,
    app_client: Application,
    person: RegisteredUser,
    database: Database,
) -> None:
    flow = Flow(app_client)
    code = (await code_for(client, flow, "alice"))["code"]
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": app_client.redirect_uri,
        "code_verifier": flow.verifier,
    }
    no_secret = await client.post("/auth/token", data={**form, "client_id": app_client.client_id})
    assert no_secret.status_code == 401
    assert no_secret.json()["error"] == "invalid_client"
    wrong = await client.post("/auth/token", data=form, auth=(app_client.client_id, "wrong"))
    assert wrong.status_code == 401
    assert wrong.json()["error"] == "invalid_client"
    other = await register_application(database, name="Other")
    stolen = await client.post("/auth/token", data=form, auth=other.basic())
    assert stolen.json()["error"] == "invalid_grant"
    assert app_client.secret is not None
    posted = await client.post(
        "/auth/token",
        data={**form, "client_id": app_client.client_id, "client_secret": app_client.secret},
    )
    assert posted.status_code == 200, posted.text


async def test_a_public_client_exchanges_with_its_client_id_and_pkce(
    client: httpx.AsyncClient, database: Database, person: RegisteredUser
) -> None:
    spa = await register_application(database, public=True)
    assert spa.secret is None
    tokens = await tokens_for(client, Flow(spa), "alice")
    assert tokens["id_token"]


async def test_refresh_needs_the_same_client_and_returns_a_new_id_token(
    client: httpx.AsyncClient,
    app_client: Application,
    person: RegisteredUser,
    database: Database,
) -> None:
    tokens = await tokens_for(client, Flow(app_client), "alice")
    form = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    anonymous = await client.post("/auth/token", data=form)
    assert anonymous.json()["error"] == "invalid_grant"
    other = await register_application(database, name="Other")
    assert (await client.post("/auth/token", data=form, auth=other.basic())).json()[
        "error"
    ] == "invalid_grant"
    refreshed = await client.post("/auth/token", data=form, auth=app_client.basic())
    assert refreshed.status_code == 200, refreshed.text
    body = refreshed.json()
    claims = await id_claims(client, body["id_token"], app_client.client_id)
    first = await id_claims(client, tokens["id_token"], app_client.client_id)
    assert claims["sub"] == first["sub"]
    assert claims["sid"] == first["sid"]
    assert claims["auth_time"] == first["auth_time"]
    assert body["scope"] == "openid profile email"


class TestRotation:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, Any]:
        return {"refresh_token_rotation": True}

    async def test_refresh_rotates_the_applications_refresh_token(
        self, client: httpx.AsyncClient, app_client: Application, person: RegisteredUser
    ) -> None:
        tokens = await tokens_for(client, Flow(app_client), "alice")
        form = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
        refreshed = await client.post("/auth/token", data=form, auth=app_client.basic())
        assert refreshed.json()["refresh_token"] != tokens["refresh_token"]
        replayed = await client.post("/auth/token", data=form, auth=app_client.basic())
        assert replayed.json()["error"] == "invalid_grant"


# --- tokens belong to the browser session ------------------------------------------------


async def test_signing_out_of_the_browser_ends_the_applications_tokens(
    client: httpx.AsyncClient, app_client: Application, person: RegisteredUser
) -> None:
    tokens = await tokens_for(client, Flow(app_client), "alice")
    auth = {"Authorization": f"Bearer {tokens['access_token']}"}
    page = await client.get("/logout")
    await client.post("/logout", data={"csrf_token": csrf_of(page)})
    assert (await client.get("/users/me", headers=auth)).status_code == 401
    assert (await client.get("/oauth2/userinfo", headers=auth)).status_code == 401


async def test_the_applications_sessions_are_not_listed_as_sessions(
    client: httpx.AsyncClient, app_client: Application, person: RegisteredUser
) -> None:
    tokens = await tokens_for(client, Flow(app_client), "alice")
    auth = {"Authorization": f"Bearer {tokens['access_token']}"}
    listed = (await client.get("/users/me/sessions", headers=auth)).json()
    # The registration's session and the browser session; not the application's.
    assert len(listed) == 2


async def test_deleting_a_client_ends_its_tokens(
    client: httpx.AsyncClient, app_client: Application, person: RegisteredUser, run_cli: Any
) -> None:
    tokens = await tokens_for(client, Flow(app_client), "alice")
    auth = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert (await run_cli("clients", "delete", app_client.client_id)).exit_code == 0
    assert (await client.get("/users/me", headers=auth)).status_code == 401


# --- userinfo ----------------------------------------------------------------------------


async def test_userinfo_without_a_token_or_with_a_bad_one_is_401_invalid_token(
    client: httpx.AsyncClient,
) -> None:
    for headers in ({}, {"Authorization": "Bearer nonsense"}):
        response = await client.get("/oauth2/userinfo", headers=headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith('Bearer error="invalid_token"')
        assert response.json()["error_code"] == "INVALID_TOKEN"


async def test_userinfo_with_a_token_without_openid_is_403_insufficient_scope(
    client: httpx.AsyncClient, person: RegisteredUser
) -> None:
    response = await client.get("/oauth2/userinfo", headers=person.auth)
    assert response.status_code == 403
    assert response.headers["www-authenticate"].startswith('Bearer error="insufficient_scope"')


async def test_userinfo_gives_only_the_claims_of_the_scopes(
    client: httpx.AsyncClient, app_client: Application, person: RegisteredUser
) -> None:
    tokens = await tokens_for(client, Flow(app_client, scope="openid"), "alice")
    info = await client.get(
        "/oauth2/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert info.json() == {"sub": str(person.id)}


# --- end session -------------------------------------------------------------------------


async def test_end_session_with_a_hint_signs_out_and_returns_to_the_application(
    client: httpx.AsyncClient, app_client: Application, person: RegisteredUser
) -> None:
    tokens = await tokens_for(client, Flow(app_client), "alice")
    query = urlencode(
        {
            "id_token_hint": tokens["id_token"],
            "post_logout_redirect_uri": LOGOUT_URI,
            "state": "bye",
        }
    )
    response = await client.get(f"/oauth2/logout?{query}")
    assert response.status_code == 302
    assert response.headers["location"] == f"{LOGOUT_URI}?state=bye"
    auth = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert (await client.get("/users/me", headers=auth)).status_code == 401
    # The browser is signed out: the next request goes to the sign-in page.
    assert (await client.get(Flow(app_client).url())).headers["location"].startswith("/login?")


async def test_end_session_ignores_an_unregistered_post_logout_redirect_uri(
    client: httpx.AsyncClient, app_client: Application, person: RegisteredUser
) -> None:
    tokens = await tokens_for(client, Flow(app_client), "alice")
    query = urlencode(
        {"id_token_hint": tokens["id_token"], "post_logout_redirect_uri": "https://evil.example/"}
    )
    response = await client.get(f"/oauth2/logout?{query}")
    assert response.status_code == 200
    assert "You are signed out" in response.text


async def test_end_session_without_a_hint_asks_the_person_first(
    client: httpx.AsyncClient, app_client: Application, person: RegisteredUser
) -> None:
    tokens = await tokens_for(client, Flow(app_client), "alice")
    auth = {"Authorization": f"Bearer {tokens['access_token']}"}
    query = urlencode({"client_id": app_client.client_id, "post_logout_redirect_uri": LOGOUT_URI})
    page = await client.get(f"/oauth2/logout?{query}")
    assert page.status_code == 200
    assert ">Sign out</button>" in page.text
    assert (await client.get("/users/me", headers=auth)).status_code == 200  # nothing yet
    forged = await client.post("/oauth2/logout", data={"confirm": "yes"})
    assert forged.status_code == 403
    confirmed = await client.post(
        "/oauth2/logout",
        data={
            "csrf_token": csrf_of(page),
            "confirm": "yes",
            "client_id": app_client.client_id,
            "post_logout_redirect_uri": LOGOUT_URI,
        },
    )
    assert confirmed.status_code == 302
    assert confirmed.headers["location"] == LOGOUT_URI
    assert "form-action 'self' https://app.example.com" in page.headers["content-security-policy"]
    assert (await client.get("/users/me", headers=auth)).status_code == 401


# --- CORS --------------------------------------------------------------------------------


async def test_cors_answers_a_public_clients_origin_on_the_application_endpoints(
    client: httpx.AsyncClient, database: Database
) -> None:
    await register_application(database, public=True, redirect_uris=("http://127.0.0.1:5173/cb",))
    origin = "http://127.0.0.1:5173"
    for path in ("/auth/token", "/oauth2/userinfo", "/auth/revoke", "/.well-known/jwks.json"):
        preflight = await client.options(
            path,
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization",
            },
        )
        assert preflight.status_code == 204, path
        assert preflight.headers["access-control-allow-origin"] == origin
        assert "access-control-allow-credentials" not in preflight.headers
    jwks = await client.get("/.well-known/jwks.json", headers={"Origin": origin})
    assert jwks.headers["access-control-allow-origin"] == origin
    discovery = await client.get("/.well-known/openid-configuration", headers={"Origin": origin})
    assert discovery.headers["access-control-allow-origin"] == origin


async def test_cors_refuses_other_origins_and_other_endpoints(
    client: httpx.AsyncClient, database: Database
) -> None:
    await register_application(database, public=True, redirect_uris=("http://127.0.0.1:5173/cb",))
    # A confidential client's origin is not a browser application's.
    await register_application(database, redirect_uris=("https://server.example/cb",))
    for origin in ("https://evil.example", "https://server.example"):
        preflight = await client.options(
            "/auth/token",
            headers={"Origin": origin, "Access-Control-Request-Method": "POST"},
        )
        assert preflight.status_code == 403
        assert "access-control-allow-origin" not in preflight.headers
    me = await client.get("/users/me", headers={"Origin": "http://127.0.0.1:5173"})
    assert "access-control-allow-origin" not in me.headers


class TestConfiguredOrigins:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, Any]:
        return {"cors_origins": ["https://console.example"]}

    async def test_cors_origins_are_answered_too(self, client: httpx.AsyncClient) -> None:
        response = await client.get(
            "/.well-known/jwks.json", headers={"Origin": "https://console.example"}
        )
        assert response.headers["access-control-allow-origin"] == "https://console.example"


async def test_concurrent_exchanges_of_one_code_give_one_answer_and_end_its_tokens(
    client: httpx.AsyncClient,
    app_client: Application,
    person: RegisteredUser,
    database: Database,
) -> None:
    flow = Flow(app_client)
    code = (await code_for(client, flow, "alice"))["code"]
    answers = await asyncio.gather(*(exchange(client, flow, code) for _ in range(3)))
    assert sorted(a.status_code for a in answers) == [200, 400, 400]
    winner = next(a for a in answers if a.status_code == 200)
    auth = {"Authorization": f"Bearer {winner.json()['access_token']}"}
    assert (await client.get("/users/me", headers=auth)).status_code == 401
    assert len(await audit_events(database, "oauth2.code_reused")) >= 1


async def test_the_clean_up_drops_expired_requests_and_long_expired_codes(
    client: httpx.AsyncClient,
    app_client: Application,
    person: RegisteredUser,
    database: Database,
    wall_clock: WallClock,
) -> None:
    flow = Flow(app_client)
    code = (await code_for(client, flow, "alice"))["code"]
    kept = await client.get(Flow(app_client, extra={"prompt": "login"}).url())
    assert kept.headers["location"].startswith("/login?")
    wall_clock.advance(31 * 60)
    assert await purge_authorizations(database, wall_clock()) == 1  # the kept request
    # A used or expired code is remembered an hour past its expiry (its reuse is known).
    wall_clock.advance(60 * 60)
    assert await purge_authorizations(database, wall_clock()) == 1
    assert (await exchange(client, flow, code)).json()["error"] == "invalid_grant"


async def test_end_session_takes_a_hint_whatever_its_times_say(
    client: httpx.AsyncClient,
    app_client: Application,
    person: RegisteredUser,
    wall_clock: WallClock,
) -> None:
    # Issued an hour "ahead" of the system clock, expired by the service's: still a hint.
    wall_clock.advance(3600)
    tokens = await tokens_for(client, Flow(app_client), "alice")
    wall_clock.advance(24 * 3600)
    query = urlencode({"id_token_hint": tokens["id_token"], "post_logout_redirect_uri": LOGOUT_URI})
    response = await client.get(f"/oauth2/logout?{query}")
    assert response.status_code == 302
    assert response.headers["location"] == LOGOUT_URI
