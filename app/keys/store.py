"""The signing keys in the database: create the first one, rotate, revoke, list, purge.

Creation and rotation are race-safe across workers and hosts, a compare-and-swap on the
current key: a worker retires only the key it saw as current (a conditional UPDATE), and
the unique constraint on `signing_keys.current` lets one key be current. Of two workers
that install a key at the same moment, one finds nothing to retire or fails its INSERT;
it rolls back and reads the winner's key.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import CursorResult, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.log import AuditLog, Event
from app.core.signing_keys import KeyCipher, generate_private_key, public_jwk, thumbprint
from app.database import Database
from app.models.signing_key import SigningKey
from app.utils.logger import get_logger

log = get_logger(__name__)

_INSTALL_ATTEMPTS = 5


@dataclass(frozen=True, slots=True)
class StoredKey:
    """A row of `signing_keys`, detached from any session."""

    kid: str
    algorithm: str
    public_jwk: dict[str, str]
    private_key_encrypted: bytes
    current: bool
    created_at: datetime
    activated_at: datetime
    retired_at: datetime | None
    revoked_at: datetime | None = None
    purpose: str = "access"

    @classmethod
    def of(cls, row: SigningKey) -> StoredKey:
        return cls(
            kid=row.kid,
            algorithm=row.algorithm,
            public_jwk=dict(row.public_jwk),
            private_key_encrypted=row.private_key_encrypted,
            current=bool(row.current),
            created_at=row.created_at,
            activated_at=row.activated_at,
            retired_at=row.retired_at,
            revoked_at=row.revoked_at,
            purpose=row.purpose or "access",
        )


class KeyRaceLost(Exception):
    """Another worker installed a signing key between our read and our write."""


class UnknownSigningKey(LookupError):
    """No signing key has this kid (never made, or purged after its last token expired)."""


@dataclass(frozen=True, slots=True)
class Revocation:
    """What `revoke_key` did: the key, and the key made current in its place (if any)."""

    key: StoredKey
    replacement: StoredKey | None
    already_revoked: bool


# The two sets of keys (app.models.signing_key): the tokens of JWT_ALGORITHM, ID tokens.
ACCESS = "access"
ID_TOKEN = "id_token"  # noqa: S105 - a purpose, not a secret


class SigningKeyService:
    """Data access for `signing_keys` of one purpose (`all`, `get` and `revoke` see every
    key); flushes or executes, never commits."""

    def __init__(self, session: AsyncSession, purpose: str = ACCESS) -> None:
        self.session = session
        self.purpose = purpose

    async def all(self) -> list[StoredKey]:
        """Every key, newest first."""
        stmt = select(SigningKey).order_by(SigningKey.created_at.desc(), SigningKey.kid)
        return [StoredKey.of(row) for row in (await self.session.scalars(stmt)).all()]

    async def live(self, retired_after: datetime) -> list[StoredKey]:
        """The current key and those retired after `retired_after` (tokens may remain),
        never a revoked one."""
        stmt = (
            select(SigningKey)
            .where(SigningKey.purpose == self.purpose)
            .where(SigningKey.retired_at.is_(None) | (SigningKey.retired_at > retired_after))
            .where(SigningKey.revoked_at.is_(None))
            .order_by(SigningKey.created_at.desc(), SigningKey.kid)
        )
        return [StoredKey.of(row) for row in (await self.session.scalars(stmt)).all()]

    async def get(self, kid: str) -> StoredKey | None:
        row = await self.session.get(SigningKey, kid)
        return StoredKey.of(row) if row is not None else None

    async def revoke(self, kid: str, now: datetime) -> bool:
        """Mark `kid` revoked, retired and not current; False when it is unknown or was
        revoked already (by a concurrent revocation, too: the UPDATE is conditional)."""
        result = await self.session.execute(
            update(SigningKey)
            .where(SigningKey.kid == kid, SigningKey.revoked_at.is_(None))
            .values(
                revoked_at=now,
                current=None,
                retired_at=func.coalesce(SigningKey.retired_at, now),
            )
            .execution_options(synchronize_session=False)
        )
        assert isinstance(result, CursorResult)
        return result.rowcount == 1

    async def current(self) -> StoredKey | None:
        row = await self.session.scalar(
            select(SigningKey).where(
                SigningKey.current.is_(True), SigningKey.purpose == self.purpose
            )
        )
        return StoredKey.of(row) if row is not None else None

    async def install(self, row: SigningKey, now: datetime, *, replaces: str | None) -> None:
        """Retire the current key `replaces` (None: there is none) and make `row` current.

        Raises KeyRaceLost when another worker installed a key since the caller looked
        (the caller retries).
        """
        if replaces is not None:
            result = await self.session.execute(
                update(SigningKey)
                .where(SigningKey.current.is_(True), SigningKey.kid == replaces)
                .values(current=None, retired_at=now)
                .execution_options(synchronize_session=False)
            )
            assert isinstance(result, CursorResult)
            if result.rowcount != 1:
                raise KeyRaceLost()
        self.session.add(row)
        try:
            await self.session.flush()
        except IntegrityError:  # somebody else's key became current first
            raise KeyRaceLost() from None

    async def purge_retired(self, retired_before: datetime) -> int:
        """Delete keys retired before `retired_before` (their last token has expired)."""
        stmt = (
            delete(SigningKey)
            .where(SigningKey.retired_at < retired_before)
            .execution_options(synchronize_session=False)
        )
        result = await self.session.execute(stmt)
        assert isinstance(result, CursorResult)
        return int(result.rowcount)


async def new_key_row(
    algorithm: str, cipher: KeyCipher, now: datetime, purpose: str = ACCESS
) -> SigningKey:
    """A fresh key pair as a row, generated off the event loop (RSA takes ~0.1 s)."""
    private_key = await asyncio.to_thread(generate_private_key, algorithm)
    public_key = private_key.public_key()
    kid = thumbprint(public_key)
    return SigningKey(
        kid=kid,
        algorithm=algorithm,
        public_jwk=public_jwk(public_key, kid=kid, algorithm=algorithm),
        private_key_encrypted=cipher.encrypt(private_key, kid=kid, algorithm=algorithm),
        current=True,
        created_at=now,
        activated_at=now,
        retired_at=None,
        purpose=purpose,
    )


async def install_key(
    database: Database,
    algorithm: str,
    cipher: KeyCipher,
    clock: Callable[[], datetime],
    *,
    only_if_missing: bool,
    audit_via: str | None = None,
    purpose: str = ACCESS,
) -> tuple[StoredKey, bool]:
    """Make a new key of `algorithm` current, or (`only_if_missing`) keep a current key of
    that algorithm when there is one. Returns the current key and whether it is new.
    With `audit_via` (an operator's rotation) a `key.rotated` event is recorded in the
    transaction that installs the key, with no actor.

    Raises DatabaseException, or KeyRaceLost after repeated lost races.
    """
    # Aside (app.database.ASIDE_POOL): the first ID token of a worker opens its key ring
    # in the middle of a request that holds a connection.
    for attempt in range(_INSTALL_ATTEMPTS):
        async with database.session(aside=True) as session:
            current = await SigningKeyService(session, purpose).current()
        if only_if_missing and current is not None and current.algorithm == algorithm:
            return current, False
        # Generated outside any transaction: no lock is held across the CPU work.
        row = await new_key_row(algorithm, cipher, clock(), purpose)
        try:
            async with database.session(aside=True) as session:
                replaces = current.kid if current is not None else None
                await SigningKeyService(session, purpose).install(row, clock(), replaces=replaces)
                installed = StoredKey.of(row)
                if audit_via is not None:
                    details = {
                        "via": audit_via,
                        "kid": installed.kid,
                        "alg": installed.algorithm,
                        "replaces": replaces,
                        **({"purpose": purpose} if purpose != ACCESS else {}),
                    }
                    AuditLog(session, clock=clock).record(
                        Event.KEY_ROTATED, user_id=None, details=details
                    )
        except (KeyRaceLost, IntegrityError):
            log.info("signing key race lost", attempt=attempt + 1)
            continue
        log.info("signing key installed", kid=installed.kid, algorithm=algorithm)
        return installed, True
    raise KeyRaceLost("signing key installation lost every race")


async def revoke_key(
    database: Database,
    kid: str,
    *,
    algorithm: str,
    cipher: KeyCipher,
    clock: Callable[[], datetime],
    audit_via: str,
) -> Revocation:
    """Withdraw `kid` at once: unpublished, and every token it signed refused by every
    worker (they check the key's row on each verification). When it is the current key,
    a new key of `algorithm` becomes current in the same transaction, so the service never
    stands without a key to sign with. Records `key.revoked` (and `key.rotated` for the
    replacement) with no actor. Revoking a revoked key changes nothing.

    Raises UnknownSigningKey, DatabaseException, or KeyRaceLost after repeated lost races.
    """
    for attempt in range(_INSTALL_ATTEMPTS):
        async with database.session() as session:
            target = await SigningKeyService(session).get(kid)
        if target is None:
            raise UnknownSigningKey(kid)
        if target.revoked_at is not None:
            return Revocation(key=target, replacement=None, already_revoked=True)
        # Generated outside any transaction: no lock is held across the CPU work. An ID-token
        # key is replaced by one of its own algorithm (ID_TOKEN_ALGORITHM).
        replacement_algorithm = algorithm if target.purpose == ACCESS else target.algorithm
        row = (
            await new_key_row(replacement_algorithm, cipher, clock(), target.purpose)
            if target.current
            else None
        )
        try:
            async with database.session() as session:
                keys = SigningKeyService(session, target.purpose)
                now = clock()
                if not await keys.revoke(kid, now):
                    raise KeyRaceLost()  # revoked meanwhile: read it again
                audit = AuditLog(session, clock=clock)
                replacement = None
                if row is not None:
                    # Fails (IntegrityError) if another key became current since the read:
                    # the whole transaction, revocation included, is then retried.
                    await keys.install(row, now, replaces=None)
                    replacement = StoredKey.of(row)
                    details = {"via": audit_via, "kid": row.kid, "alg": row.algorithm}
                    audit.record(
                        Event.KEY_ROTATED, user_id=None, details={**details, "replaces": kid}
                    )
                audit.record(
                    Event.KEY_REVOKED,
                    user_id=None,
                    details={
                        "via": audit_via,
                        "kid": kid,
                        "alg": target.algorithm,
                        "replaced_by": replacement.kid if replacement else None,
                    },
                )
        except (KeyRaceLost, IntegrityError):
            log.info("signing key revocation race lost", attempt=attempt + 1)
            continue
        revoked = await _read(database, kid)
        log.warning(
            "signing key revoked",
            kid=kid,
            replaced_by=replacement.kid if replacement else None,
        )
        return Revocation(key=revoked or target, replacement=replacement, already_revoked=False)
    raise KeyRaceLost("signing key revocation lost every race")


async def _read(database: Database, kid: str) -> StoredKey | None:
    async with database.session() as session:
        return await SigningKeyService(session).get(kid)


async def key_is_usable(database: Database, kid: str) -> bool:
    """Whether `kid` still has a row and is not revoked: one primary-key read, no ORM.

    Raises DatabaseException (or CircuitBreakerOpenException). Asked before signing and
    after verifying, by requests that may hold a connection: from the pool aside."""
    async with database.connection(aside=True) as connection:
        row = (
            await connection.execute(select(SigningKey.revoked_at).where(SigningKey.kid == kid))
        ).first()
    return row is not None and row.revoked_at is None
