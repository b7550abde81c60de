"""The audit trail: security events, written in the transaction of the action they record.

    AuditLog(session).record(Event.LOGIN_SUCCEEDED, user_id=user.id, actor_id=user.id)

`record` only adds the row to the session: the action's own flush or commit writes it, so
an action that rolls back leaves no event, and one that commits always leaves its event.
Where an event must outlive the request's failure (a failed login answered 401), the
caller commits it on purpose before raising.

The request's id, client address and User-Agent come from the request context
(`app.utils.request_context`), so callers pass only what happened. `details` is for
facts (a reason, the names of changed fields, a count), never for secrets: keys that look
like they name one are refused, and no caller puts an email, a username, a password, a
hash, a token or a code in it (tests/integration/test_audit.py greps the table for them).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum

from sqlalchemy import CursorResult, delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models.audit import AuditEvent
from app.utils.clock import Clock, utc_now
from app.utils.pagination import Page
from app.utils.request_context import current_client, current_request_id

# The largest id the `user_id` column holds on every backend; bigger ones match nothing.
_MAX_USER_ID = 2**31 - 1
EVENT_PATTERN = r"^[a-z][a-z_]*(\.[a-z][a-z_]*)+$"
# A details key that names a secret is a bug in the caller: refuse it loudly.
_SECRET_KEY = re.compile(r"password|passwd|secret|token|hash|otp|totp|recovery|cookie", re.I)


class Event(StrEnum):
    """The event names of the contract; `record` takes any of these (or a plain string)."""

    USER_REGISTERED = "user.registered"
    LOGIN_SUCCEEDED = "login.succeeded"
    LOGIN_FAILED = "login.failed"
    LOGIN_THROTTLED = "login.throttled"
    LOGOUT = "logout"
    TOKEN_REUSE_DETECTED = "token.reuse_detected"  # noqa: S105 - an event name
    SESSION_REVOKED = "session.revoked"
    PASSWORD_CHANGED = "password.changed"  # noqa: S105 - an event name
    PASSWORD_RESET_REQUESTED = "password.reset_requested"  # noqa: S105 - an event name
    PASSWORD_RESET = "password.reset"  # noqa: S105 - an event name
    EMAIL_VERIFICATION_SENT = "email.verification_sent"
    EMAIL_VERIFIED = "email.verified"
    EMAIL_CHANGED = "email.changed"
    MFA_ENABLED = "mfa.enabled"
    MFA_DISABLED = "mfa.disabled"
    MFA_FAILED = "mfa.failed"
    PASSKEY_ADDED = "passkey.added"
    PASSKEY_REMOVED = "passkey.removed"
    PASSKEY_CLONE_SUSPECTED = "passkey.clone_suspected"
    USER_UPDATED = "user.updated"
    USER_DELETED = "user.deleted"
    KEY_ROTATED = "key.rotated"
    KEY_REVOKED = "key.revoked"
    CLIENT_CREATED = "client.created"
    CLIENT_UPDATED = "client.updated"
    CLIENT_DELETED = "client.deleted"
    CONSENT_GRANTED = "oauth2.consent_granted"
    CONSENT_DENIED = "oauth2.consent_denied"
    CODE_REUSED = "oauth2.code_reused"
    IDENTITY_LINKED = "identity.linked"
    IDENTITY_UNLINKED = "identity.unlinked"


class AuditLog:
    """Writes and reads `audit_events`; adds and queries, never commits."""

    def __init__(self, session: AsyncSession, *, clock: Clock = utc_now) -> None:
        self.session = session
        self.clock = clock

    def record(
        self,
        event: str,
        *,
        user_id: int | None,
        actor_id: int | None = None,
        details: Mapping[str, object] | None = None,
    ) -> None:
        """Add one event to the current transaction (written by its next flush or commit).

        `user_id` is the account the event is about, `actor_id` the signed-in account that
        caused it (the user itself, an admin; None for the command line or nobody known).
        Raises ValueError for a details key that names a secret.
        """
        facts = dict(details or {})
        for key in facts:
            if _SECRET_KEY.search(key):
                raise ValueError(f"audit details must not carry secrets: {key!r}")
        client = current_client()
        request_id = current_request_id()
        self.session.add(
            AuditEvent(
                at=self.clock(),
                event=str(event),
                user_id=user_id,
                actor_id=actor_id,
                ip=client.ip,
                user_agent=client.user_agent,
                request_id=None if request_id == "-" else request_id,
                details=facts,
            )
        )

    async def page(
        self,
        *,
        user_id: int | None = None,
        event: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int,
        after: int | None = None,
    ) -> Page[AuditEvent]:
        """Events newest first (by id), `limit` of them, continuing below the id `after`."""
        if user_id is not None and not 0 < user_id <= _MAX_USER_ID:
            return Page([], None)
        stmt = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit + 1)
        if user_id is not None:
            stmt = stmt.where(AuditEvent.user_id == user_id)
        if event is not None:
            stmt = stmt.where(AuditEvent.event == event)
        if since is not None:
            stmt = stmt.where(AuditEvent.at >= since)
        if until is not None:
            stmt = stmt.where(AuditEvent.at < until)
        if after is not None:
            stmt = stmt.where(AuditEvent.id < after)
        rows = (await self.session.execute(stmt)).scalars().all()
        more = len(rows) > limit
        items = rows[:limit]
        return Page(items, items[-1].id if more else None)

    async def purge(self, before: datetime) -> int:
        """Delete the events recorded before `before` (retention); returns how many."""
        stmt = (
            delete(AuditEvent)
            .where(AuditEvent.at < before)
            .execution_options(synchronize_session=False)
        )
        result = await self.session.execute(stmt)
        assert isinstance(result, CursorResult)
        return int(result.rowcount)
