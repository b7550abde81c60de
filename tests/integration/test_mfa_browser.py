"""The enrolment's `qr_svg` in a real headless Chromium: inlined into a page, it renders as
the QR code of the `otpauth_uri`, module by module, with its quiet zone on a dark page."""

from __future__ import annotations

import io

import httpx
import segno
from PIL import Image
from playwright.async_api import Browser

from tests.support import UserFactory
from tests.support.backends import backend_independent
from tests.support.browsers import requires_chromium

SCALE, BORDER = 4, 4  # pixels per module, modules of quiet zone (app.core.totp.qr_svg)

pytestmark = [requires_chromium, backend_independent]


async def test_the_qr_svg_renders_as_the_qr_code_of_the_otpauth_uri(
    browser: Browser, client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    user = await user_factory()
    enrolment = (await client.post("/users/me/mfa/totp", headers=user.auth)).json()
    page = await browser.new_page(viewport={"width": 400, "height": 400}, device_scale_factor=1)
    # Inlined as a product's page would, on a dark background, scripts off by the CSP.
    await page.set_content(
        "<!doctype html><html><head><meta http-equiv='Content-Security-Policy' "
        "content=\"default-src 'none'; style-src 'unsafe-inline'\"></head>"
        f"<body style='margin:0;background:#202020'>{enrolment['qr_svg']}</body></html>"
    )
    png = await page.locator("svg").screenshot(timeout=30_000)
    image = Image.open(io.BytesIO(png)).convert("L")

    def luminance(x: int, y: int) -> int:
        value = image.getpixel((x, y))
        assert isinstance(value, int)  # one channel ("L")
        return value

    matrix = segno.make(enrolment["otpauth_uri"], error="m").matrix
    size = (len(matrix) + 2 * BORDER) * SCALE
    assert image.size == (size, size)

    def dark(row: int, column: int) -> bool:
        x = (BORDER + column) * SCALE + SCALE // 2
        y = (BORDER + row) * SCALE + SCALE // 2
        return luminance(x, y) < 128

    assert [[dark(r, c) for c in range(len(matrix))] for r in range(len(matrix))] == [
        [bool(module) for module in row] for row in matrix
    ]
    # The quiet zone is white on the dark page: authenticator cameras can find the code.
    assert all(luminance(x, 1) > 200 for x in range(size))
