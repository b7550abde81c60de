"""Registration, login, token refresh and bearer authentication; knows no HTTP."""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import NoReturn

from app.audit.log import AuditLog, Event
from app.core.errors import (
    AppException,
    EmailNotVerifiedException,
    InvalidCredentialsException,
    InvalidCurrentPasswordException,
    InvalidTokenException,
    MfaCodeRejectedException,
    UserInactiveException,
    ValidationException,
)
from app.core.jwt import (
    Clock,
    IssuedToken,
    TokenClaims,
    TokenCodec,
    TokenExpired,
    TokenRejected,
    TokenType,
    utc_now,
)
from app.core.password_policy import password_problems
from app.core.passwords import PasswordHasher
from app.mail.outbox import Outbox
from app.models.mail import MailKind
from app.models.user import User, normalize_identifier
from app.sessions.service import SessionService
from app.signin.mfa import IssuedChallenge, MfaService
from app.throttle import Bucket, Throttle, ThrottledException
from app.transaction import Transaction
from app.users.service import UserService
from app.utils.logger import bind_context, get_logger
from app.utils.metrics import Metrics

log = get_logger(__name__)

# Authentication Method Reference values (RFC 8176 §2) of a session's tokens. A recovery
# code is a single-use shared secret: RFC 8176 has no value of its own for it, "otp" (a
# one-time password) is the nearest; the log line of the sign-in names the exact method.
AMR_PASSWORD = ("pwd",)
_MFA_TOKEN_TYPE = "mfa"  # noqa: S105 - a label, not a secret
AMR_SECOND_FACTOR = ("pwd", "otp")


def token_rejected(metrics: Metrics, reason: str, token_type: TokenType, **fields: object) -> None:
    """Log and count a refused token; the reason is for operators, never for the client."""
    log.warning("token rejected", reason=reason, token_type=token_type.value, **fields)
    metrics.tokens_rejected.labels(reason=reason, token_type=token_type.value).inc()


async def verified_claims(
    codec: TokenCodec, metrics: Metrics, token: str, token_type: TokenType
) -> TokenClaims:
    """The claims of a token of `token_type`; a refused one is logged and counted.

    Raises TokenExpiredException or InvalidTokenException.
    """
    try:
        return await codec.verify(token, token_type)
    except InvalidTokenException as error:
        token_rejected(metrics, getattr(error, "reason", "invalid"), token_type)
        raise


