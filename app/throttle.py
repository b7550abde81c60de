"""Brute-force and abuse throttling on the `limits` library; knows no HTTP.

Login has three limits (OWASP ASVS 5.0 §6.3.1, NIST SP 800-63B §5.2.2):

- per (account, client): the tight, growing back-off ("5/5 minutes;10/hour;20/day"). It is
  keyed on the client too, so failures from elsewhere never lock the owner out at home;
- per account, across every client: the ceiling ("100/day"), which a botnet rotating its
  addresses reaches but cannot pass;
- per client, across every account: one address spraying many accounts.

Registration and refresh are limited per client. Stacked windows make the wait grow with
persistence. The account key is a keyed hash (HMAC, `KeyedHash`) of the normalised
identifier, counted whether or not the account exists, so a 429 reveals nothing about
existence and Redis holds nothing that a list of addresses could be matched against. A
client is its IPv4 address or its IPv6 /64; requests without an address share one bucket.

Counters live in process memory, or in Redis when configured, so that every worker and
every machine shares them. An attempt is counted *before* the password is checked, which
keeps concurrent guesses from slipping past a limit; a successful login clears that
(account, client)'s counters and the account's ceiling (NIST counts consecutive failures).
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from limits import RateLimitItem, RateLimitItemPerSecond, parse_many
from limits.aio.storage import MemoryStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError
from limits.storage import storage_from_string

from app.core.errors import RateLimitedException, ThrottleUnavailableException
from app.models.user import normalize_identifier
from app.utils.client_ip import client_bucket
from app.utils.logger import get_logger

log = get_logger(__name__)


class Bucket(StrEnum):
    # "login-account-ip", not the old "login-account": counters of the former keying
    # (per account alone, plain SHA-256) are simply left to expire.
    LOGIN_ACCOUNT_IP = "login-account-ip"
    LOGIN_ACCOUNT_CEILING = "login-account-ceiling"
    LOGIN_IP = "login-ip"
    REGISTER_IP = "register-ip"
    REFRESH_IP = "refresh-ip"
    # Mail a person asked for (reset, verification): per address and per client.
    MAIL_ADDRESS = "mail-address"
    MAIL_IP = "mail-ip"
    # Second steps of sign-in with an unknown, expired or used-up flow token, per client.
    SIGNIN_FLOW_IP = "signin-flow-ip"
    # Email-change requests per account (each mails an address the caller chose).
    EMAIL_CHANGE_ACCOUNT = "email-change-account"
    # Passkey sign-in options per client: each one stores a challenge, and nobody is known yet.
    PASSKEY_OPTIONS_IP = "passkey-options-ip"


@dataclass(frozen=True, slots=True)
class ThrottleRules:
    """The limits of each bucket, in `limits` notation (e.g. "5/5 minutes;10/hour").

    `login_account` counts per (account, client); `login_account_ceiling` per account.
    """

    login_account: str
    login_ip: str
    register_ip: str
    refresh_ip: str
    login_account_ceiling: str = "100/day"
    mail_address: str = "3/hour"
    mail_ip: str = "20/hour"
    signin_flow_ip: str = "10/minute;100/hour"
    email_change_account: str = "3/hour"
    passkey_options_ip: str = "30/minute;300/hour"

    def parsed(self) -> dict[Bucket, Sequence[RateLimitItem]]:
        return {
            Bucket.LOGIN_ACCOUNT_IP: parse_many(self.login_account),
            Bucket.LOGIN_ACCOUNT_CEILING: parse_many(self.login_account_ceiling),
            Bucket.LOGIN_IP: parse_many(self.login_ip),
            Bucket.REGISTER_IP: parse_many(self.register_ip),
            Bucket.REFRESH_IP: parse_many(self.refresh_ip),
            Bucket.MAIL_ADDRESS: parse_many(self.mail_address),
            Bucket.MAIL_IP: parse_many(self.mail_ip),
            Bucket.SIGNIN_FLOW_IP: parse_many(self.signin_flow_ip),
            Bucket.EMAIL_CHANGE_ACCOUNT: parse_many(self.email_change_account),
            Bucket.PASSKEY_OPTIONS_IP: parse_many(self.passkey_options_ip),
        }


class ThrottledException(RateLimitedException):
    """A refusal, with the bucket and key that refused (for the audit trail, not clients)."""

    def __init__(self, retry_after: int, *, bucket: Bucket, key: str) -> None:
        super().__init__(retry_after)
        self.bucket = bucket
        self.key = key


# How often the memory store drops expired entries (at most), and how many keys one
# slice of a pass looks at before it lets the event loop run other work.
MEMORY_EXPIRY_INTERVAL_S = 1.0
MEMORY_EXPIRY_SLICE = 1_000


class PacedMemoryStorage(MemoryStorage):
    """`limits`' memory store with its expiry pass replaced: at most one a second, no
    thread hop per key, and no failure when a key is cleared during the pass.

    Upstream (limits 5) starts a pass after every counted attempt, and a pass awaits an
    `asyncio.to_thread` per key around one `bisect`: under load a pass is always running,
    and with a key per (account, client) a login paid more for it than for its SQL. The
    await also let a successful login clear a key mid-pass, and the pass then died on a
    KeyError that asyncio logged as "Task exception was never retrieved". Expiry is only
    housekeeping (every check compares timestamps itself), so this changes no decision.
    """

    def __init__(self) -> None:
        super().__init__()
        self._next_expiry = 0.0

    async def _MemoryStorage__schedule_expiry(self) -> None:  # noqa: N802 - upstream's name
        now = time.monotonic()
        if now < self._next_expiry or (self.timer is not None and not self.timer.done()):
            return
        self._next_expiry = now + MEMORY_EXPIRY_INTERVAL_S
        self.timer = asyncio.create_task(self._expire())

    async def _expire(self) -> None:
        now = time.time()
        for n, key in enumerate(list(self.events)):
            if n and n % MEMORY_EXPIRY_SLICE == 0:
                await asyncio.sleep(0)
            events = self.events.get(key)
            if events:
                # Newest first: the entries from the first one expired onwards go.
                del events[bisect.bisect_left(events, -now, key=lambda entry: -entry.expiry) :]
            if not events:
                self.events.pop(key, None)
                self.locks.pop(key, None)
        for key, expiry in list(self.expirations.items()):
            if expiry <= now:
                self.storage.pop(key, None)
                self.expirations.pop(key, None)
                self.locks.pop(key, None)


def build_storage(redis_url: str | None, *, key_prefix: str) -> Storage:
    """Redis storage when a URL is given (shared by all workers), else process memory."""
    if not redis_url:
        return PacedMemoryStorage()
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


class Throttle:
    """Counts attempts per bucket and key; raises RateLimitedException past a limit."""

    def __init__(
        self,
        storage: Storage,
        rules: ThrottleRules,
        *,
        account_hash: Callable[[str], str],
        enabled: bool = True,
    ) -> None:
        self.storage = storage
        self.limiter = MovingWindowRateLimiter(storage)
        self.limits = rules.parsed()
        self.account_hash = account_hash
        self.enabled = enabled

    def account_key(self, identifier: str) -> str:
        """The keyed hash of the normalised identifier: one key per account name."""
        return self.account_hash(normalize_identifier(identifier))

    async def login_attempt(self, identifier: str, client_ip: str | None) -> None:
        """Count a login attempt for the client, the (account, client) and the account.

        Raises RateLimitedException or ThrottleUnavailableException.
        """
        await self.account_attempt(self.account_key(identifier), client_ip)

    async def account_attempt(self, account: str, client_ip: str | None) -> None:
        """`login_attempt` for an account key (`account_key`) kept from the password step:
        the codes of a second factor are guesses on the same budget.

        Raises RateLimitedException or ThrottleUnavailableException.
        """
        client = client_bucket(client_ip)
        await self.hit(Bucket.LOGIN_IP, client)
        # The tight limit first: a client past it does not use up the account's ceiling.
        await self.hit(Bucket.LOGIN_ACCOUNT_IP, f"{account}:{client}")
        await self.hit(Bucket.LOGIN_ACCOUNT_CEILING, account)

    async def mail_request(self, purpose: str, email: str, client_ip: str | None) -> None:
        """Count a request for a mail (reset, verification) for the address and the client;
        counted whether or not the address has an account, so a 429 reveals nothing.

        Raises RateLimitedException or ThrottleUnavailableException.
        """
        await self.hit(Bucket.MAIL_IP, client_bucket(client_ip))
        await self.hit(Bucket.MAIL_ADDRESS, f"{purpose}:{self.account_key(email)}")

    async def email_change_request(self, user_id: int, client_ip: str | None) -> None:
        """Count a request to change an account's address, for the account (by id: the
        count survives the change itself) and the client, as a mail request.

        Raises RateLimitedException or ThrottleUnavailableException.
        """
        await self.hit(Bucket.MAIL_IP, client_bucket(client_ip))
        await self.hit(Bucket.EMAIL_CHANGE_ACCOUNT, self.account_hash(f"user:{user_id}"))

    async def login_succeeded(self, identifiers: Sequence[str], client_ip: str | None) -> None:
        """A right password resets the failures of this client on the account, and the
        account's ceiling, for every identifier the account can be named by (NIST SP 800-63B
        §5.2.2 counts consecutive failures). Other clients keep their own counts."""
        if not self.enabled:
            return
        client = client_bucket(client_ip)
        try:
            for account in {self.account_key(identifier) for identifier in identifiers}:
                await self._clear(Bucket.LOGIN_ACCOUNT_IP, f"{account}:{client}")
                await self._clear(Bucket.LOGIN_ACCOUNT_CEILING, account)
        except StorageError as error:
            log.warning("throttle storage failed", error_type=type(error.storage_error).__name__)

    async def _clear(self, bucket: Bucket, key: str) -> None:
        for item in self.limits[bucket]:
            await self.limiter.clear(item, bucket.value, key)

    async def client_attempt(self, bucket: Bucket, client_ip: str | None) -> None:
        """Count one attempt of a client (IPv4 address, IPv6 /64, or the no-address bucket).

        Raises RateLimitedException or ThrottleUnavailableException.
        """
        await self.hit(bucket, client_bucket(client_ip))

    async def ping(self, deadline_seconds: float) -> float:
        """Milliseconds the counters' store takes to answer a PING (0 for process memory).

        Raises ThrottleUnavailableException when it does not answer within `deadline_seconds`.
        """
        if isinstance(self.storage, MemoryStorage):
            return 0.0
        started = time.perf_counter()
        try:
            async with asyncio.timeout(deadline_seconds):
                healthy = await self.storage.check()
        except TimeoutError:
            healthy = False
        if not healthy:
            raise ThrottleUnavailableException()
        return (time.perf_counter() - started) * 1000

    async def hit(self, bucket: Bucket, key: str) -> None:
        """Count one attempt in every window of the bucket.

        Raises RateLimitedException (with the seconds until the refusing window has room)
        or ThrottleUnavailableException when the counters cannot be reached: an auth service
        fails closed rather than let guessing through unthrottled.
        """
        if not self.enabled:
            return
        try:
            for item in self.limits[bucket]:
                if not await self.limiter.hit(item, bucket.value, key):
                    retry_after = await self._wait(bucket, key)
                    log.info("throttled", bucket=bucket.value, retry_after=retry_after)
                    raise ThrottledException(retry_after, bucket=bucket, key=key)
        except StorageError as error:
            log.error("throttle storage failed", error_type=type(error.storage_error).__name__)
            raise ThrottleUnavailableException() from None

    async def first_refusal(self, refusal: ThrottledException) -> bool:
        """True for the first refusal of a bucket and key until its wait is over.

        A flood of throttled attempts is one fact, not thousands: the audit trail records
        it once per refusal period, so the throttle cannot be turned into a write flood.
        The marker lives in the counters' store, so all workers agree on "first".
        """
        marker = RateLimitItemPerSecond(1, max(1, refusal.retry_after))
        try:
            return await self.limiter.hit(marker, f"{refusal.bucket.value}-refused", refusal.key)
        except StorageError as error:
            log.warning("throttle storage failed", error_type=type(error.storage_error).__name__)
            return False

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
            # Stop the expiry task first: a reset under its feet makes it fail on a key it
            # was reading (moving-window events, e.g. the refusal markers), and asyncio then
            # logs "Task exception was never retrieved" at some later test or shutdown.
            timer = self.storage.timer
            if timer is not None and not timer.done():
                timer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await timer
            await self.storage.reset()
