"""Sign-in with another OpenID provider, against panva's oidc-provider (certified) run
here: sign-up, sign-in of a linked identity, the second step, and the attacks on the
flow (forged, replayed and foreign-browser states), with the linking policy: an address is
never enough to link."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models.audit import AuditEvent
from app.models.session import AuthSession
from app.models.upstream import UpstreamIdentity
from app.models.user import User
from tests.support.accounts import PASSWORD, UserFactory
from tests.support.pages import alert_of, browser_client, sign_in
from tests.support.processes import ServerProcess
from tests.support.upstream import CLIENT_ID, CLIENT_SECRET, oidc_provider, person_at_provider

pytestmark = pytest.mark.process

CALLBACK = "http://testserver/login/local/callback"
ACCOUNTS = {
    "alice-sub": {
        "email": "alice@example.com",
        "email_verified": True,
        "preferred_username": "alice",
    },
    "bob-sub": {"email": "bob@example.com", "email_verified": True, "preferred_username": "bob"},
    "mallory-sub": {
        "email": "victim@example.com",
        "email_verified": False,
        "preferred_username": "mallory",
    },
    "victim-sub": {
        "email": "victim@example.com",
        "email_verified": True,
        "preferred_username": "v",
    },
}


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with oidc_provider(
        tmp_path_factory.mktemp("oidc"), redirect_uris=[CALLBACK], accounts=ACCOUNTS
    ) as server:
        yield server


def provider_settings(provider: ServerProcess, **extra: Any) -> dict[str, Any]:
    return {
        "public_url": "http://testserver",
        "upstream_providers": [
            {
                "name": "local",
                "display_name": "Local ID",
                "kind": "oidc",
                "issuer": provider.url,
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                **extra,
            }
        ],
    }


@pytest.fixture
def settings_overrides(provider: ServerProcess) -> dict[str, Any]:
    return provider_settings(provider)


async def leave(browser: httpx.AsyncClient, return_to: str | None = None) -> str:
    """Press "Continue with Local ID": the provider's authorization URL."""
    params = {"return_to": return_to} if return_to else {}
    response = await browser.get("/login/local", params=params)
    assert response.status_code == 303, response.text
    return response.headers["location"]


async def come_back(browser: httpx.AsyncClient, callback: str) -> httpx.Response:
    return await browser.get(callback.removeprefix("http://testserver"))


async def through_provider(browser: httpx.AsyncClient, login: str) -> httpx.Response:
    location = await leave(browser)
    return await come_back(browser, await person_at_provider(location, login, stop_at=CALLBACK))


def return_to_of(page: httpx.Response) -> str:
    found = re.search(r'name="return_to" value="([^"]+)"', page.text)
    assert found is not None, page.text
    return html.unescape(found.group(1))


async def identities(db: AsyncSession) -> list[tuple[str, int]]:
    rows = (await db.execute(select(UpstreamIdentity))).scalars().all()
    return [(row.subject, row.user_id) for row in rows]


async def test_login_page_offers_the_provider(app: FastAPI) -> None:
    async with browser_client(app) as browser:
        page = await browser.get("/login")
    assert "Continue with Local ID</button>" in page.text


async def test_new_identity_signs_up_without_password_and_signs_in_again(
    app: FastAPI, db_session: AsyncSession
) -> None:
    async with browser_client(app) as browser:
        done = await through_provider(browser, "alice-sub")
        assert done.status_code == 303, done.text
        assert done.headers["location"] == "/account"
        account = await browser.get("/account")
        assert "alice@example.com (verified)" in account.text
        assert "Unlink Local ID" in account.text
    user = (await db_session.execute(select(User))).scalar_one()
    assert (user.email, user.username, user.has_password, user.email_verified) == (
        "alice@example.com",
        "alice",
        False,
        True,
    )
    user_id = user.id
    # The same identity, another browser: signed in to the same account, none created.
    async with browser_client(app) as browser:
        again = await through_provider(browser, "alice-sub")
        assert again.status_code == 303
    db_session.expire_all()
    assert await identities(db_session) == [("alice-sub", user_id)]
    events = (
        (await db_session.execute(select(AuditEvent).where(AuditEvent.event == "login.succeeded")))
        .scalars()
        .all()
    )
    assert [e.details for e in events] == [{"methods": ["fed"], "provider": "local"}] * 2
    sessions = (await db_session.execute(select(AuthSession.amr))).scalars().all()
    assert sessions == [["fed"], ["fed"]]


