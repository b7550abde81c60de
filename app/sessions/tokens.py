"""Sessions and their tokens: starting one at a sign-in, refreshing, logging out, and the
bearer check of an access token; knows no HTTP."""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from app.audit.log import AuditLog, Event
from app.core.errors import InvalidTokenException, UserInactiveException
from app.core.jwt import (
    IssuedToken,
    TokenClaims,
    TokenCodec,
    TokenExpired,
    TokenRejected,
    TokenType,
)
from app.metrics import Metrics
from app.models.user import User
from app.sessions.service import SessionService
from app.throttle import Bucket, Throttle
from app.transaction import Transaction
from app.users.service import UserService
from app.utils.clock import Clock, utc_now
from app.utils.logger import bind_context, get_logger

log = get_logger(__name__)

# The `amr` of a session whose tokens predate the claim: they came from a password sign-in.
AMR_PASSWORD = ("pwd",)
# What the tokens of an application's session carry on through refreshes.
_APPLICATION_CLAIMS = ("client_id", "scope", "browser_sid")


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


def auth_time_of(claims: TokenClaims) -> datetime | None:
    """When the session of a token signed in (`auth_time`), None for tokens without it."""
    auth_time = claims.extra.get("auth_time")
    if not isinstance(auth_time, int) or isinstance(auth_time, bool):
        return None
    try:
        return datetime.fromtimestamp(auth_time, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def new_session_id() -> str:
    """A session's id (what its tokens carry as `sid`): 128 random bits, as hex."""
    return uuid.uuid4().hex


@dataclass(frozen=True, slots=True)
class TokenPair:
    access: IssuedToken
    refresh: IssuedToken
    expires_in: int


@dataclass(frozen=True, slots=True)
class AuthResult:
    user: User
    tokens: TokenPair
    # The claims the session's tokens carry (sid, auth_time, amr; client_id and scope for an
    # application's session), for the ID token of a refresh.
    session: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ClientGrant:
    """What an application's session is for: the client, the scopes, and the browser
    session (its sign-in: when, how) it belongs to."""

    client_id: str
    scope: str
    browser_session_id: str
    auth_time: datetime
    amr: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a bearer token speaks for: the user, the session the token belongs to, and
    when that session signed in (None for tokens issued before `auth_time` existed)."""

    user: User
    session_id: str
    auth_time: datetime | None = None


class SessionTokens:
    """A user's sessions as tokens: start, refresh, end, and the check of an access token."""

    def __init__(
        self,
        users: UserService,
        *,
        codec: TokenCodec,
        sessions: SessionService | None = None,
        throttle: Throttle | None = None,
        client_ip: str | None = None,
        user_agent: str | None = None,
        audit: AuditLog | None = None,
        rotate_refresh_tokens: bool = False,
        clock: Clock = utc_now,
        metrics: Metrics | None = None,
        transaction: Transaction | None = None,
        session_max_lifetime: timedelta | None = None,
    ) -> None:
        self.users = users
        self.codec = codec
        self.sessions = sessions or SessionService(users.session)
        self.throttle = throttle
        self.client_ip = client_ip
        self.user_agent = user_agent
        self.audit = audit or AuditLog(users.session, clock=clock)
        self.rotate_refresh_tokens = rotate_refresh_tokens
        self.clock = clock
        self.metrics = metrics or Metrics()
        self.transaction = transaction or Transaction(users.session)
        # A session ends at the latest this long after its sign-in, however often it is
        # refreshed (with rotation each refresh would otherwise push its end forward).
        self.session_max_lifetime = session_max_lifetime or codec.ttl(TokenType.REFRESH)

    async def refresh(self, refresh_token: str, *, client_id: str | None = None) -> AuthResult:
        """Exchange a refresh token for a new access token of the same session.

        Without rotation the refresh token stays valid until it expires or is logged out.
        With rotation a new refresh token replaces it, and presenting a replaced one
        revokes the whole session (RFC 9700 §4.14.2): a replay cannot be told from theft.
        A refresh token issued to an application (`client_id` claim) is refreshed only by
        that client (`client_id`: the client the request authenticated as or named).
        Raises RateLimitedException, TokenExpiredException, InvalidTokenException or
        UserInactiveException.
        """
        if self.throttle is not None:
            await self.throttle.client_attempt(Bucket.REFRESH_IP, self.client_ip)
        claims = await self._decode(refresh_token, TokenType.REFRESH)
        user_id, sid = self._session_of(claims)
        owner = claims.extra.get("client_id")
        if owner is not None and owner != client_id:
            self._token_rejected("other_client", TokenType.REFRESH)
            raise TokenRejected("other_client")
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
        return AuthResult(
            user, TokenPair(access, refresh, self._expires_in(session_end)), session=extra
        )

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
        user = await self._active_user(user_id, sid, TokenType.ACCESS)
        return Principal(user, sid, auth_time_of(claims))

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
        tokens = await self.start(user)
        if tokens is None:
            raise UserInactiveException()
        return tokens

    async def start(self, user: User, amr: tuple[str, ...] = AMR_PASSWORD) -> TokenPair | None:
        """A new session's tokens, or None when the user is no longer active."""
        await self.codec.prepare_to_sign()
        sid = new_session_id()
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

    async def start_for_client(
        self, user: User, grant: ClientGrant, *, sid: str | None = None
    ) -> TokenPair | None:
        """An application's session under a browser session: its tokens carry `client_id`
        and `scope`, the browser session's `auth_time` and `amr`, and end with it (and at
        its absolute end). None when the browser session ended or the user is inactive.
        `sid`: the session's id when the caller recorded it already (`new_session_id`)."""
        await self.codec.prepare_to_sign()
        sid = sid or new_session_id()
        now = self.clock()
        session_end = grant.auth_time + self.session_max_lifetime
        extra: dict[str, object] = {
            "sid": sid,
            "auth_time": int(grant.auth_time.timestamp()),
            "amr": list(grant.amr),
            "client_id": grant.client_id,
            "scope": grant.scope,
            "browser_sid": grant.browser_session_id,
        }
        subject = str(user.id)
        access = self.codec.issue(
            subject, TokenType.ACCESS, extra={**extra, "roles": user.roles}, not_after=session_end
        )
        refresh = self.codec.issue(subject, TokenType.REFRESH, extra=extra, not_after=session_end)
        started = await self.sessions.start_child(
            sid=sid,
            parent_id=grant.browser_session_id,
            client_id=grant.client_id,
            user_id=user.id,
            refresh_jti=refresh.jti,
            now=now,
            expires_at=refresh.expires_at,
        )
        if not started:
            return None
        return TokenPair(access, refresh, self._expires_in(session_end))

    def _session_claims(self, claims: TokenClaims) -> tuple[dict[str, object], datetime | None]:
        """The claims a session's new tokens carry on, and the session's absolute end (None
        for a token issued before `auth_time` was: then the session row's start decides)."""
        carried: dict[str, object] = {"sid": claims.extra["sid"], "amr": _amr_of(claims)}
        for name in _APPLICATION_CLAIMS:
            if isinstance(claims.extra.get(name), str):
                carried[name] = claims.extra[name]
        started = auth_time_of(claims)
        if started is None:
            return carried, None
        return {
            **carried,
            "auth_time": claims.extra["auth_time"],
        }, started + self.session_max_lifetime

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
