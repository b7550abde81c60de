"""The ReDoc page, served with its assets from the service and kept from reaching out.

ReDoc's bundle renders a Redocly logo from cdn.redoc.ly unconditionally (no option turns
it off); offline that is a failed request on every page view, online a third-party call.
The page's Content-Security-Policy keeps images, fonts and fetches on this origin, so the
browser never makes the request (the link text stays).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html
from fastapi.responses import HTMLResponse

# Where FastAPIOffline mounts the assets it ships (its default static_url).
STATIC_URL = "/static-offline-docs"
REDOC_CSP = "img-src 'self' data:; font-src 'self' data:; connect-src 'self'"

router = APIRouter(include_in_schema=False)


@router.get("/redoc")
async def redoc(request: Request) -> HTMLResponse:
    root = request.scope.get("root_path", "")
    app = request.app
    page = get_redoc_html(
        openapi_url=f"{root}{app.openapi_url}",
        title=f"{app.title} - ReDoc",
        redoc_js_url=f"{root}{STATIC_URL}/redoc.standalone.js",
        redoc_favicon_url=f"{root}{STATIC_URL}/favicon.png",
        with_google_fonts=False,
    )
    page.headers["Content-Security-Policy"] = REDOC_CSP
    return page
