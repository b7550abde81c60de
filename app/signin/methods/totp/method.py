"""A current TOTP code as a second factor."""

from __future__ import annotations

from typing import ClassVar

from app.core import totp
from app.models.user import User
from app.signin.methods.base import Proof, SecondFactorMethod, Submission
from app.signin.methods.totp.keys import TotpKeys, compact


class TotpMethod(SecondFactorMethod):
    id: ClassVar[str] = "totp"
    amr: ClassVar[tuple[str, ...]] = ("otp",)

    def claims(self, submission: Submission) -> bool:
        code = submission.get("code")
        return isinstance(code, str) and totp.looks_like_code(compact(code))

    async def verify(self, user: User, submission: Submission) -> Proof | None:
        code = submission.get("code")
        assert isinstance(code, str)
        keys = TotpKeys(self.ctx)
        row = await keys.active_key(user.id)
        await self.ctx.transaction.end_read()
        step = None if row is None else keys.match(user.id, row[0], row[1], code)
        return None if step is None else Proof(self.id, user.id, ref=step)

    async def consume(self, proof: Proof) -> bool:
        assert proof.ref is not None
        return await TotpKeys(self.ctx).accept_step(proof.user_id, proof.ref)

    async def forget(self, user: User) -> None:
        await TotpKeys(self.ctx).delete(user.id)
