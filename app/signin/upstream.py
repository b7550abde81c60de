"""Signing in with another provider, and linking providers to accounts; knows no HTTP.

An identity is the pair (provider, subject), never an address: addresses are where
"nOAuth" takeovers come from (a provider that lets anybody set any address, an address
re-assigned at the provider). So:

- a linked identity signs its account in, through the sign-in flow (with two-factor on,
  the second step follows);
- a new identity whose verified address belongs to no account creates one (no password),
  when the provider allows sign-up;
- a new identity whose verified address belongs to an account is never linked on the
  strength of the address: the person signs in to that account (with its second factor)
  in the same browser, and only then is the identity linked;
- an address the provider does not mark verified matches nothing and creates nothing.

Everything that must hold once (a state, a link) is a conditional statement on the
database every worker shares (app.signin.methods.upstream.states, .identities).
"""

from __future__ import annotations

import re
import secrets
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from app.account.reauth import Reauthentication
from app.audit.log import AuditLog, Event
from app.config import Settings, UpstreamProvider
from app.core.errors import (
    CircuitBreakerOpenException,
    NotFoundException,
)
from app.mail.outbox import Outbox
from app.models.mail import MailKind
from app.models.upstream import UpstreamIdentity
from app.models.user import User
from app.sessions.browser import BrowserSessions, StartedBrowserSession
from app.signin import mails as _mails  # noqa: F401 - registers the notices' composers
from app.signin.flow import PendingFlow
from app.signin.methods.base import MethodContext
from app.signin.methods.upstream.client import (
    Endpoints,
    Identity,
    UpstreamClient,
    UpstreamRejected,
    UpstreamUnavailable,
)
from app.signin.methods.upstream.identities import IdentityStore
from app.signin.methods.upstream.method import UpstreamMethod
from app.signin.methods.upstream.states import Purpose, StateStore
from app.signin.service import Completed, SignIn
from app.throttle import Bucket
from app.transaction import Transaction
from app.users.service import UserService
from app.users.ways_in import keep_a_way_in
from app.utils.clock import Clock, utc_now
from app.utils.logger import get_logger

log = get_logger(__name__)

_USERNAME_CHARS = re.compile(r"[^A-Za-z0-9_.\-]+")


@dataclass(frozen=True, slots=True)
class SignedIn:
    done: Completed[StartedBrowserSession]


@dataclass(frozen=True, slots=True)
class SecondStep:
    flow: PendingFlow


@dataclass(frozen=True, slots=True)
class Linked:
    provider: UpstreamProvider


@dataclass(frozen=True, slots=True)
class LinkOffered:
    """The identity's address belongs to an account: sign in to it first."""

    provider: UpstreamProvider
    email: str
    return_to: str | None = None


@dataclass(frozen=True, slots=True)
class Refused:
    message: str
    status_code: int = 400


Outcome = SignedIn | SecondStep | Linked | LinkOffered | Refused


class ProviderUnavailable(Exception):
    """The provider is not answering (or its circuit breaker is open)."""

    def __init__(self, provider: UpstreamProvider, retry_after: float = 0.0) -> None:
        super().__init__(provider.name)
        self.provider = provider
        self.retry_after = retry_after


def candidate_username(identity: Identity) -> str:
    """The provider's user name (or the address's local part) in the usernames' alphabet."""
    raw = identity.username or (identity.email or "").partition("@")[0]
    name = _USERNAME_CHARS.sub("-", unicodedata.normalize("NFKC", raw)).strip("-.")[:40]
    return name if len(name) >= 3 else "user"


