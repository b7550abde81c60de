"""The OpenID provider on two real `authsvc serve` processes sharing one database: a code
issued by one is exchanged at the other exactly once, an end session at one ends the
tokens at the other, a consent given at one counts at the other. The browser's cookies go
to both, as behind a load balancer."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from http.cookiejar import CookieJar
from urllib.parse import urlencode

import httpx
import pytest

from tests.support import BACKENDS, PASSWORD, prepare_schema, prepared
from tests.support.markers import starts
from tests.support.oidc import (
    LOGOUT_URI,
    REDIRECT_URI,
    Application,
    Flow,
    exchange,
    follow,
    query_of,
)
from tests.support.pages import csrf_of, sign_in
from tests.support.processes import ServerProcess, serve_pair, server_env

pytestmark = pytest.mark.timeout(300)


@dataclass
class Pair:
    a: ServerProcess
    b: ServerProcess
    env: dict[str, str]
    users: Iterator[int]

    def create_client(self, *args: str) -> Application:
        """`authsvc clients create` against the pair's database."""
        result = subprocess.run(
            [sys.executable, "-m", "app", "clients", "create", "App", "--json",
             "--redirect-uri", REDIRECT_URI, "--post-logout-redirect-uri", LOGOUT_URI, *args],
            env=self.env, capture_output=True, check=True, timeout=60,
        )  # fmt: skip
        created = json.loads(result.stdout)
        return Application(created["client_id"], created["client_secret"])


@pytest.fixture(scope="module", params=BACKENDS)
@starts("process")
def pair(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Pair]:
    workdir = tmp_path_factory.mktemp(f"oidc-scale-out-{request.param}")
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{workdir / 'auth.db'}"
    else:
        url = os.environ["TEST_DATABASE_URL"]
    asyncio.run(prepare_schema(url))
    prepared.add(url)
    env = server_env(url, MAIL_SENDER_ENABLED="false", LOG_LEVEL="WARNING")
    with serve_pair(env, workdir) as (a, b):
        yield Pair(a, b, env, iter(range(1, 1_000_000)))


@pytest.fixture
async def person(pair: Pair) -> str:
    name = f"oidc{next(pair.users)}"
    async with pair.a.client() as client:
        response = await client.post(
            "/auth/register",
            json={"email": f"{name}@example.com", "username": name, "password": PASSWORD},
        )
    assert response.status_code == 201, response.text
    return name


@pytest.fixture
async def browsers(pair: Pair) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """One browser, seen by worker a and by worker b: one cookie jar for both (httpx keeps
    a CookieJar it is given as it is), so a cookie set by one goes to the other."""
    jar = CookieJar()
    async with (
        httpx.AsyncClient(base_url=pair.a.url, cookies=jar, timeout=30) as at_a,
        httpx.AsyncClient(base_url=pair.b.url, cookies=jar, timeout=30) as at_b,
    ):
        yield at_a, at_b


async def _signed_in_code(browser: httpx.AsyncClient, flow: Flow, username: str) -> str:
    page = await follow(browser, await browser.get(flow.url()))
    if "/login" in str(page.url):
        return_to = query_of(str(page.url))["return_to"]
        page = await follow(browser, await sign_in(browser, username, return_to=return_to))
    assert page.status_code == 302, page.text[:300]
    return query_of(page.headers["location"])["code"]


async def test_a_code_issued_at_one_worker_is_exchanged_at_the_other_exactly_once(
    pair: Pair, person: str, browsers: tuple[httpx.AsyncClient, httpx.AsyncClient]
) -> None:
    at_a, at_b = browsers
    app = pair.create_client("--first-party")
    flow = Flow(app)
    code = await _signed_in_code(at_a, flow, person)
    first, second = await asyncio.gather(exchange(at_a, flow, code), exchange(at_b, flow, code))
    statuses = sorted([first.status_code, second.status_code])
    assert statuses == [200, 400], (first.text, second.text)
    loser = first if first.status_code == 400 else second
    assert loser.json()["error"] == "invalid_grant"
    # The second presentation is a reuse: what the first issued is dead on both workers.
    winner = first if first.status_code == 200 else second
    auth = {"Authorization": f"Bearer {winner.json()['access_token']}"}
    for worker in (at_a, at_b):
        assert (await worker.get("/users/me", headers=auth)).status_code == 401


async def test_a_code_from_one_worker_works_once_at_the_other(
    pair: Pair, person: str, browsers: tuple[httpx.AsyncClient, httpx.AsyncClient]
) -> None:
    at_a, at_b = browsers
    app = pair.create_client("--first-party")
    flow = Flow(app)
    code = await _signed_in_code(at_a, flow, person)
    tokens = await exchange(at_b, flow, code)
    assert tokens.status_code == 200, tokens.text
    auth = {"Authorization": f"Bearer {tokens.json()['access_token']}"}
    assert (await at_a.get("/oauth2/userinfo", headers=auth)).status_code == 200
    assert (await exchange(at_a, flow, code)).json()["error"] == "invalid_grant"


async def test_an_end_session_at_one_worker_ends_the_tokens_at_the_other(
    pair: Pair, person: str, browsers: tuple[httpx.AsyncClient, httpx.AsyncClient]
) -> None:
    at_a, at_b = browsers
    app = pair.create_client("--first-party")
    flow = Flow(app)
    code = await _signed_in_code(at_b, flow, person)
    tokens = (await exchange(at_b, flow, code)).json()
    auth = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert (await at_b.get("/users/me", headers=auth)).status_code == 200
    query = urlencode({"id_token_hint": tokens["id_token"], "post_logout_redirect_uri": LOGOUT_URI})
    ended = await at_a.get(f"/oauth2/logout?{query}")
    assert ended.status_code == 302
    assert ended.headers["location"] == LOGOUT_URI
    assert (await at_b.get("/users/me", headers=auth)).status_code == 401
    refreshed = await at_b.post(
        "/auth/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        auth=app.basic(),
    )
    assert refreshed.json()["error"] == "invalid_grant"


async def test_consent_given_at_one_worker_counts_at_the_other(
    pair: Pair, person: str, browsers: tuple[httpx.AsyncClient, httpx.AsyncClient]
) -> None:
    at_a, at_b = browsers
    app = pair.create_client()  # a third party: consent
    flow = Flow(app)
    page = await follow(at_a, await at_a.get(flow.url()))
    return_to = query_of(str(page.url))["return_to"]
    consent = await follow(at_a, await sign_in(at_a, person, return_to=return_to))
    assert "/consent" in str(consent.url)
    allowed = await at_a.post(
        "/consent",
        data={
            "csrf_token": csrf_of(consent),
            "request": query_of(str(consent.url))["request"],
            "decision": "allow",
        },
    )
    assert "code" in query_of(allowed.headers["location"])
    again = await at_b.get(Flow(app).url())
    assert again.status_code == 302
    assert "code" in query_of(again.headers["location"])
