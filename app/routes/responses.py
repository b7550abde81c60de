"""OpenAPI descriptions of the error responses, built from the error catalogue itself.

Each route lists the exceptions it can raise; the document then shows, per status, the
error body schema and one example per error code, with the real code and detail.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from pydantic import BaseModel

from app.models.schemas import ErrorResponse, OAuth2ErrorResponse
from app.utils.exceptions import (
    AppException,
    CircuitBreakerOpenException,
    DatabaseException,
    MfaRequiredException,
    NotAuthenticatedException,
    OAuth2Exception,
    PayloadTooLargeException,
    RateLimitedException,
    UnsupportedMediaTypeException,
    UserAlreadyExistsException,
    ValidationException,
)

Responses = dict[int | str, dict[str, Any]]

_REQUEST_ID = "550e8400-e29b-41d4-a716-446655440000"
_TIMESTAMP = "2024-01-15T10:30:45.123Z"
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
        example = {
            "error": error.oauth2_error,
            "error_description": error.default_detail,
            "request_id": _REQUEST_ID,
        }
        if issubclass(error, MfaRequiredException):
            example["mfa_token"] = _MFA_TOKEN
        return example
    return {
        "detail": error.default_detail,
        "error_code": error.error_code,
        "timestamp": _TIMESTAMP,
        "request_id": _REQUEST_ID,
    }


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
