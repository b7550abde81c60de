"""The user's ten recovery codes: made, stored as argon2id hashes with a lookup tag, used
once (`used_at` set by a conditional UPDATE, so of two concurrent uses one wins).

The lookup tag is a keyed hash (HMAC-SHA-256 under a key derived from SECRET_KEY, cut to
64 bits) of the normalised code, prefixed with an id of that key. A submitted code is
compared with the one row whose tag it has, so a wrong code costs one indexed SELECT and at
most one argon2id check, where checking it against every unused code cost ten. The tag
alone does not sign anyone in: without SECRET_KEY it cannot be computed, and the argon2id
hash still decides.

After SECRET_KEY changes, tags made under the old key (another key id) cannot be matched:
those codes, and codes from before tags existed, are checked one by one as before, so they
keep working until the user makes new ones.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable

from sqlalchemy import delete, not_, or_, select, update

from app.models.mfa import MfaRecoveryCode
from app.signin.methods.base import MethodContext
from app.transaction import rowcount

RECOVERY_CODE_COUNT = 10
# Lower-case letters and digits without the look-alikes 0/o, 1/l/i: 31 symbols. Two groups
# of five: 10 x log2(31) = 49.5 bits of entropy per code.
RECOVERY_ALPHABET = "23456789abcdefghjkmnpqrstuvwxyz"
RECOVERY_GROUP = 5
LOOKUP_INFO = b"authsvc/v1/recovery-code-lookup"


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


class RecoveryCodes:
    def __init__(self, ctx: MethodContext) -> None:
        assert ctx.keyed_hash is not None, "second factors configured"
        self.ctx = ctx
        self.session = ctx.session
        self._lookup: Callable[[str], str] = ctx.keyed_hash(LOOKUP_INFO)

        # Not secret: tells which key made a tag, so that another key's tags are known.
        self._key_id = self._lookup("\x00key-id")[:8]

    def lookup_tag(self, normalized: str) -> str:
        return f"{self._key_id}:{self._lookup(normalized)}"

    async def replace(self, user_id: int) -> list[str]:
        """Ten new codes for the user (shown once); every older one dies."""
        codes = [new_recovery_code() for _ in range(RECOVERY_CODE_COUNT)]
        compact = [code.replace("-", "") for code in codes]
        # All at once on the hashing threads: the set is ready in ten hashes / threads.
        hashes = await asyncio.gather(*(self.ctx.hasher.hash(code) for code in compact))
        await self.session.execute(
            delete(MfaRecoveryCode)
            .where(MfaRecoveryCode.user_id == user_id)
            .execution_options(synchronize_session=False)
        )
        now = self.ctx.clock()
        self.session.add_all(
            MfaRecoveryCode(user_id=user_id, code_hash=h, lookup=self.lookup_tag(c), created_at=now)
            for c, h in zip(compact, hashes, strict=True)
        )
        await self.session.flush()
        return codes

    async def find(self, user_id: int, normalized: str) -> int | None:
        """The id of the unused code `normalized` is, or None; ends the read transaction.

        Only the row with this code's tag is checked, plus rows whose tag no current key
        made (from before tags existed, or before SECRET_KEY changed).
        """
        lookup = MfaRecoveryCode.lookup
        stmt = select(MfaRecoveryCode.id, MfaRecoveryCode.code_hash).where(
            MfaRecoveryCode.user_id == user_id,
            MfaRecoveryCode.used_at.is_(None),
            or_(
                lookup == self.lookup_tag(normalized),
                lookup.is_(None),
                not_(lookup.startswith(f"{self._key_id}:", autoescape=True)),
            ),
        )
        candidates = (await self.session.execute(stmt)).all()
        await self.ctx.transaction.end_read()
        for code_id, code_hash in candidates:
            # One argon2id verification each, off the event loop, stopping at the match.
            valid, _ = await self.ctx.hasher.verify(normalized, code_hash)
            if valid:
                return int(code_id)
        return None

    async def use(self, user_id: int, code_id: int) -> bool:
        result = await self.session.execute(
            update(MfaRecoveryCode)
            .where(
                MfaRecoveryCode.id == code_id,
                MfaRecoveryCode.user_id == user_id,
                MfaRecoveryCode.used_at.is_(None),
            )
            .values(used_at=self.ctx.clock())
            .execution_options(synchronize_session=False)
        )
        return rowcount(result) == 1

    async def remaining(self, user_id: int) -> int:
        stmt = select(MfaRecoveryCode.id).where(
            MfaRecoveryCode.user_id == user_id, MfaRecoveryCode.used_at.is_(None)
        )
        return len((await self.session.execute(stmt)).all())

    async def delete(self, user_id: int) -> None:
        await self.session.execute(
            delete(MfaRecoveryCode)
            .where(MfaRecoveryCode.user_id == user_id)
            .execution_options(synchronize_session=False)
        )
