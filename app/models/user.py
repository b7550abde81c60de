"""The `users` table of the original design, with case-insensitive uniqueness."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Boolean, Integer, String, false, true
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, UTCDateTime


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
    # On once a TOTP enrolment is confirmed (app.models.mfa holds the key and the codes).
    mfa_enabled: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    def __repr__(self) -> str:  # never include the hash
        return f"User(id={self.id!r}, username={self.username!r})"
