"""The interface every sign-in method implements, and what the flow hands it.

A method is one way of proving who you are: a password, a TOTP code, a recovery code (and
later a passkey, another provider). It declares what it is; the flow decides when it is
asked. Methods know nothing of each other, of HTTP or of the flow's table: they verify a
submission for a user and use it up, and each keeps its own state (its rows, its
enrolment) in its own folder.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar

from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.core.passwords import PasswordHasher
from app.models.user import User
from app.throttle import Throttle
from app.transaction import Transaction
from app.utils.clock import Clock
from app.utils.crypto import SecretBox


class Factor(StrEnum):
    """What a method proves (NIST SP 800-63B §4): FIRST signs in on its own (and names the
    account); SECOND only adds to a first factor, for an account with two-factor on."""

    FIRST = "first"
    SECOND = "second"


class Step(StrEnum):
    """Where in a sign-in a method is accepted; a passkey, for one, will be accepted at
    both steps."""

    FIRST_FACTOR = "first_factor"
    SECOND_FACTOR = "second_factor"


Submission = Mapping[str, object]
"""What a person sent for a step: the fields of its JSON body (or of a form, later)."""


@dataclass(frozen=True, slots=True)
class Proof:
    """A submission that verified. It counts only once `consume` wins (single use)."""

    method: str
    user_id: int
    # The method's own reference of what was used (a TOTP step, a recovery code's row).
    ref: int | None = None


@dataclass(frozen=True, slots=True)
class MethodContext:
    """The request's collaborators, the same for every method. A new method finds its
    settings in `settings` and needs no change here."""

    session: AsyncSession
    hasher: PasswordHasher
    clock: Clock
    settings: Settings | None = None
    box: SecretBox | None = None
    # Keyed hashes from SECRET_KEY, one per purpose, by their HKDF `info` label.
    keyed_hash: Callable[[bytes], Callable[[str], str]] | None = None
    throttle: Throttle | None = None
    client_ip: str | None = None

    @property
    def second_factors_configured(self) -> bool:
        """Whether the secrets second factors need were given (the command line and some
        tests build a context for passwords only)."""
        return self.settings is not None and self.box is not None and self.keyed_hash is not None

    @property
    def transaction(self) -> Transaction:
        return Transaction(self.session)


class SignInMethod(ABC):
    """One way to sign in. Subclasses set the class attributes and implement `verify`."""

    id: ClassVar[str]
    # RFC 8176 values this method adds to the session's `amr`.
    amr: ClassVar[tuple[str, ...]]
    factor: ClassVar[Factor]
    steps: ClassVar[frozenset[Step]]
    # The `amr` of a sign-in by this method alone, where it is more than `amr` (a passkey
    # with user verification: `hwk` and `mfa`); None: `amr`.
    standalone_amr: ClassVar[tuple[str, ...] | None] = None

    def __init__(self, ctx: MethodContext) -> None:
        self.ctx = ctx

    async def offered_to(self, user: User) -> bool:
        """Whether the user can use this method now (has enrolled it)."""
        return True

    def claims(self, submission: Submission) -> bool:
        """Whether the submission is meant for this method (its fields, its shape): of the
        methods on offer at a step, the first that claims a submission verifies it."""
        return False

    async def identify(self, submission: Submission) -> int | None:
        """For a first factor that names the account itself (a discoverable passkey): the
        user id the submission names, or None."""
        return None

    @abstractmethod
    async def verify(self, user: User, submission: Submission) -> Proof | None:
        """The proof, or None when the submission is wrong. Uses nothing up; ends the read
        transaction before CPU-heavy work."""

    async def decoy(self, submission: Submission) -> None:  # noqa: B027 - second factors need none
        """For a first factor: the work of `verify` for an account that does not exist, so
        that timing does not tell unknown accounts from wrong credentials."""

    async def consume(self, proof: Proof) -> bool:
        """Use the proof up; False when another request used it first (a replay)."""
        return True

    async def forget(self, user: User) -> None:  # noqa: B027 - most methods keep no state
        """Delete the user's enrolment of this method (two-factor turned off)."""


class SecondFactorMethod(SignInMethod):
    """A second factor: asked for at the second step, of accounts with two-factor on."""

    factor: ClassVar[Factor] = Factor.SECOND
    steps: ClassVar[frozenset[Step]] = frozenset({Step.SECOND_FACTOR})

    async def offered_to(self, user: User) -> bool:
        return user.mfa_enabled
