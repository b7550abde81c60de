"""The ID token and the provider's other answers, tampered with or missing, against a
stand-in provider on a loopback port: each forgery is refused and signs nobody in; a
provider that is down or hangs gives a clear page quickly; GitHub's address counts only
when it is the verified primary one."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models.upstream import UpstreamIdentity
from app.models.user import User
from app.utils.circuit_breaker import BreakerState
from tests.support.accounts import UserFactory
from tests.support.fake_upstream import (
    CLIENT_ID,
    CLIENT_SECRET,
    FakeUpstream,
    fake_upstream,
    new_key,
)
from tests.support.pages import alert_of, browser_client


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeUpstream]:
    with fake_upstream() as server:
        yield server


@pytest.fixture(autouse=True)
def fresh(fake: FakeUpstream) -> None:
    fake.tamper = {}
    fake.foreign_key = None
    fake.claims = {"email": "new@example.com", "email_verified": True}
    fake.github_user = {"id": 4242, "login": "octo cat"}
    fake.github_emails = []


def providers(fake: FakeUpstream, **settings: Any) -> dict[str, Any]:
    common = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
    return {
        "public_url": "http://testserver",
        "upstream_providers": [
            {"name": "idp", "display_name": "IdP", "kind": "oidc", "issuer": fake.url, **common},
            {
                "name": "github",
                "display_name": "GitHub",
                "kind": "github",
                "authorize_url": f"{fake.url}/login/oauth/authorize",
                "token_url": f"{fake.url}/login/oauth/access_token",
                "api_url": f"{fake.url}/api",
                **common,
            },
        ],
        **settings,
    }


@pytest.fixture
def settings_overrides(fake: FakeUpstream) -> dict[str, Any]:
    return providers(fake)


async def round_trip(
    browser: httpx.AsyncClient, fake: FakeUpstream, provider: str = "idp", subject: str = "s-1"
) -> httpx.Response:
    leave = await browser.get(f"/login/{provider}")
    assert leave.status_code == 303, leave.text
    location = leave.headers["location"]
    state = httpx.URL(location).params["state"]
    code = fake.authorize(location, subject)
    return await browser.get(f"/login/{provider}/callback", params={"code": code, "state": state})


async def nobody_signed_in(db: AsyncSession) -> bool:
    return (await db.execute(select(User))).first() is None and (
        await db.execute(select(UpstreamIdentity))
    ).first() is None


async def test_untampered_token_signs_up(
    app: FastAPI, fake: FakeUpstream, db_session: AsyncSession
) -> None:
    async with browser_client(app) as browser:
        done = await round_trip(browser, fake)
    assert done.status_code == 303, done.text
    user = (await db_session.execute(select(User))).scalar_one()
    assert user.email == "new@example.com"


@pytest.mark.parametrize(
    ("tamper", "why"),
    [
        ({"aud": "another-client"}, "wrong audience"),
        ({"iss": "https://evil.example"}, "wrong issuer"),
        ({"nonce": "not-the-nonce"}, "wrong nonce"),
        ({"exp": int(time.time()) - 3600, "iat": int(time.time()) - 7200}, "expired"),
        ({"aud": [CLIENT_ID, "other"], "azp": "other"}, "another authorized party"),
    ],
)
async def test_tampered_id_token_is_refused(
    app: FastAPI, fake: FakeUpstream, db_session: AsyncSession, tamper: dict[str, Any], why: str
) -> None:
    fake.tamper = tamper
    async with browser_client(app) as browser:
        refused = await round_trip(browser, fake)
        assert refused.status_code == 401, why
        assert "did not confirm who you are" in (alert_of(refused) or "")
        assert (await browser.get("/account")).status_code == 303
    assert await nobody_signed_in(db_session)


async def test_token_signed_with_an_unpublished_key_is_refused(
    app: FastAPI, fake: FakeUpstream, db_session: AsyncSession
) -> None:
    fake.foreign_key = new_key()[0]
    async with browser_client(app) as browser:
        refused = await round_trip(browser, fake)
    assert refused.status_code == 401
    assert await nobody_signed_in(db_session)


async def test_rotated_provider_key_is_fetched_once(
    app: FastAPI, fake: FakeUpstream, db_session: AsyncSession
) -> None:
    async with browser_client(app) as browser:
        assert (await round_trip(browser, fake, subject="s-1")).status_code == 303
    fetched = fake.jwks_fetches
    fake.rotate_key()
    fake.claims = {"email": "second@example.com", "email_verified": True}
    async with browser_client(app) as browser:
        assert (await round_trip(browser, fake, subject="s-2")).status_code == 303
    assert fake.jwks_fetches == fetched + 1


async def test_code_and_state_from_another_provider_are_refused(
    app: FastAPI, fake: FakeUpstream
) -> None:
    """Mix-up: a state started for one provider, delivered to another's callback."""
    async with browser_client(app) as browser:
        leave = await browser.get("/login/idp")
        location = leave.headers["location"]
        code = fake.authorize(location)
        state = httpx.URL(location).params["state"]
        before = fake.token_requests
        refused = await browser.get("/login/github/callback", params={"code": code, "state": state})
        assert refused.status_code == 400
        assert fake.token_requests == before  # the code went nowhere
        # The state still belongs to its own provider's callback.
        done = await browser.get("/login/idp/callback", params={"code": code, "state": state})
    assert done.status_code == 303


