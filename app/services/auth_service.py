"""Registration, login, token refresh and bearer authentication; knows no HTTP."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from app.models.user import User
from app.services.user_service import UserService
from app.utils.exceptions import (
    InvalidCredentialsException,
    InvalidTokenException,
    UserInactiveException,
    ValidationException,
)
from app.utils.jwt import (
    Clock,
    IssuedToken,
    TokenClaims,
    TokenCodec,
    TokenRejected,
    TokenType,
    utc_now,
)
from app.utils.logger import bind_context, get_logger
from app.utils.metrics import Metrics
from app.utils.password import PasswordHasher
from app.utils.password_policy import password_problems

log = get_logger(__name__)

# Enough of an attempted identifier to recognise it in the log, not a dump of any input.
_IDENTIFIER_LOG_CHARS = 100


@dataclass(frozen=True, slots=True)
class TokenPair:
    access: IssuedToken
    refresh: IssuedToken
    expires_in: int


@dataclass(frozen=True, slots=True)
class AuthResult:
    user: User
    tokens: TokenPair


class AuthService:
    """The service's use cases. Collaborators come in through the constructor."""

    def __init__(
        self,
        users: UserService,
        *,
        hasher: PasswordHasher,
        codec: TokenCodec,
        password_min_length: int = 8,
        clock: Clock = utc_now,
        metrics: Metrics | None = None,
    ) -> None:
        self.users = users
        self.hasher = hasher
        self.codec = codec
        self.password_min_length = password_min_length
        self.clock = clock
        self.metrics = metrics or Metrics()

    async def register(self, *, email: str, username: str, password: str) -> AuthResult:
        """Create an account and sign it in.

        Raises ValidationException (weak password) or UserAlreadyExistsException.
        """
        self.check_password(password, username=username, email=email)
        # Hash before touching the database: no transaction is held open across the hash.
        hashed = await self.hasher.hash(password)
        user = await self.users.create(email=email, username=username, hashed_password=hashed)
        bind_context(user_id=user.id)
        log.info("user registered", user_id=user.id)
        self.metrics.registrations.inc()
        return AuthResult(user, self._issue_pair(user))

    def check_password(self, password: str, *, username: str, email: str) -> None:
        """Raises ValidationException naming the rule the password breaks."""
        problems = password_problems(
            password, username=username, email=email, min_length=self.password_min_length
        )
        if not problems and not self.hasher.fits(password):
            problems = ["Password is longer than the bcrypt scheme can hash (72 bytes)"]
        if problems:
            raise ValidationException(
                problems[0], errors=[{"field": "password", "message": p} for p in problems]
            )

    async def login(self, identifier: str, password: str) -> AuthResult:
        """Check credentials (identifier: email or username) and issue tokens.

        Raises InvalidCredentialsException (unknown user and wrong password alike) or
        UserInactiveException (right password, deactivated account).
        """
        user = await self.users.get_by_identifier(identifier)
        # End the read transaction before hashing: a transaction held across tens of
        # milliseconds of CPU would block SQLite writers and pin a pool connection.
        await self.users.session.commit()
        if user is None:
            # Same work as a real verification, so timing does not reveal unknown accounts.
            await self.hasher.verify_dummy(password)
            # The client hears "invalid credentials" only; the log keeps the real reason and
            # the attempted identifier (OWASP Logging Cheat Sheet; ASVS 5.0 V16.3.1).
            self._login_failed("unknown_user", identifier=identifier[:_IDENTIFIER_LOG_CHARS])
            raise InvalidCredentialsException()
        valid, new_hash = await self.hasher.verify(password, user.hashed_password)
        if not valid:
            self._login_failed("wrong_password", user_id=user.id)
            raise InvalidCredentialsException()
        if not user.is_active:
            self._login_failed("inactive", user_id=user.id)
            raise UserInactiveException()
        await self.users.record_login(user, self.clock(), new_hash)
        bind_context(user_id=user.id)
        if new_hash is not None:
            log.info("password hash upgraded", user_id=user.id, scheme=self.hasher.scheme)
        log.info("login succeeded", user_id=user.id)
        self.metrics.login_successes.inc()
        return AuthResult(user, self._issue_pair(user))

    def _login_failed(self, reason: str, **fields: object) -> None:
        log.warning("login failed", reason=reason, **fields)
        self.metrics.login_failures.labels(reason=reason).inc()

    async def refresh(self, refresh_token: str) -> AuthResult:
        """Exchange a refresh token for a new access token (the refresh token stays valid).

        Raises TokenExpiredException, InvalidTokenException or UserInactiveException.
        """
        claims = self._decode(refresh_token, TokenType.REFRESH)
        user = await self._active_user(claims)
        sid = str(claims.extra.get("sid") or uuid.uuid4().hex)
        access = self.codec.issue(str(user.id), TokenType.ACCESS, extra={"sid": sid})
        refresh = IssuedToken(token=refresh_token, jti=claims.jti, expires_at=claims.expires_at)
        log.info("token refreshed", user_id=user.id)
        self.metrics.token_refreshes.inc()
        return AuthResult(user, TokenPair(access, refresh, self._expires_in()))

    async def authenticate(self, access_token: str) -> User:
        """The active user an access token belongs to.

        Raises TokenExpiredException, InvalidTokenException or UserInactiveException.
        """
        claims = self._decode(access_token, TokenType.ACCESS)
        return await self._active_user(claims)

    def _decode(self, token: str, token_type: TokenType) -> TokenClaims:
        try:
            return self.codec.decode(token, token_type)
        except InvalidTokenException as error:
            self._token_rejected(getattr(error, "reason", "invalid"), token_type)
            raise

    async def _active_user(self, claims: TokenClaims) -> User:
        user_id = (
            int(claims.subject) if claims.subject.isascii() and claims.subject.isdigit() else None
        )
        user = await self.users.get_by_id(user_id) if user_id is not None else None
        if user is None:
            self._token_rejected("unknown_user", claims.type)
            raise TokenRejected("unknown_user")
        if not user.is_active:
            self._token_rejected("inactive", claims.type, user_id=user.id)
            raise UserInactiveException()
        bind_context(user_id=user.id)
        return user

    def _token_rejected(self, reason: str, token_type: TokenType, **fields: object) -> None:
        log.warning("token rejected", reason=reason, token_type=token_type.value, **fields)
        self.metrics.tokens_rejected.labels(reason=reason, token_type=token_type.value).inc()

    def _issue_pair(self, user: User) -> TokenPair:
        sid = uuid.uuid4().hex
        subject = str(user.id)
        access = self.codec.issue(subject, TokenType.ACCESS, extra={"sid": sid})
        refresh = self.codec.issue(subject, TokenType.REFRESH, extra={"sid": sid})
        return TokenPair(access, refresh, self._expires_in())

    def _expires_in(self) -> int:
        return int(self.codec.ttl(TokenType.ACCESS).total_seconds())
