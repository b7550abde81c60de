"""Each worker's in-memory copy of the signing keys, refreshed from the database.

The hot path (signing, verifying, the JWKS) reads an immutable snapshot that a reload
swaps in one assignment, so it takes no lock and never waits. A reload happens every
`SIGNING_KEY_REFRESH_SECONDS` and, at most once per cool-down, when a token names a `kid`
the snapshot does not know (a key another host rotated in a moment ago). Concurrent
requests that meet unknown kids share one reload; garbage kids cost one query per
cool-down at most. Only the current key's private part is decrypted, and only when it
changes.

Revocation (`authsvc keys revoke`) cannot wait for a refresh: every verification asks the
database whether the key is still unrevoked (one primary-key read). On a SQLite file the
answer is kept while the file's data version shows no commit since, so the read path of
a quiet database still costs no statement. The JWKS is served from a reload made for the
request, so a revoked key leaves it on every worker at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from app.core.jwt import LEEWAY
from app.core.signing_keys import (
    KeyCipher,
    KeyDecryptionError,
    PrivateKey,
    PublicKey,
    public_key_from_jwk,
)
from app.database import Database
from app.keys.store import (
    ACCESS,
    SigningKeyService,
    StoredKey,
    install_key,
    key_is_usable,
)
from app.utils.clock import Clock, utc_now
from app.utils.logger import get_logger

log = get_logger(__name__)

Loader = Callable[[datetime], Awaitable[Sequence[StoredKey]]]
# Whether a kid is still unrevoked, asked of the database.
Checker = Callable[[str], Awaitable[bool]]
# A number that moves with every commit to the database; None: unknown (app.sessions.bearer).
Version = Callable[[], int | None]


class NoSigningKeyError(RuntimeError):
    """The key set has no current key to sign with (not loaded, or HS configured)."""


@dataclass(frozen=True, slots=True)
class _Verifier:
    algorithm: str
    key: PublicKey
    jwk: dict[str, str]
    retired_at: datetime | None


@dataclass(frozen=True, slots=True)
class _Snapshot:
    signing: tuple[str, str, PrivateKey] | None = None
    verifiers: dict[str, _Verifier] = field(default_factory=dict)


class KeyRing:
    """The key set a TokenCodec signs and verifies with (`app.core.jwt.KeySet`)."""

    def __init__(
        self,
        *,
        loader: Loader,
        cipher: KeyCipher,
        max_token_lifetime: timedelta,
        clock: Clock = utc_now,
        monotonic: Callable[[], float] = time.monotonic,
        unknown_kid_cooldown: float = 5.0,
        usable: Checker | None = None,
        version: Version | None = None,
    ) -> None:
        """`max_token_lifetime`: how long after its retirement a key may still have valid
        tokens (the longest token lifetime plus the verification leeway). `usable` asks
        the database whether a key is unrevoked (None: trust the snapshot); `version`
        lets a confirmation stand while the database has not changed."""
        self._loader = loader
        self._cipher = cipher
        self._lifetime = max_token_lifetime
        self._clock = clock
        self._monotonic = monotonic
        self._cooldown = unknown_kid_cooldown
        self._snapshot = _Snapshot()
        self._last_unknown_reload: float | None = None
        self._reloading: asyncio.Task[None] | None = None
        self._usable = usable
        self._version = version
        self._confirmed: dict[str, int] = {}  # kid: the database version it was confirmed at

    # --- the hot path: no await, no lock -----------------------------------------------

    def signing_key(self) -> tuple[str, str, PrivateKey]:
        signing = self._snapshot.signing
        if signing is None:
            raise NoSigningKeyError("no current signing key is loaded")
        return signing

    def verification_key(self, kid: str) -> tuple[str, Any] | None:
        verifier = self._snapshot.verifiers.get(kid)
        if verifier is None or not self._published(verifier):
            return None
        return verifier.algorithm, verifier.key

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        """The JWK Set (RFC 7517 §5): public keys that may still have unexpired tokens."""
        verifiers = self._snapshot.verifiers.values()
        return {"keys": [dict(v.jwk) for v in verifiers if self._published(v)]}

    @property
    def current_kid(self) -> str | None:
        signing = self._snapshot.signing
        return signing[0] if signing else None

    def _published(self, verifier: _Verifier) -> bool:
        retired = verifier.retired_at
        return retired is None or retired + self._lifetime > self._clock()

    # --- reloading -----------------------------------------------------------------------

    async def reload(self) -> None:
        """Read the live keys from the database and swap the snapshot in.

        Raises DatabaseException, or KeyDecryptionError when the current key does not
        decrypt under this SECRET_KEY (the old snapshot then stays in use).
        """
        rows = await self._loader(self._clock() - self._lifetime)
        old = self._snapshot
        verifiers = {
            row.kid: _Verifier(
                row.algorithm, public_key_from_jwk(row.public_jwk), row.public_jwk, row.retired_at
            )
            for row in rows
        }
        current = next((row for row in rows if row.current), None)
        signing = None
        if current is not None:
            if old.signing is not None and old.signing[0] == current.kid:
                signing = old.signing
            else:
                # AES-GCM and key parsing (RSA checks its key): off the event loop.
                private_key = await asyncio.to_thread(
                    self._cipher.decrypt,
                    current.private_key_encrypted,
                    kid=current.kid,
                    algorithm=current.algorithm,
                )
                signing = (current.kid, current.algorithm, private_key)
        self._snapshot = _Snapshot(signing=signing, verifiers=verifiers)
        if signing is not None and (old.signing is None or old.signing[0] != signing[0]):
            log.info("signing key loaded", kid=signing[0], algorithm=signing[1])

    async def _shared_reload(self) -> None:
        """A reload that concurrent callers share; raises what `reload` raises."""
        if self._reloading is None:
            self._reloading = asyncio.ensure_future(self.reload())
        task = self._reloading
        try:
            # shield: one caller giving up (a client that hung up) does not cancel the
            # reload that the others are waiting for.
            await asyncio.shield(task)
        finally:
            if task.done() and self._reloading is task:
                self._reloading = None

    async def reload_for_unknown_kid(self) -> bool:
        """Reload once for a token with an unknown `kid`, unless a reload for that reason
        started less than the cool-down ago; concurrent callers share one reload."""
        if self._reloading is None:
            now = self._monotonic()
            last = self._last_unknown_reload
            if last is not None and now - last < self._cooldown:
                return False
            self._last_unknown_reload = now
        try:
            await self._shared_reload()
        except Exception as error:  # the database may be down: refuse, as with no reload
            log.warning("signing key reload failed", error_type=type(error).__name__)
            return False
        return True

    async def confirm(self, kid: str) -> bool:
        """Whether `kid` is still unrevoked in the database; a revoked one also starts a
        (rate-limited) reload. Raises DatabaseException when the database cannot say."""
        if await self._unrevoked(kid):
            return True
        log.warning("token of a revoked signing key refused", kid=kid)
        await self.reload_for_unknown_kid()
        return False

    async def ensure_signing_key(self) -> None:
        """Before signing: if the current key was revoked on another host since the last
        load, load the key that replaced it (no cool-down: nothing is signed with a revoked
        key). Raises DatabaseException."""
        kid = self.current_kid
        if kid is not None and not await self._unrevoked(kid):
            await self._shared_reload()

    async def _unrevoked(self, kid: str) -> bool:
        if self._usable is None:
            return True
        seen = self._version() if self._version is not None else None
        if seen is not None and self._confirmed.get(kid) == seen:
            return True
        if not await self._usable(kid):
            self._confirmed.pop(kid, None)
            return False
        # Kept only if nothing committed while the read ran (it may have been a revocation).
        if seen is not None and self._version is not None and self._version() == seen:
            self._confirmed = {k: v for k, v in self._confirmed.items() if v == seen}
            self._confirmed[kid] = seen
        return True

    async def fresh_jwks(self) -> dict[str, list[dict[str, str]]]:
        """`jwks` after a reload (shared with concurrent callers): a key revoked or rotated
        in on another host shows at once. With the database down, the keys last loaded."""
        try:
            await self._shared_reload()
        except Exception as error:
            log.warning("signing key reload failed", error_type=type(error).__name__)
        return self.jwks()

    async def refresh_periodically(self, interval: float) -> None:
        """Reload every `interval` seconds until cancelled; failures keep the old keys."""
        while True:
            await asyncio.sleep(interval)
            try:
                await self.reload()
            except Exception as error:
                log.warning("signing key refresh failed", error_type=type(error).__name__)


class LazyKeyRing:
    """A key ring opened when first needed (its first key made then), or one shared with
    the access tokens. The ID tokens' keys: a deployment that never serves an OpenID
    Connect application never generates one."""

    def __init__(
        self,
        ring: KeyRing | None,
        *,
        opener: Callable[[], Awaitable[KeyRing]],
        refresh_interval: float,
    ) -> None:
        self._ring = ring
        self._opener = opener
        self._interval = refresh_interval
        self._lock = asyncio.Lock()
        self._refresher: asyncio.Task[None] | None = None

    async def ring(self) -> KeyRing:
        """The ring; raises DatabaseException (or KeyDecryptionError) when it cannot open."""
        if self._ring is not None:
            return self._ring
        async with self._lock:
            if self._ring is None:
                ring = await self._opener()
                self._refresher = asyncio.ensure_future(ring.refresh_periodically(self._interval))
                self._ring = ring
        return self._ring

    async def close(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher


def max_token_lifetime(access_ttl: timedelta, refresh_ttl: timedelta) -> timedelta:
    """How long a retired key may still have valid tokens: the longest lifetime plus the
    verification leeway (`app.core.jwt`), so no token outlives its published key."""
    return max(access_ttl, refresh_ttl) + LEEWAY


async def open_keyring(
    database: Database,
    *,
    algorithm: str,
    secret_key: str,
    max_lifetime: timedelta,
    clock: Clock = utc_now,
    version: Version | None = None,
    purpose: str = ACCESS,
) -> KeyRing:
    """Create the first key (once, however many workers start together), then load the set.

    Raises DatabaseException, or KeyDecryptionError when the current key was encrypted under
    another SECRET_KEY.
    """
    cipher = KeyCipher(secret_key)
    await install_key(database, algorithm, cipher, clock, only_if_missing=True, purpose=purpose)

    async def load(retired_after: datetime) -> Sequence[StoredKey]:
        # A reload may run inside a request that holds a connection: from the pool aside.
        async with database.session(aside=True) as session:
            return await SigningKeyService(session, purpose).live(retired_after)

    ring = KeyRing(
        loader=load,
        cipher=cipher,
        max_token_lifetime=max_lifetime,
        clock=clock,
        usable=lambda kid: key_is_usable(database, kid),
        version=version,
    )
    try:
        await ring.reload()
    except KeyDecryptionError:
        raise KeyDecryptionError(
            "the current signing key does not decrypt with this SECRET_KEY: restore the "
            "SECRET_KEY it was made under, or run `authsvc keys rotate` to make a new key"
        ) from None
    return ring


async def purge_retired_keys(
    database: Database, *, max_lifetime: timedelta, clock: Clock = utc_now
) -> int:
    """Drop the keys whose last token has expired; returns how many."""
    async with database.session() as session:
        purged = await SigningKeyService(session).purge_retired(clock() - max_lifetime)
    if purged:
        log.info("retired signing keys purged", count=purged)
    return purged
