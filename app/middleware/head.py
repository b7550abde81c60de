"""`HEAD` answered as `GET` without a body, on every route (RFC 9110 §9.3.2).

FastAPI routes answer only the methods they declare, so `HEAD /users/me` would be a 405.
Here a HEAD request runs as GET through the whole application (same checks, status and
headers, `Content-Length` included, §8.6) and the body is dropped on the way out; a route
without GET still answers 405, whose `Allow` (built by the exception handler,
`app.middleware.exception.allowed_methods`) names HEAD wherever it names GET. Declaring
HEAD per route instead would put a HEAD operation beside each GET in the OpenAPI document.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class HeadAsGetMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        head = scope["method"] == "HEAD"
        inner = {**scope, "method": "GET"} if head else scope

        async def send_as_head(message: Message) -> None:
            if head and message["type"] == "http.response.body" and message.get("body"):
                message = {**message, "body": b""}
            await send(message)

        try:
            await self.app(inner, receive, send_as_head)
        finally:
            if head:
                # What routing found (route, endpoint, state) is read by the request log.
                scope.update({k: v for k, v in inner.items() if k != "method"})
