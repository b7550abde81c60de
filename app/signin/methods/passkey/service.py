"""Passkeys of the signed-in user (registration, list, rename, removal) and the request
options of the two sign-in ceremonies; knows no HTTP."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, NoReturn

from webauthn import generate_authentication_options, generate_registration_options
from webauthn.helpers.options_to_json_dict import options_to_json_dict
from webauthn.helpers.structs import (
    AttestationConveyancePreference,
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    CredentialDeviceType,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from app.account.reauth import Reauthentication
from app.audit.log import AuditLog, Event
from app.core.errors import (
    InvalidPasskeyException,
    NotFoundException,
)
from app.mail.outbox import Outbox
from app.models.mail import MailKind
from app.models.passkey import Passkey
from app.models.user import User
from app.signin.methods.base import MethodContext
from app.signin.methods.passkey import mails as _mails  # noqa: F401 - registers the notices
from app.signin.methods.passkey.assertions import (
    ALGORITHMS,
    Rejected,
    check_attestation,
    parse_attestation,
)
from app.signin.methods.passkey.challenges import CHALLENGE_TTL, Challenges, Purpose
from app.signin.methods.passkey.credentials import PasskeyStore
from app.signin.methods.passkey.relying_party import RelyingParty
from app.throttle import Bucket
from app.users.ways_in import keep_a_way_in
from app.utils.logger import get_logger

log = get_logger(__name__)

_TIMEOUT_MS = int(CHALLENGE_TTL.total_seconds() * 1000)


def _descriptors(passkeys: Sequence[Passkey]) -> list[PublicKeyCredentialDescriptor]:
    known = {transport.value for transport in AuthenticatorTransport}
    return [
        PublicKeyCredentialDescriptor(
            id=passkey.credential_id,
            transports=[AuthenticatorTransport(t) for t in passkey.transports if t in known]
            or None,
        )
        for passkey in passkeys
    ]


class Passkeys:
    """Flushes, never commits except where a used challenge must stay used."""

    def __init__(
        self,
        ctx: MethodContext,
        *,
        reauth: Reauthentication,
        outbox: Outbox | None = None,
    ) -> None:
        assert ctx.settings is not None
        self.ctx = ctx
        self.rp = RelyingParty.from_settings(ctx.settings)
        self.store = PasskeyStore(ctx.session)
        self.challenges = Challenges(ctx.session, clock=ctx.clock)
        self.reauth = reauth
        self.outbox = outbox
        self.audit = AuditLog(ctx.session, clock=ctx.clock)

    def require_available(self) -> None:
        """Raises PasskeysUnavailableException on an IP address as RP ID."""
        self.rp.require()

    async def registration_options(
        self, user: User, *, current_password: str | None, auth_time: datetime | None
    ) -> dict[str, Any]:
        """The creation options of a new passkey for the person proven present.

        Raises PasskeysUnavailableException, InvalidCurrentPasswordException,
        ReauthenticationRequiredException or RateLimitedException.
        """
        self.require_available()
        await self.reauth.confirm(
            user, current_password=current_password, auth_time=auth_time, during="passkey_add"
        )
        handle = await self.store.handle_of(user.id)
        existing = await self.store.of_user(user.id)
        challenge = await self.challenges.issue(Purpose.REGISTRATION, user_id=user.id)
        options = generate_registration_options(
            rp_id=self.rp.id,
            rp_name=self.rp.name,
            user_id=handle,
            user_name=user.email,
            user_display_name=user.username,
            challenge=challenge,
            timeout=_TIMEOUT_MS,
            attestation=AttestationConveyancePreference.NONE,
            authenticator_selection=AuthenticatorSelectionCriteria(
                resident_key=ResidentKeyRequirement.REQUIRED,
                require_resident_key=True,
                user_verification=UserVerificationRequirement.PREFERRED,
            ),
            exclude_credentials=_descriptors(existing),
            supported_pub_key_algs=list(ALGORITHMS),
        )
        return dict(options_to_json_dict(options))

    async def add(self, user: User, credential: Mapping[str, object], name: str | None) -> Passkey:
        """Register the credential created with this user's registration challenge.

        Raises PasskeysUnavailableException or InvalidPasskeyException (challenge unknown,
        used, expired or another user's; foreign origin or RP ID; bad attestation;
        credential already registered).
        """
        self.require_available()
        try:
            parsed, challenge = parse_attestation(credential)
        except Rejected as refusal:
            self._refused(user, refusal.reason)
        taken = await self.challenges.take(challenge, Purpose.REGISTRATION, user_id=user.id)
        await self.ctx.transaction.commit_before_raising()
        if not taken:
            self._refused(user, "challenge")
        try:
            verified = await check_attestation(parsed, challenge=challenge, rp=self.rp)
        except Rejected as refusal:
            self._refused(user, refusal.reason)
        if await self.store.exists(verified.credential_id):
            self._refused(user, "already_registered")
        count = await self.store.count(user.id)
        transports = [t.value for t in parsed.response.transports or ()]
        passkey = await self.store.add(
            Passkey(
                user_id=user.id,
                credential_id=verified.credential_id,
                public_key=verified.credential_public_key,
                sign_count=verified.sign_count,
                backup_eligible=verified.credential_device_type
                is CredentialDeviceType.MULTI_DEVICE,
                backed_up=verified.credential_backed_up,
                transports=transports,
                name=(name or "").strip() or f"Passkey {count + 1}",
                created_at=self.ctx.clock(),
            )
        )
        self.audit.record(
            Event.PASSKEY_ADDED,
            user_id=user.id,
            actor_id=user.id,
            details={"passkey_id": passkey.id},
        )
        await self._notify(MailKind.PASSKEY_ADDED, user, passkey.name)
        log.info("passkey added", user_id=user.id, passkey_id=passkey.id)
        return passkey

    def _refused(self, user: User, reason: str) -> NoReturn:
        log.warning("passkey registration refused", user_id=user.id, reason=reason)
        raise InvalidPasskeyException()

    async def list(self, user: User) -> Sequence[Passkey]:
        self.require_available()
        return await self.store.of_user(user.id)

    async def rename(self, user: User, passkey_id: int, name: str) -> Passkey:
        self.require_available()
        passkey = await self.store.get(user.id, passkey_id)
        if passkey is None:
            raise NotFoundException("No such passkey")
        passkey.name = name.strip()
        await self.ctx.session.flush()
        return passkey

    async def remove(
        self,
        user: User,
        passkey_id: int,
        *,
        current_password: str | None,
        auth_time: datetime | None,
    ) -> None:
        """Raises PasskeysUnavailableException, NotFoundException,
        InvalidCurrentPasswordException, ReauthenticationRequiredException,
        LastSignInMethodException or RateLimitedException."""
        self.require_available()
        await self.reauth.confirm(
            user,
            current_password=current_password,
            auth_time=auth_time,
            during="passkey_remove",
        )
        passkey = await self.store.get(user.id, passkey_id)
        if passkey is None:
            raise NotFoundException("No such passkey")
        await keep_a_way_in(self.ctx.session, user, removing_passkeys=1)
        name = passkey.name
        await self.store.remove(user.id, passkey_id)
        self.audit.record(
            Event.PASSKEY_REMOVED,
            user_id=user.id,
            actor_id=user.id,
            details={"passkey_id": passkey_id},
        )
        await self._notify(MailKind.PASSKEY_REMOVED, user, name)
        log.info("passkey removed", user_id=user.id, passkey_id=passkey_id)

    async def signin_options(self) -> dict[str, Any]:
        """Request options for a sign-in by a discoverable passkey alone. Counted per client
        address: anyone may ask, and each answer stores a challenge.

        Raises PasskeysUnavailableException or RateLimitedException."""
        self.require_available()
        if self.ctx.throttle is not None:
            await self.ctx.throttle.client_attempt(Bucket.PASSKEY_OPTIONS_IP, self.ctx.client_ip)
        challenge = await self.challenges.issue(Purpose.SIGNIN, user_id=None)
        options = generate_authentication_options(
            rp_id=self.rp.id,
            challenge=challenge,
            timeout=_TIMEOUT_MS,
            allow_credentials=[],
            user_verification=UserVerificationRequirement.REQUIRED,
        )
        return dict(options_to_json_dict(options))

    async def second_factor_options(self, user_id: int) -> dict[str, Any]:
        """Request options for the second step of a sign-in of `user_id` (a live flow that
        offers a passkey, as the caller checked): the user's passkeys."""
        self.require_available()
        passkeys = await self.store.of_user(user_id)
        challenge = await self.challenges.issue(Purpose.SECOND_FACTOR, user_id=user_id)
        options = generate_authentication_options(
            rp_id=self.rp.id,
            challenge=challenge,
            timeout=_TIMEOUT_MS,
            allow_credentials=_descriptors(passkeys),
            user_verification=UserVerificationRequirement.PREFERRED,
        )
        return dict(options_to_json_dict(options))

    async def _notify(self, kind: MailKind, user: User, name: str) -> None:
        if self.outbox is not None:
            await self.outbox.enqueue(kind, user.email, {"user_id": user.id, "name": name})
