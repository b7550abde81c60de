"""The notices of two-factor authentication turned on or off, and of providers linked or
unlinked."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.mail.composers import Composed, Job, composer, notice
from app.models.mail import MailKind


@composer(MailKind.MFA_ENABLED)
async def mfa_enabled(
    session: AsyncSession, settings: Settings, job: Job, now: datetime
) -> Composed | str:
    return notice(
        "Two-factor authentication was just turned on for your account: signing in now "
        "asks for a code from your authenticator app after the password.",
        "If this was not you, reset your password at once with the "
        '"forgot password" link: whoever did it can sign in to your account.',
    )


@composer(MailKind.MFA_DISABLED)
async def mfa_disabled(
    session: AsyncSession, settings: Settings, job: Job, now: datetime
) -> Composed | str:
    by_admin = bool(job.data.get("by_admin"))
    who = "by an administrator" if by_admin else "with your password"
    return notice(
        f"Two-factor authentication was just turned off for your account ({who}): signing "
        "in now needs the password alone.",
        "If you did not ask for this, reset your password and turn two-factor "
        "authentication on again.",
    )


def _provider(job: Job) -> str:
    name = job.data.get("provider_name")
    return name if isinstance(name, str) and name else "another provider"


@composer(MailKind.IDENTITY_LINKED)
async def identity_linked(
    session: AsyncSession, settings: Settings, job: Job, now: datetime
) -> Composed | str:
    return notice(
        f"Your {_provider(job)} account was just linked to your account here: it can now "
        "sign you in.",
        "If this was not you, unlink it on your account page and reset your password at "
        'once with the "forgot password" link.',
    )


@composer(MailKind.IDENTITY_UNLINKED)
async def identity_unlinked(
    session: AsyncSession, settings: Settings, job: Job, now: datetime
) -> Composed | str:
    return notice(
        f"Your {_provider(job)} account was just unlinked from your account here: it no "
        "longer signs you in.",
        'If this was not you, reset your password at once with the "forgot password" link.',
    )
