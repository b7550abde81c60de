"""One-time tokens (reset, verification, email change): issued, checked and used up."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import CursorResult, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.models.one_time_token import OneTimeToken, TokenPurpose

# 32 random bytes: 43 URL-safe characters (A-Z a-z 0-9 - _), 256 bits.
TOKEN_BYTES = 32
# Longer input cannot be a token of ours; refusing it early keeps hashing bounded.
TOKEN_MAX_CHARS = 128


def hash_token(token: str) -> str:
    """The stored form of a token: SHA-256, hex. A slow hash is not needed at 256 bits."""
    return hashlib.sha256(token.encode()).hexdigest()


class OneTimeTokens:
    """Data access for `one_time_tokens`; flushes or executes, never commits."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def issue(
        self,
        purpose: TokenPurpose,
        *,
        user_id: int,
        now: datetime,
        ttl: timedelta,
        email: str | None = None,
    ) -> tuple[str, int]:
        """A new token and its row id; only its hash is stored."""
        token = secrets.token_urlsafe(TOKEN_BYTES)
        row = OneTimeToken(
            token_hash=hash_token(token),
            purpose=purpose.value,
            user_id=user_id,
            email=email,
            created_at=now,
            expires_at=now + ttl,
        )
        self.session.add(row)
        await self.session.flush()
        return token, row.id

    async def find_live(
        self, token: str, *purposes: TokenPurpose, now: datetime
    ) -> OneTimeToken | None:
        """The unused, unexpired token of one of these purposes, or None; not used up."""
        if not token or len(token) > TOKEN_MAX_CHARS:
            return None
        stmt = select(OneTimeToken).where(
            OneTimeToken.token_hash == hash_token(token),
            OneTimeToken.purpose.in_([p.value for p in purposes]),
            OneTimeToken.used_at.is_(None),
            OneTimeToken.expires_at > now,
        )
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def use(self, row: OneTimeToken, *, now: datetime) -> bool:
        """Use the token up; False when a concurrent use (or its expiry) came first.

        One conditional UPDATE checked by its row count: of two requests with the same
        token exactly one matches the row (PostgreSQL's row lock, or SQLite's single
        writer, serialises them, and the later one re-checks `used_at`).
        """
        stmt = (
            update(OneTimeToken)
            .where(
                OneTimeToken.id == row.id,
                OneTimeToken.used_at.is_(None),
                OneTimeToken.expires_at > now,
            )
            .values(used_at=now)
            .execution_options(synchronize_session=False)
        )
        result = await self.session.execute(stmt)
        assert isinstance(result, CursorResult)
        return result.rowcount == 1

    async def use_all(self, user_id: int, purpose: TokenPurpose, *, now: datetime) -> int:
        """Use up every outstanding token of a user and purpose (after a reset)."""
        stmt = (
            update(OneTimeToken)
            .where(
                OneTimeToken.user_id == user_id,
                OneTimeToken.purpose == purpose.value,
                OneTimeToken.used_at.is_(None),
            )
            .values(used_at=now)
            .execution_options(synchronize_session=False)
        )
        result = await self.session.execute(stmt)
        assert isinstance(result, CursorResult)
        return int(result.rowcount)

    async def discard(self, token_id: int) -> None:
        """Delete a token whose mail never went out: nobody holds it."""
        await self.session.execute(
            delete(OneTimeToken)
            .where(OneTimeToken.id == token_id)
            .execution_options(synchronize_session=False)
        )

    async def purge_expired(self, before: datetime) -> int:
        """Delete tokens that expired before `before`; returns the count."""
        stmt = (
            delete(OneTimeToken)
            .where(OneTimeToken.expires_at < before)
            .execution_options(synchronize_session=False)
        )
        result = await self.session.execute(stmt)
        assert isinstance(result, CursorResult)
        return int(result.rowcount)
