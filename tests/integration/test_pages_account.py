"""The account page and the other hosted forms over HTTP: registration, the forgotten
password's one answer, the password change, two-factor on and off, ending sessions."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.main import create_app
from app.models.mail import OutboxMail
from tests.support import PASSWORD, UserFactory
from tests.support.mfa import STEP, WallClock, totp_code
from tests.support.pages import alert_of, browser_client, csrf_of, sign_in, submit

COOKIE = "authsvc_session"
NEW_PASSWORD = "a completely new secret"


@pytest.fixture
def wall_clock() -> WallClock:
    return WallClock()


@pytest.fixture
async def app(settings: Settings, wall_clock: WallClock) -> AsyncIterator[FastAPI]:
    application = create_app(settings, wall_clock=wall_clock)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def browser(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with browser_client(app) as client:
        yield client


async def test_signed_out_the_account_page_sends_to_the_sign_in_page(
    browser: httpx.AsyncClient,
) -> None:
    response = await browser.get("/account")
    assert response.status_code == 303
    assert response.headers["location"] == "/login?return_to=/account"


async def test_registering_creates_the_account_and_signs_it_in(
    browser: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    created = await submit(
        browser,
        "/register",
        "/register",
        {"email": "new@example.com", "username": "newcomer", "password": PASSWORD},
    )
    assert created.status_code == 303
    account = await browser.get("/account")
    assert account.status_code == 200
    assert "new@example.com" in account.text
    assert "not verified yet" in account.text
    login = await client.post("/auth/login", json={"username": "newcomer", "password": PASSWORD})
    assert login.status_code == 200


async def test_registering_with_a_taken_address_or_a_weak_password_says_why(
    browser: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    user = await user_factory()
    taken = await submit(
        browser,
        "/register",
        "/register",
        {"email": user.email, "username": "someone", "password": PASSWORD},
    )
    assert taken.status_code == 409
    assert alert_of(taken)
    weak = await submit(
        browser,
        "/register",
        "/register",
        {"email": "fresh@example.com", "username": "fresh", "password": "short"},
    )
    assert weak.status_code == 400
    assert "Password" in weak.text
    assert 'value="fresh@example.com"' in weak.text  # what was typed stays
    assert COOKIE not in browser.cookies


async def test_a_forgotten_password_gets_one_answer_whatever_the_address(
    browser: httpx.AsyncClient, user_factory: UserFactory, db_session: AsyncSession
) -> None:
    user = await user_factory()
    known = await submit(browser, "/forgot-password", "/forgot-password", {"email": user.email})
    unknown = await submit(
        browser, "/forgot-password", "/forgot-password", {"email": "nobody@example.com"}
    )
    assert known.status_code == unknown.status_code == 200

    def notice(page: httpx.Response) -> str:
        found = re.search(r'role="status">([^<]*)<', page.text)
        assert found is not None
        return found.group(1)

    assert notice(known) == notice(unknown)
    assert "on its way" in notice(known)
    # Both were queued, as POST /auth/password/forgot does; the sender decides later.
    jobs = await db_session.scalar(select(func.count()).select_from(OutboxMail))
    assert jobs is not None
    assert jobs >= 2


async def test_changing_the_password_ends_other_sessions_and_keeps_this_browser_signed_in(
    app: FastAPI, browser: httpx.AsyncClient, client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    user = await user_factory()
    assert (await sign_in(browser, user.username)).status_code == 303
    before = browser.cookies[COOKIE]
    async with browser_client(app) as other:
        assert (await sign_in(other, user.username)).status_code == 303
        wrong = await submit(
            browser,
            "/account",
            "/account/password",
            {"current_password": "not it", "new_password": NEW_PASSWORD},
        )
        assert wrong.status_code == 400
        assert alert_of(wrong) == "The current password is wrong"
        changed = await submit(
            browser,
            "/account",
            "/account/password",
            {"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        )
        assert changed.status_code == 303
        assert browser.cookies[COOKIE] != before  # a new session for this browser
        page = await browser.get(changed.headers["location"])
        assert "Your password was changed" in page.text
        assert (await other.get("/account")).status_code == 303
    assert (await client.get("/users/me", headers=user.auth)).status_code == 401
    assert (await sign_in(browser, user.username, NEW_PASSWORD)).status_code == 303


async def test_two_factor_is_turned_on_with_the_key_the_page_shows_and_off_again(
    app: FastAPI, browser: httpx.AsyncClient, user_factory: UserFactory, wall_clock: WallClock
) -> None:
    user = await user_factory()
    assert (await sign_in(browser, user.username)).status_code == 303
    started = await submit(browser, "/account", "/account/mfa", {"current_password": PASSWORD})
    assert started.status_code == 200
    assert "<svg" in started.text
    secret = re.search(r'<code id="totp-secret" class="secret">([A-Z2-7]+)</code>', started.text)
    assert secret is not None
    wrong = await browser.post(
        "/account/mfa/confirm", data={"csrf_token": csrf_of(started), "code": "000000"}
    )
    assert wrong.status_code == 400
    assert alert_of(wrong)
    confirmed = await browser.post(
        "/account/mfa/confirm",
        data={"csrf_token": csrf_of(started), "code": totp_code(secret.group(1), wall_clock.now)},
    )
    assert confirmed.status_code == 200
    assert len(re.findall(r"<li><code>", confirmed.text)) == 10  # the recovery codes, once
    assert "Two-factor authentication is on" in confirmed.text
    wall_clock.advance(STEP)
    # Signing in now takes the second step.
    async with browser_client(app) as other:
        step = await sign_in(other, user.username)
        assert step.status_code == 200
        assert 'autocomplete="one-time-code"' in step.text
    off = await submit(browser, "/account", "/account/mfa/off", {"current_password": PASSWORD})
    assert off.status_code == 303
    assert "Two-factor authentication is off" in (await browser.get(off.headers["location"])).text


def _own_session(page: httpx.Response) -> str:
    """The id of this browser's session on the account page (its button signs out)."""
    found = re.search(
        r'action="/account/sessions/([0-9a-f]{32})/end">\s*<input[^>]*>\s*'
        r"<button[^>]*>End session \(sign out\)",
        page.text,
    )
    assert found is not None, page.text
    return found.group(1)


