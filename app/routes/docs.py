"""The ReDoc page, served with its assets from the service, making no request elsewhere.

ReDoc's bundle renders a Redocly logo from `https://cdn.redoc.ly/redoc/logo-mini.svg`
unconditionally (no option or theme setting turns it off, and CSS cannot stop an `<img>`
from loading). The page's Content-Security-Policy would block it, but the browser still
attempts it on every view, and reports the failure. So the page loads a copy of the
bundle with that one URL replaced by an empty `data:` image: the component's `onError`
then hides the logo and the page makes no request to another host.
"""

from __future__ import annotations

import asyncio
from functools import lru_cache
from hashlib import sha256
from pathlib import Path

import fastapi_offline
from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html
from fastapi.responses import HTMLResponse, Response

# Where FastAPIOffline mounts the assets it ships (its default static_url).
STATIC_URL = "/static-offline-docs"
REDOC_BUNDLE_PATH = "/docs/redoc.standalone.js"
REDOC_CSP = "img-src 'self' data:; font-src 'self' data:; connect-src 'self'"
REDOC_LOGO_URL = b'"https://cdn.redoc.ly/redoc/logo-mini.svg"'
NO_IMAGE = b'"data:,"'

router = APIRouter(include_in_schema=False)


@lru_cache(maxsize=1)
def redoc_bundle() -> tuple[bytes, str]:
    """The bundle without its third-party logo, and its ETag; read once per process.

    Raises RuntimeError if the bundle no longer holds the logo's URL (an upgrade changed
    it): better a failed page than one that quietly calls out again.
    """
    original = (
        Path(fastapi_offline.__file__).parent / "static" / "redoc.standalone.js"
    ).read_bytes()
    if original.count(REDOC_LOGO_URL) != 1:
        raise RuntimeError("the ReDoc bundle's logo URL changed; update app/routes/docs.py")
    bundle = original.replace(REDOC_LOGO_URL, NO_IMAGE)
    return bundle, f'"{sha256(bundle).hexdigest()[:32]}"'


@router.get(REDOC_BUNDLE_PATH)
async def redoc_js(request: Request) -> Response:
    bundle, etag = await asyncio.to_thread(redoc_bundle)  # a 1 MB read, once per process
    headers = {"ETag": etag, "Cache-Control": "public, max-age=86400"}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(bundle, media_type="text/javascript; charset=utf-8", headers=headers)


@router.get("/redoc")
async def redoc(request: Request) -> HTMLResponse:
    root = request.scope.get("root_path", "")
    app = request.app
    page = get_redoc_html(
        openapi_url=f"{root}{app.openapi_url}",
        title=f"{app.title} - ReDoc",
        redoc_js_url=f"{root}{REDOC_BUNDLE_PATH}",
        redoc_favicon_url=f"{root}{STATIC_URL}/favicon.png",
        with_google_fonts=False,
    )
    page.headers["Content-Security-Policy"] = REDOC_CSP
    return page
