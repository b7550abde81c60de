"""Registration, login, token refresh and bearer authentication; knows no HTTP."""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from app.models.mail import MailKind
from app.models.user import User, normalize_identifier
from app.services.audit import AuditLog, Event
from app.services.outbox import Outbox
from app.services.session_service import SessionService
from app.services.throttle import Bucket, Throttle, ThrottledException
from app.services.transaction import Transaction
from app.services.user_service import UserService
from app.utils.exceptions import (
    EmailNotVerifiedException,
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
    TokenExpired,
    TokenRejected,
    TokenType,
    utc_now,
)
from app.utils.logger import bind_context, get_logger
from app.utils.metrics import Metrics
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


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a bearer token speaks for: the user, and the session the token belongs to."""

    user: User
    session_id: str


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
        user_agent: str | None = None,
        audit: AuditLog | None = None,
        rotate_refresh_tokens: bool = False,
        password_min_length: int = 8,
        clock: Clock = utc_now,
        metrics: Metrics | None = None,
        transaction: Transaction | None = None,
        identifier_hash: Callable[[str], str] | None = None,
        session_max_lifetime: timedelta | None = None,
        outbox: Outbox | None = None,
        require_verified_email: bool = False,
    ) -> None:
        self.users = users
        self.hasher = hasher
        self.codec = codec
        self.sessions = sessions or SessionService(users.session)
        self.transaction = transaction or Transaction(users.session)
        # Throttling lives here, not in the routes, so that every entry point that signs
        # somebody in (JSON login, the OAuth2 token endpoint, ...) is covered by it.
        self.throttle = throttle
        self.client_ip = client_ip
        self.user_agent = user_agent
        self.audit = audit or AuditLog(users.session, clock=clock)
        self.rotate_refresh_tokens = rotate_refresh_tokens
        self.password_min_length = password_min_length
        self.clock = clock
        self.metrics = metrics or Metrics()
        # Keyed hash of an unknown identifier for the log; None: the log omits it.
        self.identifier_hash = identifier_hash
        # A session ends at the latest this long after its sign-in, however often it is
        # refreshed (with rotation each refresh would otherwise push its end forward).
        self.session_max_lifetime = session_max_lifetime or codec.ttl(TokenType.REFRESH)
        # Where the verification mail of a new account goes (None: no mail, e.g. the CLI).
        self.outbox = outbox
        self.require_verified_email = require_verified_email

    async def register(self, *, email: str, username: str, password: str) -> AuthResult:
        """Create an account and sign it in.

        Raises RateLimitedException, ValidationException (weak password) or
        UserAlreadyExistsException.
        """
        user = await self.create_account(email=email, username=username, password=password)
        tokens = await self._start_session(user)
        assert tokens is not None, "a user created in this transaction is active"
        return AuthResult(user, tokens)

    async def create_account(self, *, email: str, username: str, password: str) -> User:
        """Create an account, not signed in, and mail it a verification link.

        Raises RateLimitedException, ValidationException (weak password) or
        UserAlreadyExistsException.
        """
        if self.throttle is not None:
            await self.throttle.client_attempt(Bucket.REGISTER_IP, self.client_ip)
        self.check_password(password, username=username, email=email)
        # Hash before touching the database: no transaction is held open across the hash.
        hashed = await self.hasher.hash(password)
        user = await self.users.create(email=email, username=username, hashed_password=hashed)
        bind_context(user_id=user.id)
        self.audit.record(Event.USER_REGISTERED, user_id=user.id, actor_id=user.id)
        log.info("user registered", user_id=user.id)
        self.metrics.registrations.inc()
        if self.outbox is not None:
            await self.outbox.enqueue(MailKind.VERIFY_EMAIL, user.email, {"user_id": user.id})
        return user

    def check_password(
        self, password: str, *, username: str, email: str, field: str = "password"
    ) -> None:
        """Raises ValidationException naming the rule the password breaks."""
        problems = password_problems(
            password, username=username, email=email, min_length=self.password_min_length
        )
        if not problems and not self.hasher.fits(password):
            problems = ["Password is longer than the bcrypt scheme can hash (72 bytes)"]
        if problems:
            raise ValidationException(
                problems[0], errors=[{"field": field, "message": p} for p in problems]
            )

    async def login(self, identifier: str, password: str) -> AuthResult:
        """Check credentials (identifier: email or username) and issue tokens.

        Raises RateLimitedException, InvalidCredentialsException (unknown user and wrong
        password alike) or UserInactiveException (right password, deactivated account).
        """
        if self.throttle is not None:
            # Counted before the look-up, for unknown accounts too: a 429 then says
            # nothing about whether the account exists.
            try:
                await self.throttle.login_attempt(identifier, self.client_ip)
            except ThrottledException as refusal:
                await self._login_throttled(identifier, refusal)
                raise
        user = await self.users.get_by_identifier(identifier)
        # No transaction held across the tens of milliseconds of the hash below.
        await self.transaction.end_read()
        if user is None:
            # Same work as a real verification, so timing does not reveal unknown accounts.
            await self.hasher.verify_dummy(password)
            # The client hears "invalid credentials" only; the log keeps the real reason and
            # a keyed hash of the identifier, never the identifier: people type passwords
            # into the username field. Equal hashes still tie attempts together.
            fields = {}
            if self.identifier_hash is not None:
                fields["identifier_hmac"] = self.identifier_hash(normalize_identifier(identifier))
            await self._login_failed("unknown_user", None, **fields)
            raise InvalidCredentialsException()
        valid, new_hash = await self.hasher.verify(password, user.hashed_password)
        if not valid:
            await self._login_failed("wrong_password", user.id)
            raise InvalidCredentialsException()
        if not user.is_active:
            await self._login_failed("inactive", user.id)
            # No token was sent, so no error="invalid_token" (RFC 6750 §3).
            raise UserInactiveException(headers={"WWW-Authenticate": "Bearer"})
        if self.require_verified_email and not user.email_verified:
            # Only after the password check: without it nothing about the account shows.
            await self._login_failed("email_not_verified", user.id)
            raise EmailNotVerifiedException()
        if self.throttle is not None:
            await self.throttle.login_succeeded((user.email, user.username), self.client_ip)
        self.users.record_login(user, self.clock(), new_hash)
        bind_context(user_id=user.id)
        if new_hash is not None:
            log.info("password hash upgraded", user_id=user.id, scheme=self.hasher.scheme)
        tokens = await self._start_session(user)
        if tokens is None:
            # Deactivated while the password was being checked (the session insert re-reads
            # is_active): no session, so nothing comes back to life at a reactivation.
            await self._login_failed("inactive", user.id)
            raise UserInactiveException(headers={"WWW-Authenticate": "Bearer"})
        # With last_login and the session: one transaction, no commit of its own.
        self.audit.record(Event.LOGIN_SUCCEEDED, user_id=user.id, actor_id=user.id)
        log.info("login succeeded", user_id=user.id)
        self.metrics.login_successes.inc()
        return AuthResult(user, tokens)

    async def _login_failed(self, reason: str, user_id: int | None, **fields: object) -> None:
        if user_id is not None:
            fields["user_id"] = user_id
        log.warning("login failed", reason=reason, **fields)
        self.metrics.login_failures.labels(reason=reason).inc()
        # The answer is a 401 and the request's transaction rolls back: the event is
        # committed on its own first. Never the attempted identifier: it may be a password
        # typed into the wrong field, and a deleted account's trail must not name it.
        self.audit.record(Event.LOGIN_FAILED, user_id=user_id, details={"reason": reason})
        await self.transaction.commit_before_raising()

    async def _login_throttled(self, identifier: str, refusal: ThrottledException) -> None:
        if self.throttle is None or not await self.throttle.first_refusal(refusal):
            return
        user = await self.users.get_by_identifier(identifier)
        details = {"bucket": refusal.bucket.value, "retry_after": refusal.retry_after}
        self.audit.record(Event.LOGIN_THROTTLED, user_id=user.id if user else None, details=details)
        await self.transaction.commit_before_raising()

    async def refresh(self, refresh_token: str) -> AuthResult:
        """Exchange a refresh token for a new access token of the same session.

        Without rotation the refresh token stays valid until it expires or is logged out.
        With rotation a new refresh token replaces it, and presenting a replaced one
        revokes the whole session (RFC 9700 §4.14.2): a replay cannot be told from theft.
        Raises RateLimitedException, TokenExpiredException, InvalidTokenException or
        UserInactiveException.
        """
        if self.throttle is not None:
            await self.throttle.client_attempt(Bucket.REFRESH_IP, self.client_ip)
        claims = await self._decode(refresh_token, TokenType.REFRESH)
        user_id, sid = self._session_of(claims)
        extra, session_end = self._session_claims(claims)
        if session_end is not None and self.clock() >= session_end:
            self._token_rejected("session_lifetime", TokenType.REFRESH)
            raise TokenExpired()
        if not self.rotate_refresh_tokens:
            user = await self._active_user(user_id, sid, TokenType.REFRESH, refresh_jti=claims.jti)
            refresh = IssuedToken(token=refresh_token, jti=claims.jti, expires_at=claims.expires_at)
            await self.sessions.touch(sid=sid, user_id=user_id, now=self.clock())
        else:
            refresh = self.codec.issue(
                str(user_id), TokenType.REFRESH, extra=extra, not_after=session_end
            )
            rotated = await self.sessions.rotate(
                sid=sid,
                user_id=user_id,
                old_jti=claims.jti,
                new_jti=refresh.jti,
                expires_at=refresh.expires_at,
                now=self.clock(),
                # Also for tokens issued before `auth_time` existed: the row knows its start.
                started_after=self.clock() - self.session_max_lifetime,
            )
            if not rotated:
                # Reuse of a replaced token, the loser of a concurrent refresh, or a session
                # already ended: end the family, and keep that even though we answer 401.
                revoked = await self.sessions.revoke(sid=sid, user_id=user_id)
                if revoked:
                    self.audit.record(
                        Event.TOKEN_REUSE_DETECTED,
                        user_id=user_id,
                        details={"session_id": sid},
                    )
                await self.transaction.commit_before_raising()
                if revoked:
                    log.warning("refresh token reuse", user_id=user_id)
                reason = "reused" if revoked else "revoked"
                self._token_rejected(reason, TokenType.REFRESH)
                raise TokenRejected(reason)
            user = await self._active_user(user_id, sid, TokenType.REFRESH)
        access = self.codec.issue(
            str(user.id),
            TokenType.ACCESS,
            extra={**extra, "roles": user.roles},
            not_after=session_end,
        )
        log.info("token refreshed", user_id=user.id, rotated=self.rotate_refresh_tokens)
        self.metrics.token_refreshes.inc()
        return AuthResult(user, TokenPair(access, refresh, self._expires_in(session_end)))

    async def logout(self, token: str) -> None:
        """Revoke the session of a refresh or an access token: all its tokens fail.

        An access token ends its session too: a client that kept only that one (or a
        leaked one being reported) must be able to end it, as RFC 7009 §2.1 lets either
        type be revoked. Raises nothing for a bad token: like RFC 7009 §2.2, an unknown,
        expired or malformed token is simply not revoked, so logout reveals nothing.
        """
        try:
            claims = await self._decode_either(token)
            user_id, sid = self._session_of(claims)
        except InvalidTokenException:
            return
        if await self.sessions.revoke(sid=sid, user_id=user_id):
            self.audit.record(
                Event.LOGOUT, user_id=user_id, actor_id=user_id, details={"session_id": sid}
            )
            log.info("logged out", user_id=user_id)

    async def authenticate(self, access_token: str) -> User:
        """The active user an access token belongs to, while its session lives.

        Raises TokenExpiredException, InvalidTokenException or UserInactiveException.
        """
        return (await self.authenticate_principal(access_token)).user

    async def authenticate_principal(self, access_token: str) -> Principal:
        """The active user of an access token and its session (one database round trip:
        the user, its roles and the session's existence in one statement).

        Raises TokenExpiredException, InvalidTokenException or UserInactiveException.
        """
        claims = await self._decode(access_token, TokenType.ACCESS)
        user_id, sid = self._session_of(claims)
        return Principal(await self._active_user(user_id, sid, TokenType.ACCESS), sid)

    async def _decode_either(self, token: str) -> TokenClaims:
        try:
            return await self.codec.verify(token, TokenType.REFRESH)
        except TokenRejected as error:
            if error.reason != "wrong_type":
                self._token_rejected(error.reason, TokenType.REFRESH)
                raise
        except InvalidTokenException as error:
            self._token_rejected(getattr(error, "reason", "invalid"), TokenType.REFRESH)
            raise
        return await self._decode(token, TokenType.ACCESS)

    async def _decode(self, token: str, token_type: TokenType) -> TokenClaims:
        try:
            return await self.codec.verify(token, token_type)
        except InvalidTokenException as error:
            self._token_rejected(getattr(error, "reason", "invalid"), token_type)
            raise

    def _session_of(self, claims: TokenClaims) -> tuple[int, str]:
        subject, sid = claims.subject, claims.extra.get("sid")
        if not (subject.isascii() and subject.isdigit()) or not isinstance(sid, str) or not sid:
            self._token_rejected("no_session", claims.type)
            raise TokenRejected("no_session")
        return int(subject), sid

    async def _active_user(
        self, user_id: int, sid: str, token_type: TokenType, *, refresh_jti: str | None = None
    ) -> User:
        user = await self.sessions.user_of(sid=sid, user_id=user_id, refresh_jti=refresh_jti)
        if user is None:
            # Deactivation ends every session, so tokens stay dead after a reactivation;
            # the contract still names the reason (USER_INACTIVE) for a deactivated owner.
            # This second look-up happens only on the rejection path.
            owner = await self.users.get_by_id(user_id)
            if owner is not None and not owner.is_active:
                self._token_rejected("inactive", token_type, user_id=owner.id)
                raise UserInactiveException()
            self._token_rejected("revoked_or_unknown", token_type)
            raise TokenRejected("revoked_or_unknown")
        if not user.is_active:
            self._token_rejected("inactive", token_type, user_id=user.id)
            raise UserInactiveException()
        bind_context(user_id=user.id)
        return user

    def _token_rejected(self, reason: str, token_type: TokenType, **fields: object) -> None:
        log.warning("token rejected", reason=reason, token_type=token_type.value, **fields)
        self.metrics.tokens_rejected.labels(reason=reason, token_type=token_type.value).inc()

    async def start_session(self, user: User) -> TokenPair:
        """A new session of the user (after a password change ended the others).

        Raises UserInactiveException when the account was deactivated meanwhile.
        """
        tokens = await self._start_session(user)
        if tokens is None:
            raise UserInactiveException()
        return tokens

    async def _start_session(self, user: User) -> TokenPair | None:
        """A new session's tokens, or None when the user is no longer active."""
        sid = uuid.uuid4().hex
        subject = str(user.id)
        now = self.clock()
        session_end = now + self.session_max_lifetime
        # `auth_time` (RFC 9068 §2.2.1, OIDC Core §2) carries the sign-in into every token of
        # the session, so a refresh knows the session's absolute end without a look-up.
        extra: dict[str, object] = {"sid": sid, "auth_time": int(now.timestamp())}
        # Roles ride in access tokens for resource servers; /admin re-reads them per request.
        access = self.codec.issue(
            subject,
            TokenType.ACCESS,
            extra={**extra, "roles": user.roles},
            not_after=session_end,
        )
        refresh = self.codec.issue(subject, TokenType.REFRESH, extra=extra, not_after=session_end)
        started = await self.sessions.start(
            sid=sid,
            user_id=user.id,
            refresh_jti=refresh.jti,
            now=now,
            expires_at=refresh.expires_at,
            ip=self.client_ip,
            user_agent=self.user_agent,
        )
        return TokenPair(access, refresh, self._expires_in(session_end)) if started else None

    def _session_claims(self, claims: TokenClaims) -> tuple[dict[str, object], datetime | None]:
        """The claims a session's new tokens carry on, and the session's absolute end (None
        for a token issued before `auth_time` was: then the session row's start decides)."""
        sid = claims.extra["sid"]
        auth_time = claims.extra.get("auth_time")
        if not isinstance(auth_time, int) or isinstance(auth_time, bool):
            return {"sid": sid}, None
        try:
            started = datetime.fromtimestamp(auth_time, UTC)
        except (OverflowError, OSError, ValueError):
            return {"sid": sid}, None
        return {"sid": sid, "auth_time": auth_time}, started + self.session_max_lifetime

    def _expires_in(self, session_end: datetime | None) -> int:
        """The access token's lifetime in seconds (RFC 6749 §5.1), shorter near the end of
        its session."""
        ttl = int(self.codec.ttl(TokenType.ACCESS).total_seconds())
        if session_end is None:
            return ttl
        return max(0, min(ttl, math.ceil((session_end - self.clock()).total_seconds())))
