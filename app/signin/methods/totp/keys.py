"""The user's TOTP key: enrolment (pending until a code confirms it), the check of a code,
and its single use.

Every "this code works once" decision is a conditional UPDATE checked by its row count, so
it holds with any number of workers on one database: an accepted code moves the key's
`last_step` forward (`... WHERE last_step < :step`); of two concurrent submissions of one
code exactly one matches the row.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite

from app.core import totp
from app.core.errors import InvalidMfaCodeException, MfaAlreadyEnabledException
from app.models.mfa import MfaTotp
from app.models.user import User
from app.signin.methods.base import MethodContext
from app.transaction import rowcount
from app.utils.crypto import DecryptionError, SecretBox
from app.utils.keyed_hash import derive_key
from app.utils.logger import get_logger

log = get_logger(__name__)

# HKDF `info` of the key that encrypts TOTP secrets: no other key derived from SECRET_KEY
# (the JWT key is SECRET_KEY itself) can be this one.
TOTP_KEY_INFO = b"authsvc totp secret v1"


def totp_box(secret_key: str) -> SecretBox:
    """The AES-GCM box of TOTP secrets, under a key of its own derived from SECRET_KEY."""
    return SecretBox(derive_key(secret_key, info=TOTP_KEY_INFO))


def compact(code: str) -> str:
    # Authenticator apps show "123 456"; people type it so.
    return "".join(code.split())


def _secret_aad(user_id: int) -> bytes:
    # The row the ciphertext belongs to: a secret copied into another user's row fails.
    return f"mfa_totp.secret_encrypted:user:{user_id}".encode()


@dataclass(frozen=True, slots=True)
class Enrolment:
    secret: str
    otpauth_uri: str
    qr_svg: str


class TotpKeys:
    """The `mfa_totp` row of a user; flushes, never commits except to end a read before
    CPU work."""

    def __init__(self, ctx: MethodContext) -> None:
        assert ctx.box is not None, "second factors configured"
        assert ctx.settings is not None, "second factors configured"
        self.ctx = ctx
        self.session = ctx.session
        self.box = ctx.box
        self.issuer = ctx.settings.totp_issuer

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
            "created_at": self.ctx.clock(),
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
        await self.ctx.transaction.end_read()
        if rowcount(await self.session.execute(stmt)) != 1:
            raise MfaAlreadyEnabledException()
        log.info("mfa enrolment started", user_id=user.id)
        uri = totp.provisioning_uri(secret, account=user.email, issuer=self.issuer)
        # Drawing the QR code is some milliseconds of pure Python: not on the event loop.
        qr = await asyncio.to_thread(totp.qr_svg, uri)
        return Enrolment(secret=totp.to_base32(secret), otpauth_uri=uri, qr_svg=qr)

    async def confirm(self, user: User, code: str) -> None:
        """Mark the pending key confirmed with one of its codes (which counts as used).

        Raises InvalidMfaCodeException (no pending enrolment, wrong or used code).
        """
        stmt = select(MfaTotp.secret_encrypted, MfaTotp.last_step).where(
            MfaTotp.user_id == user.id, MfaTotp.confirmed_at.is_(None)
        )
        pending = (await self.session.execute(stmt)).one_or_none()
        await self.ctx.transaction.end_read()
        if pending is None:
            raise InvalidMfaCodeException(
                "No two-factor enrolment is pending: start one with POST /users/me/mfa/totp"
            )
        await self._count_attempt(user)
        step = self.match(user.id, pending.secret_encrypted, pending.last_step, code)
        if step is None:
            self._rejected(user.id, "wrong_code", "confirm")
            raise InvalidMfaCodeException()
        confirmed = await self.session.execute(
            update(MfaTotp)
            .where(
                MfaTotp.user_id == user.id,
                MfaTotp.confirmed_at.is_(None),
                # Still the key the code was checked against (not replaced meanwhile).
                MfaTotp.secret_encrypted == pending.secret_encrypted,
                MfaTotp.last_step < step,
            )
            .values(confirmed_at=self.ctx.clock(), last_step=step)
            .execution_options(synchronize_session=False)
        )
        if rowcount(confirmed) != 1:
            self._rejected(user.id, "replayed", "confirm")
            raise InvalidMfaCodeException()

    async def use_code(self, user: User, code: str, *, during: str) -> None:
        """Check and use up a code of the confirmed key (for a management operation).

        Raises InvalidMfaCodeException (two-factor off, wrong or used code) or
        RateLimitedException.
        """
        row = await self.active_key(user.id) if user.mfa_enabled else None
        await self.ctx.transaction.end_read()
        if row is None:
            raise InvalidMfaCodeException("Two-factor authentication is not on")
        await self._count_attempt(user)
        step = self.match(user.id, row[0], row[1], code)
        if step is None:
            self._rejected(user.id, "wrong_code", during)
            raise InvalidMfaCodeException()
        if not await self.accept_step(user.id, step):
            self._rejected(user.id, "replayed", during)
            raise InvalidMfaCodeException()

    async def active_key(self, user_id: int) -> tuple[str, int] | None:
        stmt = select(MfaTotp.secret_encrypted, MfaTotp.last_step).where(
            MfaTotp.user_id == user_id, MfaTotp.confirmed_at.is_not(None)
        )
        row = (await self.session.execute(stmt)).one_or_none()
        return None if row is None else (row[0], row[1])

    def match(self, user_id: int, encrypted: str, last_step: int, code: str) -> int | None:
        """The step of a code within the window and after the last accepted one."""
        try:
            secret = self.box.decrypt(encrypted, associated_data=_secret_aad(user_id))
        except DecryptionError:
            # SECRET_KEY changed since enrolment (or the row was tampered with): no code can
            # match; recovery codes still work, and an operator can reset the user.
            log.error("mfa secret undecryptable", user_id=user_id)
            return None
        step = totp.matching_step(secret, compact(code), self.ctx.clock())
        if step is None or step <= last_step:
            return None
        return step

    async def accept_step(self, user_id: int, step: int) -> bool:
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
        return rowcount(result) == 1

    async def delete(self, user_id: int) -> None:
        await self.session.execute(
            delete(MfaTotp)
            .where(MfaTotp.user_id == user_id)
            .execution_options(synchronize_session=False)
        )

    async def _count_attempt(self, user: User) -> None:
        # Management codes are guesses too: they share the account's login budget.
        if self.ctx.throttle is not None:
            await self.ctx.throttle.login_attempt(user.email, self.ctx.client_ip)

    def _rejected(self, user_id: int, reason: str, during: str) -> None:
        log.warning("mfa code rejected", user_id=user_id, reason=reason, during=during)
