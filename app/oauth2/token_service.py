"""Revocation (RFC 7009) and introspection (RFC 7662) of the service's own tokens."""

from __future__ import annotations

from typing import Any

from app.audit.log import Event
from app.core.errors import InvalidTokenException
from app.core.jwt import TokenClaims, TokenType
from app.signin.service import AuthService
from app.utils.logger import get_logger

log = get_logger(__name__)

_HINTS = {"access_token": TokenType.ACCESS, "refresh_token": TokenType.REFRESH}


def _search_order(hint: str | None) -> tuple[TokenType, TokenType]:
    # RFC 7009 §2.1: the hint only decides which kind is tried first; an unknown hint is
    # no reason to refuse (we support revoking both kinds), the search covers both.
    if _HINTS.get(hint or "") is TokenType.REFRESH:
        return TokenType.REFRESH, TokenType.ACCESS
    return TokenType.ACCESS, TokenType.REFRESH


class TokenService:
    """Works on the collaborators of an AuthService; knows no HTTP."""

    def __init__(self, auth: AuthService) -> None:
        self.auth = auth

    async def _claims(self, token: str, hint: str | None) -> TokenClaims | None:
        """The verified, unexpired claims of one of our access or refresh tokens."""
        for token_type in _search_order(hint):
            try:
                return await self.auth.codec.verify(token, token_type)
            except InvalidTokenException:  # expired, forged, garbage, or the other type
                continue
        return None

    @staticmethod
    def _session_of(claims: TokenClaims) -> tuple[int, str] | None:
        subject, sid = claims.subject, claims.extra.get("sid")
        if not (subject.isascii() and subject.isdigit()) or not isinstance(sid, str) or not sid:
            return None
        return int(subject), sid

    async def revoke(self, token: str, hint: str | None = None) -> None:
        """End the session of an access or refresh token: all of its tokens fail from now.

        Raises nothing for a bad token (RFC 7009 §2.2: unknown, expired or malformed tokens
        are simply not revoked).
        """
        claims = await self._claims(token, hint)
        session = self._session_of(claims) if claims is not None else None
        if claims is None or session is None:
            return
        user_id, sid = session
        if await self.auth.sessions.revoke(sid=sid, user_id=user_id):
            # The same event as a logout: to the account's owner both end a sign-in.
            self.auth.audit.record(
                Event.LOGOUT,
                user_id=user_id,
                actor_id=user_id,
                details={"session_id": sid, "via": "revoke"},
            )
            log.info("token revoked", user_id=user_id, token_type=claims.type.value)

    async def introspect(self, token: str, hint: str | None = None) -> dict[str, Any]:
        """RFC 7662 §2.2: active only for a token `/users/me` (access) or `/auth/refresh`
        (refresh) would accept right now: valid, unexpired, its session alive and, for a
        refresh token with rotation, still the session's current one, its user active."""
        claims = await self._claims(token, hint)
        session = self._session_of(claims) if claims is not None else None
        if claims is None or session is None:
            return {"active": False}
        user_id, sid = session
        refresh_jti = claims.jti if claims.type is TokenType.REFRESH else None
        user = await self.auth.sessions.user_of(sid=sid, user_id=user_id, refresh_jti=refresh_jti)
        if user is None or not user.is_active:
            return {"active": False}
        return {
            "active": True,
            "sub": claims.subject,
            "username": user.username,
            "token_type": f"{claims.type.value}_token",
            "exp": int(claims.expires_at.timestamp()),
            "iat": int(claims.issued_at.timestamp()),
            "iss": self.auth.codec.issuer,
            "aud": self.auth.codec.audience,
            "sid": sid,
            # The roles the user has now, not those the token was issued with: a resource
            # server that asks is told of a demotion at once.
            "roles": user.roles,
            "scope": "",
        }