async def test_iss_of_another_issuer_is_refused(app: FastAPI, fake: FakeUpstream) -> None:
    async with browser_client(app) as browser:
        leave = await browser.get("/login/idp")
        location = leave.headers["location"]
        code = fake.authorize(location)
        params = {"code": code, "state": httpx.URL(location).params["state"]}
        refused = await browser.get(
            "/login/idp/callback", params={**params, "iss": "https://evil.example"}
        )
    assert refused.status_code == 401


# --- GitHub -----------------------------------------------------------------------------


async def test_github_verified_primary_address_signs_up(
    app: FastAPI, fake: FakeUpstream, db_session: AsyncSession
) -> None:
    fake.github_emails = [
        {"email": "other@example.com", "primary": False, "verified": True},
        {"email": "octo@example.com", "primary": True, "verified": True},
    ]
    async with browser_client(app) as browser:
        done = await round_trip(browser, fake, "github")
    assert done.status_code == 303, done.text
    user = (await db_session.execute(select(User))).scalar_one()
    identity = (await db_session.execute(select(UpstreamIdentity))).scalar_one()
    assert (user.email, user.username, user.has_password) == (
        "octo@example.com",
        "octo-cat",
        False,
    )
    assert (identity.provider, identity.subject) == ("github", "4242")


async def test_a_taken_username_is_made_unique(
    app: FastAPI, fake: FakeUpstream, user_factory: UserFactory, db_session: AsyncSession
) -> None:
    await user_factory(email="someone@example.com", username="Octo-Cat")
    fake.github_emails = [{"email": "octo@example.com", "primary": True, "verified": True}]
    async with browser_client(app) as browser:
        assert (await round_trip(browser, fake, "github")).status_code == 303
    user = (
        await db_session.execute(select(User).where(User.email == "octo@example.com"))
    ).scalar_one()
    assert user.username.startswith("octo-cat-")


async def test_github_unverified_primary_address_matches_no_account(
    app: FastAPI, fake: FakeUpstream, user_factory: UserFactory, db_session: AsyncSession
) -> None:
    await user_factory(email="victim@example.com", username="victim")
    fake.github_emails = [
        {"email": "victim@example.com", "primary": True, "verified": False},
        {"email": "mallory@example.com", "primary": False, "verified": True},
    ]
    async with browser_client(app) as browser:
        refused = await round_trip(browser, fake, "github")
        assert refused.status_code == 403
        assert "no verified email address" in (alert_of(refused) or "")
        assert (await browser.get("/account")).status_code == 303
    assert (await db_session.execute(select(UpstreamIdentity))).first() is None


# --- a provider that is down ---------------------------------------------------------


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers (a hung provider)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield sock.getsockname()[1]


class TestProviderDown:
    @pytest.fixture
    def settings_overrides(self, fake: FakeUpstream, silent_port: int) -> dict[str, Any]:
        values = providers(fake, upstream_timeout_seconds=0.5, circuit_breaker_threshold=2)
        values["upstream_providers"][0]["issuer"] = f"http://127.0.0.1:{silent_port}"
        return values

    async def test_hung_provider_gives_a_page_then_the_breaker_sheds(self, app: FastAPI) -> None:
        async with browser_client(app) as browser:
            for _ in range(2):
                started = time.monotonic()
                down = await browser.get("/login/idp")
                assert down.status_code == 503
                assert time.monotonic() - started < 5
                assert "IdP is not answering" in (alert_of(down) or "")
            breaker = app.state.upstream_clients["idp"].breaker
            assert breaker.state is BreakerState.OPEN
            shed = await browser.get("/login/idp")
        assert shed.status_code == 503
        assert int(shed.headers["retry-after"]) >= 1
        # The other provider is not affected.
        assert app.state.upstream_clients["github"].breaker.state is BreakerState.CLOSED


async def test_a_refusal_at_the_provider_is_a_page_and_uses_the_state_up(
    app: FastAPI, fake: FakeUpstream, db_session: AsyncSession
) -> None:
    async with browser_client(app) as browser:
        leave = await browser.get("/login/idp")
        state = httpx.URL(leave.headers["location"]).params["state"]
        denied = await browser.get(
            "/login/idp/callback", params={"error": "access_denied", "state": state}
        )
        assert denied.status_code == 400
        assert "cancelled or refused" in (alert_of(denied) or "")
        code = fake.authorize(leave.headers["location"])
        later = await browser.get("/login/idp/callback", params={"code": code, "state": state})
        assert later.status_code == 400
    assert await nobody_signed_in(db_session)


async def test_an_unknown_provider_is_a_404_page(app: FastAPI) -> None:
    async with browser_client(app) as browser:
        assert (await browser.get("/login/nope")).status_code == 404
        assert (await browser.get("/login/nope/callback?state=x&code=y")).status_code == 404


class TestStartsAreThrottled:
    @pytest.fixture
    def settings_overrides(self, fake: FakeUpstream) -> dict[str, Any]:
        return providers(fake, rate_limit_login_ip="2/minute")

    async def test_each_start_counts_as_a_sign_in_attempt_of_the_client(self, app: FastAPI) -> None:
        async with browser_client(app) as browser:
            for _ in range(2):
                assert (await browser.get("/login/idp")).status_code == 303
            refused = await browser.get("/login/idp")
        assert refused.status_code == 429
        assert int(refused.headers["retry-after"]) >= 1
        assert "Too many attempts" in (alert_of(refused) or "")
