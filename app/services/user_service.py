"""Users in the database: look-ups by id, email or username, creation, login bookkeeping."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.models.session import AuthSession
from app.models.user import User, normalize_email, normalize_username
from app.utils.exceptions import UserAlreadyExistsException


class UserService:
    """Data access for users; knows no HTTP. Flushes, never commits: the caller owns that."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get_by_id(self, user_id: int) -> User | None:
        return await self.session.get(User, user_id)

    async def get_by_email(self, email: str) -> User | None:
        stmt = select(User).where(User.email == normalize_email(email))
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def get_by_username(self, username: str) -> User | None:
        stmt = select(User).where(User.username_normalized == normalize_username(username))
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def get_by_identifier(self, identifier: str) -> User | None:
        """Email or username: usernames cannot contain `@`, so an `@` means an email."""
        if "@" in identifier:
            return await self.get_by_email(identifier)
        return await self.get_by_username(identifier)

    async def create(self, *, email: str, username: str, hashed_password: str) -> User:
        """Insert a user; raises UserAlreadyExistsException when email or username is taken.

        No look-up first: the unique indexes decide, so two registrations that race for
        the same name cannot both succeed and the loser gets a 409, never a 500.
        """
        user = User(
            email=normalize_email(email),
            username=username,
            username_normalized=normalize_username(username),
            hashed_password=hashed_password,
            is_active=True,
        )
        self.session.add(user)
        try:
            await self.session.flush()
        except IntegrityError:
            raise UserAlreadyExistsException() from None
        return user

    async def record_login(self, user: User, when: datetime, new_hash: str | None) -> None:
        """Set `last_login`, and store an upgraded password hash when there is one."""
        user.last_login = when
        if new_hash is not None:
            user.hashed_password = new_hash
        await self.session.flush()

    async def set_active(self, user: User, active: bool) -> None:
        """Activate or deactivate; deactivation also ends every session of the user, so
        its tokens stay dead even if the account is activated again (ASVS 5.0 §7.4.2)."""
        user.is_active = active
        if not active:
            await self.session.execute(delete(AuthSession).where(AuthSession.user_id == user.id))
        await self.session.flush()

    async def list_users(self, *, inactive_only: bool = False, limit: int = 100) -> Sequence[User]:
        stmt = select(User).order_by(User.id).limit(limit)
        if inactive_only:
            stmt = stmt.where(User.is_active.is_(False))
        return (await self.session.execute(stmt)).scalars().all()
