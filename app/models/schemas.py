"""Request and response bodies of the HTTP contract (API.md)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    PlainSerializer,
    WithJsonSchema,
    model_validator,
)


def format_timestamp(value: datetime) -> str:
    """ISO 8601, UTC, milliseconds, `Z` suffix: `2024-01-15T10:30:45.123Z`."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


Timestamp = Annotated[
    datetime,
    PlainSerializer(format_timestamp, return_type=str),
    WithJsonSchema(
        {"type": "string", "format": "date-time", "example": "2024-01-15T10:30:45.123Z"}
    ),
]

USERNAME_PATTERN = r"^[A-Za-z0-9_.\-]{3,50}$"
# Generous bound that stops megabyte "passwords" before any hashing; the policy says 128.
PASSWORD_INPUT_MAX = 1024


class RequestModel(BaseModel):
    """Request bodies refuse unknown fields (mass assignment: `is_active`, `id`, ...)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class UserRegister(RequestModel):
    email: Annotated[EmailStr, Field(max_length=100)]
    username: Annotated[str, Field(min_length=3, max_length=50, pattern=USERNAME_PATTERN)]
    password: Annotated[str, Field(min_length=1, max_length=PASSWORD_INPUT_MAX)]

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "email": "alice@example.com",
                    "username": "alice",
                    "password": "correct horse battery staple",
                }
            ]
        }
    )


class UserLogin(RequestModel):
    email: Annotated[str | None, Field(min_length=1, max_length=254)] = None
    username: Annotated[str | None, Field(min_length=1, max_length=254)] = None
    password: Annotated[str, Field(min_length=1, max_length=PASSWORD_INPUT_MAX)]

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"email": "alice@example.com", "password": "correct horse battery staple"},
                {"username": "alice", "password": "correct horse battery staple"},
            ]
        }
    )

    @model_validator(mode="after")
    def _exactly_one_identifier(self) -> UserLogin:
        if (self.email is None) == (self.username is None):
            raise ValueError("Provide exactly one of email or username")
        return self

    @property
    def identifier(self) -> str:
        return self.email if self.email is not None else self.username or ""


class RefreshRequest(RequestModel):
    refresh_token: Annotated[str, Field(min_length=1, max_length=8192)]


class LogoutRequest(RequestModel):
    refresh_token: Annotated[str, Field(min_length=1, max_length=8192)]


class UserRead(BaseModel):
    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "id": 1,
                    "email": "alice@example.com",
                    "username": "alice",
                    "is_active": True,
                    "created_at": "2024-01-15T10:30:45.123Z",
                    "last_login": None,
                }
            ]
        },
    )

    id: int
    email: str
    username: str
    is_active: bool
    created_at: Timestamp
    last_login: Timestamp | None


class TokenResponse(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105
    expires_in: int = Field(description="Lifetime of the access token, in seconds")
    user: UserRead


class FieldError(BaseModel):
    field: str
    message: str


class ErrorResponse(BaseModel):
    detail: str
    error_code: str
    timestamp: str
    request_id: str
    errors: list[FieldError] | None = None

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "detail": "Invalid credentials",
                    "error_code": "INVALID_CREDENTIALS",
                    "timestamp": "2024-01-15T10:30:45.123Z",
                    "request_id": "550e8400-e29b-41d4-a716-446655440000",
                }
            ]
        }
    )


class DatabaseCheck(BaseModel):
    status: Literal["ok", "failing"]
    latency_ms: float | None = None
    error: str | None = None


class BreakerCheck(BaseModel):
    state: Literal["closed", "open", "half_open"]


class HealthChecks(BaseModel):
    database: DatabaseCheck
    circuit_breaker: BreakerCheck


class HealthResponse(BaseModel):
    status: Literal["ok", "unavailable"]
    version: str
    checks: HealthChecks


class LiveResponse(BaseModel):
    status: Literal["ok"] = "ok"


def error_body(
    *, detail: str, error_code: str, request_id: str, errors: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The contract's error body, as a plain dict ready to serialise."""
    body: dict[str, Any] = {
        "detail": detail,
        "error_code": error_code,
        "timestamp": format_timestamp(datetime.now(UTC)),
        "request_id": request_id,
    }
    if errors:
        body["errors"] = errors
    return body
