"""The one place where exceptions become HTTP responses, always in the contract's error body."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Match
from starlette.types import Scope

from app.core.errors import AppException, OAuth2Exception
from app.models.schemas import format_timestamp
from app.utils.logger import get_logger
from app.utils.request_context import current_request_id

log = get_logger(__name__)


class ErrorJSONResponse(JSONResponse):
    """JSON rendered by orjson (FastAPI deprecated its own ErrorJSONResponse)."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def error_body(
    *,
    detail: str,
    error_code: str,
    request_id: str,
    errors: list[dict[str, Any]] | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The contract's error body, as a plain dict ready to serialise (`now`: for examples)."""
    body: dict[str, Any] = {
        "detail": detail,
        "error_code": error_code,
        "timestamp": format_timestamp(now or datetime.now(UTC)),
        "request_id": request_id,
    }
    if errors:
        body["errors"] = errors
    return body


# RFC 6749 §5.2: error_description is limited to %x20-21 / %x23-5B / %x5D-7E.
_DESCRIPTION_CHARS = frozenset(chr(c) for c in range(0x20, 0x7F)) - {'"', "\\"}


def oauth2_error_body(*, error: str, description: str, request_id: str) -> dict[str, Any]:
    """The token endpoint's error body (RFC 6749 §5.2) with the contract's request id."""
    clean = "".join(c if c in _DESCRIPTION_CHARS else "?" for c in description)
    return {"error": error, "error_description": clean, "request_id": request_id}


_CODES_BY_STATUS = {
    400: ("VALIDATION_ERROR", "Bad request"),
    401: ("NOT_AUTHENTICATED", "Not authenticated"),
    403: ("FORBIDDEN", "Forbidden"),
    404: ("NOT_FOUND", "Not found"),
    405: ("METHOD_NOT_ALLOWED", "Method not allowed"),
    409: ("CONFLICT", "Conflict"),
    413: ("PAYLOAD_TOO_LARGE", "Request body too large"),
    415: ("UNSUPPORTED_MEDIA_TYPE", "Unsupported media type"),
    429: ("RATE_LIMITED", "Too many requests"),
    503: ("SERVICE_UNAVAILABLE", "Service temporarily unavailable"),
}


_FASTAPI_PARSE_ERROR = "There was an error parsing the body"
_UNPARSABLE_BODY = "Request body could not be parsed"


def error_response(
    status_code: int,
    *,
    detail: str,
    error_code: str,
    headers: Mapping[str, str] | None = None,
    errors: Sequence[Mapping[str, Any]] | None = None,
) -> ErrorJSONResponse:
    """A response carrying the contract's error body with the current request id."""
    body = error_body(
        detail=detail,
        error_code=error_code,
        request_id=current_request_id(),
        errors=[dict(e) for e in errors] if errors else None,
    )
    return ErrorJSONResponse(body, status_code=status_code, headers=dict(headers or {}))


def internal_error_response() -> ErrorJSONResponse:
    """The generic 500: nothing about the failure reaches the client."""
    return error_response(500, detail="Internal server error", error_code="INTERNAL_ERROR")


def _field_name(error: Mapping[str, Any]) -> str:
    if error.get("type") == "json_invalid":
        return "body"  # its loc is a character offset, not a field
    parts = [str(p) for p in error.get("loc", ())]
    if parts and parts[0] in {"body", "query", "path", "header", "cookie"}:
        parts = parts[1:]
    return ".".join(parts) or "body"


def _message(error: Mapping[str, Any]) -> str:
    kind = error.get("type", "")
    if kind == "json_invalid":
        return "Request body is not valid JSON"
    if kind == "extra_forbidden":
        return "Unknown field"
    if kind == "missing":
        return "Field required"
    context = error.get("ctx") or {}
    if kind in {"string_too_long", "too_long"} and "max_length" in context:
        return f"Must be at most {context['max_length']} characters"
    if kind in {"string_too_short", "too_short"} and "min_length" in context:
        return f"Must be at least {context['min_length']} characters"
    if kind == "string_pattern_mismatch":
        return "Contains characters that are not allowed"
    message = str(error.get("msg", "Invalid value"))
    return message.removeprefix("Value error, ")


