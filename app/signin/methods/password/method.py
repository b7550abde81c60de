"""A password as a first factor: argon2id (or an imported bcrypt) hash in `users`."""

from __future__ import annotations

from typing import ClassVar

from app.models.user import User
from app.signin.methods.base import Factor, Proof, SignInMethod, Step, Submission


class PasswordMethod(SignInMethod):
    id: ClassVar[str] = "password"
    amr: ClassVar[tuple[str, ...]] = ("pwd",)
    factor: ClassVar[Factor] = Factor.FIRST
    steps: ClassVar[frozenset[Step]] = frozenset({Step.FIRST_FACTOR})

    # Set by `verify` when the stored hash is of weaker parameters: the caller stores it.
    upgraded_hash: str | None = None

    async def offered_to(self, user: User) -> bool:
        return user.hashed_password is not None

    def claims(self, submission: Submission) -> bool:
        return isinstance(submission.get("password"), str)

    async def decoy(self, submission: Submission) -> None:
        await self.ctx.transaction.end_read()
        await self.ctx.hasher.verify_dummy(_password(submission))

    async def verify(self, user: User, submission: Submission) -> Proof | None:
        """An account without a password gets the same work as a wrong one (a dummy hash),
        so neither the answer nor its timing tells the two apart."""
        if user.hashed_password is None:
            await self.decoy(submission)
            return None
        password = _password(submission)
        # No transaction held across the tens of milliseconds of the hash.
        await self.ctx.transaction.end_read()
        valid, self.upgraded_hash = await self.ctx.hasher.verify(password, user.hashed_password)
        return Proof(self.id, user.id) if valid else None


def _password(submission: Submission) -> str:
    password = submission.get("password")
    assert isinstance(password, str), "claims() admitted the submission"
    return password
