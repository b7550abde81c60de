"""oidc-client-ts in Debian's Chromium: a public client served from another origin (a
static server on another loopback port) signs a person in through authsvc: the hosted
sign-in page, the consent page ("Allow"), the code exchange made by the page's script
(CORS on discovery, token and userinfo), userinfo. The page's files are in
tests/interop/oidc-client-ts/app; the library's browser bundle comes from its lock."""

from __future__ import annotations

import functools
import json
import shutil
import socket
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser

from tests.support import PASSWORD, CliInvoker
from tests.support.backends import backend_independent
from tests.support.browsers import requires_chromium

# What a browser adds is the protocol between an application's page and the service;
# the database beneath it is proven on both backends by the in-process OIDC tests.
pytestmark = [requires_chromium, backend_independent]

INTEROP = Path(__file__).resolve().parents[1] / "interop" / "oidc-client-ts"
BUNDLE = INTEROP / "node_modules" / "oidc-client-ts" / "dist" / "browser" / "oidc-client-ts.min.js"


@pytest.fixture
def settings_overrides(live_socket: socket.socket) -> dict[str, Any]:
    # authsvc is "localhost", the application "127.0.0.1": two sites, not just two origins.
    return {"public_url": f"http://localhost:{live_socket.getsockname()[1]}"}


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def app_site(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A static web server for the application, on its own loopback port."""
    root = tmp_path / "site"
    shutil.copytree(INTEROP / "app", root)
    shutil.copy(BUNDLE, root / "oidc-client-ts.min.js")
    (root / "favicon.ico").write_bytes(b"")  # what the browser asks for on its own
    server = ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(root))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()


async def test_a_browser_application_on_another_origin_signs_in_with_oidc_client_ts(
    live_server: str,
    app_site: tuple[str, Path],
    browser: Browser,
    run_cli: CliInvoker,
) -> None:
    site, root = app_site
    authority = live_server.replace("127.0.0.1", "localhost")
    async with httpx.AsyncClient(base_url=live_server) as http:
        registered = await http.post(
            "/auth/register",
            json={"email": "dana@example.com", "username": "dana", "password": PASSWORD},
        )
        assert registered.status_code == 201, registered.text
    result = await run_cli(
        "clients", "create", "Browser App", "--public", "--json",
        "--redirect-uri", f"{site}/callback.html",
        "--post-logout-redirect-uri", f"{site}/index.html",
    )  # fmt: skip
    created = json.loads(result.stdout)
    config = {
        "authority": authority,
        "clientId": created["client_id"],
        "userinfo": f"{authority}/oauth2/userinfo",
    }
    (root / "config.js").write_text(f"window.AUTHSVC = {json.dumps(config)};\n")

    page = await browser.new_page()
    problems: list[str] = []
    page.on(
        "console",
        lambda message: (
            problems.append(f"{message.text} {message.location}")
            if message.type == "error"
            else None
        ),
    )
    await page.goto(f"{site}/index.html")
    await page.get_by_role("button", name="Sign in with authsvc").click()
    await page.wait_for_url(f"{authority}/login?**")
    await page.get_by_label("Email or username").fill("dana")
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in", exact=True).click()
    await page.wait_for_url(f"{authority}/consent?**")
    assert await page.get_by_text("Browser App").count() >= 1
    await page.get_by_role("button", name="Allow").click()
    await page.wait_for_url(f"{site}/callback.html**")
    await page.wait_for_function("document.body.dataset.result !== undefined", timeout=30_000)
    seen = json.loads(await page.evaluate("document.body.dataset.result"))
    assert seen["ok"] is True, seen
    assert seen["email"] == "dana@example.com"
    assert seen["preferred_username"] == "dana"
    assert seen["userinfo_sub"] == seen["sub"]
    assert seen["scope"] == "openid profile email"
    assert seen["has_refresh_token"] is True
    # No CSP refusal (form-action on the redirect to the application) and no CORS error.
    assert problems == []
