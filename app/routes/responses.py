"""OpenAPI descriptions of the error responses, shared by the routes."""

from __future__ import annotations

from typing import Any

from app.models.schemas import ErrorResponse

_DESCRIPTIONS = {
    400: ("Validation error", "VALIDATION_ERROR"),
    401: ("Not authenticated or invalid credentials/token", "INVALID_CREDENTIALS"),
    409: ("Email or username already taken", "USER_ALREADY_EXISTS"),
    413: ("Request body too large", "PAYLOAD_TOO_LARGE"),
    415: ("Body is not application/json", "UNSUPPORTED_MEDIA_TYPE"),
    429: ("Too many attempts; see Retry-After", "RATE_LIMITED"),
    500: ("Unexpected error", "INTERNAL_ERROR"),
    503: ("Database unavailable or circuit breaker open", "SERVICE_UNAVAILABLE"),
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` entries with the ErrorResponse schema and an example error code."""
    result: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        description, code = _DESCRIPTIONS[status]
        result[status] = {
            "model": ErrorResponse,
            "description": description,
            "content": {
                "application/json": {
                    "example": {
                        "detail": description,
                        "error_code": code,
                        "timestamp": "2024-01-15T10:30:45.123Z",
                        "request_id": "550e8400-e29b-41d4-a716-446655440000",
                    }
                }
            },
        }
    return result
