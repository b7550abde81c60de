"""The authorization endpoint's flow (OIDC Core §3.1.2, RFC 6749 §4.1, RFC 7636): checking
a request, keeping it while the person signs in or consents, consent, and the codes.

Knows no HTTP. Everything lives in the database (app.models.oidc), so any worker can take
the next step: the request a sign-in returns to, the consent, the code's one exchange.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import parse_qs, urlsplit

from sqlalchemy import bindparam, delete, insert, literal, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.database import Database
from app.models.base import UTCDateTime
from app.models.client import OAuthClient
from app.models.oidc import AuthorizationCode, AuthorizationRequest, Consent
from app.models.session import AuthSession
from app.models.user import User
from app.oauth2.clients import ClientService, origin_of, redirect_uri_matches
from app.oidc.id_tokens import SUPPORTED_SCOPES
from app.sessions.browser import BrowserSession
from app.transaction import execute_core, rowcount

CODE_TTL = timedelta(seconds=60)
# Where the sign-in page returns to (`return_to`), and the consent page.
RESUME_PATH = "/oauth2/authorize/resume"
CONSENT_PATH = "/consent"
# Long enough to sign in with a password, a second factor or another provider.
REQUEST_TTL = timedelta(minutes=30)
PROMPTS = frozenset({"none", "login", "consent", "select_account"})
# RFC 7636 §4.1/§4.2: 43-128 unreserved characters (a verifier; an S256 challenge is 43).
_PKCE = re.compile(r"^[A-Za-z0-9._~-]{43,128}$")
_MAX_PARAM = 2048
# What the kept request's columns hold (app.models.oidc).
_LIMITS = {"state": 2048, "nonce": 512, "login_hint": 320}


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def s256(verifier: str) -> str:
    return (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    )


class UnsafeRedirect(Exception):
    """An unknown client or an unregistered redirect URI: shown on an error page, never
    redirected to (RFC 6749 §4.1.2.1)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class RedirectError(Exception):
    """An error the application learns at its redirect URI (`error`, `state`, `iss`)."""

    def __init__(self, redirect_uri: str, state: str | None, error: str, description: str) -> None:
        super().__init__(description)
        self.redirect_uri = redirect_uri
        self.state = state
        self.error = error
        self.description = description


@dataclass(frozen=True, slots=True)
class ValidRequest:
    """A checked authorization request."""

    client: OAuthClient
    redirect_uri: str
    scopes: tuple[str, ...]
    state: str | None
    nonce: str | None
    code_challenge: str
    prompt: frozenset[str]
    max_age: int | None
    login_hint: str | None

    @property
    def scope(self) -> str:
        return " ".join(self.scopes)


# The browser session an authorization request is answered for (user, session_id,
# auth_time, amr).
SignedIn = BrowserSession


def _one(params: Mapping[str, list[str]], name: str) -> str | None:
    values = params.get(name) or []
    if len(values) > 1:
        raise ValueError(f"{name} is repeated")
    value = values[0] if values else None
    if value is not None and len(value) > _MAX_PARAM:
        raise ValueError(f"{name} is too long")
    return value or None


