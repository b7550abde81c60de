"""An unused recovery code as a second factor."""

from __future__ import annotations

from typing import ClassVar

from app.models.user import User
from app.signin.methods.base import Proof, SecondFactorMethod, Submission
from app.signin.methods.recovery_code.codes import RecoveryCodes, normalize_recovery_code


class RecoveryCodeMethod(SecondFactorMethod):
    id: ClassVar[str] = "recovery_code"
    # A single-use shared secret: RFC 8176 has no value of its own for it, "otp" (a
    # one-time password) is the nearest; the log line of the sign-in names the method.
    amr: ClassVar[tuple[str, ...]] = ("otp",)

    def claims(self, submission: Submission) -> bool:
        code = submission.get("code")
        return isinstance(code, str) and normalize_recovery_code(code) is not None

    async def verify(self, user: User, submission: Submission) -> Proof | None:
        code = submission.get("code")
        assert isinstance(code, str)
        normalized = normalize_recovery_code(code)
        assert normalized is not None, "claims() admitted the submission"
        code_id = await RecoveryCodes(self.ctx).find(user.id, normalized)
        return None if code_id is None else Proof(self.id, user.id, ref=code_id)

    async def consume(self, proof: Proof) -> bool:
        assert proof.ref is not None
        return await RecoveryCodes(self.ctx).use(proof.user_id, proof.ref)

    async def forget(self, user: User) -> None:
        await RecoveryCodes(self.ctx).delete(user.id)
