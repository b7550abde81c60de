"""The sign-in method of another provider: a first factor proven at the provider (the
callback's checked identity), accepted for the account the identity is linked to."""

from __future__ import annotations

from typing import ClassVar

from app.models.user import User
from app.signin.methods.base import Factor, Proof, SignInMethod, Step, Submission
from app.signin.methods.upstream.identities import IdentityStore


class UpstreamMethod(SignInMethod):
    id: ClassVar[str] = "fed"
    # RFC 8176 §2: "fed", federated authentication.
    amr: ClassVar[tuple[str, ...]] = ("fed",)
    factor: ClassVar[Factor] = Factor.FIRST
    steps: ClassVar[frozenset[Step]] = frozenset({Step.FIRST_FACTOR})

    async def offered_to(self, user: User) -> bool:
        return await IdentityStore(self.ctx.session, clock=self.ctx.clock).count(user.id) > 0

    def claims(self, submission: Submission) -> bool:
        return {"provider", "subject"} <= submission.keys()

    async def verify(self, user: User, submission: Submission) -> Proof | None:
        """The submission is an identity the provider proved (app.signin.upstream checks
        the ID token or GitHub's answer before it gets here)."""
        provider, subject = submission.get("provider"), submission.get("subject")
        if not isinstance(provider, str) or not isinstance(subject, str):
            return None
        store = IdentityStore(self.ctx.session, clock=self.ctx.clock)
        identity = await store.find(provider, subject)
        if identity is None or identity.user_id != user.id:
            return None
        return Proof(self.id, user.id)
