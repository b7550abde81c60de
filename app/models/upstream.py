"""Sign-in with other providers: the identities linked to accounts, and the sign-ins in
progress at a provider.

An identity is the pair (provider, subject), never an address: the address a provider
reports is kept for display only. A state row lives from the redirect to the provider until
its callback (or a little longer: the offer to link after signing in to an existing
account), on the database every worker shares; its key is the SHA-256 of the `state`
value, and it belongs to one browser (the SHA-256 of that browser's id).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, UTCDateTime


class UpstreamIdentity(Base):
    __tablename__ = "upstream_identities"
    __table_args__ = (
        UniqueConstraint("provider", "subject", name="uq_upstream_identities_subject"),
        # One identity per provider and account: "Link" and "Unlink" name the provider.
        UniqueConstraint("user_id", "provider", name="uq_upstream_identities_user_provider"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    provider: Mapped[str] = mapped_column(String(32))
    subject: Mapped[str] = mapped_column(String(255))
    email: Mapped[str | None] = mapped_column(String(254), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class UpstreamState(Base):
    __tablename__ = "upstream_states"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    provider: Mapped[str] = mapped_column(String(32))
    browser: Mapped[str] = mapped_column(String(64), index=True)
    # "signin", "link" (from the account page), "pending_link" (a proven identity waiting
    # for its person to sign in to the account its address belongs to).
    purpose: Mapped[str] = mapped_column(String(16))
    user_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("users.id", ondelete="CASCADE"), default=None
    )
    nonce: Mapped[str | None] = mapped_column(String(64), default=None)
    code_verifier: Mapped[str | None] = mapped_column(String(128), default=None)
    subject: Mapped[str | None] = mapped_column(String(255), default=None)
    email: Mapped[str | None] = mapped_column(String(254), default=None)
    return_to: Mapped[str | None] = mapped_column(String(2048), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
