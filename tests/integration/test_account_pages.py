"""The reset and verification pages: served by the service, strict CSP, clicked through in
Debian's headless Chromium with links read from mails a real SMTP server received."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, ConsoleMessage, Page, Response

from tests.support import PASSWORD, UserFactory, assert_error
from tests.support.backends import backend_independent
from tests.support.browsers import TIMEOUT_MS, requires_chromium
from tests.support.mailbox import RESET_SUBJECT, VERIFY_SUBJECT, Mailbox, smtp_overrides

NEW_PASSWORD = "a brand new passphrase 42"


@pytest.fixture
def settings_overrides(smtp_server: Mailbox, live_socket: socket.socket) -> dict[str, Any]:
    port = live_socket.getsockname()[1]
    return {**smtp_overrides(smtp_server), "public_url": f"http://127.0.0.1:{port}"}


async def test_pages_are_html_under_a_strict_csp_with_no_external_assets(
    client: httpx.AsyncClient,
) -> None:
    for path in ("/reset-password?token=abc", "/verify-email?token=abc"):
        page = await client.get(path)
        assert page.status_code == 200
        assert page.headers["content-type"] == "text/html; charset=utf-8"
        csp = page.headers["Content-Security-Policy"]
        assert "script-src 'self';" in csp
        assert "unsafe-inline" not in csp
        assert "default-src 'none'" in csp
        assert page.headers["Cache-Control"] == "no-store"
        assert "http" not in page.text
        assert "<script>" not in page.text
        assert '<html lang="en">' in page.text
    script = await client.get("/static/account/reset-password.js")
    assert script.headers["content-type"].startswith("text/javascript")
    assert_error(await client.get("/static/account/../main.py"), 404, "NOT_FOUND")
    assert_error(await client.get("/static/account/secret.txt"), 404, "NOT_FOUND")


async def test_opening_a_link_uses_up_nothing(
    client: httpx.AsyncClient, user_factory: UserFactory, smtp_server: Mailbox
) -> None:
    user = await user_factory()
    verification = await smtp_server.one(user.email, VERIFY_SUBJECT)
    await client.post("/auth/password/forgot", json={"email": user.email})
    reset = await smtp_server.one(user.email, RESET_SUBJECT)
    for mail in (verification, reset):
        path = mail.link.split("127.0.0.1", 1)[1].split("/", 1)[1]
        assert (await client.get("/" + path)).status_code == 200

    verified = await client.post("/auth/verify-email", json={"token": verification.token})
    assert verified.status_code == 200
    done = await client.post(
        "/auth/password/reset", json={"token": reset.token, "new_password": NEW_PASSWORD}
    )
    assert done.status_code == 204


class Watch:
    """What a page asked of anything but the service, and every console error (a CSP
    violation shows up there)."""

    def __init__(self, page: Page, origin: str) -> None:
        self.foreign: list[str] = []
        self.errors: list[str] = []
        page.on("response", lambda r: self._response(r, origin))
        page.on("console", self._console)

    def _response(self, response: Response, origin: str) -> None:
        if not response.url.startswith(origin + "/"):
            self.foreign.append(response.url)

    def _console(self, message: ConsoleMessage) -> None:
        # The API's expected 400s are logged by Chromium as failed resources; not errors
        # of the page itself.
        if message.type == "error" and "status of 400" not in message.text:
            self.errors.append(message.text)


async def _page(browser: Browser, origin: str) -> tuple[Page, Watch]:
    page = await browser.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    return page, Watch(page, origin)


async def _register_and_ask_reset(live_server: str, smtp_server: Mailbox) -> tuple[str, str]:
    email = "person@example.com"
    async with httpx.AsyncClient(base_url=live_server) as http:
        registered = await http.post(
            "/auth/register", json={"email": email, "username": "person", "password": PASSWORD}
        )
        assert registered.status_code == 201, registered.text
        assert (await http.post("/auth/password/forgot", json={"email": email})).status_code == 202
    return email, (await smtp_server.one(email, RESET_SUBJECT)).link


@requires_chromium
@backend_independent
async def test_a_person_resets_the_password_in_the_browser_from_the_mailed_link(
    browser: Browser, live_server: str, smtp_server: Mailbox, tmp_path: Path
) -> None:
    email, link = await _register_and_ask_reset(live_server, smtp_server)
    assert link.startswith(f"{live_server}/reset-password?token=")
    page, watch = await _page(browser, live_server)
    await page.goto(link)

    await page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    await page.get_by_label("New password, again").fill(NEW_PASSWORD)
    async with page.expect_response(f"{live_server}/auth/password/reset") as answer:
        await page.get_by_role("button", name="Set the new password").click()
    assert (await answer.value).status == 204
    await page.get_by_role("status").filter(has_text="Your password was changed").wait_for()
    await page.screenshot(path=tmp_path / "reset.png")

    async with httpx.AsyncClient(base_url=live_server) as http:
        new = await http.post("/auth/login", json={"email": email, "password": NEW_PASSWORD})
        old = await http.post("/auth/login", json={"email": email, "password": PASSWORD})
    assert new.status_code == 200
    assert old.status_code == 401
    assert watch.foreign == []
    assert watch.errors == []


@requires_chromium
@backend_independent
async def test_the_form_refuses_two_different_entries_without_calling_the_api(
    browser: Browser, live_server: str, smtp_server: Mailbox
) -> None:
    _email, link = await _register_and_ask_reset(live_server, smtp_server)
    page, watch = await _page(browser, live_server)
    calls: list[str] = []
    page.on("request", lambda r: calls.append(r.url) if "/auth/" in r.url else None)
    await page.goto(link)

    await page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    await page.get_by_label("New password, again").fill(NEW_PASSWORD + "!")
    await page.get_by_role("button", name="Set the new password").click()

    await page.get_by_role("alert").filter(has_text="The two passwords do not match.").wait_for()
    assert calls == []
    assert await page.get_by_label("New password, again").get_attribute("aria-invalid") == "true"
    assert watch.errors == []


@requires_chromium
@backend_independent
async def test_a_dead_link_shows_the_apis_message(
    browser: Browser, live_server: str, smtp_server: Mailbox
) -> None:
    _email, link = await _register_and_ask_reset(live_server, smtp_server)
    token = link.rsplit("token=", 1)[1]
    async with httpx.AsyncClient(base_url=live_server) as http:
        used = await http.post(
            "/auth/password/reset", json={"token": token, "new_password": NEW_PASSWORD}
        )
        assert used.status_code == 204
    page, _ = await _page(browser, live_server)
    await page.goto(link)

    await page.get_by_label("New password", exact=True).fill("another new passphrase")
    await page.get_by_label("New password, again").fill("another new passphrase")
    await page.get_by_role("button", name="Set the new password").click()

    alert = page.get_by_role("alert")
    await alert.filter(has_text="The reset link is invalid, used or expired").wait_for()
    assert await page.locator("#reset-form").is_hidden()


@requires_chromium
@backend_independent
async def test_a_person_confirms_the_address_by_pressing_the_button(
    browser: Browser, live_server: str, smtp_server: Mailbox
) -> None:
    async with httpx.AsyncClient(base_url=live_server) as http:
        registered = await http.post(
            "/auth/register",
            json={"email": "confirm@example.com", "username": "confirm", "password": PASSWORD},
        )
        auth = {"Authorization": f"Bearer {registered.json()['access_token']}"}
        link = (await smtp_server.one("confirm@example.com", VERIFY_SUBJECT)).link
        page, watch = await _page(browser, live_server)
        await page.goto(link)
        await page.get_by_role("button", name="Confirm my address").wait_for()
        # Opening the page changed nothing.
        assert (await http.get("/users/me", headers=auth)).json()["email_verified"] is False

        await page.get_by_role("button", name="Confirm my address").click()

        await (
            page.get_by_role("status")
            .filter(has_text="confirm@example.com is confirmed")
            .wait_for()
        )
        assert (await http.get("/users/me", headers=auth)).json()["email_verified"] is True
    assert watch.foreign == []
    assert watch.errors == []
