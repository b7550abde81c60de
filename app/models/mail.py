"""`mail_outbox`: mail written in the transaction of the action that causes it.

A row is a job for the background sender (app/mail/sender.py), not a rendered message: it
names the kind of mail, the address and the facts the mail needs. Mails that carry a link
get their one-time token when the sender renders them, so the outbox never holds a token
and a copy of the database gives no working link. `claim_id` and `lease_until` make the
sender's claim on a row exclusive across processes and hosts until the lease expires.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, UTCDateTime


class MailStatus(StrEnum):
    PENDING = "pending"
    SENDING = "sending"  # claimed by a sender whose lease runs until `lease_until`
    SENT = "sent"
    FAILED = "failed"


class MailKind(StrEnum):
    PASSWORD_RESET = "password_reset"  # noqa: S105 — "a reset was asked for this address"
    VERIFY_EMAIL = "verify_email"  # "verify this address, if it still needs it"
    EMAIL_CHANGE = "email_change"  # verification link to a new address
    EMAIL_CHANGE_NOTICE = "email_change_notice"  # to the old address
    PASSWORD_CHANGED = "password_changed"  # noqa: S105 — notice after a reset or a change
    MFA_ENABLED = "mfa_enabled"  # notice: two-factor turned on
    MFA_DISABLED = "mfa_disabled"  # notice: two-factor turned off (by the user or an admin)
    PASSKEY_ADDED = "passkey_added"  # notice: a passkey was added to the account
    PASSKEY_REMOVED = "passkey_removed"  # notice: a passkey was removed
    EMAIL_CHANGED = "email_changed"  # notice to the old address once the change is done
    ACCOUNT_DELETED = "account_deleted"  # notice to the address of a deleted account
    IDENTITY_LINKED = "identity_linked"  # notice: another provider can now sign in
    IDENTITY_UNLINKED = "identity_unlinked"  # notice: a provider was unlinked


class OutboxMail(Base):
    __tablename__ = "mail_outbox"
    __table_args__ = (Index("ix_mail_outbox_status_next_attempt_at", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    recipient: Mapped[str] = mapped_column(String(254))
    subject: Mapped[str] = mapped_column(String(200))
    # The facts the mail needs (user id, new address); never a token, a link or a password.
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default=MailStatus.PENDING.value)
    # Tries the server answered with a refusal; a failure to reach it defers instead.
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    deferrals: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    claim_id: Mapped[str | None] = mapped_column(String(32), default=None)
    last_error: Mapped[str | None] = mapped_column(String(200), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)

    def __repr__(self) -> str:  # never the address
        return f"OutboxMail(id={self.id!r}, kind={self.kind!r}, status={self.status!r})"
