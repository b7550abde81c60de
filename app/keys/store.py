"""The signing keys in the database: create the first one, rotate, list, purge.

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

from sqlalchemy import CursorResult, delete, select, update
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
        )


class KeyRaceLost(Exception):
    """Another worker installed a signing key between our read and our write."""


class SigningKeyService:
    """Data access for `signing_keys`; flushes or executes, never commits."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def all(self) -> list[StoredKey]:
        """Every key, newest first."""
        stmt = select(SigningKey).order_by(SigningKey.created_at.desc(), SigningKey.kid)
        return [StoredKey.of(row) for row in (await self.session.scalars(stmt)).all()]

    async def live(self, retired_after: datetime) -> list[StoredKey]:
        """The current key and those retired after `retired_after` (tokens may remain)."""
        stmt = (
            select(SigningKey)
            .where(SigningKey.retired_at.is_(None) | (SigningKey.retired_at > retired_after))
            .order_by(SigningKey.created_at.desc(), SigningKey.kid)
        )
        return [StoredKey.of(row) for row in (await self.session.scalars(stmt)).all()]

    async def current(self) -> StoredKey | None:
        row = await self.session.scalar(select(SigningKey).where(SigningKey.current.is_(True)))
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


async def new_key_row(algorithm: str, cipher: KeyCipher, now: datetime) -> SigningKey:
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
    )


async def install_key(
    database: Database,
    algorithm: str,
    cipher: KeyCipher,
    clock: Callable[[], datetime],
    *,
    only_if_missing: bool,
    audit_via: str | None = None,
) -> tuple[StoredKey, bool]:
    """Make a new key of `algorithm` current, or (`only_if_missing`) keep a current key of
    that algorithm when there is one. Returns the current key and whether it is new.
    With `audit_via` (an operator's rotation) a `key.rotated` event is recorded in the
    transaction that installs the key, with no actor.

    Raises DatabaseException, or KeyRaceLost after repeated lost races.
    """
    for attempt in range(_INSTALL_ATTEMPTS):
        async with database.session() as session:
            current = await SigningKeyService(session).current()
        if only_if_missing and current is not None and current.algorithm == algorithm:
            return current, False
        # Generated outside any transaction: no lock is held across the CPU work.
        row = await new_key_row(algorithm, cipher, clock())
        try:
            async with database.session() as session:
                replaces = current.kid if current is not None else None
                await SigningKeyService(session).install(row, clock(), replaces=replaces)
                installed = StoredKey.of(row)
                if audit_via is not None:
                    details = {
                        "via": audit_via,
                        "kid": installed.kid,
                        "alg": installed.algorithm,
                        "replaces": replaces,
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
