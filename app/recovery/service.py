"""Account recovery and verification: password reset and change, email verification and
change. Knows no HTTP; every mail goes through the outbox of the request's transaction."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.account.reauth import Reauthentication
from app.audit.log import AuditLog, Event
from app.core.errors import (
    InvalidResetTokenException,
    InvalidVerificationTokenException,
    UserAlreadyExistsException,
)
from app.core.password_policy import check_new_password
from app.core.passwords import PasswordHasher
from app.mail.outbox import Outbox
from app.models.mail import MailKind
from app.models.one_time_token import TokenPurpose
from app.models.user import User, normalize_email
from app.recovery import mails as _mails  # noqa: F401 - registers the composers of its mails
from app.recovery.one_time_tokens import OneTimeTokens, bound_to
from app.sessions.tokens import AuthResult, SessionTokens
from app.throttle import Throttle
from app.users.service import UserService
from app.utils.clock import Clock, utc_now
from app.utils.logger import bind_context, get_logger

log = get_logger(__name__)


def mask_email(email: str) -> str:
    """`a***@example.com`: enough for the owner to recognise, not a copy of the address."""
    local, _, domain = email.partition("@")
    return f"{local[:1]}***@{domain}"


class AccountService:
    """The account-lifecycle use cases."""

    def __init__(
        self,
        users: UserService,
        *,
        hasher: PasswordHasher,
        session_tokens: SessionTokens,
        reauth: Reauthentication,
        one_time_tokens: OneTimeTokens,
        outbox: Outbox,
        throttle: Throttle | None = None,
        client_ip: str | None = None,
        clock: Clock = utc_now,
        password_min_length: int = 8,
    ) -> None:
        self.users = users
        self.hasher = hasher
        self.session_tokens = session_tokens
        self.reauth = reauth
        self.tokens = one_time_tokens
        self.outbox = outbox
        self.throttle = throttle
        self.client_ip = client_ip
        self.clock = clock
        self.password_min_length = password_min_length
        self.audit = AuditLog(users.session, clock=clock)

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
        now = self.clock()
        row = await self.tokens.find_live(token, TokenPurpose.PASSWORD_RESET, now=now)
        user = await self.users.get_by_id(row.user_id) if row is not None else None
        if row is None or user is None or not user.is_active or not bound_to(row, user):
            log.warning("password reset refused", reason="invalid_token")
            raise InvalidResetTokenException()
        self._check_new_password(user, new_password)
        # End the read transaction before hashing (see SignIn.login).
        await self.session.commit()
        hashed = await self.hasher.hash(new_password)
        if not await self.tokens.use(row, now=now):
            log.warning("password reset refused", reason="token_used_concurrently")
            raise InvalidResetTokenException()
        await self._set_password(user, hashed)
        # The mail reached its owner: the address is proven.
        user.email_verified = True
        # No actor: whoever held the link was not signed in.
        self.audit.record(Event.PASSWORD_RESET, user_id=user.id)
        await self.session.flush()
        bind_context(user_id=user.id)
        log.info("password reset", user_id=user.id)

    async def change_password(
        self,
        user: User,
        current_password: str | None,
        new_password: str,
        *,
        auth_time: datetime | None = None,
    ) -> AuthResult:
        """Change the password; every session ends, the caller's too, and a new one starts.

        Raises InvalidCurrentPasswordException (counted by the per-account login
        throttle), RateLimitedException or ValidationException.
        """
        await self.replace_password(user, current_password, new_password, auth_time=auth_time)
        return AuthResult(user, await self.session_tokens.start_session(user))

    async def replace_password(
        self,
        user: User,
        current_password: str | None,
        new_password: str,
        *,
        auth_time: datetime | None = None,
    ) -> None:
        """Change the password and end every session, starting none (the hosted pages
        start a browser session instead). Raises as `change_password`."""
        await self.reauth.confirm(
            user,
            current_password=current_password,
            auth_time=auth_time,
            during="password_change",
            password_required=True,
        )
        self._check_new_password(user, new_password)
        await self.session.commit()
        hashed = await self.hasher.hash(new_password)
        await self._set_password(user, hashed)
        self.audit.record(Event.PASSWORD_CHANGED, user_id=user.id, actor_id=user.id)
        log.info("password changed", user_id=user.id)

    async def verify_email(self, token: str) -> User:
        """Mark the address of a verification link verified, or move the account to the
        new address of an email-change link.

        Raises InvalidVerificationTokenException or UserAlreadyExistsException (the new
        address was taken meanwhile).
        """
        now = self.clock()
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
            self.audit.record(Event.EMAIL_CHANGED, user_id=user.id)
            # To the old address: its owner learns of the change even if it was not theirs.
            await self.outbox.enqueue(
                MailKind.EMAIL_CHANGED,
                old_email,
                {"user_id": user.id, "new_email_hint": mask_email(row.email)},
            )
        else:
            self.audit.record(Event.EMAIL_VERIFIED, user_id=user.id)
        user.email_verified = True
        await self.session.flush()
        log.info("email verified", user_id=user.id)
        return user

    async def request_email_change(
        self,
        user: User,
        new_email: str,
        current_password: str | None,
        *,
        auth_time: datetime | None = None,
    ) -> None:
        """Mail a verification link to the new address and a notice to the current one;
        the address changes only when the link is used.

        Only the newest request's link works: the request voids the account's pending
        links (see OneTimeTokens.void_all), and its mail carries the new epoch.

        Raises InvalidCurrentPasswordException, RateLimitedException or
        UserAlreadyExistsException (the new address is taken, also by this account).
        """
        if self.throttle is not None:
            # Each request mails an address the caller chose: as many as a "forgot password".
            await self.throttle.email_change_request(user.id, self.client_ip)
        await self.reauth.confirm(
            user,
            current_password=current_password,
            auth_time=auth_time,
            during="email_change",
            password_required=True,
        )
        new = normalize_email(new_email)
        if new == user.email or await self.users.get_by_email(new) is not None:
            raise UserAlreadyExistsException()
        epoch = await self.tokens.void_all(user, now=self.clock())
        await self.outbox.enqueue(MailKind.EMAIL_CHANGE, new, {"user_id": user.id, "epoch": epoch})
        await self.outbox.enqueue(
            MailKind.EMAIL_CHANGE_NOTICE,
            user.email,
            {"user_id": user.id, "new_email_hint": mask_email(new)},
        )
        log.info("email change requested", user_id=user.id)

    async def _count_request(self, purpose: str, email: str) -> None:
        if self.throttle is not None:
            await self.throttle.mail_request(purpose, email, self.client_ip)

    def _check_new_password(self, user: User, password: str) -> None:
        check_new_password(
            password,
            username=user.username,
            email=user.email,
            min_length=self.password_min_length,
            hasher=self.hasher,
            field="new_password",
        )

    async def _set_password(self, user: User, hashed: str) -> None:
        """New hash; every session ends, every pending link (reset, verification, email
        change) dies, a notice goes out."""
        now = self.clock()
        user.hashed_password = hashed
        await self.tokens.void_all(user, now=now)
        await self.session_tokens.sessions.revoke_all(user.id)
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
