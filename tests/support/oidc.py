"""An OpenID Connect application as the tests drive one: a registered client, PKCE, a
browser (an HTTP client keeping cookies) that signs in on the hosted /login page, and the
walk from the authorization request to the code and the tokens."""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

from app.database import Database
from app.oauth2.clients import ClientService
from app.utils.clock import utc_now
from tests.support.pages import sign_in

REDIRECT_URI = "https://app.example.com/callback"
LOGOUT_URI = "https://app.example.com/signed-out"


@dataclass
class Application:
    client_id: str
    secret: str | None
    redirect_uri: str = REDIRECT_URI

    def basic(self) -> httpx.BasicAuth:
        """HTTP Basic with the secret (a confidential client)."""
        assert self.secret is not None, "a public client has no secret"
        return httpx.BasicAuth(self.client_id, self.secret)

    def credentials(self) -> dict[str, str]:
        """A public client names itself in the form; a confidential one uses HTTP Basic."""
        return {} if self.secret else {"client_id": self.client_id}


async def register_application(
    database: Database,
    *,
    public: bool = False,
    first_party: bool = True,
    redirect_uris: tuple[str, ...] = (REDIRECT_URI,),
    post_logout_redirect_uris: tuple[str, ...] = (LOGOUT_URI,),
    name: str = "Example App",
) -> Application:
    async with database.session() as session:
        created = await ClientService(session).create(
            name,
            utc_now(),
            redirect_uris=redirect_uris,
            post_logout_redirect_uris=post_logout_redirect_uris,
            public=public,
            first_party=first_party,
        )
    return Application(created.client.client_id, created.secret, redirect_uris[0])


def pkce() -> tuple[str, str]:
    """(code_verifier, S256 code_challenge), RFC 7636 §4.1-4.2."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    return verifier, challenge.rstrip(b"=").decode()


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


@dataclass
class Flow:
    """One authorization request of an application."""

    app: Application
    scope: str = "openid profile email"
    state: str = field(default_factory=lambda: secrets.token_urlsafe(8))
    nonce: str | None = field(default_factory=lambda: secrets.token_urlsafe(8))
    extra: dict[str, str] = field(default_factory=dict)
    verifier: str = ""
    challenge: str = ""

    def __post_init__(self) -> None:
        self.verifier, self.challenge = pkce()

    def params(self) -> dict[str, str]:
        params = {
            "response_type": "code",
            "client_id": self.app.client_id,
            "redirect_uri": self.app.redirect_uri,
            "scope": self.scope,
            "state": self.state,
            "code_challenge": self.challenge,
            "code_challenge_method": "S256",
        }
        if self.nonce is not None:
            params["nonce"] = self.nonce
        return {**params, **self.extra}

    def url(self) -> str:
        return f"/oauth2/authorize?{urlencode(self.params())}"


async def follow(
    browser: httpx.AsyncClient, response: httpx.Response, *, limit: int = 10
) -> httpx.Response:
    """Follow redirects on this service; stop at the first answer that is not a redirect
    to it (a redirect to the application, or a page)."""
    for _ in range(limit):
        if response.status_code not in (302, 303):
            return response
        location = response.headers["location"]
        if not location.startswith("/"):
            return response
        response = await browser.get(location)
    raise AssertionError("too many redirects")


async def code_for(
    browser: httpx.AsyncClient, flow: Flow, username: str | None = None
) -> dict[str, str]:
    """Run the authorization request to its answer at the redirect URI (signing in on the
    way when `username` is given and the sign-in page comes); the answer's query."""
    response = await follow(browser, await browser.get(flow.url()))
    if response.status_code == 200 and "/login" in str(response.url) and username is not None:
        return_to = query_of(str(response.url))["return_to"]
        signed_in = await sign_in(browser, username, return_to=return_to)
        response = await follow(browser, signed_in)
    assert response.status_code == 302, (response.status_code, response.text[:300])
    location = response.headers["location"]
    assert location.startswith(flow.app.redirect_uri), location
    return query_of(location)


async def exchange(
    client: httpx.AsyncClient, flow: Flow, the_code: str, **overrides: str
) -> httpx.Response:
    """The code exchange at the token endpoint, as the application makes it; `overrides`
    change (or, empty, leave out) fields of the form."""
    form = {
        "grant_type": "authorization_code",
        "code": the_code,
        "redirect_uri": flow.app.redirect_uri,
        "code_verifier": flow.verifier,
        **flow.app.credentials(),
        **overrides,
    }
    if flow.app.secret is None:
        return await client.post("/auth/token", data=form)
    return await client.post("/auth/token", data=form, auth=flow.app.basic())


async def tokens_for(browser: httpx.AsyncClient, flow: Flow, username: str) -> dict[str, Any]:
    answer = await code_for(browser, flow, username)
    response = await exchange(browser, flow, answer["code"])
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body
