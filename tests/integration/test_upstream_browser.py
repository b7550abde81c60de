"""Sign-in with another provider in a real headless Chromium: the button on the sign-in
page, oidc-provider's own login and consent pages on another site, and back, signed in;
then "Unlink" is offered on the account page. The pages' CSP lets their forms lead to the
provider (Chrome checks `form-action` on the redirect after a form)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, ConsoleMessage

from tests.support.backends import backend_independent
from tests.support.browsers import TIMEOUT_MS, requires_chromium
from tests.support.processes import ServerProcess
from tests.support.upstream import CLIENT_ID, CLIENT_SECRET, oidc_provider

# The browser is the shared fixture (tests/conftest.py); the provider is a process.
# What a browser adds is the person's way to the provider and back; the database
# beneath it is proven on both backends by the in-process upstream tests.
pytestmark = [pytest.mark.process, requires_chromium, backend_independent]


@pytest.fixture
def service_origin(live_socket: socket.socket) -> str:
    # `localhost` here, the provider on 127.0.0.1: two sites, as in production.
    return f"http://localhost:{live_socket.getsockname()[1]}"


@pytest.fixture
def provider(tmp_path: Path, service_origin: str) -> Iterator[ServerProcess]:
    accounts = {"pat": {"email": "pat@example.com", "email_verified": True, "name": "Pat"}}
    with oidc_provider(
        tmp_path, redirect_uris=[f"{service_origin}/login/local/callback"], accounts=accounts
    ) as server:
        yield server


@pytest.fixture
def settings_overrides(provider: ServerProcess, service_origin: str) -> dict[str, Any]:
    return {
        "public_url": service_origin,
        "upstream_providers": [
            {
                "name": "local",
                "display_name": "Local ID",
                "kind": "oidc",
                "issuer": provider.url,
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
            }
        ],
    }


async def test_a_person_continues_with_the_provider_and_is_signed_in(
    browser: Browser, live_server: str, service_origin: str
) -> None:
    page = await browser.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    violations: list[str] = []

    def console(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            violations.append(message.text)

    page.on("console", console)
    await page.goto(f"{service_origin}/login")
    await page.get_by_role("button", name="Continue with Local ID").click()
    # oidc-provider's own pages: its login form, then its consent.
    await page.locator('input[name="login"]').fill("pat")
    await page.locator('input[name="password"]').fill("anything")
    await page.locator('button[type="submit"]').click()
    await page.locator('button[type="submit"]').click()
    await page.wait_for_url(f"{service_origin}/account")
    main = await page.get_by_role("main").inner_text()
    assert "pat@example.com (verified)" in main
    assert await page.get_by_role("button", name="Unlink Local ID").count() == 1
    assert violations == []
