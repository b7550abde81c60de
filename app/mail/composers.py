"""What each kind of mail says and to whom, decided by the flow that sends it.

A flow registers one composer per MailKind it enqueues (`@composer(MailKind.X)` in its own
`mails` module); the sender only looks the composer up, so the sender delivers and knows
nothing of resets, verifications or notices.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.log import Event
from app.config import Settings
from app.mail.messages import Content
from app.models.mail import MailKind


@dataclass(frozen=True, slots=True)
class Job:
    """The outbox row being rendered, as a composer sees it."""

    recipient: str
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Composed:
    content: Content
    # The one-time token issued for the mail's link, if any (voided when delivery fails).
    token_id: int | None = None
    # The audit event its delivery records: (event, user id, details); None for notices.
    audit: tuple[Event, int, dict[str, object]] | None = None


Composer = Callable[[AsyncSession, Settings, Job, datetime], Awaitable[Composed | str]]
"""The content of a job, or the reason it is dropped (e.g. no active account)."""

_COMPOSERS: dict[MailKind, Composer] = {}


def composer(kind: MailKind) -> Callable[[Composer], Composer]:
    def register(function: Composer) -> Composer:
        _COMPOSERS[kind] = function
        return function

    return register


def composer_of(kind: MailKind) -> Composer:
    """Raises LookupError for a kind no imported flow composes."""
    try:
        return _COMPOSERS[kind]
    except KeyError:
        raise LookupError(f"no composer for mail kind {kind.value}") from None


def notice(*paragraphs: str) -> Composed:
    """A notice: a greeting and paragraphs, no link, no token."""
    return Composed(Content(("Hello,", *paragraphs)))
