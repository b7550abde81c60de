"""Request and response bodies of the HTTP contract (docs/contract.md)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    RootModel,
    WithJsonSchema,
    model_validator,
)
from pydantic.config import JsonDict

from app.utils.email_address import canonical_email


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

EMAIL_MAX = 100  # the width of users.email


def _account_email(value: str) -> str:
    # The length as typed (the message a client expects for a long address), and as stored.
    too_long = f"Must be at most {EMAIL_MAX} characters"
    if len(value) > EMAIL_MAX:
        raise ValueError(too_long)
    email = canonical_email(value)  # EmailAddressError is a ValueError: a field error
    if len(email) > EMAIL_MAX:
        raise ValueError(too_long)
    return email


# The rules for an account's email and username, shared by registration and the CLI's
# create and import: the value is the address's canonical form (app/utils/email_address.py).
Email = Annotated[
    str,
    AfterValidator(_account_email),
    WithJsonSchema({"type": "string", "format": "email", "maxLength": EMAIL_MAX}),
]
Username = Annotated[str, Field(min_length=3, max_length=50, pattern=USERNAME_PATTERN)]


class RequestModel(BaseModel):
    """Request bodies refuse unknown fields (mass assignment: `is_active`, `id`, ...)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class UserRegister(RequestModel):
    email: Email
    username: Username
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


_JWT_EXAMPLE = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9..."
REFRESH_TOKEN_MAX = 8192
IDENTIFIER_MAX = 254


class RefreshRequest(RequestModel):
    refresh_token: Annotated[str, Field(min_length=1, max_length=REFRESH_TOKEN_MAX)]

    model_config = ConfigDict(json_schema_extra={"examples": [{"refresh_token": _JWT_EXAMPLE}]})


_USER_EXAMPLE: JsonDict = {
    "id": 1,
    "email": "alice@example.com",
    "username": "alice",
    "is_active": True,
    "email_verified": False,
    "created_at": "2024-01-15T10:30:45.123Z",
    "last_login": None,
    "roles": [],
    "mfa_enabled": False,
    "has_password": True,
}


class LogoutRequest(RequestModel):
    refresh_token: Annotated[str, Field(min_length=1, max_length=REFRESH_TOKEN_MAX)]

    model_config = ConfigDict(json_schema_extra={"examples": [{"refresh_token": _JWT_EXAMPLE}]})


class UserRead(BaseModel):
    model_config = ConfigDict(from_attributes=True, json_schema_extra={"examples": [_USER_EXAMPLE]})

    id: int
    email: str
    username: str
    is_active: bool
    email_verified: bool
    created_at: Timestamp
    last_login: Timestamp | None
    roles: list[str] = Field(description="The account's roles (`admin` opens /admin)")
    mfa_enabled: bool
    has_password: bool = Field(
        description="Whether the account has a password (else it signs in another way)"
    )


_TOKEN_EXAMPLE: JsonDict = {
    "access_token": _JWT_EXAMPLE,
    "refresh_token": _JWT_EXAMPLE,
    "token_type": "bearer",
    "expires_in": 1800,
}


class TokenResponse(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105
    expires_in: int = Field(description="Lifetime of the access token, in seconds")
    user: UserRead

    model_config = ConfigDict(
        json_schema_extra={"examples": [{**_TOKEN_EXAMPLE, "user": _USER_EXAMPLE}]}
    )


ONE_TIME_TOKEN_MAX = 512
_TOKEN_FIELD = Field(
    min_length=1, max_length=ONE_TIME_TOKEN_MAX, description="The `token` of the mailed link"
)
_NEW_PASSWORD_FIELD = Field(
    min_length=1,
    max_length=PASSWORD_INPUT_MAX,
    description="Follows the registration rules (8-128 characters, not common, not the name)",
)
_LINK_TOKEN_EXAMPLE = "Xq3v7u0bWk1G7m8t2y5c9Q4p6n0a1s3d5f7g9h1j2kL"  # noqa: S105


class PasswordForgot(RequestModel):
    email: Email

    model_config = ConfigDict(json_schema_extra={"examples": [{"email": "alice@example.com"}]})


class PasswordReset(RequestModel):
    token: Annotated[str, _TOKEN_FIELD]
    new_password: Annotated[str, _NEW_PASSWORD_FIELD]

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"token": _LINK_TOKEN_EXAMPLE, "new_password": "a new long passphrase"}]
        }
    )


