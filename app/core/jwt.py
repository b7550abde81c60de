"""JWT access and refresh tokens (RFC 7519), verified per the JWT BCP (RFC 8725).

One algorithm is accepted per key (RFC 8725 §3.1): with an HS algorithm the configured one
and its one shared secret; with an asymmetric one (EdDSA, ES256, RS256) the algorithm the
token's `kid` names in the key set, so a public key can never be used as an HMAC secret.
`iss`, `aud`, `exp`, `iat`, `sub`, `jti` and `type` are required (§3.8-3.11: `type` keeps
access and refresh tokens apart). Header parameters that point at keys the service would
have to fetch (`jku`, `x5u`, `jwk`, `x5c`) are refused, and `kid` too with a shared secret.
Time comes from an injected clock.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

import jwt

from app.core.errors import InvalidTokenException, TokenExpiredException

Clock = Callable[[], datetime]

MAX_TOKEN_LENGTH = 4096
LEEWAY = timedelta(seconds=5)  # clock skew tolerated on `exp` and `iat`
_REQUIRED_CLAIMS = ("sub", "type", "iat", "exp", "jti", "iss", "aud")
_FORBIDDEN_HEADERS = frozenset({"kid", "jku", "x5u", "jwk", "x5c", "crit"})
_FORBIDDEN_WITH_KEY_SET = _FORBIDDEN_HEADERS - {"kid"}
ASYMMETRIC_ALGORITHMS = frozenset({"EdDSA", "ES256", "RS256"})


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


class UnknownKeyId(TokenRejected):
    """A `kid` that is not in the key set (yet, or any more)."""

    def __init__(self) -> None:
        super().__init__("unknown_kid")


class KeySet(Protocol):
    """The asymmetric keys a codec signs and verifies with (`app.keys.keyring`)."""

    def signing_key(self) -> tuple[str, str, Any]:
        """(kid, algorithm, private key) of the current key."""
        ...

    def verification_key(self, kid: str) -> tuple[str, Any] | None:
        """(algorithm, public key) of a key that may still have valid tokens, or None."""
        ...

    async def reload_for_unknown_kid(self) -> bool:
        """Reload the key set (rate-limited); False when no reload happened."""
        ...

    async def confirm(self, kid: str) -> bool:
        """Whether the key `kid`, which verified a token, is still not revoked (another
        host may have revoked it a moment ago). Raises when that cannot be known."""
        ...

    async def ensure_signing_key(self) -> None:
        """Make sure the current key was not revoked since it was loaded."""
        ...


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
    """Issues and verifies the service's tokens: one shared secret, or a set of key pairs."""

    def __init__(
        self,
        *,
        key: str = "",
        keys: KeySet | None = None,
        issuer: str,
        audience: str,
        access_ttl: timedelta,
        refresh_ttl: timedelta,
        algorithm: str = "HS256",
        leeway: timedelta = LEEWAY,
        clock: Clock = utc_now,
    ) -> None:
        self._key = key
        self._asymmetric = algorithm in ASYMMETRIC_ALGORITHMS
        # Without a key set an asymmetric codec verifies nothing and cannot sign (the CLI
        # builds one for the password policy only).
        self._keys = keys if self._asymmetric else None
        self._issuer = issuer
        self._audience = audience
        self._ttl = {TokenType.ACCESS: access_ttl, TokenType.REFRESH: refresh_ttl}
        self._algorithm = algorithm
        self._leeway = leeway
        self._clock = clock

    @property
    def issuer(self) -> str:
        return self._issuer

    @property
    def audience(self) -> str:
        return self._audience

    def ttl(self, token_type: TokenType) -> timedelta:
        return self._ttl[token_type]

    async def prepare_to_sign(self) -> None:
        """With a key set: make sure `issue` will not sign with a key revoked on another
        host a moment ago. Raises what the key set raises (the database being down)."""
        if self._keys is not None:
            await self._keys.ensure_signing_key()

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
        if not self._asymmetric:
            token = jwt.encode(claims, self._key, algorithm=self._algorithm, headers={"typ": "JWT"})
        elif self._keys is None:
            raise RuntimeError(f"{self._algorithm} signs with a key set; none was given")
        else:
            kid, algorithm, private_key = self._keys.signing_key()
            headers = {"typ": "JWT", "kid": kid}
            token = jwt.encode(claims, private_key, algorithm=algorithm, headers=headers)
        return IssuedToken(token=token, jti=jti, expires_at=expires_at)

    async def verify(self, token: str, expected_type: TokenType) -> TokenClaims:
        """`decode`, after one (rate-limited) reload of the key set for an unknown `kid`;
        with a key set, the key that verified it must still be unrevoked.

        Raises TokenExpired or TokenRejected.
        """
        try:
            claims, kid = self._decode(token, expected_type)
        except UnknownKeyId:
            # A key rotated in by another host since our last refresh, or garbage: the
            # key set decides, and its rate limit keeps garbage from costing a query each.
            if self._keys is None or not await self._keys.reload_for_unknown_kid():
                raise
            claims, kid = self._decode(token, expected_type)
        # A key revoked on any host is refused here at once, not at the next refresh.
        if kid is not None and self._keys is not None and not await self._keys.confirm(kid):
            raise TokenRejected("revoked_key")
        return claims

    def decode(self, token: str, expected_type: TokenType) -> TokenClaims:
        """Verify a token of the expected type against the key set as loaded (no check
        for a revocation since: `verify` does that); raises TokenExpired or TokenRejected
        (UnknownKeyId for a `kid` not in the key set)."""
        return self._decode(token, expected_type)[0]

    def _decode(self, token: str, expected_type: TokenType) -> tuple[TokenClaims, str | None]:
        if len(token) > MAX_TOKEN_LENGTH:
            raise TokenRejected("too_long")
        if token.count(".") != 2:  # a JWE has five segments; anything else is not a JWS
            raise TokenRejected("malformed")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise TokenRejected("malformed") from None
        key: Any = self._key
        algorithm = self._algorithm
        kid: str | None = None
        if not self._asymmetric:
            if header.get("alg") != algorithm:
                raise TokenRejected("algorithm")
            if _FORBIDDEN_HEADERS.intersection(header):
                raise TokenRejected("header")
        else:
            if header.get("alg") not in ASYMMETRIC_ALGORITHMS:
                raise TokenRejected("algorithm")
            kid = header.get("kid")
            if not isinstance(kid, str) or _FORBIDDEN_WITH_KEY_SET.intersection(header):
                raise TokenRejected("header")
            found = self._keys.verification_key(kid) if self._keys is not None else None
            if found is None:
                raise UnknownKeyId()
            algorithm, key = found
            if header["alg"] != algorithm:  # each key is used with its one algorithm
                raise TokenRejected("algorithm")
        try:
            # exp and iat are checked below against the injected clock.
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
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
        return self._check_claims(claims, expected_type), kid

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
