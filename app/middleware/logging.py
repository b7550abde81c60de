"""Request tracing: a request id bound for the whole request, echoed, and one log line each.

A pure ASGI middleware (no BaseHTTPMiddleware): it wraps `send` to add the `X-Request-ID`
header and to learn the status, and it is the last line of defence for exceptions that
nothing else handled, so even a crash answers in the contract's body with the request id.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterable
from urllib.parse import parse_qsl, urlencode

import structlog
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.middleware.exception import internal_error_response
from app.utils.logger import REDACTED, get_logger
from app.utils.request_context import request_id_var

log = get_logger("app.request")

# A printable token of at most 128 characters (API.md); anything else is replaced.
_VALID_REQUEST_ID = re.compile(r"^[\x21-\x7e]{1,128}$")
_SENSITIVE_QUERY = re.compile(r"token|password|secret|key|code|auth", re.IGNORECASE)
DEFAULT_QUIET_PATHS = frozenset(
    {"/health", "/health/live", "/docs", "/redoc", "/openapi.json", "/metrics", "/favicon.ico"}
)
DEFAULT_QUIET_PREFIXES = ("/static/", "/docs/")


def sanitize_query(query_string: str) -> str:
    """The query string with the values of secret-looking parameters redacted."""
    if not query_string:
        return ""
    pairs = parse_qsl(query_string, keep_blank_values=True)
    cleaned = [(k, REDACTED if _SENSITIVE_QUERY.search(k) else v) for k, v in pairs]
    return urlencode(cleaned, safe="[]")


def client_ip(scope: Scope) -> str | None:
    client = scope.get("client")
    return client[0] if client else None


class RequestContextMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        quiet_paths: Iterable[str] = DEFAULT_QUIET_PATHS,
        quiet_prefixes: tuple[str, ...] = DEFAULT_QUIET_PREFIXES,
    ) -> None:
        self.app = app
        self.quiet_paths = frozenset(quiet_paths)
        self.quiet_prefixes = quiet_prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        request_id = self._request_id(scope)
        token = request_id_var.set(request_id)
        structlog.contextvars.bind_contextvars(
            request_id=request_id,
            method=scope["method"],
            endpoint=scope["path"],
            client_ip=client_ip(scope),
        )
        started = time.perf_counter()
        status_code = 500
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status_code, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status_code = message["status"]
                headers = MutableHeaders(scope=message)
                headers["X-Request-ID"] = request_id
            await send(message)

        try:
            try:
                await self.app(scope, receive, send_with_id)
            except Exception as error:
                log.error("unhandled exception", error_type=type(error).__name__, exc_info=error)
                if response_started:
                    raise
                await internal_error_response()(scope, receive, send_with_id)
            if not self._quiet(scope["path"]):
                self._log_request(scope, status_code, started)
        finally:
            structlog.contextvars.clear_contextvars()
            request_id_var.reset(token)

    def _request_id(self, scope: Scope) -> str:
        for name, value in scope.get("headers", ()):
            if name == b"x-request-id":
                candidate: str = value.decode("latin-1")
                if _VALID_REQUEST_ID.match(candidate):
                    return candidate
                break
        return str(uuid.uuid4())

    def _quiet(self, path: str) -> bool:
        return path in self.quiet_paths or path.startswith(self.quiet_prefixes)

    def _log_request(self, scope: Scope, status_code: int, started: float) -> None:
        duration_ms = round((time.perf_counter() - started) * 1000, 2)
        route = scope.get("route")
        fields = {
            "status_code": status_code,
            "duration_ms": duration_ms,
            "query": sanitize_query(scope.get("query_string", b"").decode("latin-1")),
            "route": getattr(route, "path", None),
        }
        user_id = scope.get("state", {}).get("user_id")
        if user_id is not None:
            fields["user_id"] = user_id
        level = log.error if status_code >= 500 else log.info
        level("request completed", **fields)