class UpstreamSignIn:
    def __init__(
        self,
        *,
        settings: Settings,
        clients: Mapping[str, UpstreamClient],
        signin: SignIn,
        browser: BrowserSessions,
        methods: MethodContext,
        reauth: Reauthentication,
        outbox: Outbox | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self.settings = settings
        self.clients = clients
        self.signin = signin
        self.browser = browser
        self.methods = methods
        self.reauth = reauth
        self.outbox = outbox
        self.clock = clock
        session = methods.session
        self.users = UserService(session)
        self.states = StateStore(session, clock=clock, ttl=settings_ttl(settings))
        self.identities = IdentityStore(session, clock=clock)
        self.audit = AuditLog(session, clock=clock)
        self.transaction = Transaction(session)

    def provider(self, name: str) -> UpstreamProvider | None:
        return self.settings.upstream_provider(name)

    def callback_url(self, provider: UpstreamProvider) -> str:
        # One callback URL per provider: a response is only ever read as the answer of the
        # provider whose URL it came to (the mix-up defence of RFC 9700 §4.4.2).
        return f"{self.settings.public_url}/login/{provider.name}/callback"

    async def begin(
        self,
        provider: UpstreamProvider,
        *,
        browser_id: str,
        purpose: str = Purpose.SIGNIN,
        user_id: int | None = None,
        return_to: str | None = None,
    ) -> str:
        """The provider's authorization URL for a new sign-in (or link) of this browser.
        Raises ProviderUnavailable, RateLimitedException."""
        throttle = self.methods.throttle
        if throttle is not None:
            # Each start writes a row: counted as a sign-in attempt of the client.
            await throttle.client_attempt(Bucket.LOGIN_IP, self.methods.client_ip)
        client = self.clients[provider.name]
        endpoints = await self._endpoints(client)
        started = await self.states.start(
            provider=provider.name,
            browser_id=browser_id,
            purpose=purpose,
            user_id=user_id,
            return_to=return_to,
        )
        return client.authorization_url(
            endpoints,
            state=started.state,
            nonce=started.nonce,
            verifier=started.verifier,
            redirect_uri=self.callback_url(provider),
        )

    async def start_link(
        self,
        provider: UpstreamProvider,
        user: User,
        *,
        browser_id: str,
        current_password: str | None,
        auth_time: datetime | None,
    ) -> str:
        """Linking from the account page: the person is there now (the password or a
        recent sign-in), then off to the provider. Raises as Reauthentication.confirm."""
        await self.reauth.confirm(
            user, current_password=current_password, auth_time=auth_time, during="link provider"
        )
        return await self.begin(
            provider, browser_id=browser_id, purpose=Purpose.LINK, user_id=user.id
        )

    async def finish(
        self,
        provider: UpstreamProvider,
        *,
        params: Mapping[str, str],
        browser_id: str | None,
        signed_in: User | None,
    ) -> Outcome:
        """The callback. Raises ProviderUnavailable, and the sign-in flow's errors (an
        inactive account)."""
        taken = await self.states.take(
            state=params.get("state", ""), provider=provider.name, browser_id=browser_id
        )
        # Used up whatever follows: a failure below must not give the state back.
        await self.transaction.commit_before_raising()
        if taken is None:
            log.warning("upstream state rejected", provider=provider.name)
            return Refused(
                "This sign-in did not start in this browser, was already used, or has "
                "expired. Start again from the sign-in page."
            )
        if "error" in params:
            log.info("upstream sign-in refused", provider=provider.name, error=params["error"][:64])
            return Refused(f"Sign-in with {provider.display_name} was cancelled or refused.")
        client = self.clients[provider.name]
        endpoints = await self._endpoints(client)
        # RFC 9207: the response names its issuer; one that names another is a mix-up.
        iss = params.get("iss")
        if (iss is not None or endpoints.iss_parameter) and iss != endpoints.issuer:
            log.warning("upstream response of another issuer", provider=provider.name)
            return self._not_proven(provider)
        code = params.get("code", "")
        if not code:
            return self._not_proven(provider)
        try:
            identity = await client.identify(
                endpoints,
                code=code,
                verifier=taken.verifier,
                nonce=taken.nonce,
                redirect_uri=self.callback_url(provider),
            )
        except UpstreamRejected as rejected:
            log.warning("upstream identity rejected", provider=provider.name, reason=str(rejected))
            return self._not_proven(provider)
        except UpstreamUnavailable:
            raise ProviderUnavailable(provider) from None
        except CircuitBreakerOpenException as shed:
            raise _shed(provider, shed) from None
        if taken.purpose == Purpose.LINK:
            return await self._link_from_account(provider, identity, taken.user_id, signed_in)
        return await self._sign_in(provider, identity, browser_id, taken.return_to)

    async def link_pending(self, browser_id: str | None, user: User) -> UpstreamProvider | None:
        """After a sign-in: link the identity this browser proved for this account before
        (the offer of LinkOffered), once. The provider linked, or None."""
        pending = await self.states.take_pending_link(browser_id=browser_id, user_id=user.id)
        if pending is None:
            return None
        provider = self.provider(pending.provider)
        if provider is None:
            return None
        if await self._link(provider, user, pending.subject, pending.email) is None:
            return None
        return provider

    async def list(self, user: User) -> Sequence[UpstreamIdentity]:
        return await self.identities.of_user(user.id)

    async def unlink(
        self,
        user: User,
        identity_id: str,
        *,
        current_password: str | None,
        auth_time: datetime | None,
    ) -> None:
        """Raises NotFoundException, LastSignInMethodException and the re-authentication's
        errors."""
        await self.reauth.confirm(
            user, current_password=current_password, auth_time=auth_time, during="unlink provider"
        )
        linked = await self.identities.of_user(user.id)
        if not any(identity.id == identity_id for identity in linked):
            raise NotFoundException("No such linked provider")
        await keep_a_way_in(self.methods.session, user, removing_identities=1)
        removed = await self.identities.unlink(user_id=user.id, identity_id=identity_id)
        if removed is None:
            raise NotFoundException("No such linked provider")
        provider = self.provider(removed.provider)
        self.audit.record(
            Event.IDENTITY_UNLINKED,
            user_id=user.id,
            actor_id=user.id,
            details={"provider": removed.provider, "identity_id": removed.id},
        )
        log.info("identity unlinked", user_id=user.id, provider=removed.provider)
        await self._notify(
            MailKind.IDENTITY_UNLINKED,
            user,
            provider.display_name if provider is not None else removed.provider,
        )

    # --- the callback's outcomes ----------------------------------------------------

    async def _sign_in(
        self,
        provider: UpstreamProvider,
        identity: Identity,
        browser_id: str | None,
        return_to: str | None,
    ) -> Outcome:
        linked = await self.identities.find(provider.name, identity.subject)
        if linked is not None:
            user = await self.users.get_by_id(linked.user_id)
            assert user is not None  # the foreign key cascades
            return await self._proven(provider, user, identity, return_to)
        if identity.email is None or not identity.email_verified:
            log.info("upstream identity without a verified address", provider=provider.name)
            return Refused(
                f"Your {provider.display_name} account has no verified email address, so it "
                "cannot sign in to an account here. Sign in another way (or verify the "
                f"address at {provider.display_name} and try again).",
                403,
            )
        existing = await self.users.get_by_email(identity.email)
        if existing is not None:
            assert browser_id is not None  # the state was this browser's
            await self.states.offer_link(
                provider=provider.name,
                browser_id=browser_id,
                user_id=existing.id,
                subject=identity.subject,
                email=identity.email,
            )
            log.info("upstream link offered", provider=provider.name, user_id=existing.id)
            return LinkOffered(provider, identity.email, return_to)
        if not provider.allow_signup:
            return Refused(
                f"No account here is linked to this {provider.display_name} account, and new "
                f"accounts cannot be created with {provider.display_name}.",
                403,
            )
        user = await self._sign_up(provider, identity)
        return await self._proven(provider, user, identity, return_to)

    async def _proven(
        self, provider: UpstreamProvider, user: User, identity: Identity, return_to: str | None
    ) -> Outcome:
        result = await self.signin.sign_in_proven(
            user,
            UpstreamMethod(self.methods),
            {"provider": provider.name, "subject": identity.subject},
            provider=provider.name,
            start=self.browser.start,
            continue_ref=return_to,
        )
        if isinstance(result, PendingFlow):
            return SecondStep(result)
        return SignedIn(result)

    async def _sign_up(self, provider: UpstreamProvider, identity: Identity) -> User:
        assert identity.email is not None
        base = candidate_username(identity)
        username = base
        while await self.users.get_by_username(username) is not None:
            username = f"{base[:40]}-{secrets.token_hex(3)}"
        user = await self.users.create(
            email=identity.email, username=username, hashed_password=None
        )
        # The provider vouched for the address (only verified ones get here).
        user.email_verified = True
        self.audit.record(
            Event.USER_REGISTERED,
            user_id=user.id,
            actor_id=user.id,
            details={"provider": provider.name},
        )
        log.info("user registered", user_id=user.id, provider=provider.name)
        await self._link(provider, user, identity.subject, identity.email, notify=False)
        return user

    async def _link_from_account(
        self,
        provider: UpstreamProvider,
        identity: Identity,
        user_id: int | None,
        signed_in: User | None,
    ) -> Outcome:
        if signed_in is None or signed_in.id != user_id:
            # The browser's session changed since "Link" was pressed.
            return Refused("Sign in to the account to link it, then try again.", 403)
        if await self._link(provider, signed_in, identity.subject, identity.email) is None:
            return Refused(
                f"That {provider.display_name} account is linked to an account already, or "
                f"yours has another {provider.display_name} account linked.",
                409,
            )
        return Linked(provider)

    async def _link(
        self,
        provider: UpstreamProvider,
        user: User,
        subject: str,
        email: str | None,
        *,
        notify: bool = True,
    ) -> UpstreamIdentity | None:
        linked = await self.identities.link(
            user_id=user.id, provider=provider.name, subject=subject, email=email
        )
        if linked is None:
            log.warning("upstream link refused", provider=provider.name, user_id=user.id)
            return None
        self.audit.record(
            Event.IDENTITY_LINKED,
            user_id=user.id,
            actor_id=user.id,
            details={"provider": provider.name, "identity_id": linked.id},
        )
        log.info("identity linked", user_id=user.id, provider=provider.name)
        if notify:
            await self._notify(MailKind.IDENTITY_LINKED, user, provider.display_name)
        return linked

    # --- helpers ------------------------------------------------------------------------

    async def _endpoints(self, client: UpstreamClient) -> Endpoints:
        try:
            return await client.endpoints()
        except UpstreamUnavailable:
            raise ProviderUnavailable(client.provider) from None
        except CircuitBreakerOpenException as shed:
            raise _shed(client.provider, shed) from None

    @staticmethod
    def _not_proven(provider: UpstreamProvider) -> Refused:
        return Refused(
            f"{provider.display_name} did not confirm who you are. Start again from the "
            "sign-in page.",
            401,
        )

    async def _notify(self, kind: MailKind, user: User, provider_name: str) -> None:
        if self.outbox is not None:
            await self.outbox.enqueue(
                kind, user.email, {"user_id": user.id, "provider_name": provider_name}
            )


def _shed(provider: UpstreamProvider, shed: CircuitBreakerOpenException) -> ProviderUnavailable:
    return ProviderUnavailable(provider, float(shed.headers.get("Retry-After", "0")))


def settings_ttl(settings: Settings) -> timedelta:
    return timedelta(seconds=settings.upstream_flow_expire_seconds)