def _listed(page: httpx.Response) -> list[str]:
    return re.findall(r'action="/account/sessions/([0-9a-f]{32})/end"', page.text)


async def test_ending_another_session_then_all_others(
    app: FastAPI, browser: httpx.AsyncClient, client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    user = await user_factory()  # its registration is a session of the JSON API
    assert (await sign_in(browser, user.username)).status_code == 303
    async with browser_client(app) as other:
        assert (await sign_in(other, user.username)).status_code == 303
        theirs = _own_session(await other.get("/account"))
        page = await browser.get("/account")
        assert "This browser" in page.text
        assert len(_listed(page)) == 3
        ended = await browser.post(
            f"/account/sessions/{theirs}/end", data={"csrf_token": csrf_of(page)}
        )
        assert ended.status_code == 303
        assert "The session was ended" in (await browser.get(ended.headers["location"])).text
        assert (await other.get("/account")).status_code == 303
        assert (await client.get("/users/me", headers=user.auth)).status_code == 200
        everyone = await submit(browser, "/account", "/account/sessions/end-others", {})
        assert everyone.status_code == 303
    assert (await client.get("/users/me", headers=user.auth)).status_code == 401
    page = await browser.get("/account")
    assert page.status_code == 200
    assert _listed(page) == [_own_session(page)]


async def test_a_session_of_someone_else_is_not_found(
    app: FastAPI, browser: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    assert (await sign_in(browser, (await user_factory()).username)).status_code == 303
    async with browser_client(app) as other:
        assert (await sign_in(other, (await user_factory()).username)).status_code == 303
        theirs = _own_session(await other.get("/account"))
        page = await browser.get("/account")
        refused = await browser.post(
            f"/account/sessions/{theirs}/end", data={"csrf_token": csrf_of(page)}
        )
        assert refused.status_code == 404
        assert alert_of(refused) == "Session not found"
        assert (await other.get("/account")).status_code == 200


async def test_ending_this_browsers_own_session_signs_it_out(
    browser: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    user = await user_factory()
    assert (await sign_in(browser, user.username)).status_code == 303
    page = await browser.get("/account")
    ended = await browser.post(
        f"/account/sessions/{_own_session(page)}/end", data={"csrf_token": csrf_of(page)}
    )
    assert ended.status_code == 303
    assert ended.headers["location"] == "/login"
    assert (await browser.get("/account")).status_code == 303
