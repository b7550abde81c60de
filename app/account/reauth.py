"""Proving, for a sensitive change, that the person is there now: the one check of a
current password, and the alternative of a recent sign-in.

Every operation that asks for the current password (password change, email change,
two-factor off, account deletion) and every one that accepts it (two-factor on, later
passkeys and linked providers) comes here, so each has the same throttle, the same log
line and the same answer.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from app.core.errors import InvalidCurrentPasswordException, ReauthenticationRequiredException
from app.core.passwords import PasswordHasher
from app.models.user import User
from app.throttle import Throttle
from app.transaction import Transaction
from app.utils.clock import Clock, utc_now
from app.utils.logger import get_logger

log = get_logger(__name__)

DEFAULT_MAX_AGE = timedelta(seconds=300)


class Reauthentication:
    def __init__(
        self,
        transaction: Transaction,
        *,
        hasher: PasswordHasher,
        throttle: Throttle | None = None,
        client_ip: str | None = None,
        clock: Clock = utc_now,
        max_age: timedelta = DEFAULT_MAX_AGE,
    ) -> None:
        self.transaction = transaction
        self.hasher = hasher
        self.throttle = throttle
        self.client_ip = client_ip
        self.clock = clock
        self.max_age = max_age

    async def check_password(self, user: User, password: str, *, during: str) -> None:
        """The current password, or InvalidCurrentPasswordException.

        Counted before the check in the login's per-account bucket (RateLimitedException):
        a stolen access token gives no faster way to guess the password than the login
        does. A right one is no sign-in and clears no count: only a sign-in restarts the
        account's count of failures, whatever operation asked for the password.
        """
        if self.throttle is not None:
            await self.throttle.login_attempt(user.email, self.client_ip)
        # No transaction held across the tens of milliseconds of the hash.
        await self.transaction.end_read()
        if user.hashed_password is None:
            await self.hasher.verify_dummy(password)
            valid = False
        else:
            valid, _ = await self.hasher.verify(password, user.hashed_password)
        if not valid:
            log.warning("current password rejected", user_id=user.id, during=during)
            raise InvalidCurrentPasswordException()

    def require_recent_sign_in(
        self, user: User, auth_time: datetime | None, *, during: str
    ) -> None:
        """Raises ReauthenticationRequiredException unless the session signed in at most
        `max_age` ago (a token without `auth_time` is never recent)."""
        if auth_time is None or self.clock() - auth_time > self.max_age:
            log.warning("reauthentication required", user_id=user.id, during=during)
            raise ReauthenticationRequiredException()

    async def confirm(
        self,
        user: User,
        *,
        current_password: str | None,
        auth_time: datetime | None,
        during: str,
        password_required: bool = False,
    ) -> None:
        """The person is there now: the current password where the account has one and it
        is given (or `password_required`: the operation takes it), otherwise a sign-in at
        most `max_age` ago.

        Raises InvalidCurrentPasswordException, ReauthenticationRequiredException or
        RateLimitedException.
        """
        if user.has_password and (current_password is not None or password_required):
            if current_password is None:
                raise InvalidCurrentPasswordException()
            await self.check_password(user, current_password, during=during)
            return
        self.require_recent_sign_in(user, auth_time, during=during)
