"""Two-factor authentication state: the TOTP key, recovery codes, pending sign-ins.

`mfa_totp` holds one row per user with an enrolment, pending (`confirmed_at` null) or on.
The secret is stored encrypted (AES-GCM, the user id as associated data). `last_step` is the
last time step accepted for the user: a code is accepted by a conditional UPDATE that moves
it forward, so each code works once, also across workers and hosts.

`mfa_recovery_codes` keeps argon2id hashes only; `used_at` is set once, conditionally.

`mfa_challenges` is the sign-in waiting for its second factor: the row of an `mfa_token`
(stored as its SHA-256), with the attempts made so far and its expiry.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, UTCDateTime


class MfaTotp(Base):
    __tablename__ = "mfa_totp"

    user_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    secret_encrypted: Mapped[str] = mapped_column(String(128))
    last_step: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)

    def __repr__(self) -> str:  # never the secret
        return f"MfaTotp(user_id={self.user_id!r}, confirmed={self.confirmed_at is not None})"


class MfaRecoveryCode(Base):
    __tablename__ = "mfa_recovery_codes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    code_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)

    def __repr__(self) -> str:
        return f"MfaRecoveryCode(id={self.id!r}, user_id={self.user_id!r})"


class MfaChallenge(Base):
    __tablename__ = "mfa_challenges"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # SHA-256 of the mfa_token
    user_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    # The per-account throttle key of the identifier the password was given with.
    throttle_key: Mapped[str] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)

    def __repr__(self) -> str:
        return f"MfaChallenge(user_id={self.user_id!r}, attempts={self.attempts!r})"
