"""Two-factor authentication (TOTP, RFC 6238) with recovery codes; knows no HTTP.

Every "this code works once" decision is a conditional UPDATE checked by its row count, so
it holds with any number of workers and hosts on one database: a TOTP code moves the user's
`last_step` forward (`... WHERE last_step < :step`), a recovery code sets its `used_at`
(`... WHERE used_at IS NULL`), an attempt on an `mfa_token` raises its counter
(`... WHERE attempts < 5`) and finishing a sign-in deletes its challenge row. Of two
concurrent submissions exactly one matches the row (PostgreSQL's row lock, SQLite's single
writer); the other re-checks the WHERE clause and finds nothing.

Reads end their transaction before CPU work (decrypting, hashing) and before writing: on
SQLite a read transaction that later writes fails at once when another writer got in
first, instead of waiting for the lock.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import CursorResult, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.log import AuditLog, Event
from app.core import totp
from app.core.errors import InvalidMfaCodeException, MfaAlreadyEnabledException
from app.core.jwt import Clock, utc_now
from app.core.passwords import PasswordHasher
from app.models.mfa import MfaChallenge, MfaRecoveryCode, MfaTotp
from app.models.user import User
from app.throttle import Throttle
from app.transaction import Transaction
from app.utils.crypto import DecryptionError, SecretBox
from app.utils.keyed_hash import derive_key
from app.utils.logger import get_logger

log = get_logger(__name__)

# HKDF `info` of the key that encrypts TOTP secrets: no other key derived from SECRET_KEY
# (the JWT key is SECRET_KEY itself) can be this one.
TOTP_KEY_INFO = b"authsvc totp secret v1"

MAX_ATTEMPTS = 5
METHODS = ("totp", "recovery_code")
RECOVERY_CODE_COUNT = 10
# Lower-case letters and digits without the look-alikes 0/o, 1/l/i: 31 symbols. Two groups
# of five: 10 x log2(31) = 49.5 bits of entropy per code.
RECOVERY_ALPHABET = "23456789abcdefghjkmnpqrstuvwxyz"
RECOVERY_GROUP = 5
_MFA_TOKEN_BYTES = 32

Method = Literal["totp", "recovery_code"]


def totp_box(secret_key: str) -> SecretBox:
    """The AES-GCM box of TOTP secrets, under a key of its own derived from SECRET_KEY."""
    return SecretBox(derive_key(secret_key, info=TOTP_KEY_INFO))


def new_recovery_code() -> str:
    chars = "".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(2 * RECOVERY_GROUP))
    return f"{chars[:RECOVERY_GROUP]}-{chars[RECOVERY_GROUP:]}"


def normalize_recovery_code(text: str) -> str | None:
    """The code without case, spaces or hyphens (as people type it), or None when it cannot
    be a recovery code at all (then no hash is spent on it)."""
    compact = "".join(text.split()).replace("-", "").lower()
    if len(compact) != 2 * RECOVERY_GROUP or not set(compact) <= set(RECOVERY_ALPHABET):
        return None
    return compact


def _compact(code: str) -> str:
    # Authenticator apps show "123 456"; people type it so.
    return "".join(code.split())


def _token_id(mfa_token: str) -> str:
    # The token is 256 random bits: a plain SHA-256 suffices (no guessing to slow down), and
    # a copy of the database holds no usable token.
    return hashlib.sha256(mfa_token.encode()).hexdigest()


def _secret_aad(user_id: int) -> bytes:
    # The row the ciphertext belongs to: a secret copied into another user's row fails.
    return f"mfa_totp.secret_encrypted:user:{user_id}".encode()


def _rowcount(result: object) -> int:
    assert isinstance(result, CursorResult)
    return int(result.rowcount)


async def purge_expired_challenges(session: AsyncSession, now: datetime) -> int:
    """Delete the challenges of sign-ins abandoned before their second factor."""
    result = await session.execute(
        delete(MfaChallenge)
        .where(MfaChallenge.expires_at < now)
        .execution_options(synchronize_session=False)
    )
    return _rowcount(result)


@dataclass(frozen=True, slots=True)
class Enrolment:
    secret: str
    otpauth_uri: str
    qr_svg: str


@dataclass(frozen=True, slots=True)
class IssuedChallenge:
    """A sign-in waiting for its second factor."""

    user: User
    token: str
    expires_in: int
    methods: tuple[str, ...] = METHODS


@dataclass(frozen=True, slots=True)
class ReservedAttempt:
    user_id: int
    throttle_key: str


@dataclass(frozen=True, slots=True)
class VerifiedFactor:
    """A code that matched; it counts as used only once `consume` wins its UPDATE."""

    method: Method
    user_id: int
    step: int | None = None
    recovery_code_id: int | None = None


class MfaService:
    """TOTP enrolment, recovery codes and the second step of sign-in; flushes, never
    commits except to end a read before CPU work (named where it happens)."""

    def __init__(
        self,
        session: AsyncSession,
        *,
        box: SecretBox,
        hasher: PasswordHasher,
        throttle: Throttle | None = None,
        client_ip: str | None = None,
        issuer: str = "authsvc",
        challenge_ttl: timedelta = timedelta(seconds=300),
        clock: Clock = utc_now,
    ) -> None:
        self.session = session
        self.box = box
        self.hasher = hasher
        self.throttle = throttle
        self.client_ip = client_ip
        self.issuer = issuer
        self.challenge_ttl = challenge_ttl
        self.clock = clock
        self.transaction = Transaction(session)
        self.audit = AuditLog(session, clock=clock)

    async def _end_read(self) -> None:
        await self.transaction.end_read()

    # --- enrolment and management ---------------------------------------------------------

    async def start_enrolment(self, user: User) -> Enrolment:
        """A new key for the user, pending until confirmed; it replaces a pending one.

        Raises MfaAlreadyEnabledException while two-factor is on.
        """
        if user.mfa_enabled:
            raise MfaAlreadyEnabledException()
        secret = totp.new_secret()
        values = {
            "user_id": user.id,
            "secret_encrypted": self.box.encrypt(secret, associated_data=_secret_aad(user.id)),
            "last_step": 0,
            "created_at": self.clock(),
            "confirmed_at": None,
        }
        dialect = self.session.get_bind().dialect.name
        dialect_insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        # One statement: two enrolments that race both end in one row (the later key), and
        # a confirmed key is never overwritten (the WHERE of the update part).
        stmt = dialect_insert(MfaTotp).values(values)
        stmt = stmt.on_conflict_do_update(
            index_elements=[MfaTotp.user_id],
            set_={k: stmt.excluded[k] for k in ("secret_encrypted", "last_step", "created_at")},
            where=MfaTotp.confirmed_at.is_(None),
        )
        await self._end_read()
        if _rowcount(await self.session.execute(stmt)) != 1:
            raise MfaAlreadyEnabledException()
        log.info("mfa enrolment started", user_id=user.id)
        uri = totp.provisioning_uri(secret, account=user.email, issuer=self.issuer)
        return Enrolment(secret=totp.to_base32(secret), otpauth_uri=uri, qr_svg=totp.qr_svg(uri))

    async def confirm(self, user: User, code: str) -> list[str]:
        """Turn two-factor on with a code of the pending key; returns the recovery codes.

        The confirming code counts as used. Raises MfaAlreadyEnabledException,
        InvalidMfaCodeException (no pending enrolment, wrong or used code) or
        RateLimitedException.
        """
        if user.mfa_enabled:
            raise MfaAlreadyEnabledException()
        stmt = select(MfaTotp.secret_encrypted, MfaTotp.last_step).where(
            MfaTotp.user_id == user.id, MfaTotp.confirmed_at.is_(None)
        )
        pending = (await self.session.execute(stmt)).one_or_none()
        await self._end_read()
        if pending is None:
            raise InvalidMfaCodeException(
                "No two-factor enrolment is pending: start one with POST /users/me/mfa/totp"
            )
        await self._count_attempt(user)
        step = self._match(user.id, pending.secret_encrypted, pending.last_step, code)
        if step is None:
            self._rejected(user.id, "wrong_code", "confirm")
            raise InvalidMfaCodeException()
        codes, hashes = await self._new_recovery_codes()
        confirmed = await self.session.execute(
            update(MfaTotp)
            .where(
                MfaTotp.user_id == user.id,
                MfaTotp.confirmed_at.is_(None),
                # Still the key the code was checked against (not replaced meanwhile).
                MfaTotp.secret_encrypted == pending.secret_encrypted,
                MfaTotp.last_step < step,
            )
            .values(confirmed_at=self.clock(), last_step=step)
            .execution_options(synchronize_session=False)
        )
        if _rowcount(confirmed) != 1:
            self._rejected(user.id, "replayed", "confirm")
            raise InvalidMfaCodeException()
        user.mfa_enabled = True
        await self._replace_recovery_codes(user.id, hashes)
        self.audit.record(Event.MFA_ENABLED, user_id=user.id, actor_id=user.id)
        log.info("mfa enabled", user_id=user.id)
        return codes

    async def regenerate_recovery_codes(self, user: User, code: str) -> list[str]:
        """Ten new recovery codes for a current TOTP code; the old ones die.

        Raises InvalidMfaCodeException (two-factor off, wrong or used code) or
        RateLimitedException.
        """
        row = await self._active_key(user.id) if user.mfa_enabled else None
        await self._end_read()
        if row is None:
            raise InvalidMfaCodeException("Two-factor authentication is not on")
        await self._count_attempt(user)
        step = self._match(user.id, row[0], row[1], code)
        if step is None:
            self._rejected(user.id, "wrong_code", "recovery_codes")
            raise InvalidMfaCodeException()
        codes, hashes = await self._new_recovery_codes()
        if not await self._accept_step(user.id, step):
            self._rejected(user.id, "replayed", "recovery_codes")
            raise InvalidMfaCodeException()
        await self._replace_recovery_codes(user.id, hashes)
        log.info("mfa recovery codes regenerated", user_id=user.id)
        return codes

    async def disable(self, user: User, *, actor_id: int | None, via: str | None = None) -> bool:
        """Turn two-factor off (also a pending enrolment): key, recovery codes and pending
        sign-ins go. Returns whether it was on. The caller checks the authority to do so;
        `actor_id` is who did it (the user, an admin, None for the command line)."""
        was_on = user.mfa_enabled
        for model in (MfaTotp, MfaRecoveryCode, MfaChallenge):
            await self.session.execute(
                delete(model)
                .where(model.user_id == user.id)
                .execution_options(synchronize_session=False)
            )
        user.mfa_enabled = False
        await self.session.flush()
        if was_on:
            details = {"via": via} if via else None
            self.audit.record(
                Event.MFA_DISABLED, user_id=user.id, actor_id=actor_id, details=details
            )
            log.info("mfa disabled", user_id=user.id)
        return was_on

    async def remaining_recovery_codes(self, user_id: int) -> int:
        stmt = select(MfaRecoveryCode.id).where(
            MfaRecoveryCode.user_id == user_id, MfaRecoveryCode.used_at.is_(None)
        )
        return len((await self.session.execute(stmt)).all())

    # --- sign-in ---------------------------------------------------------------------------

    async def issue_challenge(self, user: User, identifier: str) -> IssuedChallenge:
        """The `mfa_token` of a sign-in whose password was right. Stored as its hash."""
        token = secrets.token_urlsafe(_MFA_TOKEN_BYTES)
        now = self.clock()
        self.session.add(
            MfaChallenge(
                id=_token_id(token),
                user_id=user.id,
                # The keyed hash the password step counted on (empty without a throttle).
                throttle_key="" if self.throttle is None else self.throttle.account_key(identifier),
                attempts=0,
                created_at=now,
                expires_at=now + self.challenge_ttl,
            )
        )
        await self.session.flush()
        return IssuedChallenge(user, token, int(self.challenge_ttl.total_seconds()))

    async def reserve_attempt(self, mfa_token: str) -> ReservedAttempt | None:
        """Count one attempt on a live `mfa_token`, before its code is checked; None when
        the token is unknown, expired, used or out of attempts.

        Counting first is what makes the limit exact: of any number of concurrent guesses
        only MAX_ATTEMPTS get a row back. The caller commits the count before checking.
        """
        stmt = (
            update(MfaChallenge)
            .where(
                MfaChallenge.id == _token_id(mfa_token),
                MfaChallenge.attempts < MAX_ATTEMPTS,
                MfaChallenge.expires_at > self.clock(),
            )
            .values(attempts=MfaChallenge.attempts + 1)
            .returning(MfaChallenge.user_id, MfaChallenge.throttle_key)
            .execution_options(synchronize_session=False)
        )
        row = (await self.session.execute(stmt)).one_or_none()
        return None if row is None else ReservedAttempt(row.user_id, row.throttle_key)

    async def verify(self, user: User, code: str) -> VerifiedFactor | None:
        """Whether `code` is a current TOTP code or an unused recovery code of the user.

        Nothing is used up yet (see `consume`); ends the read transaction. A code that is
        neither 6 digits nor shaped like a recovery code is refused without any work.
        """
        code = _compact(code)
        if totp.looks_like_code(code):
            row = await self._active_key(user.id)
            await self._end_read()
            step = None if row is None else self._match(user.id, row[0], row[1], code)
            return None if step is None else VerifiedFactor("totp", user.id, step=step)
        candidate = normalize_recovery_code(code)
        if candidate is None:
            await self._end_read()
            return None
        stmt = select(MfaRecoveryCode.id, MfaRecoveryCode.code_hash).where(
            MfaRecoveryCode.user_id == user.id, MfaRecoveryCode.used_at.is_(None)
        )
        unused = (await self.session.execute(stmt)).all()
        await self._end_read()
        for code_id, code_hash in unused:
            # One argon2id verification each, off the event loop, stopping at the match.
            valid, _ = await self.hasher.verify(candidate, code_hash)
            if valid:
                return VerifiedFactor("recovery_code", user.id, recovery_code_id=code_id)
        return None

    async def consume(self, factor: VerifiedFactor) -> bool:
        """Use the code up; False when another request used it first (a replay)."""
        if factor.method == "totp":
            assert factor.step is not None
            return await self._accept_step(factor.user_id, factor.step)
        result = await self.session.execute(
            update(MfaRecoveryCode)
            .where(
                MfaRecoveryCode.id == factor.recovery_code_id,
                MfaRecoveryCode.user_id == factor.user_id,
                MfaRecoveryCode.used_at.is_(None),
            )
            .values(used_at=self.clock())
            .execution_options(synchronize_session=False)
        )
        return _rowcount(result) == 1

    async def finish_challenge(self, mfa_token: str) -> bool:
        """Delete the challenge: the `mfa_token` signs in once. False when it was gone."""
        result = await self.session.execute(
            delete(MfaChallenge)
            .where(MfaChallenge.id == _token_id(mfa_token))
            .execution_options(synchronize_session=False)
        )
        return _rowcount(result) == 1

    # --- helpers ---------------------------------------------------------------------------

    async def _active_key(self, user_id: int) -> tuple[str, int] | None:
        stmt = select(MfaTotp.secret_encrypted, MfaTotp.last_step).where(
            MfaTotp.user_id == user_id, MfaTotp.confirmed_at.is_not(None)
        )
        row = (await self.session.execute(stmt)).one_or_none()
        return None if row is None else (row[0], row[1])

    def _match(self, user_id: int, encrypted: str, last_step: int, code: str) -> int | None:
        """The step of a code within the window and after the last accepted one."""
        try:
            secret = self.box.decrypt(encrypted, associated_data=_secret_aad(user_id))
        except DecryptionError:
            # SECRET_KEY changed since enrolment (or the row was tampered with): no code can
            # match; recovery codes still work, and an operator can reset the user.
            log.error("mfa secret undecryptable", user_id=user_id)
            return None
        step = totp.matching_step(secret, _compact(code), self.clock())
        if step is None or step <= last_step:
            return None
        return step

    async def _accept_step(self, user_id: int, step: int) -> bool:
        result = await self.session.execute(
            update(MfaTotp)
            .where(
                MfaTotp.user_id == user_id,
                MfaTotp.confirmed_at.is_not(None),
                MfaTotp.last_step < step,
            )
            .values(last_step=step)
            .execution_options(synchronize_session=False)
        )
        return _rowcount(result) == 1

    async def _count_attempt(self, user: User) -> None:
        # Management codes are guesses too: they share the account's login budget.
        if self.throttle is not None:
            await self.throttle.login_attempt(user.email, self.client_ip)

    async def _new_recovery_codes(self) -> tuple[list[str], list[str]]:
        codes = [new_recovery_code() for _ in range(RECOVERY_CODE_COUNT)]
        # All at once on the hashing threads: the set is ready in ten hashes / threads.
        hashes = list(
            await asyncio.gather(*(self.hasher.hash(code.replace("-", "")) for code in codes))
        )
        return codes, hashes

    async def _replace_recovery_codes(self, user_id: int, hashes: Sequence[str]) -> None:
        await self.session.execute(
            delete(MfaRecoveryCode)
            .where(MfaRecoveryCode.user_id == user_id)
            .execution_options(synchronize_session=False)
        )
        now = self.clock()
        self.session.add_all(
            MfaRecoveryCode(user_id=user_id, code_hash=h, created_at=now) for h in hashes
        )
        await self.session.flush()

    def _rejected(self, user_id: int, reason: str, during: str) -> None:
        log.warning("mfa code rejected", user_id=user_id, reason=reason, during=during)
