"""Safe defaults on every response and every request body (pure ASGI middlewares).

- `SecurityHeadersMiddleware`: `nosniff`, no referrer, no framing, a `Content-Security-Policy`
  that allows nothing for the JSON API and what the bundled docs pages need for them,
  `Cache-Control: no-store` unless a response says otherwise (tokens and account data must
  not be cached, RFC 6749 §5.1), and no `Server` header (OWASP ASVS 5.0 §13.4.6).
- `BodyLimitMiddleware`: bodies over `MAX_BODY_BYTES` are refused with 413 before they are
  read whole — at once from `Content-Length`, else (chunked transfer) as soon as the bytes
  received pass the limit (ASVS 5.0 §4.2.x; RFC 9110 §15.5.14).
"""

from __future__ import annotations

import re

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.middleware.exception import error_response

API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
# Swagger UI and ReDoc are served from this origin; both start from an inline script,
# ReDoc renders in a blob: worker and both use data: images.
DOCS_CSP = (
    "default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
# The hosted pages (app/pages): their own script and style files, API calls to this origin,
# nothing inline and nothing from elsewhere; forms post to this origin only, unless a page
# allows an application's origin for the redirect its form leads to (allow_form_action).
PAGES_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
PAGE_PATHS = frozenset(
    {
        "/reset-password",
        "/verify-email",
        "/login",
        "/register",
        "/forgot-password",
        "/logout",
        "/account",
        "/consent",
        # The OpenID provider's pages: its error page, and the end session's confirmation.
        "/oauth2/authorize",
        "/oauth2/authorize/resume",
        "/oauth2/logout",
    }
)
# Pages below these too: the account page's forms, other providers' callbacks.
PAGE_PREFIXES = ("/account/", "/login/")
_FORM_ACTION_KEY = "form_action_origins"
# An origin as CSP writes it (scheme://host[:port]), or a native app's private-use scheme
# (`com.example.app:`, RFC 8252 §7.1): nothing that could end the directive.
_ORIGIN = re.compile(
    r"^(?:[a-z][a-z0-9+.-]*://[A-Za-z0-9.\-\[\]:]+|[a-z][a-z0-9-]*(?:\.[a-z0-9-]+)+:)$"
)


def is_page(path: str) -> bool:
    return path in PAGE_PATHS or path.startswith(PAGE_PREFIXES)


def allow_form_action(scope: Scope, *origins: str) -> None:
    """Let this response's page send a form (and the redirects after it) to `origins`
    besides its own: for the page that sends the browser on to an application's validated
    redirect URI (Chrome checks `form-action` on every redirect after a form POST). Only
    exact origins (`https://app.example:8443`) are taken; anything else raises ValueError."""
    allowed: list[str] = scope.setdefault("state", {}).setdefault(_FORM_ACTION_KEY, [])
    for origin in origins:
        if not _ORIGIN.match(origin):
            raise ValueError(f"not an origin: {origin!r}")
        if origin not in allowed:
            allowed.append(origin)


def pages_csp(scope: Scope) -> str:
    extra = scope.get("state", {}).get(_FORM_ACTION_KEY) or []
    return PAGES_CSP if not extra else f"{PAGES_CSP} {' '.join(extra)}"


DOCS_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc"})
STATIC_PREFIX = "/static-offline-docs/"

_BASE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        static = path.startswith(STATIC_PREFIX)
        csp = DOCS_CSP if path in DOCS_PATHS or static else API_CSP
        page = is_page(path)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in _BASE_HEADERS.items():
                    headers[name] = value
                # A page's policy is decided when it is sent: the page may have allowed an
                # application's origin meanwhile.
                headers["Content-Security-Policy"] = pages_csp(scope) if page else csp
                if not static and "cache-control" not in headers:
                    headers["Cache-Control"] = "no-store"
                if "server" in headers:
                    del headers["server"]
            await send(message)

        await self.app(scope, receive, send_with_headers)


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        # Read the body here, never more than the limit plus one chunk, and hand it on in one
        # message: the limit is small, so holding it costs at most MAX_BODY_BYTES.
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away before sending its body
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(
            413,
            detail=f"Request body larger than {self.max_bytes} bytes",
            error_code="PAYLOAD_TOO_LARGE",
            headers={"Connection": "close"},
        )
        await response(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
