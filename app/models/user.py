"""The `users` table of the original design, with case-insensitive uniqueness."""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime

from sqlalchemy import Boolean, Integer, String, false, func, select, text, true
from sqlalchemy.orm import Mapped, column_property, mapped_column

from app.models.base import Base, UTCDateTime
from app.models.role import UserRole
from app.utils.email_address import email_key


def _now() -> datetime:
    return datetime.now(UTC)


def normalize_email(email: str) -> str:
    """The one key of an address, for storing and for every look-up (registration, login,
    import, CLI): NFKC, IDNA domain, lower case; see app/utils/email_address.py."""
    return email_key(email)


def normalize_username(username: str) -> str:
    """`Alice` and `alice` are one account: the unique key is the case-folded name.

    NFKC first, as for emails: usernames are ASCII by pattern, so `alice` typed in
    fullwidth letters (U+FF41 ...) at login means `alice`.
    """
    return unicodedata.normalize("NFKC", username).strip().casefold()


def is_email_identifier(identifier: str) -> bool:
    """Usernames cannot contain `@`, so an `@` means an email; after NFKC, since a fullwidth
    at sign (U+FF20) becomes one in the email's normalisation."""
    return "@" in unicodedata.normalize("NFKC", identifier)


def normalize_identifier(identifier: str) -> str:
    """The key of a login identifier: an email's or a username's."""
    if is_email_identifier(identifier):
        return normalize_email(identifier)
    return normalize_username(identifier)


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
    # Proven by a link mailed to the address (or by a password reset through it).
    email_verified: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=_now)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=_now, onupdate=_now)
    last_login: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # On once a TOTP enrolment is confirmed (app.models.mfa holds the key and the codes).
    mfa_enabled: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Moved by every change that must void the account's pending links (reset,
    # verification, email change): a one-time token carries the value it was issued
    # under and is refused once they differ (app/services/one_time_tokens.py).
    token_epoch: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))

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
        return parse_roles(self.roles_text)

    def __repr__(self) -> str:  # never include the hash
        return f"User(id={self.id!r}, username={self.username!r})"


def parse_roles(roles_text: str | None) -> list[str]:
    """The role names of `User.roles_text` (comma-separated, or None for none), sorted."""
    return sorted(roles_text.split(",")) if roles_text else []
