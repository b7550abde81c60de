"""/docs and /redoc in a real headless Chromium (Debian's package, driven by Playwright).

No browser is ever downloaded: Playwright starts /usr/bin/chromium. The pages come from a
live uvicorn server, and every request the browser makes must stay on that server and
succeed, which is what "works offline" means.
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx
from playwright.async_api import Browser, Page, Request, Response

from tests.support import PASSWORD
from tests.support.backends import backend_independent
from tests.support.browsers import TIMEOUT_MS, requires_chromium

pytestmark = [requires_chromium, backend_independent]


class NetworkLog:
    """Every request a page makes, and those that failed, answered >= 400 or came from
    elsewhere. A request the page's Content-Security-Policy blocks never leaves the browser
    but is still an attempt: it is kept in `blocked` as well as in `requests`.
    """

    def __init__(self, page: Page, origin: str) -> None:
        self.origin = origin
        self.requests: list[str] = []
        self.problems: list[str] = []
        self.blocked: list[str] = []
        page.on("request", lambda request: self.requests.append(request.url))
        page.on("requestfailed", self._failed)
        page.on("response", self._response)

    def elsewhere(self) -> list[str]:
        """Requests to any other host (data: and blob: URLs are the page's own)."""
        return [
            url
            for url in self.requests
            if not url.startswith((self.origin + "/", "data:", "blob:"))
        ]

    def _failed(self, request: Request) -> None:
        if request.failure == "csp":
            self.blocked.append(request.url)
        else:
            self.problems.append(f"failed: {request.url} ({request.failure})")

    def _response(self, response: Response) -> None:
        if not response.url.startswith((self.origin + "/", "data:", "blob:")):
            self.problems.append(f"answered from elsewhere: {response.url}")
        elif response.status >= 400:
            self.problems.append(f"{response.status}: {response.url}")


async def test_swagger_ui_authorizes_with_password_and_calls_users_me(
    browser: Browser, live_server: str, tmp_path: Path
) -> None:
    async with httpx.AsyncClient(base_url=live_server) as http:
        registered = await http.post(
            "/auth/register",
            json={"email": "browser@example.com", "username": "browser", "password": PASSWORD},
        )
        assert registered.status_code == 201, registered.text

    page = await browser.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    network = NetworkLog(page, live_server)
    await page.goto(f"{live_server}/docs")
    me = page.locator("#operations-users-read_me")
    await me.wait_for()
    assert await page.locator(".opblock").count() >= 7

    await page.locator(".auth-wrapper button.authorize").click()
    oauth2 = page.locator(".auth-container").filter(has_text="OAuth2PasswordBearer")
    await oauth2.locator("#oauth_username").fill("browser@example.com")
    await oauth2.locator("#oauth_password").fill(PASSWORD)
    async with page.expect_response(f"{live_server}/auth/token") as token_answer:
        await oauth2.locator("button.authorize").click()
    assert (await token_answer.value).status == 200
    await oauth2.locator("button", has_text="Logout").wait_for()  # shown once authorised
    await page.locator(".dialog-ux button.close-modal").click()

    await me.locator(".opblock-summary").click()
    await me.locator("button.try-out__btn").click()
    async with page.expect_response(f"{live_server}/users/me") as me_answer:
        await me.locator("button.execute").click()
    assert (await me_answer.value).status == 200
    shown = me.locator(".live-responses-table .response-col_status")
    await shown.filter(has_text="200").wait_for()
    assert "browser@example.com" in await me.locator(".live-responses-table").inner_text()

    await page.screenshot(path=tmp_path / "swagger-ui.png", full_page=True)
    assert (tmp_path / "swagger-ui.png").stat().st_size > 0
    assert network.problems == []
    assert network.blocked == []
    assert network.requests
    assert network.elsewhere() == []


async def test_redoc_renders_every_operation_offline(
    browser: Browser, live_server: str, tmp_path: Path
) -> None:
    async with httpx.AsyncClient(base_url=live_server) as http:
        document = (await http.get("/openapi.json")).json()
    summaries = [op["summary"] for item in document["paths"].values() for op in item.values()]
    page = await browser.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    network = NetworkLog(page, live_server)
    await page.goto(f"{live_server}/redoc")
    await page.get_by_role("heading", name=document["info"]["title"]).first.wait_for()
    for summary in summaries:
        # ReDoc's operation headings carry an anchor link besides the summary.
        await page.get_by_role("heading", name=re.compile(re.escape(summary))).first.wait_for()
    await page.screenshot(path=tmp_path / "redoc.png")
    assert network.problems == []
    # The bundle's Redocly logo (cdn.redoc.ly) is not even attempted any more.
    assert network.blocked == []
    assert f"{live_server}/docs/redoc.standalone.js" in network.requests
    assert network.elsewhere() == []
