"""The transactional outbox: a mail is a row written in the transaction of its cause.

The request that causes a mail only adds a row; if its transaction rolls back the mail is
gone with it, and once it commits the mail cannot be lost: the background sender
(app/mail/sender.py) delivers it, however long the mail server is down.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import event, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from app.models.mail import MailKind, MailStatus, OutboxMail
from app.models.user import normalize_email

SUBJECTS: dict[MailKind, str] = {
    MailKind.PASSWORD_RESET: "Reset your password",
    MailKind.VERIFY_EMAIL: "Confirm your email address",
    MailKind.EMAIL_CHANGE: "Confirm your new email address",
    MailKind.EMAIL_CHANGE_NOTICE: "Your email address is being changed",
    MailKind.PASSWORD_CHANGED: "Your password was changed",
    MailKind.MFA_ENABLED: "Two-factor authentication was turned on",
    MailKind.PASSKEY_ADDED: "A passkey was added to your account",
    MailKind.PASSKEY_REMOVED: "A passkey was removed from your account",
    MailKind.MFA_DISABLED: "Two-factor authentication was turned off",
    MailKind.IDENTITY_LINKED: "A sign-in provider was linked to your account",
    MailKind.IDENTITY_UNLINKED: "A sign-in provider was unlinked from your account",
    MailKind.EMAIL_CHANGED: "Your email address was changed",
    MailKind.ACCOUNT_DELETED: "Your account was deleted",
}
_WAKE_FLAG = "authsvc.outbox.wake"


class Outbox:
    """Adds mail jobs to the session's transaction; flushes, never commits."""

    def __init__(
        self,
        session: AsyncSession,
        *,
        clock: Callable[[], datetime],
        notify: Callable[[], None] | None = None,
    ) -> None:
        self.session = session
        self.clock = clock
        # Called once the transaction commits: this process's sender starts at once
        # instead of at its next poll. Other processes find the row when they poll.
        self.notify = notify

    async def enqueue(
        self,
        kind: MailKind,
        recipient: str,
        data: dict[str, Any] | None = None,
        *,
        wake: bool = True,
    ) -> None:
        """Add a mail job. `wake=False` leaves it to the senders' next poll: for requests
        whose timing must not depend on the address (see AccountService)."""
        now = self.clock()
        self.session.add(
            OutboxMail(
                kind=kind.value,
                recipient=normalize_email(recipient),
                subject=SUBJECTS[kind],
                data=dict(data or {}),
                status=MailStatus.PENDING.value,
                attempts=0,
                deferrals=0,
                next_attempt_at=now,
                created_at=now,
            )
        )
        await self.session.flush()
        if wake:
            self._wake_after_commit()

    def _wake_after_commit(self) -> None:
        notify = self.notify
        sync_session = self.session.sync_session
        if notify is None or sync_session.info.get(_WAKE_FLAG):
            return
        sync_session.info[_WAKE_FLAG] = True

        def after_commit(_: Session) -> None:
            sync_session.info.pop(_WAKE_FLAG, None)
            notify()

        event.listen(sync_session, "after_commit", after_commit, once=True)


class OutboxQueries:
    """What operators ask of the outbox (`authsvc mail ...`)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def list(self, *, failed_only: bool = False, limit: int = 100) -> Sequence[OutboxMail]:
        stmt = select(OutboxMail).order_by(OutboxMail.id.desc()).limit(limit)
        if failed_only:
            stmt = stmt.where(OutboxMail.status == MailStatus.FAILED.value)
        return (await self.session.execute(stmt)).scalars().all()

    async def retry(self, mail_id: int, *, now: datetime) -> OutboxMail | None:
        """Put a failed (or pending) mail back in the queue for now, with fresh attempts.

        Returns the mail, or None when there is no such mail. A sent mail or one being
        sent is left alone (the caller reports it).
        """
        mail = await self.session.get(OutboxMail, mail_id)
        if mail is None or mail.status not in (MailStatus.FAILED.value, MailStatus.PENDING.value):
            return mail
        await self.session.execute(
            update(OutboxMail)
            .where(
                OutboxMail.id == mail_id,
                OutboxMail.status.in_([MailStatus.FAILED.value, MailStatus.PENDING.value]),
            )
            .values(
                status=MailStatus.PENDING.value,
                attempts=0,
                deferrals=0,
                next_attempt_at=now,
                last_error=None,
            )
            .execution_options(synchronize_session=False)
        )
        await self.session.refresh(mail)
        return mail

    async def pending_count(self) -> int:
        stmt = select(func.count()).where(
            OutboxMail.status.in_([MailStatus.PENDING.value, MailStatus.SENDING.value])
        )
        return int((await self.session.execute(stmt)).scalar_one())