async def check_request(session: AsyncSession, params: Mapping[str, list[str]]) -> ValidRequest:
    """Validate an authorization request (query or form, every value of each parameter).

    Raises UnsafeRedirect (unknown client, unregistered redirect URI) or RedirectError.
    """
    try:
        client_id = _one(params, "client_id")
        redirect_uri = _one(params, "redirect_uri")
    except ValueError as error:
        raise UnsafeRedirect(f"The request is malformed: {error}") from None
    client = await ClientService(session).get(client_id or "")
    if client is None:
        raise UnsafeRedirect("The application is not known (client_id)")
    if redirect_uri is None or not redirect_uri_matches(client.redirect_uris, redirect_uri):
        raise UnsafeRedirect("The redirect_uri is not registered for this application")
    states = params.get("state") or []
    # For the error redirect of a request whose state is repeated: the first one.
    state = states[0] if states else None

    def fail(error: str, description: str) -> RedirectError:
        assert redirect_uri is not None
        return RedirectError(redirect_uri, state, error, description)

    try:
        state = _one(params, "state")
        values = {
            name: _one(params, name)
            for name in (
                "response_type",
                "scope",
                "nonce",
                "code_challenge",
                "code_challenge_method",
                "prompt",
                "max_age",
                "login_hint",
                "request",
                "request_uri",
                "registration",
                "response_mode",
            )
        }
    except ValueError as error:
        raise fail("invalid_request", str(error)) from None
    for name, limit in _LIMITS.items():
        value = state if name == "state" else values[name]
        if value is not None and len(value) > limit:
            raise fail("invalid_request", f"{name} is longer than {limit} characters")
    if values["request"] is not None:
        raise fail("request_not_supported", "Request objects are not supported")
    if values["request_uri"] is not None:
        raise fail("request_uri_not_supported", "request_uri is not supported")
    if values["registration"] is not None:
        raise fail("registration_not_supported", "registration is not supported")
    response_type = values["response_type"]
    if response_type is None:
        raise fail("invalid_request", "response_type is required")
    if response_type != "code":
        raise fail("unsupported_response_type", "Only response_type=code is supported")
    if values["response_mode"] not in (None, "query"):
        raise fail("invalid_request", "Only response_mode=query is supported")
    asked = (values["scope"] or "").split()
    if "openid" not in asked:
        raise fail("invalid_scope", "scope must contain openid")
    # Scopes this provider does not know are left out (RFC 6749 §3.3); the token
    # response's `scope` says what was granted.
    scopes = tuple(s for s in SUPPORTED_SCOPES if s in asked)
    challenge, method = values["code_challenge"], values["code_challenge_method"]
    if challenge is None:
        raise fail("invalid_request", "code_challenge is required (PKCE, S256)")
    if method != "S256":
        raise fail("invalid_request", "code_challenge_method must be S256")
    if not _PKCE.match(challenge):
        raise fail("invalid_request", "code_challenge is malformed")
    prompt = frozenset((values["prompt"] or "").split())
    if not prompt <= PROMPTS or ("none" in prompt and len(prompt) > 1):
        raise fail("invalid_request", "prompt is none, login, consent or select_account")
    max_age: int | None = None
    if values["max_age"] is not None:
        if not values["max_age"].isascii() or not values["max_age"].isdigit():
            raise fail("invalid_request", "max_age must be a number of seconds")
        max_age = min(int(values["max_age"]), 10**9)
    return ValidRequest(
        client=client,
        redirect_uri=redirect_uri,
        scopes=scopes,
        state=state,
        nonce=values["nonce"],
        code_challenge=challenge,
        prompt=prompt,
        max_age=max_age,
        login_hint=values["login_hint"],
    )


@dataclass(frozen=True, slots=True)
class Pending:
    """A request kept for its next step, and the token that names it."""

    token: str
    created_at: datetime
    request: ValidRequest


# The exchange's one write, built once (bound parameters, run as Core).
_CONSUME = (
    update(AuthorizationCode)
    .where(
        AuthorizationCode.id == bindparam("b_id"),
        AuthorizationCode.used_at.is_(None),
        AuthorizationCode.expires_at > bindparam("b_now"),
    )
    .values(used_at=bindparam("b_now"), grant_session_id=bindparam("b_grant"))
)


