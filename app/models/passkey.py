"""Passkeys (WebAuthn credentials), the opaque handle each user is known by to their
authenticators, and the challenges of ceremonies in progress.

`passkeys` holds one row per registered credential: its id and public key (COSE), the
signature counter last seen, whether it may be synced (`backup_eligible`, fixed at
creation: a device-bound credential never becomes one that is not) and whether it is
backed up now.

`passkey_user_handles` gives each user a random handle (WebAuthn's `user.id`): the
authenticator stores it and returns it as `userHandle` at sign-in. It is not the user id,
which would tell every relying party's account numbers to whoever holds the authenticator.

`webauthn_challenges` holds each challenge handed out, by its SHA-256, until it is used
(deleted by the request that uses it: a conditional DELETE, so it works once across
workers and hosts) or expires.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, UTCDateTime


class Passkey(Base):
    __tablename__ = "passkeys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    credential_id: Mapped[bytes] = mapped_column(LargeBinary(1023), unique=True)
    public_key: Mapped[bytes] = mapped_column(LargeBinary)
    sign_count: Mapped[int] = mapped_column(Integer, default=0)
    backup_eligible: Mapped[bool] = mapped_column(Boolean, default=False)
    backed_up: Mapped[bool] = mapped_column(Boolean, default=False)
    transports: Mapped[list[str]] = mapped_column(JSON, default=list)
    name: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)

    def __repr__(self) -> str:
        return f"Passkey(id={self.id!r}, user_id={self.user_id!r})"


class PasskeyUserHandle(Base):
    __tablename__ = "passkey_user_handles"

    user_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    handle: Mapped[bytes] = mapped_column(LargeBinary(64), unique=True)


class WebauthnChallenge(Base):
    __tablename__ = "webauthn_challenges"
    __table_args__ = (Index("ix_webauthn_challenges_expires_at", "expires_at"),)

    # SHA-256 (hex) of the challenge: the table never holds one that could still be used.
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    # registration, signin, second_factor: a challenge answers only the ceremony it began.
    purpose: Mapped[str] = mapped_column(String(16))
    # The account a registration or a second step is for; None for a passwordless sign-in.
    user_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("users.id", ondelete="CASCADE"), default=None
    )
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
