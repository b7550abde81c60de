"""The one error catalogue: every failure the service can report, with its status and code.

No FastAPI here: services raise these, `app.middleware.exception` turns them into responses.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar


class AppException(Exception):
    """Base of every error the service reports on purpose."""

    status_code: ClassVar[int] = 500
    error_code: ClassVar[str] = "INTERNAL_ERROR"
    default_detail: ClassVar[str] = "Internal server error"

    def __init__(
        self,
        detail: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        errors: Sequence[Mapping[str, str]] | None = None,
    ) -> None:
        self.detail = detail or self.default_detail
        self.headers: dict[str, str] = dict(headers or {})
        self.errors: list[dict[str, str]] = [dict(e) for e in errors or ()]
        super().__init__(self.detail)


class ValidationException(AppException):
    status_code = 400
    error_code = "VALIDATION_ERROR"
    default_detail = "Request validation failed"


class InvalidResetTokenException(AppException):
    status_code = 400
    error_code = "INVALID_RESET_TOKEN"
    default_detail = "The reset link is invalid, used or expired; ask for a new one"


class InvalidVerificationTokenException(AppException):
    status_code = 400
    error_code = "INVALID_VERIFICATION_TOKEN"
    default_detail = "The verification link is invalid, used or expired; ask for a new one"


class PasskeysUnavailableException(AppException):
    """Passkeys on a deployment whose relying party id is an IP address: browsers refuse
    WebAuthn there, so nothing registered could ever be used."""

    status_code = 400
    error_code = "PASSKEYS_UNAVAILABLE"
    default_detail = (
        "Passkeys are unavailable: PUBLIC_URL must name the service by a domain name "
        "(localhost in development), not an IP address"
    )


class InvalidPasskeyException(AppException):
    """A passkey registration that does not verify (challenge, origin, RP ID, signature),
    or of a credential already registered."""

    status_code = 400
    error_code = "INVALID_PASSKEY"
    default_detail = "The passkey could not be verified"


class InvalidCurrentPasswordException(AppException):
    """A wrong current password where an action asks for it again (deletion, changes)."""

    status_code = 400
    error_code = "INVALID_CURRENT_PASSWORD"
    default_detail = "The current password is wrong"


class AuthException(AppException):
    """Any authentication failure; RFC 6750 §3 asks for a `WWW-Authenticate` challenge."""

    status_code = 401
    error_code = "AUTHENTICATION_FAILED"
    default_detail = "Authentication failed"
    challenge: ClassVar[str] = 'Bearer error="invalid_token"'

    def __init__(self, detail: str | None = None, **kwargs: object) -> None:
        super().__init__(detail, **kwargs)  # type: ignore[arg-type]
        self.headers.setdefault("WWW-Authenticate", self.challenge)


class InvalidCredentialsException(AuthException):
    error_code = "INVALID_CREDENTIALS"
    default_detail = "Invalid credentials"
    challenge = "Bearer"


class UserInactiveException(AuthException):
    error_code = "USER_INACTIVE"
    default_detail = "User account is inactive"


class NotAuthenticatedException(AuthException):
    error_code = "NOT_AUTHENTICATED"
    default_detail = "Not authenticated"
    challenge = "Bearer"


class InvalidTokenException(AuthException):
    error_code = "INVALID_TOKEN"
    default_detail = "Invalid token"


class TokenExpiredException(InvalidTokenException):
    error_code = "TOKEN_EXPIRED"
    default_detail = "Token has expired"


class InvalidMfaCodeException(AppException):
    """A wrong or used code while confirming or managing two-factor authentication."""

    status_code = 400
    error_code = "INVALID_MFA_CODE"
    default_detail = "Invalid two-factor authentication code"


class MfaCodeRejectedException(AuthException):
    """A wrong, used or malformed second-factor code at sign-in."""

    error_code = "INVALID_MFA_CODE"
    default_detail = "Invalid two-factor authentication code"
    challenge = "Bearer"


class ForbiddenException(AppException):
    """Understood and refused by policy: a bearer without the `admin` role on /admin, a
    CORS preflight from an origin not allowed, /metrics from a non-loopback peer."""

    status_code = 403
    error_code = "FORBIDDEN"
    default_detail = "Forbidden"


class ReauthenticationRequiredException(AppException):
    """A sensitive change with neither the current password nor a recent sign-in."""

    status_code = 403
    error_code = "REAUTHENTICATION_REQUIRED"
    default_detail = (
        "Confirm it is you: send current_password, or sign in again and retry within minutes"
    )


class NotFoundException(AppException):
    """An unknown resource: a user id (admin), a session that is not the caller's."""

    status_code = 404
    error_code = "NOT_FOUND"
    default_detail = "Not found"


class RequestTimeoutException(AppException):
    """The server's HTTP protocol gave up waiting for a request head (app.http_protocol)."""

    status_code = 408
    error_code = "REQUEST_TIMEOUT"
    default_detail = "Request head not received in time"


class EmailNotVerifiedException(AppException):
    """Right password, but EMAIL_VERIFICATION_REQUIRED and the address is not proven yet."""

    status_code = 403
    error_code = "EMAIL_NOT_VERIFIED"
    default_detail = "The email address is not verified yet; follow the link mailed to it"


