"""Two-factor authentication switched on and off, and the recovery codes that come with
it; knows no HTTP.

The methods keep their own state (the TOTP key, the recovery codes); this is where they
are put together: a confirmed TOTP key turns two-factor on and issues recovery codes,
turning it off makes every second-factor method forget the user and ends the pending
sign-ins. Either way the account's address gets a notice.
"""

from __future__ import annotations

from datetime import datetime

from app.account.reauth import Reauthentication
from app.audit.log import AuditLog, Event
from app.core.errors import MfaAlreadyEnabledException
from app.mail.outbox import Outbox
from app.models.mail import MailKind
from app.models.user import User
from app.signin import mails as _mails  # noqa: F401 - registers the notices' composers
from app.signin import methods as registry
from app.signin.flow import FlowStore
from app.signin.methods.base import Factor, MethodContext
from app.signin.methods.recovery_code.codes import RecoveryCodes
from app.signin.methods.totp.keys import Enrolment, TotpKeys
from app.utils.logger import get_logger

log = get_logger(__name__)


class TwoFactor:
    """Flushes, never commits except to end a read before CPU work."""

    def __init__(
        self,
        ctx: MethodContext,
        *,
        flows: FlowStore,
        reauth: Reauthentication,
        outbox: Outbox | None = None,
    ) -> None:
        self.ctx = ctx
        self.session = ctx.session
        self.flows = flows
        self.reauth = reauth
        self.outbox = outbox
        self.audit = AuditLog(ctx.session, clock=ctx.clock)

    async def start(
        self, user: User, *, current_password: str | None, auth_time: datetime | None
    ) -> Enrolment:
        """A new TOTP key, pending until confirmed, for the person proven present.

        Raises MfaAlreadyEnabledException, InvalidCurrentPasswordException,
        ReauthenticationRequiredException or RateLimitedException.
        """
        if user.mfa_enabled:
            raise MfaAlreadyEnabledException()
        await self.reauth.confirm(
            user, current_password=current_password, auth_time=auth_time, during="mfa_enable"
        )
        return await TotpKeys(self.ctx).start_enrolment(user)

    async def confirm(self, user: User, code: str) -> list[str]:
        """Turn two-factor on with a code of the pending key; returns the recovery codes.

        Raises MfaAlreadyEnabledException, InvalidMfaCodeException or RateLimitedException.
        """
        if user.mfa_enabled:
            raise MfaAlreadyEnabledException()
        await TotpKeys(self.ctx).confirm(user, code)
        codes = await RecoveryCodes(self.ctx).replace(user.id)
        user.mfa_enabled = True
        await self.session.flush()
        self.audit.record(Event.MFA_ENABLED, user_id=user.id, actor_id=user.id)
        await self._notify(MailKind.MFA_ENABLED, user, {})
        log.info("mfa enabled", user_id=user.id)
        return codes

    async def regenerate_recovery_codes(self, user: User, code: str) -> list[str]:
        """Ten new recovery codes for a current TOTP code; the old ones die.

        Raises InvalidMfaCodeException (two-factor off, wrong or used code) or
        RateLimitedException.
        """
        await TotpKeys(self.ctx).use_code(user, code, during="recovery_codes")
        codes = await RecoveryCodes(self.ctx).replace(user.id)
        log.info("mfa recovery codes regenerated", user_id=user.id)
        return codes

    async def remaining_recovery_codes(self, user_id: int) -> int:
        return await RecoveryCodes(self.ctx).remaining(user_id)

    async def disable_by_owner(
        self, user: User, *, current_password: str | None, auth_time: datetime | None
    ) -> None:
        """Turn the user's own two-factor off, once they proved they are there.

        Raises InvalidCurrentPasswordException, ReauthenticationRequiredException or
        RateLimitedException.
        """
        await self.reauth.confirm(
            user,
            current_password=current_password,
            auth_time=auth_time,
            during="mfa_disable",
            password_required=True,
        )
        await self.disable(user, actor_id=user.id)

    async def disable(self, user: User, *, actor_id: int | None, via: str | None = None) -> bool:
        """Turn two-factor off (also a pending enrolment): every second-factor method
        forgets the user and pending sign-ins end. Returns whether it was on. The caller
        checks the authority to do so; `actor_id` is who did it (the user, an admin, None
        for the command line)."""
        was_on = user.mfa_enabled
        # Each method forgets all it keeps of the user: the TOTP key, pending or confirmed,
        # and the recovery codes.
        for cls in registry.METHODS:
            if cls.factor is Factor.SECOND:
                await cls(self.ctx).forget(user)
        await self.flows.end_all(user.id)
        user.mfa_enabled = False
        await self.session.flush()
        if was_on:
            details = {"via": via} if via else None
            self.audit.record(
                Event.MFA_DISABLED, user_id=user.id, actor_id=actor_id, details=details
            )
            await self._notify(MailKind.MFA_DISABLED, user, {"by_admin": actor_id != user.id})
            log.info("mfa disabled", user_id=user.id)
        return was_on

    async def _notify(self, kind: MailKind, user: User, data: dict[str, object]) -> None:
        if self.outbox is not None:
            await self.outbox.enqueue(kind, user.email, {"user_id": user.id, **data})