class AuthorizationStore:
    """Data access for the requests, codes and consents; flushes or executes, never commits."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def keep(self, request: ValidRequest, now: datetime) -> Pending:
        token = secrets.token_urlsafe(32)
        self.session.add(
            AuthorizationRequest(
                id=digest(token),
                client_id=request.client.client_id,
                redirect_uri=request.redirect_uri,
                scope=request.scope,
                state=request.state,
                nonce=request.nonce,
                code_challenge=request.code_challenge,
                prompt=" ".join(sorted(request.prompt)) or None,
                max_age=request.max_age,
                login_hint=request.login_hint,
                created_at=now,
                expires_at=now + REQUEST_TTL,
            )
        )
        await self.session.flush()
        return Pending(token, now, request)

    async def pending(self, token: str, now: datetime) -> Pending | None:
        """The kept request a token names, while it has not expired (and its client lives)."""
        if not token or len(token) > 128:
            return None
        row = await self.session.get(AuthorizationRequest, digest(token))
        if row is None or row.expires_at <= now:
            return None
        client = await ClientService(self.session).get(row.client_id)
        if client is None:
            return None
        request = ValidRequest(
            client=client,
            redirect_uri=row.redirect_uri,
            scopes=tuple(row.scope.split()),
            state=row.state,
            nonce=row.nonce,
            code_challenge=row.code_challenge,
            prompt=frozenset((row.prompt or "").split()),
            max_age=row.max_age,
            login_hint=row.login_hint,
        )
        return Pending(token, row.created_at, request)

    async def finish(self, token: str) -> bool:
        """Delete a kept request; False when another request finished it first (a form
        posted twice): one answer per request."""
        result = await self.session.execute(
            delete(AuthorizationRequest)
            .where(AuthorizationRequest.id == digest(token))
            .execution_options(synchronize_session=False)
        )
        return rowcount(result) == 1

    async def client_of(self, token: str, now: datetime) -> str | None:
        """The client a kept request is for (what `login.succeeded` records)."""
        if not token or len(token) > 128:
            return None
        row = await self.session.get(AuthorizationRequest, digest(token))
        return row.client_id if row is not None and row.expires_at > now else None

    # --- consent -------------------------------------------------------------------------

    async def consented(self, user_id: int, client_id: str, scopes: tuple[str, ...]) -> bool:
        row = await self.session.get(Consent, (user_id, client_id))
        return row is not None and set(scopes) <= set(row.scopes)

    async def remember_consent(
        self, user_id: int, client_id: str, scopes: tuple[str, ...], now: datetime
    ) -> None:
        row = await self.session.get(Consent, (user_id, client_id))
        if row is None:
            self.session.add(
                Consent(user_id=user_id, client_id=client_id, scopes=sorted(scopes), granted_at=now)
            )
        else:
            row.scopes = sorted(set(row.scopes) | set(scopes))
            row.granted_at = now
        await self.session.flush()

    # --- codes ---------------------------------------------------------------------------

    async def issue_code(
        self, request: ValidRequest, signed_in: SignedIn, now: datetime
    ) -> str | None:
        """A new code for the browser session, written only while that session lives and
        its user is active (one INSERT ... SELECT); None otherwise."""
        code = secrets.token_urlsafe(32)
        live = (
            select(
                literal(digest(code)),
                literal(request.client.client_id),
                literal(request.redirect_uri),
                literal(request.scope),
                literal(request.nonce),
                literal(request.code_challenge),
                User.id,
                AuthSession.id,
                literal(signed_in.auth_time, UTCDateTime),
                literal(list(signed_in.amr), AuthorizationCode.__table__.c.amr.type),
                literal(now, UTCDateTime),
                literal(now + CODE_TTL, UTCDateTime),
            )
            .join(AuthSession, AuthSession.user_id == User.id)
            .where(
                User.id == signed_in.user.id,
                User.is_active.is_(True),
                AuthSession.id == signed_in.session_id,
            )
            .with_for_update(read=True)
        )
        result = await self.session.execute(
            insert(AuthorizationCode).from_select(
                [
                    "id",
                    "client_id",
                    "redirect_uri",
                    "scope",
                    "nonce",
                    "code_challenge",
                    "user_id",
                    "browser_session_id",
                    "auth_time",
                    "amr",
                    "created_at",
                    "expires_at",
                ],
                live,
            )
        )
        return code if rowcount(result) == 1 else None

    async def code(self, code: str) -> AuthorizationCode | None:
        if not code or len(code) > 128:
            return None
        return await self.session.get(AuthorizationCode, digest(code))

    async def consume(self, code_id: str, now: datetime, grant_session_id: str) -> bool:
        """Mark a code used by the session it starts, if it still is unused and unexpired:
        the one winner of any number of concurrent exchanges (a conditional UPDATE). The
        session is named in the same statement, so a reuse seen after the commit always
        finds what to end."""
        params = {"b_id": code_id, "b_now": now, "b_grant": grant_session_id}
        return rowcount(await execute_core(self.session, _CONSUME, params)) == 1

    async def purge(self, now: datetime) -> int:
        """Expired requests and codes (a used code is kept until it expires, so that its
        reuse is still recognised; then it is unknown, which also fails)."""
        first = await self.session.execute(
            delete(AuthorizationRequest)
            .where(AuthorizationRequest.expires_at < now)
            .execution_options(synchronize_session=False)
        )
        second = await self.session.execute(
            delete(AuthorizationCode)
            .where(AuthorizationCode.expires_at < now - REUSE_WINDOW)
            .execution_options(synchronize_session=False)
        )
        return rowcount(first) + rowcount(second)


# A used code is remembered this long past its expiry, so that presenting it again (the
# sign of a stolen code) still ends what it issued.
REUSE_WINDOW = timedelta(hours=1)


def request_token_of(return_to: str | None) -> str | None:
    """The kept request a `return_to` of the sign-in page leads back to, if any."""
    if return_to is None:
        return None
    path, _, query = return_to.partition("?")
    if path not in (RESUME_PATH, CONSENT_PATH):
        return None
    values = parse_qs(query).get("request") or []
    return values[0] if len(values) == 1 else None


async def client_of_return_to(
    session: AsyncSession, return_to: str | None, now: datetime
) -> str | None:
    """The client whose authorization request a sign-in serves (None: not one)."""
    token = request_token_of(return_to)
    if token is None:
        return None
    return await AuthorizationStore(session).client_of(token, now)


async def return_to_origins(session: AsyncSession, return_to: str, now: datetime) -> list[str]:
    """The origin of the redirect URI a `return_to` may lead to (the sign-in page's form
    then allows it in CSP form-action: Chrome checks each redirect after a form POST)."""
    token = request_token_of(return_to)
    pending = await AuthorizationStore(session).pending(token, now) if token else None
    if pending is None:
        return []
    return [form_action_origin(pending.request.redirect_uri)]


def form_action_origin(uri: str) -> str:
    """What CSP form-action names for a redirect URI: its origin, or a private-use scheme."""
    return origin_of(uri) or f"{urlsplit(uri).scheme.lower()}:"


async def purge_authorizations(database: Database, now: datetime) -> int:
    """The periodic clean-up's share: expired kept requests and codes."""
    async with database.session() as session:
        return await AuthorizationStore(session).purge(now)
