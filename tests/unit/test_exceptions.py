"""The error catalogue: statuses and codes of the contract, headers where the RFCs want them."""

from __future__ import annotations

import pytest

from app.core import errors as exc


@pytest.mark.parametrize(
    ("cls", "status", "code"),
    [
        (exc.ValidationException, 400, "VALIDATION_ERROR"),
        (exc.InvalidCredentialsException, 401, "INVALID_CREDENTIALS"),
        (exc.UserInactiveException, 401, "USER_INACTIVE"),
        (exc.NotAuthenticatedException, 401, "NOT_AUTHENTICATED"),
        (exc.InvalidTokenException, 401, "INVALID_TOKEN"),
        (exc.TokenExpiredException, 401, "TOKEN_EXPIRED"),
        (exc.UserAlreadyExistsException, 409, "USER_ALREADY_EXISTS"),
        (exc.PayloadTooLargeException, 413, "PAYLOAD_TOO_LARGE"),
        (exc.UnsupportedMediaTypeException, 415, "UNSUPPORTED_MEDIA_TYPE"),
        (exc.DatabaseException, 503, "SERVICE_UNAVAILABLE"),
        (exc.ThrottleUnavailableException, 503, "SERVICE_UNAVAILABLE"),
    ],
)
def test_each_exception_maps_to_its_status_and_code(
    cls: type[exc.AppException], status: int, code: str
) -> None:
    error = cls()
    assert (error.status_code, error.error_code) == (status, code)
    assert isinstance(error, exc.AppException)
    assert error.detail


def test_auth_failures_share_a_base_and_carry_a_bearer_challenge() -> None:
    for cls in (
        exc.InvalidCredentialsException,
        exc.InvalidTokenException,
        exc.TokenExpiredException,
    ):
        error = cls()
        assert isinstance(error, exc.AuthException)
        assert error.headers["WWW-Authenticate"].startswith("Bearer")
    assert exc.TokenExpiredException().headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    assert exc.NotAuthenticatedException().headers["WWW-Authenticate"] == "Bearer"


def test_custom_detail_and_field_errors_are_kept() -> None:
    error = exc.ValidationException("weak", errors=[{"field": "password", "message": "weak"}])
    assert error.detail == "weak"
    assert error.errors == [{"field": "password", "message": "weak"}]
    assert str(error) == "weak"


def test_rate_limited_carries_retry_after_of_at_least_one_second() -> None:
    assert exc.RateLimitedException(retry_after=0).headers["Retry-After"] == "1"
    assert exc.RateLimitedException(retry_after=30).headers["Retry-After"] == "30"


def test_circuit_open_rounds_retry_after_up() -> None:
    error = exc.CircuitBreakerOpenException(retry_after=12.2)
    assert (error.status_code, error.error_code) == (503, "CIRCUIT_BREAKER_OPEN")
    assert error.headers["Retry-After"] == "13"
