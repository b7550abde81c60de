"""Users in the database: look-ups by id, email or username, creation, login bookkeeping."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Insert, bindparam, delete, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from app.core.errors import UserAlreadyExistsException
from app.models.session import AuthSession
from app.models.user import User, is_email_identifier, normalize_email, normalize_username
from app.recovery.one_time_tokens import OneTimeTokens
from app.utils.clock import utc_now

# Look-ups by key in chunks: SQLite caps the parameters of one statement.
_KEY_CHUNK = 500


@dataclass(frozen=True, slots=True)
class NewUser:
    """An account to insert in bulk; `hashed_password` is any hash the hasher verifies."""

    email: str
    username: str
    hashed_password: str


def _storable(value: str) -> bool:
    """PostgreSQL text cannot hold NUL, so no stored email or username contains one; asking
    for one would make the driver fail (a 500) instead of simply finding nobody."""
    return "\x00" not in value


# A sign-in's look-ups, built once: a statement made per call pays for its construction
# and its cache key again.
_BY_EMAIL = select(User).where(User.email == bindparam("b_key"))
_BY_USERNAME = select(User).where(User.username_normalized == bindparam("b_key"))


class UserService:
    """Data access for users; knows no HTTP. Flushes, never commits: the caller owns that."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get_by_id(self, user_id: int) -> User | None:
        return await self.session.get(User, user_id)

    async def get_by_email(self, email: str) -> User | None:
        if not _storable(email):
            return None
        params = {"b_key": normalize_email(email)}
        return (await self.session.execute(_BY_EMAIL, params)).scalar_one_or_none()

    async def get_by_username(self, username: str) -> User | None:
        if not _storable(username):
            return None
        params = {"b_key": normalize_username(username)}
        return (await self.session.execute(_BY_USERNAME, params)).scalar_one_or_none()

    async def get_by_identifier(self, identifier: str) -> User | None:
        """Email or username: usernames cannot contain `@`, so an `@` means an email."""
        if "\x00" in identifier:
            # No stored email or username holds a NUL, and PostgreSQL refuses one in a query
            # parameter (a 500): such an identifier is simply unknown.
            return None
        if is_email_identifier(identifier):
            return await self.get_by_email(identifier)
        return await self.get_by_username(identifier)

    async def create(self, *, email: str, username: str, hashed_password: str | None) -> User:
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
        set_committed_value(user, "roles_text", None)  # a new account has no roles
        return user

    def record_login(self, user: User, when: datetime, new_hash: str | None) -> None:
        """Set `last_login`, and an upgraded password hash when there is one.

        Not flushed here: the login's next flush (its new session row) writes both in one
        round trip, the UPDATE first, so SQLite takes its write lock at once.
        """
        user.last_login = when
        if new_hash is not None:
            user.hashed_password = new_hash

    async def set_active(self, user: User, active: bool, *, now: datetime | None = None) -> None:
        """Activate or deactivate; deactivation also ends every session of the user and
        voids every pending link of it (reset, verification, email change), so its tokens
        stay dead even if the account is activated again (ASVS 5.0 §7.4.2)."""
        user.is_active = active
        if not active:
            await self.session.execute(delete(AuthSession).where(AuthSession.user_id == user.id))
            await OneTimeTokens(self.session).void_all(user, now=now or utc_now())
        await self.session.flush()

    async def list_users(self, *, inactive_only: bool = False, limit: int = 100) -> Sequence[User]:
        stmt = select(User).order_by(User.id).limit(limit)
        if inactive_only:
            stmt = stmt.where(User.is_active.is_(False))
        return (await self.session.execute(stmt)).scalars().all()

    async def existing_keys(
        self, emails: Iterable[str], usernames: Iterable[str]
    ) -> tuple[set[str], set[str]]:
        """Which of these emails and usernames are taken, in their normalised forms."""
        wanted_emails = sorted({normalize_email(e) for e in emails})
        wanted_names = sorted({normalize_username(u) for u in usernames})
        taken_emails: set[str] = set()
        taken_names: set[str] = set()
        for i in range(0, len(wanted_emails), _KEY_CHUNK):
            chunk = wanted_emails[i : i + _KEY_CHUNK]
            stmt = select(User.email).where(User.email.in_(chunk))
            taken_emails.update((await self.session.execute(stmt)).scalars())
        for i in range(0, len(wanted_names), _KEY_CHUNK):
            chunk = wanted_names[i : i + _KEY_CHUNK]
            stmt = select(User.username_normalized).where(User.username_normalized.in_(chunk))
            taken_names.update((await self.session.execute(stmt)).scalars())
        return taken_emails, taken_names

    async def create_many(self, users: Sequence[NewUser], *, skip_existing: bool) -> int:
        """Insert active users in one statement; returns how many rows were inserted.

        With `skip_existing`, a row whose email or username is taken (also by a registration
        racing this call) is left out; otherwise it raises UserAlreadyExistsException and
        nothing of this call is kept once the caller rolls back.
        """
        if not users:
            return 0
        rows = [
            {
                "email": normalize_email(u.email),
                "username": u.username,
                "username_normalized": normalize_username(u.username),
                "hashed_password": u.hashed_password,
                "is_active": True,
            }
            for u in users
        ]
        stmt: Insert = insert(User)
        if skip_existing:
            stmt = self._insert_ignoring_conflicts()
        try:
            result = await self.session.execute(stmt.returning(User.id), rows)
        except IntegrityError:
            raise UserAlreadyExistsException() from None
        return len(result.all())

    def _insert_ignoring_conflicts(self) -> Insert:
        # INSERT ... ON CONFLICT DO NOTHING, on any unique index (SQLite >= 3.24, PostgreSQL).
        # The service runs on these two backends only (see app/database.py).
        dialect = self.session.get_bind().dialect.name
        dialect_insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        return dialect_insert(User).on_conflict_do_nothing()