class PasswordChange(RequestModel):
    current_password: Annotated[str, Field(min_length=1, max_length=PASSWORD_INPUT_MAX)]
    new_password: Annotated[str, _NEW_PASSWORD_FIELD]

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "current_password": "correct horse battery staple",
                    "new_password": "a new long passphrase",
                }
            ]
        }
    )


class EmailVerify(RequestModel):
    token: Annotated[str, _TOKEN_FIELD]

    model_config = ConfigDict(json_schema_extra={"examples": [{"token": _LINK_TOKEN_EXAMPLE}]})


class VerificationResend(RequestModel):
    email: Email

    model_config = ConfigDict(json_schema_extra={"examples": [{"email": "alice@example.com"}]})


class EmailChange(RequestModel):
    new_email: Email
    current_password: Annotated[str, Field(min_length=1, max_length=PASSWORD_INPUT_MAX)]

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "new_email": "alice@example.org",
                    "current_password": "correct horse battery staple",
                }
            ]
        }
    )


class AcceptedResponse(BaseModel):
    """A request taken on; what follows arrives by mail."""

    detail: str

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"detail": "If the address belongs to an account, a reset link is on its way"}
            ]
        }
    )


class RegistrationPending(BaseModel):
    """Registration with EMAIL_VERIFICATION_REQUIRED: no tokens until the address is proven."""

    detail: str
    user: UserRead

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "detail": "Account created; confirm the address with the link mailed to it",
                    "user": _USER_EXAMPLE,
                }
            ]
        }
    )


# --- two-factor authentication --------------------------------------------------------------

# Generous bounds: a TOTP code is 6 digits, a recovery code 10 characters plus separators.
MFA_CODE_MAX = 32
MFA_TOKEN_MAX = 128


class MfaRequiredResponse(BaseModel):
    """The right password of an account with two-factor on: no tokens yet."""

    mfa_required: Literal[True] = True
    mfa_token: str = Field(description="Single-use; send it with a code to /auth/login/mfa")
    expires_in: int = Field(description="Seconds the mfa_token stays valid")
    methods: list[str] = Field(
        description="The second factors the account can use, by their method's id "
        "(`totp`, `recovery_code`, `passkey`)"
    )

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "mfa_required": True,
                    "mfa_token": "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
                    "expires_in": 300,
                    "methods": ["totp", "recovery_code"],
                }
            ]
        }
    )


class MfaLogin(RequestModel):
    mfa_token: Annotated[str, Field(min_length=1, max_length=MFA_TOKEN_MAX)]
    code: Annotated[
        str | None,
        Field(
            min_length=1,
            max_length=MFA_CODE_MAX,
            description="A current 6-digit TOTP code, or an unused recovery code",
        ),
    ] = None
    credential: dict[str, Any] | None = Field(
        None,
        description="A passkey's assertion (PublicKeyCredential.toJSON()) answering "
        "/auth/login/mfa/passkey-options",
    )

    @model_validator(mode="after")
    def _one_proof(self) -> MfaLogin:
        if (self.code is None) == (self.credential is None):
            raise ValueError("send exactly one of code or credential")
        return self

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"mfa_token": "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk", "code": "123456"},
                {"mfa_token": "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk", "code": "7kd4m-q2xzp"},
            ]
        }
    )


