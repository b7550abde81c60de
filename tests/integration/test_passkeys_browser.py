"""Passkeys on the hosted pages in Debian's Chromium, with Chromium's own virtual
authenticator (DevTools `WebAuthn` domain: a platform authenticator with resident keys and
user verification) standing in for the device: the pages' script, the browser's WebAuthn
JSON helpers and the service meet as they do for a person.

The service is reached as `http://localhost:<port>` and PUBLIC_URL says so: browsers
refuse WebAuthn on an IP address, and the RP ID is PUBLIC_URL's host.
"""

from __future__ import annotations

import socket
from typing import Any

import pyotp
import pytest
from playwright.async_api import Browser, CDPSession, Page

from tests.integration.test_pages_browser import Watch
from tests.support import PASSWORD
from tests.support.backends import backend_independent
from tests.support.browsers import TIMEOUT_MS

# What a browser adds is the ceremony between page, browser and authenticator; the
# database beneath it is proven on both backends by the in-process passkey tests.
pytestmark = backend_independent


@pytest.fixture
def settings_overrides(live_socket: socket.socket) -> dict[str, Any]:
    return {"public_url": f"http://localhost:{live_socket.getsockname()[1]}"}


# A browser that offers no passkeys in autofill: the sign-in page then waits for the button.
_NO_AUTOFILL = "PublicKeyCredential.isConditionalMediationAvailable = async () => false;"


def _origin(live_server: str) -> str:
    return live_server.replace("127.0.0.1", "localhost")


async def _virtual_authenticator(page: Page) -> tuple[CDPSession, str]:
    cdp = await page.context.new_cdp_session(page)
    await cdp.send("WebAuthn.enable", {"enableUI": False})
    added = await cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )
    return cdp, str(added["authenticatorId"])


async def _register(page: Page, origin: str, name: str) -> None:
    await page.goto(f"{origin}/register")
    await page.get_by_label("Email").fill(f"{name}@example.com")
    await page.get_by_label("Username").fill(name)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Create account").click()
    await page.wait_for_url(f"{origin}/account")


async def _sign_out(page: Page) -> None:
    await page.get_by_role("link", name="Sign out").click()
    await page.get_by_role("button", name="Sign out").click()
    await page.get_by_role("heading", name="You are signed out").wait_for()


async def test_a_person_adds_a_passkey_and_signs_in_with_it_alone_and_as_second_factor(
    browser: Browser,
    live_server: str,
) -> None:
    origin = _origin(live_server)
    context = await browser.new_context()
    page = await context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    watch = Watch(page, origin)
    cdp, authenticator = await _virtual_authenticator(page)

    # Register, then add a passkey from the account page.
    await _register(page, origin, "keyholder")
    passkeys = page.get_by_role("region", name="Passkeys")
    await passkeys.get_by_label("Name of the new passkey (optional)").fill("This laptop")
    await passkeys.get_by_role("button", name="Add a passkey").click()
    await page.get_by_text("The passkey was added").wait_for()
    assert await passkeys.get_by_label("Name").first.input_value() == "This laptop"
    held = await cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})
    assert len(held["credentials"]) == 1
    assert held["credentials"][0]["isResidentCredential"] is True

    # Sign out; the sign-in page offers the passkey in the identifier field's autofill
    # (conditional mediation): the virtual authenticator picks it, as a person would from
    # the list, and that alone signs in (no identifier, no password).
    await _sign_out(page)
    await page.goto(f"{origin}/login")
    await page.wait_for_url(f"{origin}/account")
    assert "Signed in as keyholder" in await page.locator("header").inner_text()

    # In a browser without autofill for passkeys, the button does it.
    await context.add_init_script(_NO_AUTOFILL)
    await _sign_out(page)
    await page.goto(f"{origin}/login")
    await page.get_by_role("button", name="Sign in with a passkey").click()
    await page.wait_for_url(f"{origin}/account")

    # Turn two-factor on, sign out, and use the passkey as the second step.
    await page.get_by_role("button", name="Turn on").click()
    secret = (await page.locator("#totp-secret").inner_text()).strip()
    await page.get_by_label("Code from your authenticator app").fill(pyotp.TOTP(secret).now())
    await page.get_by_role("button", name="Verify").click()
    await page.get_by_text("Two-factor authentication is on.").first.wait_for()
    await _sign_out(page)
    await page.goto(f"{origin}/login")
    await page.get_by_label("Email or username").fill("keyholder")
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in", exact=True).click()
    await page.locator('input[autocomplete="one-time-code"]').wait_for()
    await page.get_by_role("button", name="Sign in with a passkey").click()
    await page.wait_for_url(f"{origin}/account")

    # Rename it, then remove it (the account keeps its password: not the last way in).
    passkeys = page.get_by_role("region", name="Passkeys")
    await passkeys.get_by_label("Name").first.fill("Old laptop")
    await passkeys.get_by_role("button", name="Rename").click()
    await page.get_by_text("The passkey was renamed").wait_for()
    await passkeys.get_by_role("button", name="Remove passkey Old laptop").click()
    await page.get_by_text("The passkey was removed").wait_for()
    assert await passkeys.get_by_role("button", name="Remove").count() == 0
    watch.assert_clean()
    await context.close()


async def test_a_passkey_the_service_does_not_know_is_refused_on_the_page(
    browser: Browser,
    live_server: str,
) -> None:
    """A passkey removed from the account but still on the device: the page says so."""
    origin = _origin(live_server)
    context = await browser.new_context()
    page = await context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    await context.add_init_script(_NO_AUTOFILL)
    await _virtual_authenticator(page)
    await _register(page, origin, "forgetful")
    passkeys = page.get_by_role("region", name="Passkeys")
    await passkeys.get_by_role("button", name="Add a passkey").click()
    await page.get_by_text("The passkey was added").wait_for()
    await passkeys.get_by_role("button", name="Remove").click()
    await page.get_by_text("The passkey was removed").wait_for()
    await _sign_out(page)

    await page.goto(f"{origin}/login")
    await page.get_by_role("button", name="Sign in with a passkey").click()

    alert = page.get_by_role("alert")
    await alert.wait_for()
    assert "could not sign you in" in await alert.inner_text()
    await context.close()
