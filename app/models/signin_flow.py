"""`signin_flows`: a sign-in in progress, between its first factor and its completion.

A row is what the flow knows between two requests, which may reach different workers: the
account, which methods are done and which are on offer next, the assurance reached so far
(`amr`, RFC 8176), where the sign-in goes once complete (a JSON answer today; an
authorization request or a page later), the attempts made, the expiry, and a stamp of the
account's credentials when the first factor was checked. The flow's token (the JSON API's
`mfa_token`) is 256 random bits, stored as its SHA-256 only.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, UTCDateTime


class SignInFlow(Base):
    __tablename__ = "signin_flows"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # SHA-256 of the token
    user_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    # The per-account throttle key of the identifier the first factor was given with.
    throttle_key: Mapped[str] = mapped_column(String(64))
    methods_done: Mapped[list[str]] = mapped_column(JSON)
    amr: Mapped[list[str]] = mapped_column(JSON)
    next_step: Mapped[str] = mapped_column(String(32))
    offered: Mapped[list[str]] = mapped_column(JSON)
    # Where a completed sign-in goes: "json" (the answer of the request that completes it);
    # `continue_ref` names the authorization request or page of other kinds.
    continue_with: Mapped[str] = mapped_column(String(32))
    continue_ref: Mapped[str | None] = mapped_column(String(2048), default=None)
    # A digest of the credentials the first factor was checked against: a password change
    # or reset in between makes the flow fail.
    credential_stamp: Mapped[str] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # The provider a federated first factor came from, for the sign-in's audit event.
    provider: Mapped[str | None] = mapped_column(String(32), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)

    def __repr__(self) -> str:
        return f"SignInFlow(user_id={self.user_id!r}, next_step={self.next_step!r})"
