"""Two-factor authentication state: the TOTP key and the recovery codes.

`mfa_totp` holds one row per user with an enrolment, pending (`confirmed_at` null) or on.
The secret is stored encrypted (AES-GCM, the user id as associated data). `last_step` is the
last time step accepted for the user: a code is accepted by a conditional UPDATE that moves
it forward, so each code works once, also across workers and hosts.

`mfa_recovery_codes` keeps argon2id hashes, each with a `lookup` tag: a keyed hash (HMAC
under a key derived from SECRET_KEY) of a few bytes, so that a submitted code is checked
against the one row whose tag it matches instead of against every unused code. The tag is
not a verifier: it is short, and the argon2id hash still decides. `used_at` is set once,
conditionally. Codes issued before the tag existed have none (null) and are found as
before.

Sign-ins waiting for their second factor are `signin_flows` (app.models.signin_flow).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String
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
    __table_args__ = (Index("ix_mfa_recovery_codes_user_id_lookup", "user_id", "lookup"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    code_hash: Mapped[str] = mapped_column(String(255))
    lookup: Mapped[str | None] = mapped_column(String(32), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)

    def __repr__(self) -> str:
        return f"MfaRecoveryCode(id={self.id!r}, user_id={self.user_id!r})"