class AccountInactiveException(AppException):
    """An admin action that needs an active account (a reset mail) on a deactivated one."""

    status_code = 409
    error_code = "ACCOUNT_INACTIVE"
    default_detail = "The account is deactivated; activate it first"


class UserAlreadyExistsException(AppException):
    status_code = 409
    error_code = "USER_ALREADY_EXISTS"
    default_detail = "A user with this email or username already exists"


class LastAdminException(AppException):
    status_code = 409
    error_code = "LAST_ADMIN"
    default_detail = "The last active admin cannot be deactivated, demoted or deleted"


class LastSignInMethodException(AppException):
    """Removing the last way into an account: its last passkey or its last linked provider,
    when it has no password and nothing else of the two left."""

    status_code = 409
    error_code = "LAST_SIGN_IN_METHOD"
    default_detail = (
        "This is the account's last way to sign in: set a password, add a passkey or link "
        "a provider first"
    )


class MfaAlreadyEnabledException(AppException):
    status_code = 409
    error_code = "MFA_ALREADY_ENABLED"
    default_detail = "Two-factor authentication is already on"


class PayloadTooLargeException(AppException):
    status_code = 413
    error_code = "PAYLOAD_TOO_LARGE"
    default_detail = "Request body too large"


class UnsupportedMediaTypeException(AppException):
    status_code = 415
    error_code = "UNSUPPORTED_MEDIA_TYPE"
    default_detail = "Content-Type must be application/json"


class RequestHeadersTooLargeException(AppException):
    """A request head over HTTP_MAX_HEADER_BYTES or HTTP_MAX_HEADERS (app.http_protocol)."""

    status_code = 431
    error_code = "REQUEST_HEADERS_TOO_LARGE"
    default_detail = "Request header fields too large"


class RateLimitedException(AppException):
    status_code = 429
    error_code = "RATE_LIMITED"
    default_detail = "Too many requests"

    def __init__(self, retry_after: int, detail: str | None = None) -> None:
        super().__init__(detail, headers={"Retry-After": str(max(1, retry_after))})
        self.retry_after = max(1, retry_after)


class ServiceUnavailableException(AppException):
    """Base of the 503 family: a dependency is down; `Retry-After` says when to try again."""

    status_code = 503
    error_code = "SERVICE_UNAVAILABLE"
    default_detail = "Service temporarily unavailable"

    def __init__(self, detail: str | None = None, *, retry_after: float = 5) -> None:
        seconds = max(1, int(retry_after + 0.999))  # whole seconds, rounded up
        super().__init__(detail, headers={"Retry-After": str(seconds)})
        self.retry_after = seconds


class DatabaseException(ServiceUnavailableException):
    """The database could not be reached or did not answer in time."""


class ThrottleUnavailableException(ServiceUnavailableException):
    """The throttling counters (Redis) cannot be reached: refuse rather than go unthrottled."""


class CircuitBreakerOpenException(ServiceUnavailableException):
    """Calls are refused at once until the breaker lets a trial through."""

    error_code = "CIRCUIT_BREAKER_OPEN"
    default_detail = "Service temporarily unavailable, retry later"


class OAuth2Exception(AppException):
    """An error of the OAuth2 token endpoint, answered in the shape of RFC 6749 §5.2.

    `oauth2_error` is the registered error code (§5.2); `error_code` keeps the contract's
    naming so the same failure reads consistently in logs.
    """

    status_code = 400
    error_code = "INVALID_REQUEST"
    oauth2_error: ClassVar[str] = "invalid_request"

    def __init__(self, detail: str | None = None, **kwargs: object) -> None:
        super().__init__(detail, **kwargs)  # type: ignore[arg-type]
        # Members of the error body beside error and error_description (RFC 6749 §5.2
        # allows extension parameters).
        self.extra_fields: dict[str, str] = {}


class InvalidRequestException(OAuth2Exception):
    default_detail = "The request is missing a required parameter or is malformed"


class InvalidGrantException(OAuth2Exception):
    error_code = "INVALID_GRANT"
    oauth2_error = "invalid_grant"
    default_detail = "The credentials or the refresh token are invalid"


class UnsupportedGrantTypeException(OAuth2Exception):
    error_code = "UNSUPPORTED_GRANT_TYPE"
    oauth2_error = "unsupported_grant_type"
    default_detail = "grant_type must be password or refresh_token"


class InvalidClientException(OAuth2Exception):
    """RFC 6749 §5.2: 401, with a challenge for the scheme the client tried (RFC 9110 §11.6.1)."""

    status_code = 401
    error_code = "INVALID_CLIENT"
    oauth2_error = "invalid_client"
    default_detail = "Client authentication failed"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": 'Basic realm="authsvc"'})


class MfaRequiredException(OAuth2Exception):
    """The password grant of an account with two-factor on: the password was right, and
    the answer carries the `mfa_token` to finish the sign-in at `POST /auth/login/mfa`."""

    error_code = "MFA_REQUIRED"
    oauth2_error = "mfa_required"
    default_detail = "Two-factor authentication required: finish at POST /auth/login/mfa"

    def __init__(self, mfa_token: str, detail: str | None = None) -> None:
        super().__init__(detail)
        self.extra_fields["mfa_token"] = mfa_token
