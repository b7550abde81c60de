"""The `users` table of the original design, with case-insensitive uniqueness."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Boolean, Integer, String, func, select, true
from sqlalchemy.orm import Mapped, column_property, mapped_column

from app.models.base import Base, UTCDateTime
from app.models.role import UserRole


def _now() -> datetime:
    return datetime.now(UTC)


def normalize_email(email: str) -> str:
    """Emails compare case-insensitively (API.md): stored and looked up in lower case."""
    return email.strip().lower()


def normalize_username(username: str) -> str:
    """`Alice` and `alice` are one account: the unique key is the case-folded name."""
    return username.strip().casefold()


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(50))
    # Unique indexes on normalised columns give case-insensitive uniqueness that holds on
    # SQLite and PostgreSQL alike, without relying on collations or functional indexes.
    username_normalized: Mapped[str] = mapped_column(String(50), unique=True)
    email: Mapped[str] = mapped_column(String(100), unique=True)
    hashed_password: Mapped[str] = mapped_column(String(255))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=_now)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=_now, onupdate=_now)
    last_login: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # The user's roles, comma-joined, read by the same SELECT that loads the user: the
    # bearer check gets them without a second round trip. Role names hold no comma.
    # Not expired by a flush: code that changes roles sets it (RoleService).
    roles_text: Mapped[str | None] = column_property(
        select(func.aggregate_strings(UserRole.role, ","))
        .where(UserRole.user_id == id)
        .correlate_except(UserRole)
        .scalar_subquery(),
        expire_on_flush=False,
    )

    @property
    def roles(self) -> list[str]:
        """The user's roles, sorted (empty for most users)."""
        return sorted(self.roles_text.split(",")) if self.roles_text else []

    def __repr__(self) -> str:  # never include the hash
        return f"User(id={self.id!r}, username={self.username!r})"
