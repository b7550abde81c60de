"""Signing in on the hosted pages: the browser session's cookie, the anti-CSRF token,
`return_to`, the second step, throttling, inactive users, and everything that ends the
session ending the cookie too (SQLite, and PostgreSQL when configured)."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.main import create_app
from app.models.session import AuthSession
from app.models.user import User
from tests.support import PASSWORD, RegisteredUser, UserFactory
from tests.support.mfa import STEP, WallClock, enable_mfa, password_step, totp_code
from tests.support.pages import alert_of, browser_client, csrf_of, flow_of, sign_in

COOKIE = "authsvc_session"


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


async def _signed_in(browser: httpx.AsyncClient, user: RegisteredUser) -> str:
    response = await sign_in(browser, user.username)
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/account"
    value = browser.cookies.get(COOKIE)
    assert value
    return value


async def _account(browser: httpx.AsyncClient) -> httpx.Response:
    return await browser.get("/account")


def _set_cookie(response: httpx.Response, name: str) -> str:
    found = [h for h in response.headers.get_list("set-cookie") if h.startswith(f"{name}=")]
    assert len(found) == 1, response.headers.get_list("set-cookie")
    return found[0]


async def test_signing_in_starts_a_browser_session_named_by_an_httponly_lax_cookie(
    browser: httpx.AsyncClient,
    user_factory: UserFactory,
    client: httpx.AsyncClient,
    db_session: AsyncSession,
) -> None:
    user = await user_factory()
    response = await sign_in(browser, user.email)
    assert response.status_code == 303
    header = _set_cookie(response, COOKIE).lower()
    assert "httponly" in header
    assert "samesite=lax" in header
    assert "path=/" in header
    assert "secure" not in header  # PUBLIC_URL is http://localhost here
    account = await _account(browser)
    assert account.status_code == 200
    assert user.username in account.text
    assert user.email in account.text
    # Listed like any other session, marked as a browser's; the cookie is not its id.
    sessions = (await client.get("/users/me/sessions", headers=user.auth)).json()
    browsers = [s for s in sessions if s["browser"]]
    assert len(browsers) == 1
    value = browser.cookies[COOKIE]
    assert browsers[0]["id"] != value
    # The database holds the cookie's hash, never the cookie.
    row = (
        await db_session.execute(select(AuthSession).where(AuthSession.id == browsers[0]["id"]))
    ).scalar_one()
    assert row.browser_key == hashlib.sha256(value.encode()).hexdigest()
    assert row.amr == ["pwd"]
    assert row.auth_time is not None


@pytest.mark.parametrize("settings_overrides", [{"public_url": "https://auth.example"}])
async def test_with_an_https_public_url_the_cookie_is_secure_and_host_only(
    app: FastAPI, user_factory: UserFactory
) -> None:
    user = await user_factory()
    async with browser_client(app, "https://testserver") as browser:
        response = await sign_in(browser, user.username)
        assert response.status_code == 303
        header = _set_cookie(response, f"__Host-{COOKIE}").lower()
        assert "secure" in header
        assert "httponly" in header
        assert "samesite=lax" in header
        assert "domain" not in header
        assert "path=/" in header
        assert (await _account(browser)).status_code == 200
    async with browser_client(app, "https://testserver") as fresh:
        csrf = _set_cookie(await fresh.get("/login"), "__Host-authsvc_csrf").lower()
        assert "secure" in csrf
        assert "httponly" in csrf
        assert "samesite=lax" in csrf


async def test_a_form_post_without_this_browsers_token_is_refused_and_changes_nothing(
    app: FastAPI, browser: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    user = await user_factory()
    await browser.get("/login")
    missing = await browser.post("/login", data={"identifier": user.username, "password": PASSWORD})
    wrong = await browser.post(
        "/login", data={"identifier": user.username, "password": PASSWORD, "csrf_token": "x" * 43}
    )
    async with browser_client(app) as other:
        theirs = csrf_of(await other.get("/login"))
    foreign = await browser.post(
        "/login", data={"identifier": user.username, "password": PASSWORD, "csrf_token": theirs}
    )
    for refused in (missing, wrong, foreign):
        assert refused.status_code == 403
        assert alert_of(refused)
        assert COOKIE not in refused.headers.get("set-cookie", "")
    assert COOKIE not in browser.cookies


async def test_a_token_of_before_the_sign_in_no_longer_works_after_it(
    browser: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    """The token is bound to the browser session too: a form of another session (here:
    of the signed-out page) cannot sign this one out."""
    user = await user_factory()
    before = csrf_of(await browser.get("/login"))
    await _signed_in(browser, user)
    refused = await browser.post("/logout", data={"csrf_token": before})
    assert refused.status_code == 403
    assert (await _account(browser)).status_code == 200


async def test_a_cross_site_post_cannot_change_the_password(
    app: FastAPI, browser: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    user = await user_factory()
    await _signed_in(browser, user)
    async with browser_client(app) as attacker:
        await _signed_in(attacker, await user_factory())
        forged = csrf_of(await attacker.get("/account"))
    refused = await browser.post(
        "/account/password",
        data={
            "csrf_token": forged,
            "current_password": PASSWORD,
            "new_password": "a whole new secret",
        },
    )
    assert refused.status_code == 403
    # Nothing changed: the old password still signs in, and this browser is still signed in.
    assert (await _account(browser)).status_code == 200
    async with browser_client(app) as again:
        assert (await sign_in(again, user.username)).status_code == 303


HOSTILE = [
    "//evil.example",
    "//evil.example/account",
    "https://evil.example",
    "http://evil.example/",
    "/\\evil.example",
    "\\\\evil.example",
    "/%2F/evil.example",
    "%2F%2Fevil.example",
    "/%5Cevil.example",
    "/\t/evil.example",
    "/\n/evil.example",
    "javascript:alert(1)",
    "evil.example",
    " //evil.example",
    "/ /evil.example",
    "https:/evil.example",
    "/évil",
    "",
]


@pytest.mark.parametrize("return_to", HOSTILE)
async def test_return_to_anywhere_else_than_a_path_here_is_ignored(
    browser: httpx.AsyncClient, user_factory: UserFactory, return_to: str
) -> None:
    user = await user_factory()
    page = await browser.get("/login", params={"return_to": return_to})
    assert 'name="return_to"' not in page.text
    response = await sign_in(browser, user.username, return_to=return_to)
    assert response.status_code == 303
    assert response.headers["location"] == "/account"


async def test_return_to_a_path_here_is_followed(
    browser: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    user = await user_factory()
    target = "/oauth2/authorize?client_id=app&state=a%20b&scope=openid"
    page = await browser.get("/login", params={"return_to": target})
    assert csrf_of(page)
    response = await sign_in(browser, user.username, return_to=target)
    assert response.status_code == 303
    assert response.headers["location"] == target


async def test_wrong_passwords_are_refused_with_an_alert_and_then_throttled(
    browser: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    user = await user_factory()
    for _ in range(5):
        refused = await sign_in(browser, user.username, "not the password")
        assert refused.status_code == 401
        assert alert_of(refused) == "Invalid credentials"
        assert COOKIE not in browser.cookies
    throttled = await sign_in(browser, user.username)  # the right one, too late
    assert throttled.status_code == 429
    assert int(throttled.headers["retry-after"]) > 0
    assert "Too many attempts" in (alert_of(throttled) or "")
    assert COOKIE not in browser.cookies


async def _deactivate(db_session: AsyncSession, user_id: int) -> None:
    await db_session.execute(update(User).where(User.id == user_id).values(is_active=False))
    await db_session.commit()


async def test_an_inactive_user_cannot_sign_in_and_their_cookie_names_nobody(
    app: FastAPI, browser: httpx.AsyncClient, user_factory: UserFactory, db_session: AsyncSession
) -> None:
    user = await user_factory()
    await _signed_in(browser, user)
    await _deactivate(db_session, user.id)
    assert (await _account(browser)).status_code == 303
    async with browser_client(app) as other:
        refused = await sign_in(other, user.username)
        assert refused.status_code == 401
        assert alert_of(refused) == "User account is inactive"
        assert COOKIE not in other.cookies


async def test_deactivation_by_an_admin_ends_the_browser_session(
    browser: httpx.AsyncClient, user_factory: UserFactory, run_cli: Any
) -> None:
    user = await user_factory()
    await _signed_in(browser, user)
    result = await run_cli("users", "deactivate", user.email)
    assert result.exit_code == 0, result.output
    response = await _account(browser)
    assert response.status_code == 303
    assert response.headers["location"] == "/login?return_to=/account"


async def test_ending_the_session_by_the_json_api_ends_the_cookie(
    browser: httpx.AsyncClient, client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    user = await user_factory()
    await _signed_in(browser, user)
    sessions = (await client.get("/users/me/sessions", headers=user.auth)).json()
    (sid,) = [s["id"] for s in sessions if s["browser"]]
    assert (await client.delete(f"/users/me/sessions/{sid}", headers=user.auth)).status_code == 204
    assert (await _account(browser)).status_code == 303


async def test_a_password_change_elsewhere_ends_the_cookie(
    browser: httpx.AsyncClient, client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    user = await user_factory()
    await _signed_in(browser, user)
    changed = await client.put(
        "/users/me/password",
        json={"current_password": PASSWORD, "new_password": "another fine secret"},
        headers=user.auth,
    )
    assert changed.status_code == 200, changed.text
    assert (await _account(browser)).status_code == 303


async def test_signing_out_ends_the_session_and_clears_the_cookie(
    browser: httpx.AsyncClient, client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    user = await user_factory()
    value = await _signed_in(browser, user)
    confirm = await browser.get("/logout")
    assert confirm.status_code == 200
    assert '<button type="submit">Sign out</button>' in confirm.text
    assert (await _account(browser)).status_code == 200  # the GET changed nothing
    done = await browser.post("/logout", data={"csrf_token": csrf_of(confirm)})
    assert done.status_code == 200
    assert "max-age=0" in _set_cookie(done, COOKIE).lower()
    assert (await _account(browser)).status_code == 303
    # The old value names no session any more, even when a browser sends it again.
    browser.cookies.set(COOKIE, value)
    assert (await _account(browser)).status_code == 303
    sessions = (await client.get("/users/me/sessions", headers=user.auth)).json()
    assert not [s for s in sessions if s["browser"]]


async def test_signing_in_again_replaces_the_browsers_session(
    browser: httpx.AsyncClient, client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    user = await user_factory()
    first = await _signed_in(browser, user)
    second = await _signed_in(browser, user)
    assert first != second
    sessions = (await client.get("/users/me/sessions", headers=user.auth)).json()
    assert len([s for s in sessions if s["browser"]]) == 1


async def _mfa_user(
    client: httpx.AsyncClient, user_factory: UserFactory, clock: WallClock
) -> tuple[RegisteredUser, str, list[str]]:
    user = await user_factory()
    enabled = await enable_mfa(client, user.access_token, clock.now)
    clock.advance(STEP)
    return user, enabled.secret, enabled.recovery_codes


async def test_with_two_factor_on_the_second_step_asks_for_a_code(
    browser: httpx.AsyncClient,
    client: httpx.AsyncClient,
    user_factory: UserFactory,
    wall_clock: WallClock,
    db_session: AsyncSession,
) -> None:
    user, secret, _ = await _mfa_user(client, user_factory, wall_clock)
    step = await sign_in(browser, user.username, return_to="/account?from=login")
    assert step.status_code == 200
    assert 'autocomplete="one-time-code"' in step.text
    assert COOKIE not in browser.cookies
    wrong = await browser.post(
        "/login/mfa", data={"csrf_token": csrf_of(step), "flow": flow_of(step), "code": "000000"}
    )
    assert wrong.status_code == 401
    assert alert_of(wrong)
    done = await browser.post(
        "/login/mfa",
        data={
            "csrf_token": csrf_of(wrong),
            "flow": flow_of(wrong),
            "code": totp_code(secret, wall_clock.now),
        },
    )
    assert done.status_code == 303
    assert done.headers["location"] == "/account?from=login"  # the flow kept return_to
    assert (await _account(browser)).status_code == 200
    row = (
        await db_session.execute(select(AuthSession).where(AuthSession.browser_key.is_not(None)))
    ).scalar_one()
    assert row.amr == ["pwd", "otp"]


async def test_a_recovery_code_completes_the_second_step(
    browser: httpx.AsyncClient,
    client: httpx.AsyncClient,
    user_factory: UserFactory,
    wall_clock: WallClock,
) -> None:
    user, _, codes = await _mfa_user(client, user_factory, wall_clock)
    step = await sign_in(browser, user.email)
    done = await browser.post(
        "/login/mfa", data={"csrf_token": csrf_of(step), "flow": flow_of(step), "code": codes[0]}
    )
    assert done.status_code == 303


async def test_the_pages_and_the_json_api_do_not_complete_each_others_flows(
    browser: httpx.AsyncClient,
    client: httpx.AsyncClient,
    user_factory: UserFactory,
    wall_clock: WallClock,
) -> None:
    user, secret, _ = await _mfa_user(client, user_factory, wall_clock)
    json_flow = await password_step(client, user.username)
    page = await browser.get("/login")
    refused = await browser.post(
        "/login/mfa",
        data={
            "csrf_token": csrf_of(page),
            "flow": json_flow,
            "code": totp_code(secret, wall_clock.now),
        },
    )
    assert refused.status_code == 401
    assert COOKIE not in browser.cookies
    step = await sign_in(browser, user.username)
    answer = await client.post(
        "/auth/login/mfa",
        json={"mfa_token": flow_of(step), "code": totp_code(secret, wall_clock.now)},
    )
    assert answer.status_code == 401
    assert answer.json()["error_code"] == "INVALID_TOKEN"


async def test_the_pages_send_a_strict_csp_and_an_application_origin_can_be_allowed(
    app: FastAPI, browser: httpx.AsyncClient
) -> None:
    page = await browser.get("/login")
    csp = page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp
    assert "script-src 'self'" in csp
    assert csp.endswith("form-action 'self'")
    assert "unsafe-inline" not in csp

    async def origins(return_to: str) -> Sequence[str]:
        return ["https://app.example:8443"] if return_to.startswith("/oauth2/") else []

    app.state.return_to_origins = origins
    page = await browser.get("/login", params={"return_to": "/oauth2/authorize?client_id=a"})
    assert page.headers["content-security-policy"].endswith(
        "form-action 'self' https://app.example:8443"
    )
    plain = await browser.get("/login", params={"return_to": "/account"})
    assert plain.headers["content-security-policy"].endswith("form-action 'self'")


async def test_a_signed_in_person_who_mistypes_a_new_sign_in_stays_signed_in(
    browser: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    """The refused attempt's transaction is rolled back and the page still names the
    signed-in person (the rollback expired what it had loaded)."""
    user = await user_factory()
    await _signed_in(browser, user)
    refused = await sign_in(browser, user.username, "not the password")
    assert refused.status_code == 401
    assert f"You are signed in as {user.username}" in refused.text
    assert (await _account(browser)).status_code == 200