def session_of(metrics: Metrics, claims: TokenClaims) -> tuple[int, str]:
    """The user id and session id a token speaks for; raises TokenRejected without them."""
    subject, sid = claims.subject, claims.extra.get("sid")
    if not (subject.isascii() and subject.isdigit()) or not isinstance(sid, str) or not sid:
        token_rejected(metrics, "no_session", claims.type)
        raise TokenRejected("no_session")
    return int(subject), sid


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
        mfa: MfaService | None = None,
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
        self.mfa = mfa
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

    async def login(self, identifier: str, password: str) -> AuthResult | IssuedChallenge:
        """Check credentials (identifier: email or username) and issue tokens; with
        two-factor on, return the challenge of the second step instead (no tokens).

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
        bind_context(user_id=user.id)
        if new_hash is not None:
            user.hashed_password = new_hash
            log.info("password hash upgraded", user_id=user.id, scheme=self.hasher.scheme)
        if user.mfa_enabled:
            # The password alone does not clear the account's failures: else whoever knows
            # it could guess codes without end, five per fresh mfa_token.
            challenge = await self._require_mfa().issue_challenge(user, identifier)
            # Kept even when the caller answers with an error (the password grant's
            # `mfa_required`), which would otherwise roll the challenge back.
            await self.transaction.commit_before_raising()
            log.info("second factor required", user_id=user.id)
            return challenge
        if self.throttle is not None:
            await self.throttle.login_succeeded((user.email, user.username), self.client_ip)
        return await self._signed_in(user, ("password",), AMR_PASSWORD)

    async def login_mfa(self, mfa_token: str, code: str) -> AuthResult:
        """The second step of a sign-in: the challenge's `mfa_token` and a TOTP code or a
        recovery code. Each attempt counts on the token (five, then it is dead) and on the
        account's throttle; a code is accepted once.

        Raises InvalidTokenException (unknown, expired, used or exhausted mfa_token),
        MfaCodeRejectedException, UserInactiveException or RateLimitedException.
        """
        mfa = self._require_mfa()
        attempt = await mfa.reserve_attempt(mfa_token)
        # The attempt counts whatever follows: a failure below must not roll it back.
        await self.transaction.commit_before_raising()
        if attempt is None:
            self._mfa_token_rejected()
        bind_context(user_id=attempt.user_id)
        if self.throttle is not None:
            await self.throttle.account_attempt(attempt.throttle_key, self.client_ip)
        user = await self.users.get_by_id(attempt.user_id)
        if user is None or not user.mfa_enabled:
            # Two-factor was turned off (or the account deleted) after the password step.
            self._mfa_token_rejected(user_id=attempt.user_id)
        if not user.is_active:
            await self._login_failed("inactive", user.id)
            raise UserInactiveException(headers={"WWW-Authenticate": "Bearer"})
        factor = await mfa.verify(user, code)
        if factor is None:
            await self._mfa_failed(user, "wrong_mfa_code")
        if not await mfa.consume(factor):
            await self._mfa_failed(user, "replayed_mfa_code")
        if not await mfa.finish_challenge(mfa_token):
            # A concurrent request finished this sign-in first; raising rolls back the use
            # of this request's code with everything else of its transaction.
            self._mfa_token_rejected(user_id=user.id)
        if self.throttle is not None:
            await self.throttle.login_succeeded((user.email, user.username), self.client_ip)
        return await self._signed_in(user, ("password", factor.method), AMR_SECOND_FACTOR)

    async def disable_mfa(self, user: User, current_password: str) -> None:
        """Turn the user's two-factor authentication off, with their current password.

        Raises InvalidCurrentPasswordException (counted by the account's login throttle)
        or RateLimitedException.
        """
        if self.throttle is not None:
            await self.throttle.login_attempt(user.email, self.client_ip)
        # No transaction held across the hash (see login).
        await self.transaction.end_read()
        valid, _ = await self.hasher.verify(current_password, user.hashed_password)
        if not valid:
            log.warning("current password rejected", user_id=user.id, during="mfa_disable")
            raise InvalidCurrentPasswordException()
        if self.throttle is not None:
            await self.throttle.login_succeeded((user.email, user.username), self.client_ip)
        await self._require_mfa().disable(user, actor_id=user.id)

    async def _mfa_failed(self, user: User, reason: str) -> NoReturn:
        """A wrong or replayed second factor: `mfa.failed` in the trail, committed although
        the answer is a 401 (the request's own transaction rolls back)."""
        self.audit.record(Event.MFA_FAILED, user_id=user.id, details={"reason": reason})
        await self._login_failed(reason, user.id)
        raise MfaCodeRejectedException()

    def _mfa_token_rejected(self, **fields: object) -> NoReturn:
        # Unknown, expired, used up, out of attempts: one reason, as the client hears it.
        kind = {"reason": "mfa_token_invalid", "token_type": _MFA_TOKEN_TYPE}
        log.warning("token rejected", **kind, **fields)
        self.metrics.tokens_rejected.labels(**kind).inc()
        raise TokenRejected("mfa_token_invalid")

    def _require_mfa(self) -> MfaService:
        if self.mfa is None:
            # Fail closed: an account with two-factor on never signs in on a password alone.
            raise AppException("Two-factor authentication is not configured")
        return self.mfa

    async def _signed_in(
        self, user: User, methods: tuple[str, ...], amr: tuple[str, ...]
    ) -> AuthResult:
        self.users.record_login(user, self.clock(), None)
        tokens = await self._start_session(user, amr)
        if tokens is None:
            # Deactivated while the password was being checked (the session insert re-reads
            # is_active): no session, so nothing comes back to life at a reactivation.
            await self._login_failed("inactive", user.id)
            raise UserInactiveException(headers={"WWW-Authenticate": "Bearer"})
        # With last_login and the session: one transaction, no commit of its own.
        self.audit.record(
            Event.LOGIN_SUCCEEDED,
            user_id=user.id,
            actor_id=user.id,
            details={"methods": list(methods)},
        )
        log.info("login succeeded", user_id=user.id, methods=list(methods))
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
        await self.codec.prepare_to_sign()
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
        return await verified_claims(self.codec, self.metrics, token, token_type)

    def _session_of(self, claims: TokenClaims) -> tuple[int, str]:
        return session_of(self.metrics, claims)

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
        token_rejected(self.metrics, reason, token_type, **fields)

    async def start_session(self, user: User) -> TokenPair:
        """A new session of the user (after a password change ended the others).

        Raises UserInactiveException when the account was deactivated meanwhile.
        """
        tokens = await self._start_session(user)
        if tokens is None:
            raise UserInactiveException()
        return tokens

    async def _start_session(
        self, user: User, amr: tuple[str, ...] = AMR_PASSWORD
    ) -> TokenPair | None:
        """A new session's tokens, or None when the user is no longer active."""
        await self.codec.prepare_to_sign()
        sid = uuid.uuid4().hex
        subject = str(user.id)
        now = self.clock()
        session_end = now + self.session_max_lifetime
        # `auth_time` (RFC 9068 §2.2.1, OIDC Core §2) carries the sign-in into every token of
        # the session, so a refresh knows the session's absolute end without a look-up; the
        # refresh token carries the session's amr too, so refreshed tokens keep it.
        extra: dict[str, object] = {
            "sid": sid,
            "auth_time": int(now.timestamp()),
            "amr": list(amr),
        }
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
        if not started:
            return None
        ended = await self.sessions.trim(user_id=user.id, keep_sid=sid, now=now)
        if ended:
            self.audit.record(
                Event.SESSION_REVOKED, user_id=user.id, details={"scope": "cap", "count": ended}
            )
        return TokenPair(access, refresh, self._expires_in(session_end))

    def _session_claims(self, claims: TokenClaims) -> tuple[dict[str, object], datetime | None]:
        """The claims a session's new tokens carry on, and the session's absolute end (None
        for a token issued before `auth_time` was: then the session row's start decides)."""
        carried: dict[str, object] = {"sid": claims.extra["sid"], "amr": _amr_of(claims)}
        auth_time = claims.extra.get("auth_time")
        if not isinstance(auth_time, int) or isinstance(auth_time, bool):
            return carried, None
        try:
            started = datetime.fromtimestamp(auth_time, UTC)
        except (OverflowError, OSError, ValueError):
            return carried, None
        return {**carried, "auth_time": auth_time}, started + self.session_max_lifetime

    def _expires_in(self, session_end: datetime | None) -> int:
        """The access token's lifetime in seconds (RFC 6749 §5.1), shorter near the end of
        its session."""
        ttl = int(self.codec.ttl(TokenType.ACCESS).total_seconds())
        if session_end is None:
            return ttl
        return max(0, min(ttl, math.ceil((session_end - self.clock()).total_seconds())))


def _amr_of(claims: TokenClaims) -> list[str]:
    """The methods a session was signed in with, as its (signed) refresh token says."""
    amr = claims.extra.get("amr")
    if isinstance(amr, list) and amr and all(isinstance(m, str) for m in amr):
        return amr
    return list(AMR_PASSWORD)  # tokens issued before `amr` existed: a password sign-in