def oauth2_error_response(exc: OAuth2Exception) -> ErrorJSONResponse:
    """RFC 6749 §5.2: the token endpoint's documented exception to the contract's body."""
    body = oauth2_error_body(
        error=exc.oauth2_error, description=exc.detail, request_id=current_request_id()
    )
    body.update(exc.extra_fields)
    # §5.1 forbids caching token responses; an error answer to the same request is no different.
    headers = {**exc.headers, "Cache-Control": "no-store", "Pragma": "no-cache"}
    return ErrorJSONResponse(body, status_code=exc.status_code, headers=headers)


async def _app_exception(_: Request, exc: Exception) -> ErrorJSONResponse:
    assert isinstance(exc, AppException)
    if isinstance(exc, OAuth2Exception):
        return oauth2_error_response(exc)
    if exc.status_code >= 500:
        log.warning("request failed", error_code=exc.error_code, status_code=exc.status_code)
    return error_response(
        exc.status_code,
        detail=exc.detail,
        error_code=exc.error_code,
        headers=exc.headers,
        errors=exc.errors,
    )


async def _validation_error(_: Request, exc: Exception) -> ErrorJSONResponse:
    assert isinstance(exc, RequestValidationError)
    raw = list(exc.errors())
    errors = [{"field": _field_name(e), "message": _message(e)} for e in raw]
    if any(e.get("type") == "json_invalid" for e in raw):
        detail = "Request body is not valid JSON"
    elif errors:
        detail = f"{errors[0]['field']}: {errors[0]['message']}"
    else:
        detail = "Request validation failed"
    return error_response(400, detail=detail, error_code="VALIDATION_ERROR", errors=errors)


# RFC 9110's order of the methods it defines, PATCH (RFC 5789) after PUT.
_METHOD_ORDER = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE")


def allowed_methods(routes: Sequence[BaseRoute], scope: Scope) -> list[str]:
    """Every method some route answers at the request's path, HEAD wherever GET is.

    A route answers one method or a few, and one path often has several routes
    (`GET /users/me`, `DELETE /users/me`); the router's 405 names only the first route's
    methods, while `Allow` must list all the resource's methods (RFC 9110 §10.2.1).
    """
    methods: set[str] = set()
    for route in iter_route_contexts(routes):
        if route.methods and route.matches(scope)[0] is not Match.NONE:
            methods |= route.methods
    if "GET" in methods:
        methods.add("HEAD")  # app.middleware.head answers HEAD as GET on every route
    rank = {method: index for index, method in enumerate(_METHOD_ORDER)}
    return sorted(methods, key=lambda m: (rank.get(m, len(rank)), m))


async def _http_exception(request: Request, exc: Exception) -> ErrorJSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        methods = allowed_methods(request.app.routes, request.scope)
        if methods:
            headers["Allow"] = ", ".join(methods)
    code, default_detail = _CODES_BY_STATUS.get(exc.status_code, ("HTTP_ERROR", "Error"))
    if exc.status_code >= 500:
        code, default_detail = "INTERNAL_ERROR", "Internal server error"
    # Starlette's own details ("Not Found") are fine; anything else stays generic.
    detail = exc.detail if isinstance(exc.detail, str) and exc.status_code < 500 else default_detail
    errors = None
    if code == "VALIDATION_ERROR":
        # FastAPI's 400 for a body its JSON parser gave up on (nested too deep for the
        # parser's recursion limit): a validation error like any other, with its list.
        detail = _UNPARSABLE_BODY if detail == _FASTAPI_PARSE_ERROR else detail
        errors = [{"field": "body", "message": detail}]
    return error_response(
        exc.status_code, detail=detail, error_code=code, headers=headers, errors=errors
    )


async def _unexpected(_: Request, exc: Exception) -> ErrorJSONResponse:
    log.error("unhandled exception", error_type=type(exc).__name__, exc_info=exc)
    return internal_error_response()


def register_exception_handlers(app: FastAPI) -> None:
    """Install the handlers that give every failure the contract's error body."""
    app.add_exception_handler(AppException, _app_exception)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_exception)
    app.add_exception_handler(Exception, _unexpected)
