"""`signing_keys`: the service's asymmetric JWT keys, current and retired.

The public JWK is stored as is (it is published); the private key only encrypted
(`app.core.signing_keys.KeyCipher`). `current` is TRUE on the one key that signs and NULL
on every other: its unique constraint lets only one key be current, so two workers that
create or rotate at the same moment cannot both win (the loser's INSERT fails and retries).
A revoked key (`revoked_at`) is never current, never published and verifies nothing.

`purpose` keeps two sets apart: `access` (the tokens of JWT_ALGORITHM) and `id_token` (the
OpenID Connect ID tokens, always asymmetric): one key of each purpose is current. ID tokens
use the access keys themselves when both algorithms are the same.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, UTCDateTime


class SigningKey(Base):
    __tablename__ = "signing_keys"
    __table_args__ = (UniqueConstraint("purpose", "current"),)

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    algorithm: Mapped[str] = mapped_column(String(16))
    public_jwk: Mapped[dict[str, str]] = mapped_column(JSON)
    private_key_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    current: Mapped[bool | None] = mapped_column(Boolean, default=True)
    purpose: Mapped[str] = mapped_column(String(16), default="access", server_default="access")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    activated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None, index=True)
    # Set by `authsvc keys revoke`: unpublished and refused at once, whatever the lifetimes.
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)

    def __repr__(self) -> str:  # never the key material
        return f"SigningKey(kid={self.kid!r}, algorithm={self.algorithm!r})"
