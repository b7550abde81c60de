"""The hosted pages in a real headless Chromium (Debian's package, driven by Playwright),
used as a person uses them: fields found by their label (and by their `autocomplete`
token, as a password manager finds them), buttons pressed by their text, the keyboard
alone where a person could. Every request stays on the service, and the pages'
Content-Security-Policy blocks nothing (no console report of a violation)."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pyotp
from playwright.async_api import Browser, ConsoleMessage, Page, Request, expect

from tests.support import PASSWORD
from tests.support.backends import backend_independent

# What a browser adds is the person's way through the pages; the database beneath
# them is proven on both backends by the in-process page tests.
pytestmark = backend_independent


TIMEOUT_MS = 30_000  # catches a hang, asserts no speed
NEW_PASSWORD = "a brand new passphrase"


class Watch:
    """What a page did that a person would not see: requests to other origins, failed
    requests, and the console's reports of Content-Security-Policy violations."""

    def __init__(self, page: Page, origin: str) -> None:
        self.origin = origin
        self.elsewhere: list[str] = []
        self.failed: list[str] = []
        self.csp: list[str] = []
        page.on("request", self._request)
        page.on("requestfailed", self._failed)
        page.on("console", self._console)

    def _request(self, request: Request) -> None:
        if not request.url.startswith((self.origin + "/", "data:")):
            self.elsewhere.append(request.url)

    def _failed(self, request: Request) -> None:
        # A navigation cancels what the page was still loading (its icon): not a failure.
        if request.failure != "net::ERR_ABORTED":
            self.failed.append(f"{request.url} ({request.failure})")

    def _console(self, message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text or "Content-Security-Policy" in message.text:
            self.csp.append(message.text)

    def assert_clean(self) -> None:
        assert self.elsewhere == []
        assert self.failed == []
        assert self.csp == []


def _code(secret: str, *, steps_ahead: int = 0) -> str:
    """What the authenticator app shows (pyotp), now or a 30 s step later: a code used once
    is refused, and the service accepts one step of drift."""
    return pyotp.TOTP(secret).at(time.time() + 30 * steps_ahead)


async def _sign_in_by_keyboard(page: Page, identifier: str, password: str) -> None:
    """The identifier field has the focus when the page opens: type, Tab, type, Enter.

    A person starts typing once the cursor is in the field; the browser gives `autofocus`
    its focus at a rendering step that may come after the load event, so wait for it."""
    await expect(page.get_by_label("Email or username")).to_be_focused(timeout=TIMEOUT_MS)
    await page.keyboard.type(identifier)
    await page.keyboard.press("Tab")
    await page.keyboard.type(password)
    await page.keyboard.press("Enter")


async def test_a_person_registers_signs_in_secures_the_account_and_signs_out(
    browser: Browser, live_server: str, tmp_path: Path
) -> None:
    page = await browser.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    watch = Watch(page, live_server)

    # Register.
    await page.goto(f"{live_server}/register")
    await page.get_by_label("Email").fill("person@example.com")
    await page.get_by_label("Username").fill("person")
    await page.get_by_label("Password").fill(PASSWORD)
    assert await page.locator('input[autocomplete="new-password"]').count() == 1
    await page.get_by_role("button", name="Create account").click()
    await page.wait_for_url(f"{live_server}/account")
    assert "person@example.com" in await page.get_by_role("main").inner_text()

    # Sign out: the button on the account page, then the page says so.
    await page.get_by_role("button", name="Sign out").click()
    await page.get_by_role("heading", name="You are signed out").wait_for()

    # A wrong password is announced; the right one, typed on the keyboard, signs in.
    await page.goto(f"{live_server}/login")
    identifier = page.locator('input[autocomplete="username webauthn"]')
    assert await identifier.get_attribute("id") == await page.get_by_label(
        "Email or username"
    ).get_attribute("id")
    await page.get_by_label("Email or username").fill("person")
    await page.locator('input[autocomplete="current-password"]').fill("wrong password")
    await page.get_by_role("button", name="Sign in", exact=True).click()
    assert await page.get_by_role("alert").inner_text() == "Invalid credentials"
    await page.goto(f"{live_server}/login")
    await _sign_in_by_keyboard(page, "person", PASSWORD)
    await page.wait_for_url(f"{live_server}/account")

    # Change the password (the account page's "Password" section).
    password = page.get_by_role("region", name="Password")
    await password.get_by_label("Current password").fill(PASSWORD)
    await password.get_by_label("New password").fill(NEW_PASSWORD)
    await password.get_by_role("button", name="Change password").click()
    await page.get_by_text("Your password was changed").wait_for()

    # An app signs in too (the JSON API).
    async with httpx.AsyncClient(base_url=live_server) as http:
        app_login = await http.post(
            "/auth/login", json={"username": "person", "password": NEW_PASSWORD}
        )
        assert app_login.status_code == 200, app_login.text
        app_token = app_login.json()["access_token"]

    # Turn two-factor on with the key the page shows as text (for people who cannot scan).
    await page.get_by_role("button", name="Turn on").click()
    await page.locator("figure.qr svg").wait_for()
    secret = (await page.locator("#totp-secret").inner_text()).strip()
    await page.get_by_label("Code from your authenticator app").fill(_code(secret))
    await page.get_by_role("button", name="Verify").click()
    await page.get_by_text("Two-factor authentication is on.").first.wait_for()
    assert await page.locator("ul.codes li").count() == 10
    await page.screenshot(path=tmp_path / "account.png", full_page=True)

    # Another sign-in, by an app: listed, then ended from here.
    await page.reload()
    sessions = page.locator("ul.sessions > li")
    assert await sessions.count() == 2
    await sessions.filter(has_text="An app").get_by_role("button", name="End session").click()
    await page.get_by_text("The session was ended").wait_for()
    async with httpx.AsyncClient(base_url=live_server) as http:
        me = await http.get("/users/me", headers={"Authorization": f"Bearer {app_token}"})
        assert me.status_code == 401

    # Sign out through the header link and its confirmation, then sign in with both steps.
    await page.get_by_role("link", name="Sign out").click()
    await page.get_by_role("button", name="Sign out").click()
    await page.get_by_role("heading", name="You are signed out").wait_for()
    await page.goto(f"{live_server}/account")
    await page.wait_for_url(f"{live_server}/login?return_to=/account")
    await page.get_by_label("Email or username").fill("person@example.com")
    await page.get_by_label("Password").fill(NEW_PASSWORD)
    await page.get_by_role("button", name="Sign in", exact=True).click()
    code = page.locator('input[autocomplete="one-time-code"]')
    await code.wait_for()
    await page.get_by_label("Code from your authenticator app, or a recovery code").fill(
        _code(secret, steps_ahead=1)
    )
    await page.get_by_role("button", name="Verify").click()
    await page.wait_for_url(f"{live_server}/account")
    assert "Two-factor authentication is on" in await page.get_by_role("main").inner_text()

    # Turn it off again.
    two_factor = page.get_by_role("region", name="Two-factor authentication")
    await two_factor.get_by_label("Current password").fill(NEW_PASSWORD)
    await two_factor.get_by_role("button", name="Turn off").click()
    await page.get_by_text("Two-factor authentication is off.").first.wait_for()
    watch.assert_clean()


async def test_a_form_from_another_site_is_refused(
    browser: Browser, live_server: str, tmp_path: Path
) -> None:
    """A page elsewhere that posts to the sign-out form gets the 403 page: the browser
    sends the cookies along (a top-level POST), but not the page's token."""
    async with httpx.AsyncClient(base_url=live_server) as http:
        registered = await http.post(
            "/auth/register",
            json={"email": "victim@example.com", "username": "victim", "password": PASSWORD},
        )
        assert registered.status_code == 201
    page = await browser.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    await page.goto(f"{live_server}/login")
    await _sign_in_by_keyboard(page, "victim", PASSWORD)
    await page.wait_for_url(f"{live_server}/account")
    forged = tmp_path / "forged.html"
    forged.write_text(
        f'<form method="post" action="{live_server}/logout">'
        '<input name="csrf_token" value="guessed"><button>Win a prize</button></form>'
    )
    await page.goto(forged.as_uri())
    async with page.expect_navigation():
        await page.get_by_role("button", name="Win a prize").click()
    assert "This form has expired" in await page.get_by_role("heading").inner_text()
    await page.goto(f"{live_server}/account")
    assert page.url == f"{live_server}/account"  # still signed in
