"""The notice of a deleted account (by its owner or an admin)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.mail.composers import Composed, Job, composer, notice
from app.models.mail import MailKind


@composer(MailKind.ACCOUNT_DELETED)
async def account_deleted(
    session: AsyncSession, settings: Settings, job: Job, now: datetime
) -> Composed | str:
    return notice(
        "The account of this address was deleted, with everything tied to it. "
        "It can no longer sign in.",
        "If this was not you, contact the service's support.",
    )