async def test_return_to_is_followed_after_the_provider(app: FastAPI) -> None:
    async with browser_client(app) as browser:
        location = await leave(browser, return_to="/account?tab=1")
        callback = await person_at_provider(location, "bob-sub", stop_at=CALLBACK)
        done = await come_back(browser, callback)
    assert done.headers["location"] == "/account?tab=1"


async def test_forged_state_is_refused(app: FastAPI, db_session: AsyncSession) -> None:
    async with browser_client(app) as browser:
        location = await leave(browser)
        callback = await person_at_provider(location, "alice-sub", stop_at=CALLBACK)
        forged = callback.replace("state=", "state=x")
        refused = await come_back(browser, forged)
    assert refused.status_code == 400
    assert "did not start in this browser" in (alert_of(refused) or "")
    assert "authsvc_session" not in refused.cookies
    assert await identities(db_session) == []


async def test_replayed_state_is_refused(app: FastAPI) -> None:
    async with browser_client(app) as browser:
        callback = await person_at_provider(await leave(browser), "alice-sub", stop_at=CALLBACK)
        first = await come_back(browser, callback)
        assert first.status_code == 303
        again = await come_back(browser, callback)
    assert again.status_code == 400
    assert "already used" in (alert_of(again) or "")


async def test_callback_in_another_browser_is_refused(
    app: FastAPI, db_session: AsyncSession
) -> None:
    """Login CSRF: an attacker's finished sign-in, delivered to the victim's browser, does
    not sign the victim in (to the attacker's account) - nor the attacker's own browser later."""
    async with browser_client(app) as attacker, browser_client(app) as victim:
        callback = await person_at_provider(await leave(attacker), "bob-sub", stop_at=CALLBACK)
        await victim.get("/login")  # the victim's browser has an id of its own
        refused = await come_back(victim, callback)
        assert refused.status_code == 400
        assert (await victim.get("/account")).status_code == 303
        # The state was the attacker's browser's: still there, once.
        assert (await come_back(attacker, callback)).status_code == 303


async def test_unverified_address_of_an_account_neither_links_nor_signs_in(
    app: FastAPI, user_factory: UserFactory, db_session: AsyncSession
) -> None:
    await user_factory(email="victim@example.com", username="victim")
    async with browser_client(app) as browser:
        refused = await through_provider(browser, "mallory-sub")
        assert refused.status_code == 403
        assert "no verified email address" in (alert_of(refused) or "")
        assert (await browser.get("/account")).status_code == 303
    assert await identities(db_session) == []


async def test_verified_address_of_an_account_links_only_after_signing_in_to_it(
    app: FastAPI, user_factory: UserFactory, db_session: AsyncSession
) -> None:
    victim = await user_factory(email="victim@example.com", username="victim")
    async with browser_client(app) as browser:
        location = await leave(browser, return_to="/account?from=link")
        callback = await person_at_provider(location, "victim-sub", stop_at=CALLBACK)
        offered = await come_back(browser, callback)
        assert offered.status_code == 200
        assert "exists already" in offered.text
        assert (await browser.get("/account")).status_code == 303  # not signed in
        assert await identities(db_session) == []  # not linked
        signed_in = await sign_in(
            browser, "victim@example.com", PASSWORD, return_to=return_to_of(offered)
        )
        assert signed_in.status_code == 303
        assert signed_in.headers["location"] == "/account?from=link"
    db_session.expire_all()
    assert await identities(db_session) == [("victim-sub", victim.id)]
    # From now on the provider signs in to that account.
    async with browser_client(app) as other:
        assert (await through_provider(other, "victim-sub")).status_code == 303
        assert "victim@example.com" in (await other.get("/account")).text


async def test_signing_in_to_another_account_links_nothing(
    app: FastAPI, user_factory: UserFactory, db_session: AsyncSession
) -> None:
    await user_factory(email="victim@example.com", username="victim")
    await user_factory(email="other@example.com", username="other")
    async with browser_client(app) as browser:
        await through_provider(browser, "victim-sub")
        assert (await sign_in(browser, "other")).status_code == 303
    assert await identities(db_session) == []


class TestNoSignUp:
    @pytest.fixture
    def settings_overrides(self, provider: ServerProcess) -> dict[str, Any]:
        return provider_settings(provider, allow_signup=False)

    async def test_unknown_identity_creates_no_account(
        self, app: FastAPI, db_session: AsyncSession
    ) -> None:
        async with browser_client(app) as browser:
            refused = await through_provider(browser, "alice-sub")
        assert refused.status_code == 403
        assert "cannot be created" in (alert_of(refused) or "")
        assert (await db_session.execute(select(User))).first() is None
