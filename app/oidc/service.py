"""The OpenID Provider's decisions: what an authorization request gets (a code, the
sign-in page, the consent page, an error), the code exchange, the ID token of a refresh,
userinfo, and the end of a session. Knows no HTTP.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlencode

from app.audit.log import AuditLog, Event
from app.core.errors import InvalidClientException, InvalidGrantException
from app.models.client import OAuthClient
from app.oauth2.client_auth import ClientCredentials
from app.oauth2.clients import ClientService, redirect_uri_matches
from app.oidc.authorization import (
    _PKCE,
    AuthorizationStore,
    Pending,
    RedirectError,
    SignedIn,
    ValidRequest,
    s256,
)
from app.oidc.id_tokens import IdTokenFacts, IdTokens
from app.sessions.service import SessionService
from app.sessions.tokens import AuthResult, ClientGrant, SessionTokens, new_session_id
from app.transaction import Transaction
from app.users.service import UserService
from app.utils.clock import Clock, utc_now
from app.utils.logger import get_logger

log = get_logger(__name__)


def redirect_with(redirect_uri: str, params: Mapping[str, str | None]) -> str:
    """`redirect_uri` with the parameters added to its query (RFC 6749 §4.1.2: keeping the
    query it already has)."""
    query = urlencode({k: v for k, v in params.items() if v is not None})
    return f"{redirect_uri}{'&' if '?' in redirect_uri else '?'}{query}"


@dataclass(frozen=True, slots=True)
class ToApplication:
    """Send the browser back to the application (a code or an error)."""

    url: str


@dataclass(frozen=True, slots=True)
class ToSignIn:
    """Send the browser to the sign-in page; it comes back to the kept request."""

    pending: Pending


@dataclass(frozen=True, slots=True)
class ToConsent:
    pending: Pending


Outcome = ToApplication | ToSignIn | ToConsent


@dataclass(frozen=True, slots=True)
class IssuedTokens:
    result: AuthResult
    id_token: str
    scope: str


class OpenIdProvider:
    def __init__(
        self,
        store: AuthorizationStore,
        *,
        issuer: str,
        id_tokens: IdTokens,
        tokens: SessionTokens,
        audit: AuditLog,
        transaction: Transaction,
        clock: Clock = utc_now,
    ) -> None:
        self.store = store
        self.issuer = issuer
        self.id_tokens = id_tokens
        self.tokens = tokens
        self.audit = audit
        self.transaction = transaction
        self.clock = clock

    # --- the authorization endpoint ------------------------------------------------------

    def error_url(self, error: RedirectError) -> str:
        return redirect_with(
            error.redirect_uri,
            {
                "error": error.error,
                "error_description": error.description,
                "state": error.state,
                "iss": self.issuer,
            },
        )

    def _fail(self, request: ValidRequest, error: str, description: str) -> ToApplication:
        failure = RedirectError(request.redirect_uri, request.state, error, description)
        return ToApplication(self.error_url(failure))

    async def authorize(self, request: ValidRequest, signed_in: SignedIn | None) -> Outcome:
        """A checked request, fresh from the application."""
        now = self.clock()
        if "none" in request.prompt:
            return await self._decide(request, signed_in, requested_at=None, pending=None)
        if signed_in is None or "login" in request.prompt or self._too_old(request, signed_in):
            return ToSignIn(await self.store.keep(request, now))
        return await self._decide(request, signed_in, requested_at=None, pending=None)

    async def resume(self, token: str, signed_in: SignedIn | None) -> Outcome | None:
        """A kept request, after the sign-in page (None: unknown or expired)."""
        pending = await self.store.pending(token, self.clock())
        if pending is None:
            return None
        return await self._decide(
            pending.request, signed_in, requested_at=pending.created_at, pending=pending
        )

    def _too_old(
        self, request: ValidRequest, signed_in: SignedIn, requested_at: datetime | None = None
    ) -> bool:
        if request.max_age is None:
            return False
        if requested_at is not None and self._signed_in_since(signed_in, requested_at):
            return False
        return (self.clock() - signed_in.auth_time).total_seconds() > request.max_age

    @staticmethod
    def _signed_in_since(signed_in: SignedIn, requested_at: datetime) -> bool:
        # auth_time has whole seconds: a sign-in in the request's own second counts.
        return signed_in.auth_time >= requested_at.replace(microsecond=0)

    async def _decide(
        self,
        request: ValidRequest,
        signed_in: SignedIn | None,
        *,
        requested_at: datetime | None,
        pending: Pending | None,
    ) -> Outcome:
        now = self.clock()
        if "none" in request.prompt:
            if signed_in is None or self._too_old(request, signed_in):
                return self._fail(request, "login_required", "The person is not signed in")
        else:
            # prompt=login asks for a sign-in after the request: one that happened since it
            # was kept satisfies it, so the sign-in page is not shown twice.
            fresh = (
                requested_at is not None
                and signed_in is not None
                and (self._signed_in_since(signed_in, requested_at))
            )
            needs_login = (
                signed_in is None
                or ("login" in request.prompt and not fresh)
                or self._too_old(request, signed_in, requested_at)
            )
            if needs_login:
                kept = pending or await self.store.keep(request, now)
                return ToSignIn(kept)
        assert signed_in is not None
        client = request.client
        if not client.first_party:
            asked_again = "consent" in request.prompt
            known = await self.store.consented(signed_in.user.id, client.client_id, request.scopes)
            if asked_again or not known:
                if "none" in request.prompt:
                    return self._fail(request, "consent_required", "Consent is required")
                return ToConsent(pending or await self.store.keep(request, now))
        if pending is not None:
            await self.store.finish(pending.token)
        return await self._code(request, signed_in)

    async def _code(self, request: ValidRequest, signed_in: SignedIn) -> ToApplication:
        code = await self.store.issue_code(request, signed_in, self.clock())
        if code is None:  # the browser session ended, or the account was deactivated
            return self._fail(request, "login_required", "The sign-in has ended")
        log.info(
            "authorization code issued",
            client_id=request.client.client_id,
            user_id=signed_in.user.id,
        )
        url = redirect_with(
            request.redirect_uri, {"code": code, "state": request.state, "iss": self.issuer}
        )
        return ToApplication(url)

    async def decide_consent(
        self, token: str, signed_in: SignedIn, *, allow: bool
    ) -> ToApplication | None:
        """The person's answer on the consent page (None: the request is unknown, expired
        or already answered)."""
        pending = await self.store.pending(token, self.clock())
        if pending is None or not await self.store.finish(token):
            return None
        request = pending.request
        details = {"client_id": request.client.client_id, "scope": request.scope}
        if not allow:
            self.audit.record(
                Event.CONSENT_DENIED,
                user_id=signed_in.user.id,
                actor_id=signed_in.user.id,
                details=details,
            )
            return self._fail(request, "access_denied", "The person denied the request")
        await self.store.remember_consent(
            signed_in.user.id, request.client.client_id, request.scopes, self.clock()
        )
        self.audit.record(
            Event.CONSENT_GRANTED,
            user_id=signed_in.user.id,
            actor_id=signed_in.user.id,
            details=details,
        )
        return await self._code(request, signed_in)

    # --- the token endpoint --------------------------------------------------------------

    async def exchange(
        self,
        *,
        code: str,
        redirect_uri: str | None,
        code_verifier: str | None,
        client: OAuthClient,
    ) -> IssuedTokens:
        """`grant_type=authorization_code` for an authenticated (or public, named) client.

        Raises InvalidGrantException or InvalidRequestException.
        """
        await self.id_tokens.prepare()
        row = await self.store.code(code)
        if row is None:
            raise InvalidGrantException("The authorization code is invalid or expired")
        if row.used_at is not None:
            await self._reused(row.id, row.client_id, row.user_id, row.grant_session_id)
            raise InvalidGrantException("The authorization code was already used")
        if row.client_id != client.client_id:
            raise InvalidGrantException("The authorization code was issued to another client")
        if redirect_uri is None or redirect_uri != row.redirect_uri:
            raise InvalidGrantException("redirect_uri differs from the authorization request's")
        if code_verifier is None or not _PKCE.match(code_verifier):
            raise InvalidGrantException("code_verifier is missing or malformed")
        if not hmac.compare_digest(s256(code_verifier), row.code_challenge):
            raise InvalidGrantException("code_verifier does not match the code_challenge")
        sid = new_session_id()
        if not await self.store.consume(row.id, self.clock(), sid):
            # Expired, or a concurrent exchange won (committed by now: the UPDATE waited for
            # its row lock): then this one is a reuse as well.
            await self.store.session.refresh(row)
            if row.used_at is not None:
                await self._reused(row.id, row.client_id, row.user_id, row.grant_session_id)
            raise InvalidGrantException("The authorization code is invalid or expired")
        user = await UserService(self.store.session).get_by_id(row.user_id)
        grant = ClientGrant(
            client_id=row.client_id,
            scope=row.scope,
            browser_session_id=row.browser_session_id,
            auth_time=row.auth_time,
            amr=tuple(row.amr),
        )
        pair = None
        if user is not None:
            pair = await self.tokens.start_for_client(user, grant, sid=sid)
        if pair is None or user is None:
            raise InvalidGrantException("The sign-in behind this code has ended")
        session = pair.access
        id_token = await self.id_tokens.issue(
            user,
            IdTokenFacts(
                client_id=row.client_id,
                browser_session_id=row.browser_session_id,
                auth_time=row.auth_time,
                amr=row.amr,
                scopes=row.scope.split(),
                access_token=session.token,
                nonce=row.nonce,
            ),
        )
        log.info("authorization code exchanged", client_id=row.client_id, user_id=user.id)
        return IssuedTokens(AuthResult(user, pair), id_token, row.scope)

    async def _reused(
        self, code_id: str, client_id: str, user_id: int, grant_session_id: str | None
    ) -> None:
        """A code presented again: its tokens end (RFC 6749 §4.1.2), and that stands
        although the request fails."""
        ended = False
        if grant_session_id is not None:
            ended = await self.tokens.sessions.revoke(sid=grant_session_id, user_id=user_id)
        self.audit.record(
            Event.CODE_REUSED,
            user_id=user_id,
            details={"client_id": client_id, "session_ended": ended},
        )
        await self.transaction.commit_before_raising()
        log.warning("authorization code reused", client_id=client_id, user_id=user_id)

    async def refreshed_id_token(self, result: AuthResult) -> str | None:
        """A new ID token for a refreshed application session with the openid scope."""
        claims = result.session
        scope, client_id = claims.get("scope"), claims.get("client_id")
        browser_sid, auth_time = claims.get("browser_sid"), claims.get("auth_time")
        if not isinstance(scope, str) or "openid" not in scope.split():
            return None
        if not isinstance(client_id, str) or not isinstance(browser_sid, str):
            return None
        if not isinstance(auth_time, int):
            return None
        amr = claims.get("amr")
        return await self.id_tokens.issue(
            result.user,
            IdTokenFacts(
                client_id=client_id,
                browser_session_id=browser_sid,
                auth_time=datetime.fromtimestamp(auth_time, self.clock().tzinfo),
                amr=[str(m) for m in amr] if isinstance(amr, list) else ["pwd"],
                scopes=scope.split(),
                access_token=result.tokens.access.token,
            ),
        )


async def token_client(
    clients: ClientService, credentials: ClientCredentials | None
) -> OAuthClient:
    """The client of a code exchange or an application's refresh: a confidential client
    proves its secret, a public one names itself. Raises InvalidClientException."""
    if credentials is None:
        raise InvalidClientException("The client must authenticate or, if public, send client_id")
    if credentials.secret is not None:
        client = await clients.authenticate(credentials.client_id, credentials.secret)
        if client is None:
            raise InvalidClientException()
        return client
    client = await clients.get(credentials.client_id)
    if client is None or not client.public:
        raise InvalidClientException()
    return client


async def end_browser_session(
    sessions: SessionService, audit: AuditLog, *, session_id: str, user_id: int
) -> bool:
    """End a browser session and, with it, every application's session under it."""
    ended = await sessions.revoke(sid=session_id, user_id=user_id)
    if ended:
        audit.record(
            Event.LOGOUT,
            user_id=user_id,
            actor_id=user_id,
            details={"session_id": session_id, "via": "end_session"},
        )
    return ended


def post_logout_target(
    client: OAuthClient | None, uri: str | None, state: str | None
) -> str | None:
    """Where to send the browser after an end session: a registered
    `post_logout_redirect_uri` of the client, with `state`; None otherwise."""
    if client is None or uri is None:
        return None
    if not redirect_uri_matches(client.post_logout_redirect_uris, uri):
        return None
    return redirect_with(uri, {"state": state}) if state else uri
