"""Sessions in the database: start, look up with their user, rotate, revoke, purge."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CursorResult, Integer, String, delete, insert, literal, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.models.base import UTCDateTime
from app.models.session import AuthSession
from app.models.user import User


class SessionService:
    """Data access for `auth_sessions`; flushes or executes, never commits."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def start(
        self, *, sid: str, user_id: int, refresh_jti: str, now: datetime, expires_at: datetime
    ) -> bool:
        """Insert the session only while its user is active; False when the user is not.

        A login checks `is_active` before hashing, and a deactivation may commit while the
        hash runs; it deletes the user's sessions, but not one inserted after it. So the
        INSERT ... SELECT re-reads `is_active` in the statement that writes the row, under
        a share lock on the user row (PostgreSQL; SQLite has one writer at a time): a
        deactivation either commits first and no row is written, or waits for this
        transaction and then deletes the new row with the others.
        """
        active_user = (
            select(
                literal(sid, String),
                User.id,
                literal(refresh_jti, String),
                literal(now, UTCDateTime),
                literal(expires_at, UTCDateTime),
            )
            .where(User.id == literal(user_id, Integer), User.is_active.is_(True))
            .with_for_update(read=True)
        )
        stmt = insert(AuthSession).from_select(
            ["id", "user_id", "refresh_jti", "created_at", "expires_at"], active_user
        )
        result = await self.session.execute(stmt)
        assert isinstance(result, CursorResult)
        return result.rowcount == 1

    async def user_of(
        self, *, sid: str, user_id: int, refresh_jti: str | None = None
    ) -> User | None:
        """The user of a live session, or None when the session is gone (revoked or purged).

        This is the per-request cost of revocation: the session is joined into the user
        look-up every bearer request already made, so it is still one round trip, on two
        primary keys. `refresh_jti`, when given, must also be the session's current one.
        """
        stmt = (
            select(User)
            .join(AuthSession, AuthSession.user_id == User.id)
            .where(User.id == user_id, AuthSession.id == sid)
        )
        if refresh_jti is not None:
            stmt = stmt.where(AuthSession.refresh_jti == refresh_jti)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def rotate(
        self,
        *,
        sid: str,
        user_id: int,
        old_jti: str,
        new_jti: str,
        expires_at: datetime,
        started_after: datetime | None = None,
    ) -> bool:
        """Swap the session's refresh token if `old_jti` is still the current one.

        One conditional UPDATE checked by its row count: of several concurrent refreshes
        with the same token exactly one matches the row, on SQLite and PostgreSQL alike
        (the row lock, or SQLite's single writer, serialises them; the later ones re-check
        the WHERE clause and find the new jti). With `started_after`, a session that began
        at or before it (past its absolute lifetime) is not rotated either.
        """
        conditions = [
            AuthSession.id == sid,
            AuthSession.user_id == user_id,
            AuthSession.refresh_jti == old_jti,
        ]
        if started_after is not None:
            conditions.append(AuthSession.created_at > started_after)
        stmt = (
            update(AuthSession)
            .where(*conditions)
            .values(refresh_jti=new_jti, expires_at=expires_at)
            .execution_options(synchronize_session=False)
        )
        result = await self.session.execute(stmt)
        assert isinstance(result, CursorResult)
        return result.rowcount == 1

    async def revoke(self, *, sid: str, user_id: int) -> bool:
        """End a session and with it every token it issued; False when it was already gone."""
        stmt = (
            delete(AuthSession)
            .where(AuthSession.id == sid, AuthSession.user_id == user_id)
            .execution_options(synchronize_session=False)
        )
        result = await self.session.execute(stmt)
        assert isinstance(result, CursorResult)
        return result.rowcount > 0

    async def revoke_all(self, user_id: int) -> int:
        """End every session of a user (deactivation); returns how many there were."""
        stmt = (
            delete(AuthSession)
            .where(AuthSession.user_id == user_id)
            .execution_options(synchronize_session=False)
        )
        result = await self.session.execute(stmt)
        assert isinstance(result, CursorResult)
        return int(result.rowcount)

    async def purge_expired(self, before: datetime) -> int:
        """Delete sessions whose refresh token expired before `before`; returns the count."""
        stmt = (
            delete(AuthSession)
            .where(AuthSession.expires_at < before)
            .execution_options(synchronize_session=False)
        )
        result = await self.session.execute(stmt)
        assert isinstance(result, CursorResult)
        return int(result.rowcount)
