"""A passkey: on its own a complete sign-in (with user verification: RFC 8176 `hwk` and
`mfa`), or the second factor after a password (`hwk`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from app.audit.log import AuditLog, Event
from app.models.user import User
from app.signin.methods.base import Factor, MethodContext, Proof, SignInMethod, Step, Submission
from app.signin.methods.passkey.assertions import Rejected, check_assertion, parse_assertion
from app.signin.methods.passkey.challenges import Challenges, Purpose
from app.signin.methods.passkey.credentials import PasskeyStore
from app.signin.methods.passkey.relying_party import RelyingParty
from app.utils.logger import get_logger

log = get_logger(__name__)


def counter_regressed(*, backup_eligible: bool, stored: int, seen: int) -> bool:
    """The signature counter rule. A device-bound credential (not backup eligible) keeps
    one counter: a value that did not grow means a second copy of its key is signing
    (WebAuthn Level 3 §6.1.1), except when the authenticator keeps no counter (0 and 0).
    A synced passkey is used from several devices that share no counter; most report 0,
    and its value proves nothing."""
    if backup_eligible:
        return False
    return (seen > 0 or stored > 0) and seen <= stored


class PasskeyMethod(SignInMethod):
    id: ClassVar[str] = "passkey"
    amr: ClassVar[tuple[str, ...]] = ("hwk",)
    factor: ClassVar[Factor] = Factor.FIRST
    steps: ClassVar[frozenset[Step]] = frozenset({Step.FIRST_FACTOR, Step.SECOND_FACTOR})
    # Alone it needs user verification (a PIN or biometric on the device): something held
    # and something known or are, two factors in one gesture.
    standalone_amr: ClassVar[tuple[str, ...]] = ("hwk", "mfa")

    def __init__(self, ctx: MethodContext, *, step: Step = Step.SECOND_FACTOR) -> None:
        super().__init__(ctx)
        assert ctx.settings is not None, "passkeys need the settings"
        self.step = step
        self.rp = RelyingParty.from_settings(ctx.settings)
        self.store = PasskeyStore(ctx.session)
        # Why the last verify() refused, for the log; and what consume() moves on.
        self.reason: str | None = None
        self._use: tuple[int, int, int, bool] | None = None

    async def offered_to(self, user: User) -> bool:
        if self.rp.unavailable_reason is not None:
            return False
        return await self.store.count(user.id) > 0

    def claims(self, submission: Submission) -> bool:
        return isinstance(submission.get("credential"), Mapping)

    async def identify(self, submission: Submission) -> int | None:
        """The account a discoverable credential names (its row's user), or None."""
        try:
            parsed, _ = parse_assertion(_credential(submission))
        except Rejected:
            return None
        passkey = await self.store.by_credential_id(parsed.raw_id)
        return None if passkey is None else passkey.user_id

    async def decoy(self, submission: Submission) -> None:
        """A credential no account has: its challenge is used up all the same, as for a
        known credential, so a retry with it is refused just as early."""
        try:
            _, challenge = parse_assertion(_credential(submission))
        except Rejected:
            return
        await Challenges(self.ctx.session, clock=self.ctx.clock).take(
            challenge, Purpose.SIGNIN, user_id=None
        )

    async def verify(self, user: User, submission: Submission) -> Proof | None:
        try:
            return await self._verify(user, submission)
        except Rejected as refusal:
            self.reason = refusal.reason
            return None

    async def _verify(self, user: User, submission: Submission) -> Proof:
        parsed, challenge = parse_assertion(_credential(submission))
        alone = self.step is Step.FIRST_FACTOR
        purpose = Purpose.SIGNIN if alone else Purpose.SECOND_FACTOR
        challenges = Challenges(self.ctx.session, clock=self.ctx.clock)
        taken = await challenges.take(challenge, purpose, user_id=None if alone else user.id)
        # Used up by this attempt whatever follows: a refused assertion is not retried
        # against the same challenge.
        await self.ctx.transaction.commit_before_raising()
        if not taken:
            raise Rejected("challenge")
        passkey = await self.store.by_credential_id(parsed.raw_id)
        if passkey is None or passkey.user_id != user.id:
            raise Rejected("unknown_credential")
        handle = parsed.response.user_handle
        # The authenticator returns the handle it stored with the key; for a sign-in by the
        # passkey alone it must be this account's (WebAuthn Level 3 §7.2 step 6).
        if (alone or handle is not None) and (
            handle is None or not await self.store.handle_belongs_to(handle, user.id)
        ):
            raise Rejected("user_handle")
        stored, backup_eligible = passkey.sign_count, passkey.backup_eligible
        public_key, passkey_id = passkey.public_key, passkey.id
        await self.ctx.transaction.end_read()
        verified = await check_assertion(
            parsed,
            challenge=challenge,
            rp=self.rp,
            public_key=public_key,
            require_user_verification=alone,
        )
        seen = verified.new_sign_count
        if counter_regressed(backup_eligible=backup_eligible, stored=stored, seen=seen):
            AuditLog(self.ctx.session, clock=self.ctx.clock).record(
                Event.PASSKEY_CLONE_SUSPECTED,
                user_id=user.id,
                details={"passkey_id": passkey_id, "stored_count": stored, "seen_count": seen},
            )
            log.warning(
                "passkey clone suspected",
                user_id=user.id,
                passkey_id=passkey_id,
                stored_count=stored,
                seen_count=seen,
            )
            raise Rejected("clone_suspected")
        self._use = (passkey_id, stored, seen, verified.credential_backed_up)
        return Proof(self.id, user.id, ref=passkey_id)

    async def consume(self, proof: Proof) -> bool:
        assert self._use is not None, "verify() came first"
        assert self._use[0] == proof.ref, "the proof of the last verify()"
        passkey_id, stored, seen, backed_up = self._use
        return await self.store.record_use(
            passkey_id, seen=stored, new_count=seen, backed_up=backed_up, now=self.ctx.clock()
        )


def _credential(submission: Submission) -> Mapping[str, object]:
    credential = submission.get("credential")
    assert isinstance(credential, Mapping), "claims() admitted the submission"
    return credential