class MfaCode(RequestModel):
    code: Annotated[
        str,
        Field(min_length=1, max_length=MFA_CODE_MAX, description="A current 6-digit TOTP code"),
    ]

    model_config = ConfigDict(json_schema_extra={"examples": [{"code": "123456"}]})


class Reauthenticate(RequestModel):
    """Optional proof of presence for a sensitive change: without it, the session's
    sign-in must be recent (REAUTH_MAX_AGE_SECONDS)."""

    current_password: Annotated[str | None, Field(min_length=1, max_length=PASSWORD_INPUT_MAX)] = (
        None
    )

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"current_password": "correct horse battery staple"}]}
    )


class MfaDisable(RequestModel):
    current_password: Annotated[str, Field(min_length=1, max_length=PASSWORD_INPUT_MAX)]

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"current_password": "correct horse battery staple"}]}
    )


class TotpEnrolmentResponse(BaseModel):
    secret: str = Field(description="The key in base32, for typing it in by hand")
    otpauth_uri: str = Field(description="The key as an otpauth:// URI (what the QR code holds)")
    qr_svg: str = Field(description="The URI as a QR code: one inline <svg> element")

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "secret": "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP",
                    "otpauth_uri": "otpauth://totp/authsvc:alice%40example.com"
                    "?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=authsvc",
                    "qr_svg": '<svg xmlns="http://www.w3.org/2000/svg" width="196" ...</svg>',
                }
            ]
        }
    )


class RecoveryCodesResponse(BaseModel):
    recovery_codes: list[str] = Field(
        description="Ten single-use codes, shown this once: each signs in instead of a TOTP code"
    )

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "recovery_codes": [
                        "7kd4m-q2xzp",
                        "a9wtr-3hn6e",
                        "vb2xs-k8ufy",
                        "m3q7z-dp4ca",
                        "t6hyw-9rnk2",
                        "ezc5p-w7mbu",
                        "4gfxa-snq3v",
                        "yu8de-2kt9h",
                        "pn5rc-xw6gz",
                        "h2jbm-e4vsq",
                    ]
                }
            ]
        }
    )


class TokenGrant(BaseModel):
    """Form fields common to both grants of `POST /auth/token`.

    RFC 6749 §3.2: unrecognised parameters are ignored (not refused). Public clients may
    identify themselves with `client_id` (§3.2.1); there are no client secrets to check.
    """

    model_config = ConfigDict(extra="ignore")

    scope: str | None = Field(None, description="Ignored: the service has no scopes")
    client_id: str | None = Field(None, max_length=IDENTIFIER_MAX)


class PasswordGrant(TokenGrant):
    """RFC 6749 §4.3.2: the resource owner's credentials."""

    grant_type: Literal["password"]
    username: Annotated[
        str, Field(min_length=1, max_length=IDENTIFIER_MAX, description="Email or username")
    ]
    password: Annotated[str, Field(min_length=1, max_length=PASSWORD_INPUT_MAX)]

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "grant_type": "password",
                    "username": "alice@example.com",
                    "password": "correct horse battery staple",
                }
            ]
        }
    )


class RefreshTokenGrant(TokenGrant):
    """RFC 6749 §6: a refresh token issued earlier."""

    grant_type: Literal["refresh_token"]
    refresh_token: Annotated[str, Field(min_length=1, max_length=REFRESH_TOKEN_MAX)]

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "grant_type": "refresh_token",
                    "refresh_token": _JWT_EXAMPLE,
                }
            ]
        }
    )


class AuthorizationCodeGrant(TokenGrant):
    """RFC 6749 §4.1.3 with PKCE (RFC 7636 §4.5): the code an application received at its
    redirect URI."""

    grant_type: Literal["authorization_code"]
    code: Annotated[str, Field(min_length=1, max_length=128)]
    redirect_uri: Annotated[str | None, Field(None, max_length=2048)]
    code_verifier: Annotated[str | None, Field(None, max_length=128)]

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "grant_type": "authorization_code",
                    "code": "Qx3v...",
                    "redirect_uri": "https://app.example.com/callback",
                    "code_verifier": "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
                    "client_id": "my-app",
                }
            ]
        }
    )


