"""The notices of a passkey added or removed."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.mail.composers import Composed, Job, composer, notice
from app.models.mail import MailKind


def _named(job: Job) -> str:
    name = job.data.get("name")
    return f' ("{name}")' if isinstance(name, str) and name else ""


@composer(MailKind.PASSKEY_ADDED)
async def passkey_added(
    session: AsyncSession, settings: Settings, job: Job, now: datetime
) -> Composed | str:
    return notice(
        f"A passkey{_named(job)} was just added to your account: it signs in to it on its own.",
        "If this was not you, sign in, remove it from your account page and reset your "
        'password with the "forgot password" link.',
    )


@composer(MailKind.PASSKEY_REMOVED)
async def passkey_removed(
    session: AsyncSession, settings: Settings, job: Job, now: datetime
) -> Composed | str:
    return notice(
        f"A passkey{_named(job)} was just removed from your account: it no longer signs in to it.",
        'If this was not you, reset your password at once with the "forgot password" link.',
    )
