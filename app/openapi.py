"""The OpenAPI document: the service's real answers, generated from the error catalogue.

Routes list the exceptions they can raise (`error_responses(...)`); the document then shows,
per status, the error body schema and one example per error code, with the real code and
detail, and none of FastAPI's unused 422 answers. `authsvc openapi PATH` writes it to a file
(`make docs`: docs/openapi.json).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from pydantic import BaseModel

from app.core.errors import (
    AppException,
    CircuitBreakerOpenException,
    DatabaseException,
    InvalidTokenException,
    MfaRequiredException,
    NotAuthenticatedException,
    OAuth2Exception,
    PayloadTooLargeException,
    RateLimitedException,
    TokenExpiredException,
    UnsupportedMediaTypeException,
    UserAlreadyExistsException,
    UserInactiveException,
    ValidationException,
)
from app.middleware.exception import error_body, oauth2_error_body
from app.models.schemas import ErrorResponse, OAuth2ErrorResponse

Responses = dict[int | str, dict[str, Any]]

_REQUEST_ID = "550e8400-e29b-41d4-a716-446655440000"
_TIMESTAMP = datetime(2024, 1, 15, 10, 30, 45, 123_000, tzinfo=UTC)
_MFA_TOKEN = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"  # noqa: S105

# What a bare status number stands for, for routes that list statuses rather than errors.
_BY_STATUS: dict[int, tuple[type[AppException], ...]] = {
    400: (ValidationException,),
    401: (NotAuthenticatedException,),
    409: (UserAlreadyExistsException,),
    413: (PayloadTooLargeException,),
    415: (UnsupportedMediaTypeException,),
    429: (RateLimitedException,),
    503: (DatabaseException, CircuitBreakerOpenException),
}

# Failures any route with a request body can meet before it runs, and any route at all.
BODY_ERRORS: tuple[type[AppException], ...] = (
    ValidationException,
    PayloadTooLargeException,
    UnsupportedMediaTypeException,
)
DATABASE_ERRORS: tuple[type[AppException], ...] = (DatabaseException, CircuitBreakerOpenException)
# What every bearer route can answer before it runs.
BEARER_ERRORS: tuple[type[AppException], ...] = (
    NotAuthenticatedException,
    InvalidTokenException,
    TokenExpiredException,
    UserInactiveException,
    PayloadTooLargeException,
    *DATABASE_ERRORS,
)

_HEADERS: dict[int, dict[str, Any]] = {
    401: {
        "WWW-Authenticate": {
            "description": "The authentication challenge (RFC 9110 §11.6.1, RFC 6750 §3)",
            "schema": {"type": "string"},
        }
    },
    429: {
        "Retry-After": {
            "description": "Seconds to wait before retrying",
            "schema": {"type": "integer"},
        }
    },
    503: {
        "Retry-After": {
            "description": "Seconds to wait before retrying",
            "schema": {"type": "integer"},
        }
    },
}


def _example(error: type[AppException]) -> dict[str, Any]:
    if issubclass(error, OAuth2Exception):
        example = oauth2_error_body(
            error=error.oauth2_error, description=error.default_detail, request_id=_REQUEST_ID
        )
        if issubclass(error, MfaRequiredException):
            example["mfa_token"] = _MFA_TOKEN
        return example
    return error_body(
        detail=error.default_detail,
        error_code=error.error_code,
        request_id=_REQUEST_ID,
        now=_TIMESTAMP,
    )


def _name(error: type[AppException]) -> str:
    return error.oauth2_error if issubclass(error, OAuth2Exception) else error.error_code


def error_responses(*errors: type[AppException] | int) -> Responses:
    """`responses=` for the errors a route can return; 500 INTERNAL_ERROR is always added."""
    by_status: dict[int, list[type[AppException]]] = defaultdict(list)
    for item in (*errors, AppException):
        for error in _BY_STATUS.get(item, ()) if isinstance(item, int) else (item,):
            if error not in by_status[error.status_code]:
                by_status[error.status_code].append(error)
    result: Responses = {}
    for status in sorted(by_status):
        listed = by_status[status]
        oauth2 = [e for e in listed if issubclass(e, OAuth2Exception)]
        if oauth2 and len(oauth2) != len(listed):
            raise TypeError(f"status {status} mixes OAuth2 errors with the contract's errors")
        model: type[BaseModel] = OAuth2ErrorResponse if oauth2 else ErrorResponse
        entry: dict[str, Any] = {
            "model": model,
            "description": "; ".join(dict.fromkeys(e.default_detail for e in listed)),
            "content": {
                "application/json": {
                    "examples": {
                        _name(e): {"summary": e.default_detail, "value": _example(e)}
                        for e in listed
                    }
                }
            },
        }
        if status in _HEADERS:
            entry["headers"] = _HEADERS[status]
        result[status] = entry
    return result


def operation_id(route: APIRoute) -> str:
    """The operationId of a route: its function's name (`get_user`), which generated clients
    turn into a method name; FastAPI's default appends the path and method
    (`get_user_admin_users__user_id__get`). `install_openapi` checks that they are unique."""
    return route.name


def _check_unique_operation_ids(schema: Mapping[str, Any]) -> None:
    seen: dict[str, str] = {}
    for path, item in schema.get("paths", {}).items():
        for method, operation in item.items():
            if not isinstance(operation, dict) or "operationId" not in operation:
                continue
            where = f"{method.upper()} {path}"
            earlier = seen.setdefault(operation["operationId"], where)
            if earlier != where:
                raise RuntimeError(
                    f"operationId {operation['operationId']!r} of {where} is also {earlier}'s:"
                    " rename one route function, or give it operation_id="
                )


def install_openapi(app: FastAPI, *, components: Mapping[str, Any] | None = None) -> None:
    """Replace `app.openapi` with a generator that documents 400 instead of 422.

    `components` are schemas the routes reference but FastAPI cannot see (hand-made bodies).
    """

    extra = dict(components or {})

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title,
            version=app.version,
            summary=app.summary,
            description=app.description,
            routes=app.routes,
            tags=app.openapi_tags,
            contact=app.contact,
            license_info=app.license_info,
        )
        _check_unique_operation_ids(schema)
        for path_item in schema.get("paths", {}).values():
            for operation in path_item.values():
                if isinstance(operation, dict):
                    operation.get("responses", {}).pop("422", None)
        found = schema.setdefault("components", {}).setdefault("schemas", {})
        found.pop("HTTPValidationError", None)
        found.pop("ValidationError", None)
        found.update(extra)
        schema["components"]["schemas"] = dict(sorted(found.items()))
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def render_openapi(app: FastAPI) -> str:
    """The document as committed in docs/openapi.json: stable key order, one trailing newline."""
    return json.dumps(app.openapi(), indent=2, ensure_ascii=False) + "\n"
