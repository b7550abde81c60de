"""The mails of account recovery and verification: what each says and whom it reaches.

The reset and verification requests are enqueued for any address (enumeration safety);
whether an account is there is decided here, when the sender renders the job, long after
the request answered. Mails with a link get their one-time token here too, so the outbox
never holds one and the link's lifetime starts when the mail leaves.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.log import Event
from app.config import Settings
from app.mail.composers import Composed, Job, composer, notice
from app.mail.messages import Content
from app.models.mail import MailKind
from app.models.one_time_token import TokenPurpose
from app.recovery.one_time_tokens import OneTimeTokens
from app.users.service import UserService


@composer(MailKind.PASSWORD_RESET)
async def password_reset(
    session: AsyncSession, settings: Settings, job: Job, now: datetime
) -> Composed | str:
    user = await UserService(session).get_by_email(job.recipient)
    if user is None or not user.is_active:
        return "no_active_account"
    minutes = settings.password_reset_token_expire_minutes
    token, token_id = await OneTimeTokens(session).issue(
        TokenPurpose.PASSWORD_RESET,
        user_id=user.id,
        now=now,
        ttl=timedelta(minutes=minutes),
        email=user.email,
        epoch=user.token_epoch,
    )
    # An admin's request recorded its own event, with the admin and the request;
    # "forgot password" cannot without a look-up that would time the address.
    audit: tuple[Event, int, dict[str, object]] | None = None
    if not job.data.get("audited"):
        audit = (Event.PASSWORD_RESET_REQUESTED, user.id, {"via": "forgot"})
    content = Content(
        (
            f"Hello {user.username},",
            "Somebody (hopefully you) asked to reset the password of your account. "
            f"The link below works once, for {minutes} minutes.",
        ),
        link=settings.link("reset", token),
        link_label="Choose a new password",
        closing="If you did not ask for this, ignore this mail: your password stays as it is.",
    )
    return Composed(content, token_id, audit)


@composer(MailKind.VERIFY_EMAIL)
async def verify_email(
    session: AsyncSession, settings: Settings, job: Job, now: datetime
) -> Composed | str:
    user = await UserService(session).get_by_email(job.recipient)
    if user is None or not user.is_active or user.email_verified:
        return "nothing_to_verify"
    hours = settings.email_verification_token_expire_hours
    token, token_id = await OneTimeTokens(session).issue(
        TokenPurpose.VERIFY_EMAIL,
        user_id=user.id,
        now=now,
        ttl=timedelta(hours=hours),
        email=user.email,
        epoch=user.token_epoch,
    )
    content = Content(
        (
            f"Hello {user.username},",
            "Please confirm that this address belongs to your account. "
            f"The link works once, for {hours} hours.",
        ),
        link=settings.link("verify", token),
        link_label="Confirm this address",
        closing="If you did not create an account, ignore this mail.",
    )
    return Composed(
        content, token_id, (Event.EMAIL_VERIFICATION_SENT, user.id, {"purpose": "verify"})
    )


@composer(MailKind.EMAIL_CHANGE)
async def email_change(
    session: AsyncSession, settings: Settings, job: Job, now: datetime
) -> Composed | str:
    user = await UserService(session).get_by_id(int(job.data.get("user_id", 0)))
    if user is None or not user.is_active:
        return "no_active_account"
    # The epoch of the request: a newer request, a password change or reset, or
    # signing out everywhere since then voided it (a job queued before this field
    # existed has none, and is voided too).
    if job.data.get("epoch") != user.token_epoch:
        return "superseded"
    token, token_id = await OneTimeTokens(session).issue(
        TokenPurpose.EMAIL_CHANGE,
        user_id=user.id,
        now=now,
        ttl=timedelta(hours=settings.email_verification_token_expire_hours),
        email=job.recipient,
        epoch=user.token_epoch,
    )
    content = Content(
        (
            f"Hello {user.username},",
            "Please confirm that your account should use this address from now on. "
            "Until you do, it keeps its current one.",
        ),
        link=settings.link("verify", token),
        link_label="Confirm the new address",
        closing="If you did not ask for this, ignore this mail.",
    )
    return Composed(
        content, token_id, (Event.EMAIL_VERIFICATION_SENT, user.id, {"purpose": "change"})
    )


@composer(MailKind.EMAIL_CHANGE_NOTICE)
async def email_change_notice(
    session: AsyncSession, settings: Settings, job: Job, now: datetime
) -> Composed | str:
    hint = str(job.data.get("new_email_hint", "a new address"))
    return notice(
        f"Somebody signed in to your account asked to change its address to {hint}. "
        "The change happens only once the new address is confirmed.",
        'If this was not you, reset your password now with the "forgot '
        'password" link, or sign out everywhere: either cancels this change. '
        "Then choose a new password: whoever asked knows the current one.",
    )


@composer(MailKind.EMAIL_CHANGED)
async def email_changed(
    session: AsyncSession, settings: Settings, job: Job, now: datetime
) -> Composed | str:
    hint = str(job.data.get("new_email_hint", "a new address"))
    return notice(
        f"The address of your account was changed to {hint}. This address no "
        "longer signs in to it and gets no more mail about it.",
        "If this was not you, contact the service's support at once: whoever "
        "did it knew your password.",
    )


@composer(MailKind.PASSWORD_CHANGED)
async def password_changed(
    session: AsyncSession, settings: Settings, job: Job, now: datetime
) -> Composed | str:
    return notice(
        "The password of your account was just changed, and every device signed "
        "in to it was signed out.",
        "If this was not you, reset your password at once with the "
        '"forgot password" link, and check the address of your account.',
    )
