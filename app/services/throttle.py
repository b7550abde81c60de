"""Brute-force and abuse throttling on the `limits` library; knows no HTTP.

Login is limited per account (OWASP ASVS 5.0 §6.3.1, NIST SP 800-63B §5.2.2) and per client
IP; registration and refresh per client IP. Every limit is a stack of moving windows
("5/5 minutes;10/hour;20/day"): once the short window is spent the longer ones keep
refusing, so the wait grows with persistence. The account key is the normalised identifier,
counted whether or not the account exists, so a 429 reveals nothing about existence.

Counters live in process memory, or in Redis when configured, so that every worker and
every machine shares them. An attempt is counted *before* the password is checked, which
keeps concurrent guesses from slipping past the limit; a successful login clears the
account's counter, so only failures accumulate.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from limits import RateLimitItem, parse_many
from limits.aio.storage import MemoryStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError
from limits.storage import storage_from_string

from app.models.user import normalize_email, normalize_username
from app.utils.exceptions import RateLimitedException, ThrottleUnavailableException
from app.utils.logger import get_logger

log = get_logger(__name__)


class Bucket(StrEnum):
    LOGIN_ACCOUNT = "login-account"
    LOGIN_IP = "login-ip"
    REGISTER_IP = "register-ip"
    REFRESH_IP = "refresh-ip"
    # Mail a person asked for (reset, verification): per address and per client.
    MAIL_ADDRESS = "mail-address"
    MAIL_IP = "mail-ip"


@dataclass(frozen=True, slots=True)
class ThrottleRules:
    """The limits of each bucket, in `limits` notation (e.g. "5/5 minutes;10/hour")."""

    login_account: str
    login_ip: str
    register_ip: str
    refresh_ip: str
    mail_address: str = "3/hour"
    mail_ip: str = "20/hour"

    def parsed(self) -> dict[Bucket, Sequence[RateLimitItem]]:
        return {
            Bucket.LOGIN_ACCOUNT: parse_many(self.login_account),
            Bucket.LOGIN_IP: parse_many(self.login_ip),
            Bucket.REGISTER_IP: parse_many(self.register_ip),
            Bucket.REFRESH_IP: parse_many(self.refresh_ip),
            Bucket.MAIL_ADDRESS: parse_many(self.mail_address),
            Bucket.MAIL_IP: parse_many(self.mail_ip),
        }


def build_storage(redis_url: str | None, *, key_prefix: str) -> Storage:
    """Redis storage when a URL is given (shared by all workers), else process memory."""
    if not redis_url:
        return MemoryStorage()
    scheme_less = redis_url.split("://", 1)[-1]
    scheme = "async+rediss" if redis_url.startswith("rediss://") else "async+redis"
    storage = storage_from_string(
        f"{scheme}://{scheme_less}",
        wrap_exceptions=True,
        key_prefix=f"{key_prefix}:throttle",
        connect_timeout=2.0,
        stream_timeout=2.0,
    )
    assert isinstance(storage, Storage)
    return storage


def account_key(identifier: str) -> str:
    """One key per account however it is typed; hashed so Redis never holds an address."""
    normalised = (
        normalize_email(identifier) if "@" in identifier else normalize_username(identifier)
    )
    return hashlib.sha256(normalised.encode()).hexdigest()


class Throttle:
    """Counts attempts per bucket and key; raises RateLimitedException past a limit."""

    def __init__(self, storage: Storage, rules: ThrottleRules, *, enabled: bool = True) -> None:
        self.storage = storage
        self.limiter = MovingWindowRateLimiter(storage)
        self.limits = rules.parsed()
        self.enabled = enabled

    async def login_attempt(self, identifier: str, client_ip: str | None) -> None:
        """Count a login attempt for the account and the client.

        Raises RateLimitedException or ThrottleUnavailableException.
        """
        if client_ip is not None:
            await self.hit(Bucket.LOGIN_IP, client_ip)
        await self.hit(Bucket.LOGIN_ACCOUNT, account_key(identifier))

    async def mail_request(self, purpose: str, email: str, client_ip: str | None) -> None:
        """Count a request for a mail (reset, verification) for the address and the client;
        counted whether or not the address has an account, so a 429 reveals nothing.

        Raises RateLimitedException or ThrottleUnavailableException.
        """
        if client_ip is not None:
            await self.hit(Bucket.MAIL_IP, client_ip)
        await self.hit(Bucket.MAIL_ADDRESS, f"{purpose}:{account_key(email)}")

    async def login_succeeded(self, *identifiers: str) -> None:
        """A right password resets the account's failures (not the client's): the counters
        of every identifier the account can be named by (NIST SP 800-63B §5.2.2)."""
        if not self.enabled:
            return
        try:
            for key in {account_key(identifier) for identifier in identifiers}:
                for item in self.limits[Bucket.LOGIN_ACCOUNT]:
                    await self.limiter.clear(item, Bucket.LOGIN_ACCOUNT.value, key)
        except StorageError as error:
            log.warning("throttle storage failed", error_type=type(error.storage_error).__name__)

    async def hit(self, bucket: Bucket, key: str | None) -> None:
        """Count one attempt in every window of the bucket.

        Raises RateLimitedException (with the seconds until the refusing window has room)
        or ThrottleUnavailableException when the counters cannot be reached: an auth service
        fails closed rather than let guessing through unthrottled.
        """
        if not self.enabled or key is None:
            return
        try:
            for item in self.limits[bucket]:
                if not await self.limiter.hit(item, bucket.value, key):
                    retry_after = await self._wait(bucket, key)
                    log.info("throttled", bucket=bucket.value, retry_after=retry_after)
                    raise RateLimitedException(retry_after)
        except StorageError as error:
            log.error("throttle storage failed", error_type=type(error.storage_error).__name__)
            raise ThrottleUnavailableException() from None

    async def _wait(self, bucket: Bucket, key: str) -> int:
        """Seconds until every full window of the bucket has room again: the longest wait."""
        now = time.time()
        waits = [1]
        for item in self.limits[bucket]:
            stats = await self.limiter.get_window_stats(item, bucket.value, key)
            if stats.remaining == 0:
                # Rounded to the millisecond first: float noise must not add a second.
                waits.append(math.ceil(round(stats.reset_time - now, 3)))
        return max(waits)

    async def close(self) -> None:
        """Release the storage's resources (the memory store's expiry task)."""
        if isinstance(self.storage, MemoryStorage):
            await self.storage.reset()
