"""Password hashing: argon2id by default, bcrypt selectable, both always verifiable.

Hashing is CPU-bound (tens of milliseconds by design), so the async API runs it on a small
pool of dedicated threads, as many as there are cores: the event loop keeps serving other
requests, and a burst of logins queues instead of oversubscribing the cores.

The pool is the hasher's own rather than the shared threadpool for memory's sake: argon2id
takes a 19 MiB buffer per hash, and glibc keeps a freed buffer in the arena of the thread
that used it. A fixed set of threads reuses a fixed set of buffers (RSS stays at
threads x 19 MiB over the process' life), where any of dozens of pool threads hashing now
and then would leave a buffer in each of up to 8 x cores arenas.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import unicodedata
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal, TypeVar

import argon2
from pwdlib import PasswordHash
from pwdlib.exceptions import UnknownHashError
from pwdlib.hashers.argon2 import Argon2Hasher
from pwdlib.hashers.bcrypt import BcryptHasher

PasswordScheme = Literal["argon2id", "bcrypt"]

# bcrypt ignores everything past 72 bytes; bcrypt >= 5 refuses such input outright.
BCRYPT_MAX_BYTES = 72

_T = TypeVar("_T")

# Hashes brought over from another system (`authsvc users import`). Every login with such a
# hash runs it once, so its cost is bounded: a hash asking for minutes of CPU or gigabytes of
# memory would let anyone who knows the username tie up the service.
_BCRYPT_HASH = re.compile(r"\$2[aby]\$(?P<cost>\d\d)\$[./A-Za-z0-9]{53}")
_ARGON2_HASH = re.compile(
    r"\$argon2(?:id|i|d)\$v=19\$m=\d{1,10},t=\d{1,10},p=\d{1,3}\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+"
)
BCRYPT_IMPORT_COST = (4, 16)
# The cheapest imported hash kept. A login against a hash far cheaper than the service's
# own (bcrypt cost 4, argon2 with 8 KiB) answers in microseconds instead of tens of
# milliseconds: the timing singles those accounts out, and the hashes are cheap to crack.
BCRYPT_MIN_IMPORT_COST = 10  # OWASP Password Storage Cheat Sheet: bcrypt cost >= 10
ARGON2_MIN_IMPORT_MEMORY_KIB = 7 * 1024  # OWASP's least-memory argon2id setting (m=7 MiB)
ARGON2_IMPORT_MAX_MEMORY_KIB = 256 * 1024
ARGON2_IMPORT_MAX_TIME_COST = 16
ARGON2_IMPORT_MAX_PARALLELISM = 16
MAX_HASH_LENGTH = 255  # the width of users.hashed_password


# How much lower than the event loop the hashing threads are scheduled (nice(2) steps).
HASH_THREAD_NICENESS = 5


def _yield_to_the_loop() -> None:
    """Lower the calling hashing thread's priority, so the event loop wins the CPU.

    When every core is hashing, the event loop's thread would otherwise wait for a time
    slice among the hashing threads before it can answer a cheap request (a health check,
    a token check). On Linux the nice value is per thread (setpriority(2), "who" = 0 is the
    calling thread); elsewhere, or when not permitted, hashing keeps the normal priority.
    """
    with contextlib.suppress(OSError, AttributeError):
        current = os.getpriority(os.PRIO_PROCESS, 0)
        os.setpriority(os.PRIO_PROCESS, 0, min(current + HASH_THREAD_NICENESS, 19))


def normalize_password(password: str) -> str:
    """NFKC-normalise a password (NIST SP 800-63B §5.1.1.2) so equivalent input hashes alike."""
    return unicodedata.normalize("NFKC", password)


@dataclass(frozen=True, slots=True)
class HashFloor:
    """The least cost an imported hash must have: the service's own argon2 work, and bcrypt
    cost 10. `argon2_work` is memory (KiB) x passes, what one verification costs."""

    argon2_memory_kib: int
    argon2_time_cost: int
    bcrypt_cost: int = BCRYPT_MIN_IMPORT_COST

    @property
    def argon2_work(self) -> int:
        return self.argon2_memory_kib * self.argon2_time_cost

    @property
    def argon2_min_memory_kib(self) -> int:
        return min(self.argon2_memory_kib, ARGON2_MIN_IMPORT_MEMORY_KIB)


def imported_hash_problem(hashed: str, *, floor: HashFloor) -> str | None:
    """Why a hash from another system cannot be kept as it is, or None when it can.

    Accepted: bcrypt (`$2a$`, `$2b$`, `$2y$`) and argon2 (`id`, `i`, `d`; version 19) in their
    standard encodings, costing at least `floor` and at most what a login may spend.
    `PasswordHasher.verify` checks them and hands back a hash of the configured scheme, so
    they are upgraded at the user's next login.
    """
    if len(hashed) > MAX_HASH_LENGTH:
        return f"a hash longer than {MAX_HASH_LENGTH} characters"
    bcrypt_match = _BCRYPT_HASH.fullmatch(hashed)
    if bcrypt_match:
        low, high = BCRYPT_IMPORT_COST
        cost = int(bcrypt_match["cost"])
        if not low <= cost <= high:
            return f"bcrypt cost must be between {low} and {high}"
        if cost < floor.bcrypt_cost:
            return (
                f"bcrypt cost {cost} is below {floor.bcrypt_cost}: too cheap to keep "
                "(its fast logins would single the account out); import the password or a "
                "stronger hash"
            )
        return None
    if _ARGON2_HASH.fullmatch(hashed):
        try:
            params = argon2.extract_parameters(hashed)
        except argon2.exceptions.InvalidHashError:
            return "not a valid argon2 hash"
        # RFC 9106 §3.1: salt >= 8 bytes, tag >= 4 bytes, t >= 1, p >= 1, m >= 8 * p KiB.
        if (
            params.salt_len < 8
            or params.hash_len < 4
            or params.time_cost < 1
            or params.parallelism < 1
            or params.memory_cost < 8 * params.parallelism
        ):
            return "not a valid argon2 hash"
        if params.memory_cost > ARGON2_IMPORT_MAX_MEMORY_KIB:
            return f"argon2 memory cost must be at most {ARGON2_IMPORT_MAX_MEMORY_KIB} KiB"
        if params.time_cost > ARGON2_IMPORT_MAX_TIME_COST:
            return f"argon2 time cost must be at most {ARGON2_IMPORT_MAX_TIME_COST}"
        if params.parallelism > ARGON2_IMPORT_MAX_PARALLELISM:
            return f"argon2 parallelism must be at most {ARGON2_IMPORT_MAX_PARALLELISM}"
        if (
            params.memory_cost < floor.argon2_min_memory_kib
            or params.memory_cost * params.time_cost < floor.argon2_work
        ):
            return (
                f"argon2 m={params.memory_cost},t={params.time_cost} is cheaper than this "
                f"service's own hashes (memory x time at least {floor.argon2_work}, memory at "
                f"least {floor.argon2_min_memory_kib} KiB): too cheap to keep (its fast "
                "logins would single the account out); import the password or a stronger hash"
            )
        return None
    return "not a bcrypt or argon2 hash in standard encoding"


def hash_scheme(hashed: str) -> str:
    """The scheme a stored hash was made with, for operators (`argon2id`, `bcrypt`, ...)."""
    if hashed.startswith("$2"):
        return "bcrypt"
    if hashed.startswith("$argon2"):
        return hashed[1:].partition("$")[0]
    return "unknown"


class PasswordHasher:
    """Hashes and verifies passwords; re-hashes on login when the stored scheme is outdated."""

    def __init__(
        self,
        scheme: PasswordScheme = "argon2id",
        *,
        argon2_memory_kib: int = 19_456,
        argon2_time_cost: int = 2,
        argon2_parallelism: int = 1,
        bcrypt_rounds: int = 12,
        max_concurrency: int | None = None,
    ) -> None:
        # OWASP Password Storage Cheat Sheet: argon2id m=19 MiB, t=2, p=1; bcrypt cost >= 10.
        argon2 = Argon2Hasher(
            time_cost=argon2_time_cost,
            memory_cost=argon2_memory_kib,
            parallelism=argon2_parallelism,
        )
        bcrypt = BcryptHasher(rounds=bcrypt_rounds)
        hashers = (argon2, bcrypt) if scheme == "argon2id" else (bcrypt, argon2)
        self.scheme: PasswordScheme = scheme
        self.import_floor = HashFloor(
            argon2_memory_kib=argon2_memory_kib, argon2_time_cost=argon2_time_cost
        )
        self._hash = PasswordHash(hashers)
        self.threads = max_concurrency or os.cpu_count() or 1
        self._pool = ThreadPoolExecutor(
            self.threads, thread_name_prefix="password-hash", initializer=_yield_to_the_loop
        )
        # A hash of a random secret with the current parameters: verifying against it when
        # the user does not exist costs exactly what a real verification costs.
        self._dummy_hash = self._hash.hash(secrets.token_urlsafe(32))

    def fits(self, password: str) -> bool:
        """Whether the scheme can hash the whole password (bcrypt stops at 72 bytes)."""
        if self.scheme != "bcrypt":
            return True
        return len(normalize_password(password).encode()) <= BCRYPT_MAX_BYTES

    def hash_sync(self, password: str) -> str:
        """Hash on the calling thread (CLI and tests); raises ValueError if it does not fit."""
        if not self.fits(password):
            raise ValueError(f"bcrypt cannot hash more than {BCRYPT_MAX_BYTES} bytes")
        return self._hash.hash(normalize_password(password))

    def verify_sync(self, password: str, hashed: str) -> tuple[bool, str | None]:
        """Check a password; also return a new hash when the stored one should be upgraded."""
        candidate = normalize_password(password)
        try:
            return self._hash.verify_and_update(candidate, hashed)
        except UnknownHashError:
            return False, None
        except ValueError:
            # bcrypt >= 5 refuses input over 72 bytes instead of truncating it: no match.
            return False, None

    def verify_dummy_sync(self, password: str) -> None:
        """Spend the time of one verification, for a user that does not exist."""
        self.verify_sync(password, self._dummy_hash)

    async def hash(self, password: str) -> str:
        """Hash off the event loop; raises ValueError if the password does not fit the scheme."""
        return await self._off_loop(self.hash_sync, password)

    async def verify(self, password: str, hashed: str) -> tuple[bool, str | None]:
        """Verify off the event loop; see `verify_sync`."""
        return await self._off_loop(self.verify_sync, password, hashed)

    async def verify_dummy(self, password: str) -> None:
        """Verify against the dummy hash off the event loop (user-enumeration defence)."""
        await self._off_loop(self.verify_dummy_sync, password)

    def close(self) -> None:
        """Drop the queued hashes; the threads end after the one they run (no wait)."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def _off_loop(self, function: Callable[..., _T], *args: str) -> _T:
        # A request cancelled while its hash still waits in the queue takes the job out of
        # the queue (wrap_future propagates the cancellation); a running hash completes.
        return await asyncio.wrap_future(self._pool.submit(function, *args))
