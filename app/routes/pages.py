"""The two pages that mailed links open: choose a new password, confirm an address.

Plain HTML from this service with its own script and style files and nothing else, under
a CSP that allows only this origin's script (no inline code). A GET only shows the page:
mail scanners follow links, so the token is used by the person's button press, which
calls the JSON API. Like /docs, the pages are not part of the JSON API's document.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response

from app.core.errors import NotFoundException

router = APIRouter(include_in_schema=False)

_ASSETS = {
    "account.css": "text/css; charset=utf-8",
    "common.js": "text/javascript; charset=utf-8",
    "passkeys.js": "text/javascript; charset=utf-8",
    "reset-password.js": "text/javascript; charset=utf-8",
    "verify-email.js": "text/javascript; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}


@cache
def _read(name: str) -> bytes:
    return files("app.pages").joinpath(name).read_bytes()


def _page(name: str) -> HTMLResponse:
    # The page itself holds nothing secret, but its URL does: keep it out of caches.
    return HTMLResponse(_read(name), headers={"Cache-Control": "no-store"})


@router.get("/reset-password")
async def reset_password_page() -> HTMLResponse:
    """The form a reset link opens: the new password twice."""
    return _page("reset-password.html")


@router.get("/verify-email")
async def verify_email_page() -> HTMLResponse:
    """The page a verification link opens: one button."""
    return _page("verify-email.html")


@router.get("/static/account/{name}")
async def page_asset(name: str) -> Response:
    """A script or style sheet of the pages; nothing else is served from here."""
    media_type = _ASSETS.get(name)
    if media_type is None:
        raise NotFoundException()
    return Response(_read(name), media_type=media_type, headers={"Cache-Control": "no-cache"})
