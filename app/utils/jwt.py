"""JWT access and refresh tokens (RFC 7519), verified per the JWT BCP (RFC 8725).

One algorithm is accepted, the one configured (RFC 8725 §3.1); `iss`, `aud`, `exp`, `iat`,
`sub`, `jti` and `type` are required (§3.8-3.11: `type` keeps access and refresh tokens apart).
Header parameters that point at keys (`kid`, `jku`, `x5u`, `jwk`, `x5c`) are refused: the
service has exactly one key and never fetches one. Time comes from an injected clock.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import jwt

from app.utils.exceptions import InvalidTokenException, TokenExpiredException

Clock = Callable[[], datetime]

MAX_TOKEN_LENGTH = 4096
_REQUIRED_CLAIMS = ("sub", "type", "iat", "exp", "jti", "iss", "aud")
_FORBIDDEN_HEADERS = frozenset({"kid", "jku", "x5u", "jwk", "x5c", "crit"})


def utc_now() -> datetime:
    return datetime.now(UTC)


class TokenType(StrEnum):
    ACCESS = "access"
    REFRESH = "refresh"


class TokenRejected(InvalidTokenException):
    """An invalid token, with the reason kept for the log (never shown to the client)."""

    def __init__(self, reason: str) -> None:
        super().__init__()
        self.reason = reason


class TokenExpired(TokenExpiredException):
    reason = "expired"


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    jti: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class TokenClaims:
    subject: str
    type: TokenType
    jti: str
    issued_at: datetime
    expires_at: datetime
    extra: Mapping[str, Any]


class TokenCodec:
    """Issues and verifies the service's tokens with one symmetric key."""

    def __init__(
        self,
        *,
        key: str,
        issuer: str,
        audience: str,
        access_ttl: timedelta,
        refresh_ttl: timedelta,
        algorithm: str = "HS256",
        leeway: timedelta = timedelta(seconds=5),
        clock: Clock = utc_now,
    ) -> None:
        self._key = key
        self._issuer = issuer
        self._audience = audience
        self._ttl = {TokenType.ACCESS: access_ttl, TokenType.REFRESH: refresh_ttl}
        self._algorithm = algorithm
        self._leeway = leeway
        self._clock = clock

    def ttl(self, token_type: TokenType) -> timedelta:
        return self._ttl[token_type]

    def issue(
        self,
        subject: str,
        token_type: TokenType,
        *,
        extra: Mapping[str, Any] | None = None,
        ttl: timedelta | None = None,
        not_after: datetime | None = None,
    ) -> IssuedToken:
        """Sign a new token for `subject`; `extra` claims never override the registered ones.

        `not_after` caps the expiry (a session's absolute end): the token lives `ttl` or
        until then, whichever comes first.
        """
        now = self._clock()
        expires_at = now + (ttl if ttl is not None else self._ttl[token_type])
        if not_after is not None:
            expires_at = min(expires_at, not_after)
        jti = uuid.uuid4().hex
        claims: dict[str, Any] = dict(extra or {})
        claims.update(
            sub=subject,
            type=token_type.value,
            iat=int(now.timestamp()),
            exp=int(expires_at.timestamp()),
            jti=jti,
            iss=self._issuer,
            aud=self._audience,
        )
        token = jwt.encode(claims, self._key, algorithm=self._algorithm, headers={"typ": "JWT"})
        return IssuedToken(token=token, jti=jti, expires_at=expires_at)

    def decode(self, token: str, expected_type: TokenType) -> TokenClaims:
        """Verify a token of the expected type; raises TokenExpired or TokenRejected."""
        if len(token) > MAX_TOKEN_LENGTH:
            raise TokenRejected("too_long")
        if token.count(".") != 2:  # a JWE has five segments; anything else is not a JWS
            raise TokenRejected("malformed")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise TokenRejected("malformed") from None
        if header.get("alg") != self._algorithm:
            raise TokenRejected("algorithm")
        if _FORBIDDEN_HEADERS.intersection(header):
            raise TokenRejected("header")
        try:
            # exp and iat are checked below against the injected clock.
            claims: dict[str, Any] = jwt.decode(
                token,
                self._key,
                algorithms=[self._algorithm],
                audience=self._audience,
                issuer=self._issuer,
                options={
                    "require": list(_REQUIRED_CLAIMS),
                    "verify_exp": False,
                    "verify_iat": False,
                },
            )
        except jwt.InvalidSignatureError:
            raise TokenRejected("signature") from None
        except jwt.InvalidAudienceError:
            raise TokenRejected("audience") from None
        except jwt.InvalidIssuerError:
            raise TokenRejected("issuer") from None
        except jwt.MissingRequiredClaimError:
            raise TokenRejected("missing_claim") from None
        except jwt.PyJWTError:
            raise TokenRejected("malformed") from None
        return self._check_claims(claims, expected_type)

    def _check_claims(self, claims: dict[str, Any], expected_type: TokenType) -> TokenClaims:
        exp, iat = claims["exp"], claims["iat"]
        valid_numbers = all(isinstance(v, int) and not isinstance(v, bool) for v in (exp, iat))
        if not valid_numbers or not isinstance(claims["sub"], str):
            raise TokenRejected("malformed")
        if not isinstance(claims["jti"], str):
            raise TokenRejected("malformed")
        now = self._clock().timestamp()
        leeway = self._leeway.total_seconds()
        if exp <= now - leeway:
            raise TokenExpired()
        if iat > now + leeway:
            raise TokenRejected("issued_in_future")
        if claims["type"] != expected_type.value:
            raise TokenRejected("wrong_type")
        extra = {k: v for k, v in claims.items() if k not in _REQUIRED_CLAIMS}
        return TokenClaims(
            subject=claims["sub"],
            type=expected_type,
            jti=claims["jti"],
            issued_at=_instant(iat),
            expires_at=_instant(exp),
            extra=extra,
        )


def _instant(timestamp: int) -> datetime:
    """A NumericDate as a datetime; raises TokenRejected when no datetime can hold it.

    JSON numbers have no bound, datetimes end in the year 9999 (and time_t sooner): an
    `exp` a few thousand years ahead is a malformed token, not a crash.
    """
    try:
        return datetime.fromtimestamp(timestamp, UTC)
    except (OverflowError, OSError, ValueError):
        raise TokenRejected("malformed") from None
