"""One-time tokens (reset, verification, email change): issued, checked and used up."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import CursorResult, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from app.models.one_time_token import OneTimeToken, TokenPurpose
from app.models.user import User

# 32 random bytes: 43 URL-safe characters (A-Z a-z 0-9 - _), 256 bits.
TOKEN_BYTES = 32
# Longer input cannot be a token of ours; refusing it early keeps hashing bounded.
TOKEN_MAX_CHARS = 128


def hash_token(token: str) -> str:
    """The stored form of a token: SHA-256, hex. A slow hash is not needed at 256 bits."""
    return hashlib.sha256(token.encode()).hexdigest()


# The purposes whose links give control of the account (a new password, a new address):
# those a password change or reset, signing out everywhere, a deactivation, an address
# change or a newer email-change request void. A verification link only proves that its
# address is reachable, and stays good while the account keeps that address.
VOIDABLE = (TokenPurpose.PASSWORD_RESET, TokenPurpose.EMAIL_CHANGE)


def bound_to(row: OneTimeToken, user: User) -> bool:
    """Whether a live token still speaks for the account as it is now.

    A reset or verification token must have been mailed to the account's current
    address: a link that went to an address the account no longer has proves nothing
    about its owner. A reset or email-change token must carry the user's epoch: nothing
    voided the account's links since it was asked for. (An email-change token names the
    new address; a move away from the address it was asked from moves the epoch.)
    """
    if row.purpose in VOIDABLE and row.epoch != user.token_epoch:
        return False
    return row.purpose == TokenPurpose.EMAIL_CHANGE.value or row.email == user.email


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
        email: str,
        epoch: int,
    ) -> tuple[str, int]:
        """A new token and its row id; only its hash is stored. `email` is the address it
        is mailed to, `epoch` the user's `token_epoch` it is valid under."""
        token = secrets.token_urlsafe(TOKEN_BYTES)
        row = OneTimeToken(
            token_hash=hash_token(token),
            purpose=purpose.value,
            user_id=user_id,
            email=email,
            epoch=epoch,
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
        writer, serialises them, and the later one re-checks `used_at`). `void_all` marks
        the user's tokens used in the same way, so a use and a voiding that race are
        serialised on the token's row too, and the epoch is re-read in the statement.
        """
        current_epoch = (
            select(User.token_epoch).where(User.id == OneTimeToken.user_id).scalar_subquery()
        )
        voided = OneTimeToken.purpose.in_([p.value for p in VOIDABLE]) & (
            OneTimeToken.epoch != current_epoch
        )
        stmt = (
            update(OneTimeToken)
            .where(
                OneTimeToken.id == row.id,
                OneTimeToken.used_at.is_(None),
                OneTimeToken.expires_at > now,
                ~voided,
            )
            .values(used_at=now)
            .execution_options(synchronize_session=False)
        )
        result = await self.session.execute(stmt)
        assert isinstance(result, CursorResult)
        return result.rowcount == 1

    async def void_all(self, user: User, *, now: datetime) -> int:
        """Void every pending reset and email-change link of the user, also those whose
        mail is still in the outbox: the user's epoch moves, so a token issued under the
        old one (by a sender rendering right now, too) is refused when used.
        Returns the new epoch. The increment is done by the database: two voidings that
        race both count.
        """
        stmt = (
            update(User)
            .where(User.id == user.id)
            .values(token_epoch=User.token_epoch + 1)
            .returning(User.token_epoch)
            .execution_options(synchronize_session=False)
        )
        epoch = int((await self.session.execute(stmt)).scalar_one())
        set_committed_value(user, "token_epoch", epoch)
        await self.session.execute(
            update(OneTimeToken)
            .where(
                OneTimeToken.user_id == user.id,
                OneTimeToken.purpose.in_([p.value for p in VOIDABLE]),
                OneTimeToken.used_at.is_(None),
            )
            .values(used_at=now)
            .execution_options(synchronize_session=False)
        )
        return epoch

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
