"""`one_time_tokens`: password-reset, email-verification and email-change tokens.

Only the SHA-256 of a token is stored: the token itself has 256 bits of randomness, so a
plain hash (no salt, no slow hash) is enough to make a copy of the table useless while
still letting the service find the row with one indexed look-up. A token is used up by a
conditional UPDATE on `used_at`, so of two concurrent uses exactly one succeeds.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, UTCDateTime


class TokenPurpose(StrEnum):
    PASSWORD_RESET = "password_reset"  # noqa: S105
    VERIFY_EMAIL = "verify_email"
    EMAIL_CHANGE = "email_change"


class OneTimeToken(Base):
    __tablename__ = "one_time_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    purpose: Mapped[str] = mapped_column(String(32))
    user_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    # The address the token was mailed to: the account's for a reset or a verification,
    # the new one for a change. A reset or verification link stops working once the
    # account's address is no longer this one.
    email: Mapped[str | None] = mapped_column(String(100), default=None)
    # The user's `token_epoch` when the link was asked for: a password change or reset,
    # signing out everywhere, a deactivation, an address change or a newer email-change
    # request moves the user's, and a reset or email-change link of an older one is refused.
    epoch: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)

    def __repr__(self) -> str:  # never the hash
        return f"OneTimeToken(id={self.id!r}, purpose={self.purpose!r})"
