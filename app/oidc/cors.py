"""CORS for the endpoints a browser application calls itself (token, userinfo, revocation,
JWKS, discovery): from the origins of the public clients' registered redirect URIs, read
from the database on each request (a client registered on one worker is allowed on every
worker at once), and from CORS_ORIGINS. No credentials (cookies) are ever allowed: these
endpoints take tokens, not the browser session.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.errors import ForbiddenException
from app.database import Database
from app.middleware.exception import error_response
from app.oauth2.clients import ClientService

APPLICATION_PATHS = frozenset(
    {
        "/auth/token",
        "/auth/revoke",
        "/oauth2/userinfo",
        "/.well-known/jwks.json",
        "/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server",
    }
)
_ALLOW_METHODS = "GET, POST"
_ALLOW_HEADERS = "Authorization, Content-Type, X-Request-ID"
_EXPOSE_HEADERS = "X-Request-ID, Retry-After, WWW-Authenticate"
_MAX_AGE = "600"


class ApplicationCORSMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        database: Callable[[], Database],
        configured: Collection[str],
    ) -> None:
        self.app = app
        self.database = database
        self.configured = frozenset(configured)

    async def _allowed(self, origin: str) -> bool:
        if origin in self.configured:
            return True
        async with self.database().session() as session:
            return origin in await ClientService(session).public_origins()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in APPLICATION_PATHS:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        if origin is None:
            await self.app(scope, receive, send)
            return
        preflight = scope["method"] == "OPTIONS" and "access-control-request-method" in headers
        allowed = await self._allowed(origin)
        if preflight:
            response: Response
            if not allowed:
                response = error_response(
                    ForbiddenException.status_code,
                    detail="CORS request refused: origin",
                    error_code=ForbiddenException.error_code,
                    headers={"Vary": "Origin"},
                )
            else:
                response = Response(
                    status_code=204,
                    headers={
                        "Access-Control-Allow-Origin": origin,
                        "Access-Control-Allow-Methods": _ALLOW_METHODS,
                        "Access-Control-Allow-Headers": _ALLOW_HEADERS,
                        "Access-Control-Max-Age": _MAX_AGE,
                        "Vary": "Origin",
                    },
                )
            await response(scope, receive, send)
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                out = MutableHeaders(scope=message)
                out.add_vary_header("Origin")
                if allowed:
                    out["Access-Control-Allow-Origin"] = origin
                    out["Access-Control-Expose-Headers"] = _EXPOSE_HEADERS
            await send(message)

        await self.app(scope, receive, send_with_cors)
