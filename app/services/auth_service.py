"""Registration, login, token refresh and bearer authentication; knows no HTTP."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from app.models.user import User
from app.services.session_service import SessionService
from app.services.throttle import Bucket, Throttle
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
from app.utils.logger import get_logger
from app.utils.password import PasswordHasher
from app.utils.password_policy import password_problems

log = get_logger(__name__)


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
        sessions: SessionService | None = None,
        throttle: Throttle | None = None,
        client_ip: str | None = None,
        rotate_refresh_tokens: bool = False,
        password_min_length: int = 8,
        clock: Clock = utc_now,
    ) -> None:
        self.users = users
        self.hasher = hasher
        self.codec = codec
        self.sessions = sessions or SessionService(users.session)
        # Throttling lives here, not in the routes, so that every entry point that signs
        # somebody in (JSON login, the OAuth2 token endpoint, ...) is covered by it.
        self.throttle = throttle
        self.client_ip = client_ip
        self.rotate_refresh_tokens = rotate_refresh_tokens
        self.password_min_length = password_min_length
        self.clock = clock

    async def register(self, *, email: str, username: str, password: str) -> AuthResult:
        """Create an account and sign it in.

        Raises RateLimitedException, ValidationException (weak password) or
        UserAlreadyExistsException.
        """
        if self.throttle is not None:
            await self.throttle.hit(Bucket.REGISTER_IP, self.client_ip)
        self.check_password(password, username=username, email=email)
        # Hash before touching the database: no transaction is held open across the hash.
        hashed = await self.hasher.hash(password)
        user = await self.users.create(email=email, username=username, hashed_password=hashed)
        log.info("user registered", user_id=user.id)
        return AuthResult(user, await self._start_session(user))

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

        Raises RateLimitedException, InvalidCredentialsException (unknown user and wrong
        password alike) or UserInactiveException (right password, deactivated account).
        """
        if self.throttle is not None:
            # Counted before the look-up, for unknown accounts too: a 429 then says
            # nothing about whether the account exists.
            await self.throttle.login_attempt(identifier, self.client_ip)
        user = await self.users.get_by_identifier(identifier)
        # End the read transaction before hashing: a transaction held across tens of
        # milliseconds of CPU would block SQLite writers and pin a pool connection.
        await self.users.session.commit()
        if user is None:
            # Same work as a real verification, so timing does not reveal unknown accounts.
            await self.hasher.verify_dummy(password)
            log.info("login failed", reason="unknown_user")
            raise InvalidCredentialsException()
        valid, new_hash = await self.hasher.verify(password, user.hashed_password)
        if not valid:
            log.info("login failed", reason="wrong_password", user_id=user.id)
            raise InvalidCredentialsException()
        if not user.is_active:
            log.info("login failed", reason="inactive", user_id=user.id)
            raise UserInactiveException()
        if self.throttle is not None:
            await self.throttle.login_succeeded(identifier)
        await self.users.record_login(user, self.clock(), new_hash)
        if new_hash is not None:
            log.info("password hash upgraded", user_id=user.id, scheme=self.hasher.scheme)
        log.info("login succeeded", user_id=user.id)
        return AuthResult(user, await self._start_session(user))

    async def refresh(self, refresh_token: str) -> AuthResult:
        """Exchange a refresh token for a new access token of the same session.

        Without rotation the refresh token stays valid until it expires or is logged out.
        With rotation a new refresh token replaces it, and presenting a replaced one
        revokes the whole session (RFC 9700 §4.14.2): a replay cannot be told from theft.
        Raises RateLimitedException, TokenExpiredException, InvalidTokenException or
        UserInactiveException.
        """
        if self.throttle is not None:
            await self.throttle.hit(Bucket.REFRESH_IP, self.client_ip)
        claims = self._decode(refresh_token, TokenType.REFRESH)
        user_id, sid = self._session_of(claims)
        if not self.rotate_refresh_tokens:
            user = await self._active_user(user_id, sid, refresh_jti=claims.jti)
            refresh = IssuedToken(token=refresh_token, jti=claims.jti, expires_at=claims.expires_at)
        else:
            refresh = self.codec.issue(str(user_id), TokenType.REFRESH, extra={"sid": sid})
            rotated = await self.sessions.rotate(
                sid=sid,
                user_id=user_id,
                old_jti=claims.jti,
                new_jti=refresh.jti,
                expires_at=refresh.expires_at,
            )
            if not rotated:
                # Reuse of a replaced token, the loser of a concurrent refresh, or a session
                # already ended: end the family, and keep that even though we answer 401.
                revoked = await self.sessions.revoke(sid=sid, user_id=user_id)
                await self.sessions.session.commit()
                if revoked:
                    log.warning("refresh token reuse", user_id=user_id)
                raise TokenRejected("reused" if revoked else "revoked")
            user = await self._active_user(user_id, sid)
        access = self.codec.issue(str(user.id), TokenType.ACCESS, extra={"sid": sid})
        log.info("token refreshed", user_id=user.id, rotated=self.rotate_refresh_tokens)
        return AuthResult(user, TokenPair(access, refresh, self._expires_in()))

    async def logout(self, refresh_token: str) -> None:
        """Revoke the session of a refresh token: its refresh and access tokens all fail.

        Raises nothing for a bad token: like RFC 7009 §2.2, an unknown, expired or
        malformed token is simply not revoked, so logout reveals nothing about it.
        """
        try:
            claims = self._decode(refresh_token, TokenType.REFRESH)
            user_id, sid = self._session_of(claims)
        except InvalidTokenException:
            return
        if await self.sessions.revoke(sid=sid, user_id=user_id):
            log.info("logged out", user_id=user_id)

    async def authenticate(self, access_token: str) -> User:
        """The active user an access token belongs to, while its session lives.

        Raises TokenExpiredException, InvalidTokenException or UserInactiveException.
        """
        claims = self._decode(access_token, TokenType.ACCESS)
        user_id, sid = self._session_of(claims)
        return await self._active_user(user_id, sid)

    def _decode(self, token: str, token_type: TokenType) -> TokenClaims:
        try:
            return self.codec.decode(token, token_type)
        except InvalidTokenException as error:
            log.info(
                "token rejected",
                reason=getattr(error, "reason", "invalid"),
                token_type=token_type.value,
            )
            raise

    @staticmethod
    def _session_of(claims: TokenClaims) -> tuple[int, str]:
        subject, sid = claims.subject, claims.extra.get("sid")
        if not (subject.isascii() and subject.isdigit()) or not isinstance(sid, str) or not sid:
            log.info("token rejected", reason="no_session")
            raise TokenRejected("no_session")
        return int(subject), sid

    async def _active_user(self, user_id: int, sid: str, *, refresh_jti: str | None = None) -> User:
        user = await self.sessions.user_of(sid=sid, user_id=user_id, refresh_jti=refresh_jti)
        if user is None:
            log.info("token rejected", reason="revoked_or_unknown")
            raise TokenRejected("revoked_or_unknown")
        if not user.is_active:
            log.info("token rejected", reason="inactive", user_id=user.id)
            raise UserInactiveException()
        return user

    async def _start_session(self, user: User) -> TokenPair:
        sid = uuid.uuid4().hex
        subject = str(user.id)
        access = self.codec.issue(subject, TokenType.ACCESS, extra={"sid": sid})
        refresh = self.codec.issue(subject, TokenType.REFRESH, extra={"sid": sid})
        await self.sessions.start(
            sid=sid,
            user_id=user.id,
            refresh_jti=refresh.jti,
            now=self.clock(),
            expires_at=refresh.expires_at,
        )
        return TokenPair(access, refresh, self._expires_in())

    def _expires_in(self) -> int:
        return int(self.codec.ttl(TokenType.ACCESS).total_seconds())
