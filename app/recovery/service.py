"""Account recovery and verification: password reset and change, email verification and
change. Knows no HTTP; every mail goes through the outbox of the request's transaction."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.log import Event
from app.core.errors import (
    InvalidCurrentPasswordException,
    InvalidResetTokenException,
    InvalidVerificationTokenException,
    UserAlreadyExistsException,
)
from app.mail.outbox import Outbox
from app.models.mail import MailKind
from app.models.one_time_token import TokenPurpose
from app.models.user import User, normalize_email
from app.recovery.one_time_tokens import OneTimeTokens, bound_to
from app.signin.service import AuthResult, AuthService
from app.utils.logger import bind_context, get_logger

log = get_logger(__name__)


def mask_email(email: str) -> str:
    """`a***@example.com`: enough for the owner to recognise, not a copy of the address."""
    local, _, domain = email.partition("@")
    return f"{local[:1]}***@{domain}"


class AccountService:
    """The account-lifecycle use cases, on top of AuthService's hasher, sessions and policy."""

    def __init__(
        self,
        auth: AuthService,
        *,
        tokens: OneTimeTokens,
        outbox: Outbox,
    ) -> None:
        self.auth = auth
        self.users = auth.users
        self.tokens = tokens
        self.outbox = outbox

    @property
    def session(self) -> AsyncSession:
        return self.users.session

    async def request_password_reset(self, email: str) -> None:
        """Queue "a reset was asked for this address", whatever the address.

        Enumeration safety by construction: the request does the same work for a known,
        an unknown and an inactive address (two throttle counts, one INSERT). The sender
        later finds the account, creates the token and writes the mail, or drops the job.
        Raises RateLimitedException or ThrottleUnavailableException.
        """
        await self._count_request("reset", email)
        # No wake-up: a sender starting at once would render (known address) or drop
        # (unknown) the job while this response is still on its way, a difference in
        # timing. The next poll (MAIL_POLL_INTERVAL_SECONDS) picks it up instead.
        await self.outbox.enqueue(MailKind.PASSWORD_RESET, email, wake=False)
        log.info("password reset requested")

    async def resend_verification(self, email: str) -> None:
        """Queue "verify this address if it still needs it", whatever the address.

        Raises RateLimitedException or ThrottleUnavailableException.
        """
        await self._count_request("verify", email)
        await self.outbox.enqueue(MailKind.VERIFY_EMAIL, email, wake=False)
        log.info("verification mail requested")

    async def reset_password(self, token: str, new_password: str) -> None:
        """Set a new password with a reset token; every session of the user ends.

        Raises InvalidResetTokenException (unknown, used, expired, another purpose, or
        a concurrent use won) or ValidationException (a weak new password).
        """
        now = self.auth.clock()
        row = await self.tokens.find_live(token, TokenPurpose.PASSWORD_RESET, now=now)
        user = await self.users.get_by_id(row.user_id) if row is not None else None
        if row is None or user is None or not user.is_active or not bound_to(row, user):
            log.warning("password reset refused", reason="invalid_token")
            raise InvalidResetTokenException()
        self.auth.check_password(
            new_password, username=user.username, email=user.email, field="new_password"
        )
        # End the read transaction before hashing (see AuthService.login).
        await self.session.commit()
        hashed = await self.auth.hasher.hash(new_password)
        if not await self.tokens.use(row, now=now):
            log.warning("password reset refused", reason="token_used_concurrently")
            raise InvalidResetTokenException()
        await self._set_password(user, hashed)
        # The mail reached its owner: the address is proven.
        user.email_verified = True
        # No actor: whoever held the link was not signed in.
        self.auth.audit.record(Event.PASSWORD_RESET, user_id=user.id)
        await self.session.flush()
        bind_context(user_id=user.id)
        log.info("password reset", user_id=user.id)

    async def change_password(
        self, user: User, current_password: str, new_password: str
    ) -> AuthResult:
        """Change the password; every session ends, the caller's too, and a new one starts.

        Raises InvalidCurrentPasswordException (counted by the per-account login
        throttle), RateLimitedException or ValidationException.
        """
        await self._check_current_password(user, current_password)
        self.auth.check_password(
            new_password, username=user.username, email=user.email, field="new_password"
        )
        await self.session.commit()
        hashed = await self.auth.hasher.hash(new_password)
        await self._set_password(user, hashed)
        self.auth.audit.record(Event.PASSWORD_CHANGED, user_id=user.id, actor_id=user.id)
        log.info("password changed", user_id=user.id)
        return AuthResult(user, await self.auth.start_session(user))

    async def verify_email(self, token: str) -> User:
        """Mark the address of a verification link verified, or move the account to the
        new address of an email-change link.

        Raises InvalidVerificationTokenException or UserAlreadyExistsException (the new
        address was taken meanwhile).
        """
        now = self.auth.clock()
        row = await self.tokens.find_live(
            token, TokenPurpose.VERIFY_EMAIL, TokenPurpose.EMAIL_CHANGE, now=now
        )
        user = await self.users.get_by_id(row.user_id) if row is not None else None
        if row is None or user is None or not user.is_active or not bound_to(row, user):
            log.warning("email verification refused", reason="invalid_token")
            raise InvalidVerificationTokenException()
        if not await self.tokens.use(row, now=now):
            log.warning("email verification refused", reason="token_used_concurrently")
            raise InvalidVerificationTokenException()
        bind_context(user_id=user.id)
        if row.purpose == TokenPurpose.EMAIL_CHANGE.value and row.email is not None:
            old_email = user.email
            await self._move_to(user, row.email)
            # Every other link of the account dies: reset links mailed to the old address,
            # and links of other change requests.
            await self.tokens.void_all(user, now=now)
            # Neither address goes into the trail (a deleted account's must not name it).
            self.auth.audit.record(Event.EMAIL_CHANGED, user_id=user.id)
            # To the old address: its owner learns of the change even if it was not theirs.
            await self.outbox.enqueue(
                MailKind.EMAIL_CHANGED,
                old_email,
                {"user_id": user.id, "new_email_hint": mask_email(row.email)},
            )
        else:
            self.auth.audit.record(Event.EMAIL_VERIFIED, user_id=user.id)
        user.email_verified = True
        await self.session.flush()
        log.info("email verified", user_id=user.id)
        return user

    async def request_email_change(self, user: User, new_email: str, current_password: str) -> None:
        """Mail a verification link to the new address and a notice to the current one;
        the address changes only when the link is used.

        Only the newest request's link works: the request voids the account's pending
        links (see OneTimeTokens.void_all), and its mail carries the new epoch.

        Raises InvalidCurrentPasswordException, RateLimitedException or
        UserAlreadyExistsException (the new address is taken, also by this account).
        """
        throttle = self.auth.throttle
        if throttle is not None:
            # Each request mails an address the caller chose: as many as a "forgot password".
            await throttle.email_change_request(user.id, self.auth.client_ip)
        # A right password here is no sign-in: it leaves the login throttle's counts alone,
        # or a guesser could reset them between rounds from a session of their own.
        await self._check_current_password(user, current_password, forgive=False)
        new = normalize_email(new_email)
        if new == user.email or await self.users.get_by_email(new) is not None:
            raise UserAlreadyExistsException()
        epoch = await self.tokens.void_all(user, now=self.auth.clock())
        await self.outbox.enqueue(MailKind.EMAIL_CHANGE, new, {"user_id": user.id, "epoch": epoch})
        await self.outbox.enqueue(
            MailKind.EMAIL_CHANGE_NOTICE,
            user.email,
            {"user_id": user.id, "new_email_hint": mask_email(new)},
        )
        log.info("email change requested", user_id=user.id)

    async def _count_request(self, purpose: str, email: str) -> None:
        throttle = self.auth.throttle
        if throttle is not None:
            await throttle.mail_request(purpose, email, self.auth.client_ip)

    async def _check_current_password(
        self, user: User, password: str, *, forgive: bool = True
    ) -> None:
        throttle = self.auth.throttle
        if throttle is not None:
            # Counted before the check, in the login's per-account bucket: a stolen access
            # token gives no faster way to guess the password than the login does.
            await throttle.login_attempt(user.email, self.auth.client_ip)
        await self.session.commit()
        valid, _ = await self.auth.hasher.verify(password, user.hashed_password)
        if not valid:
            log.warning("current password refused", user_id=user.id)
            raise InvalidCurrentPasswordException()
        if throttle is not None and forgive:
            await throttle.login_succeeded((user.email, user.username), self.auth.client_ip)

    async def _set_password(self, user: User, hashed: str) -> None:
        """New hash; every session ends, every pending link (reset, verification, email
        change) dies, a notice goes out."""
        now = self.auth.clock()
        user.hashed_password = hashed
        await self.tokens.void_all(user, now=now)
        await self.auth.sessions.revoke_all(user.id)
        await self.outbox.enqueue(MailKind.PASSWORD_CHANGED, user.email, {"user_id": user.id})
        await self.session.flush()

    async def _move_to(self, user: User, email: str) -> None:
        if await self.users.get_by_email(email) is not None:
            raise UserAlreadyExistsException()
        user.email = email
        try:
            await self.session.flush()
        except IntegrityError:  # taken by a racing registration or change
            raise UserAlreadyExistsException() from None
        log.info("email changed", user_id=user.id)
