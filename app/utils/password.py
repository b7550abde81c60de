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
import os
import secrets
import unicodedata
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Literal, TypeVar

from pwdlib import PasswordHash
from pwdlib.exceptions import UnknownHashError
from pwdlib.hashers.argon2 import Argon2Hasher
from pwdlib.hashers.bcrypt import BcryptHasher

PasswordScheme = Literal["argon2id", "bcrypt"]

# bcrypt ignores everything past 72 bytes; bcrypt >= 5 refuses such input outright.
BCRYPT_MAX_BYTES = 72

_T = TypeVar("_T")


def normalize_password(password: str) -> str:
    """NFKC-normalise a password (NIST SP 800-63B §5.1.1.2) so equivalent input hashes alike."""
    return unicodedata.normalize("NFKC", password)


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
        self._hash = PasswordHash(hashers)
        self.threads = max_concurrency or os.cpu_count() or 1
        self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="password-hash")
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
