"""Request tracing: a request id bound for the whole request, echoed, and one log line each.

A pure ASGI middleware (no BaseHTTPMiddleware): it wraps `send` to add the `X-Request-ID`
header and to learn the status, and it is the last line of defence for exceptions that
nothing else handled, so even a crash answers in the contract's body with the request id.
It also feeds the per-route request metrics, by route template rather than raw path.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Iterable, Sequence

import structlog
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.metrics import UNMATCHED_ROUTE, Metrics
from app.middleware.exception import internal_error_response
from app.utils.client_ip import Network, resolve_client_ip
from app.utils.logger import get_logger
from app.utils.request_context import ClientInfo, clean_user_agent, client_var, request_id_var

log = get_logger("app.request")
# A path is the client's to choose: log enough of it to recognise, not kilobytes.
_MAX_LOGGED_PATH = 256

# A printable token of at most 128 characters (API.md); anything else is replaced.
_VALID_REQUEST_ID = re.compile(r"^[\x21-\x7e]{1,128}$")
DEFAULT_QUIET_PATHS = frozenset(
    {"/health", "/health/live", "/docs", "/redoc", "/openapi.json", "/metrics", "/favicon.ico"}
)
# "/static-offline-docs/" holds the Swagger UI and ReDoc assets (fastapi-offline).
DEFAULT_QUIET_PREFIXES = ("/static/", "/static-offline-docs/", "/docs/")
# Prometheus scrapes would dominate the request series; they are not counted.
UNMEASURED_PATHS = frozenset({"/metrics"})
# nginx's "client closed request": the client went away before an answer was sent.
CLIENT_CLOSED_REQUEST = 499


def client_ip(
    scope: Scope, trusted_proxies: Sequence[Network] = (), *, trust_unix_socket: bool = False
) -> str | None:
    """The request's client address as TRUSTED_PROXIES decides it (app.utils.client_ip)."""
    client = scope.get("client")
    forwarded_for = [
        value.decode("latin-1") for name, value in scope["headers"] if name == b"x-forwarded-for"
    ]
    return resolve_client_ip(
        client[0] if client else None,
        forwarded_for,
        trusted_proxies,
        trust_unix_socket=trust_unix_socket,
    )


def route_template(scope: Scope) -> str | None:
    """The matched route's path template (`/users/{id}`, never the raw path), if any."""
    route = scope.get("route")
    if route is not None:
        return str(route.path)
    if "app_root_path" in scope:  # a Mount (static assets) matched; it sets no "route"
        mount_path = str(scope["root_path"])[len(str(scope["app_root_path"])) :]
        return mount_path + "/{path:path}"
    return None


class RequestContextMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        quiet_paths: Iterable[str] = DEFAULT_QUIET_PATHS,
        quiet_prefixes: tuple[str, ...] = DEFAULT_QUIET_PREFIXES,
        metrics: Metrics | None = None,
        trusted_proxies: Sequence[Network] = (),
        trust_unix_socket: bool = False,
    ) -> None:
        self.app = app
        self.trusted_proxies = tuple(trusted_proxies)
        self.quiet_paths = frozenset(quiet_paths)
        self.quiet_prefixes = quiet_prefixes
        self.metrics = metrics
        self.trusted_proxies = tuple(trusted_proxies)
        self.trust_unix_socket = trust_unix_socket
        self._warned_no_address = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        request_id = self._request_id(scope)
        token = request_id_var.set(request_id)
        # Resolved once, here: the log line, the throttle, the session and the audit trail
        # all use this one.
        address = client_ip(scope, self.trusted_proxies, trust_unix_socket=self.trust_unix_socket)
        scope.setdefault("state", {})["client_ip"] = address
        client_token = client_var.set(self._client(scope, address))
        # Restored afterwards, including fields bound deeper in the request (`user_id`):
        # nothing of this request leaks into whatever runs next in the same context.
        outer_context = structlog.contextvars.get_contextvars()
        if address is None and not self.trust_unix_socket and not self._warned_no_address:
            self._warned_no_address = True
            log.warning(
                "request without a client address: per-client limits share one bucket;"
                " behind a proxy on a Unix socket, add `unix` to TRUSTED_PROXIES"
            )
        structlog.contextvars.bind_contextvars(
            request_id=request_id,
            method=scope["method"],
            endpoint=scope["path"][:_MAX_LOGGED_PATH],
            client_ip=address,
        )
        started = time.perf_counter()
        answered: float | None = None  # when the last byte was handed to the server
        status_code = 500
        response_started = False
        interrupted: str | None = None  # "cancelled" or "error": the answer was cut short

        async def send_with_id(message: Message) -> None:
            nonlocal status_code, response_started, answered
            if message["type"] == "http.response.start":
                response_started = True
                status_code = message["status"]
                headers = MutableHeaders(scope=message)
                headers["X-Request-ID"] = request_id
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                answered = time.perf_counter()

        try:
            await self.app(scope, receive, send_with_id)
        except asyncio.CancelledError:
            interrupted = "cancelled"
            if not response_started:
                status_code = CLIENT_CLOSED_REQUEST
            raise
        except Exception as error:
            log.error("unhandled exception", error_type=type(error).__name__, exc_info=error)
            if response_started:
                interrupted = "error"
                raise  # too late for an error body; the server closes the connection
            await internal_error_response()(scope, receive, send_with_id)
        finally:
            # Also after a crash or a cancellation: every request leaves its line and sample.
            # The duration is the client's wait, without background tasks run afterwards.
            try:
                seconds = (answered or time.perf_counter()) - started
                self._record(scope, status_code, seconds, interrupted)
            finally:
                structlog.contextvars.clear_contextvars()
                structlog.contextvars.bind_contextvars(**outer_context)
                request_id_var.reset(token)
                client_var.reset(client_token)

    def _request_id(self, scope: Scope) -> str:
        for name, value in scope.get("headers", ()):
            if name == b"x-request-id":
                candidate: str = value.decode("latin-1")
                if _VALID_REQUEST_ID.match(candidate):
                    return candidate
                break
        return str(uuid.uuid4())

    @staticmethod
    def _client(scope: Scope, address: str | None) -> ClientInfo:
        """The client as the audit trail records it: the address the request log shows."""
        user_agent: str | None = None
        for name, value in scope.get("headers", ()):
            if name == b"user-agent":
                user_agent = value.decode("latin-1")
        return ClientInfo(ip=address, user_agent=clean_user_agent(user_agent))

    def _quiet(self, path: str) -> bool:
        return path in self.quiet_paths or path.startswith(self.quiet_prefixes)

    def _record(
        self, scope: Scope, status_code: int, seconds: float, interrupted: str | None
    ) -> None:
        path: str = scope["path"]
        route = route_template(scope)
        if self.metrics is not None and path not in UNMEASURED_PATHS:
            self.metrics.observe_request(
                scope["method"], route or UNMATCHED_ROUTE, status_code, seconds
            )
        if self._quiet(path):
            return
        fields = {
            "status_code": status_code,
            "duration_ms": round(seconds * 1000, 2),
            # Raw here: the log pipeline redacts secret parameters (app.utils.logger).
            "query": scope.get("query_string", b"").decode("latin-1"),
            "route": route,
        }
        user_id = scope.get("state", {}).get("user_id")
        if user_id is not None:
            fields["user_id"] = user_id
        if interrupted is not None:
            fields["interrupted"] = interrupted
        if status_code >= 500 or interrupted == "error":
            log.error("request completed", **fields)
        elif interrupted == "cancelled":
            log.warning("request completed", **fields)
        else:
            log.info("request completed", **fields)