TokenRequest = Annotated[
    PasswordGrant | RefreshTokenGrant | AuthorizationCodeGrant, Field(discriminator="grant_type")
]


class OAuth2TokenResponse(BaseModel):
    """RFC 6749 §5.1: the successful answer of the token endpoint."""

    access_token: str
    # Case-insensitive (RFC 6749 §5.1); OpenID Connect applications get "Bearer".
    token_type: Literal["bearer", "Bearer"] = "bearer"  # noqa: S105
    expires_in: int = Field(description="Lifetime of the access token, in seconds")
    refresh_token: str
    id_token: str | None = Field(None, description="OpenID Connect: the ID token")
    scope: str | None = Field(None, description="OpenID Connect: the scopes granted")

    model_config = ConfigDict(json_schema_extra={"examples": [_TOKEN_EXAMPLE]})


class OAuth2ErrorResponse(BaseModel):
    """RFC 6749 §5.2: the token endpoint's error body, plus the request id of the contract."""

    error: Literal[
        "invalid_request",
        "invalid_client",
        "invalid_grant",
        "unsupported_grant_type",
        "mfa_required",
    ]
    error_description: str
    request_id: str
    mfa_token: str | None = Field(
        None, description="With `mfa_required` only: finish the sign-in at /auth/login/mfa"
    )

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "error": "invalid_grant",
                    "error_description": "Invalid credentials",
                    "request_id": "550e8400-e29b-41d4-a716-446655440000",
                }
            ]
        }
    )


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


class RedisCheck(BaseModel):
    """The shared throttle counters (only with REDIS_URL): every login needs them."""

    status: Literal["ok", "failing"]
    latency_ms: float | None = None
    error: str | None = None


class HealthChecks(BaseModel):
    database: DatabaseCheck
    circuit_breaker: BreakerCheck
    # Absent without REDIS_URL: the counters then live in the process and cannot fail.
    redis: RedisCheck | None = Field(default=None, exclude_if=lambda value: value is None)


class HealthResponse(BaseModel):
    status: Literal["ok", "unavailable"]
    version: str
    checks: HealthChecks

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "status": "ok",
                    "version": "1.0.0",
                    "checks": {
                        "database": {"status": "ok", "latency_ms": 1.2},
                        "circuit_breaker": {"state": "closed"},
                    },
                }
            ]
        }
    )


class LiveResponse(BaseModel):
    status: Literal["ok"] = "ok"

    model_config = ConfigDict(json_schema_extra={"examples": [{"status": "ok"}]})


_IDENTITY_EXAMPLE: JsonDict = {
    "id": "4f0c1e9a2b7d4c58a3e6f1b2c3d4e5f6",
    "provider": "google",
    "subject": "110248495921238986420",
    "email": "alice@example.com",
    "created_at": "2026-12-08T09:30:00Z",
}


class IdentityRead(BaseModel):
    """A provider linked to the account: the pair (provider, subject) is what signs in."""

    model_config = ConfigDict(
        from_attributes=True, json_schema_extra={"examples": [_IDENTITY_EXAMPLE]}
    )

    id: str
    provider: str = Field(description="The provider's `name` in UPSTREAM_PROVIDERS")
    subject: str = Field(description="The account's id at the provider")
    email: str | None = Field(description="The address the provider reported (display only)")
    created_at: Timestamp


class IdentityList(RootModel[list[IdentityRead]]):
    model_config = ConfigDict(json_schema_extra={"examples": [[_IDENTITY_EXAMPLE]]})


class IdentityUnlink(RequestModel):
    current_password: Annotated[str | None, Field(min_length=1, max_length=PASSWORD_INPUT_MAX)] = (
        None
    )

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"current_password": "correct horse battery staple"}]}
    )
