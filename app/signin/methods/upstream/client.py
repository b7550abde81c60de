"""Talking to a provider: discovery, the authorization request, the code exchange, and the
proof of who came back (an ID token checked against the provider's keys, or GitHub's REST
API).

Every call goes through an httpx client with timeouts and the provider's circuit breaker:
a provider that is down costs a sign-in a few seconds once, then an immediate "not
answering" page until the breaker lets a trial through, never a hung request.
Discovery documents and key sets are cached in the worker (public data; a worker that
restarts fetches them again); the JWKS is fetched again, once, when an ID token names a key
it does not hold (the provider rotated its keys).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

import jwt

from app.config import (
    GITHUB_API_URL,
    GITHUB_AUTHORIZE_URL,
    GITHUB_TOKEN_URL,
    UpstreamProvider,
)
from app.utils.circuit_breaker import CircuitBreaker
from app.utils.clock import Clock, utc_now
from app.utils.logger import get_logger

if TYPE_CHECKING:  # httpx is imported by the first call: most deployments never make one
    import httpx

log = get_logger(__name__)

# Signatures an ID token may carry: asymmetric only. "none" and the HMAC algorithms (keyed
# with the client secret, which this service and the provider share) are never accepted.
_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA")
# Seconds of clock difference tolerated for `exp` and `iat` (OpenID Connect Core §3.1.3.7).
_LEEWAY = 60
# A discovery document is trusted this long before it is fetched again.
_DISCOVERY_TTL = 3600.0


class UpstreamUnavailable(Exception):
    """The provider did not answer, answered garbage, or its breaker is open."""


class UpstreamRejected(Exception):
    """The provider's answer does not prove anything: a refused code, a bad ID token. The
    message names the reason for the log; the person sees one page for all of them."""


@dataclass(frozen=True, slots=True)
class Identity:
    """Who the provider says came back: the subject is the identity; the address counts
    only when `email_verified` (for GitHub: the verified primary address)."""

    provider: str
    subject: str
    email: str | None
    email_verified: bool
    username: str | None


@dataclass(slots=True)
class Endpoints:
    authorization: str
    token: str
    issuer: str | None = None
    jwks_uri: str | None = None
    userinfo: str | None = None
    algorithms: tuple[str, ...] = _ALGORITHMS
    # RFC 9207: the provider names itself in every authorization response.
    iss_parameter: bool = False
    fetched_at: float = 0.0


def pkce_challenge(verifier: str) -> str:
    """RFC 7636 §4.2, S256."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


@dataclass
class UpstreamClient:
    """One provider's protocol; one instance per provider and worker (app.state)."""

    provider: UpstreamProvider
    http: httpx.AsyncClient
    breaker: CircuitBreaker
    clock: Clock = utc_now
    _endpoints: Endpoints | None = None
    _jwks: dict[str, Any] = field(default_factory=dict)

    def form_origins(self) -> list[str]:
        """Where a page's "Continue with" or "Link" form leads, through the redirect to the
        provider: Chrome checks a page's CSP `form-action` against every redirect after a
        form, so those pages allow these origins (the issuer's, and the authorization
        endpoint's once discovery named it)."""
        urls = [self.provider.issuer or self.provider.authorize_url or GITHUB_AUTHORIZE_URL]
        if self._endpoints is not None:
            urls.append(self._endpoints.authorization)
        origins = []
        for url in urls:
            parts = urlsplit(url)
            origin = f"{parts.scheme}://{parts.netloc}"
            if parts.scheme in ("http", "https") and parts.netloc and origin not in origins:
                origins.append(origin)
        return origins

    async def endpoints(self) -> Endpoints:
        if self.provider.kind == "github":
            return Endpoints(
                authorization=self.provider.authorize_url or GITHUB_AUTHORIZE_URL,
                token=self.provider.token_url or GITHUB_TOKEN_URL,
            )
        now = self.clock().timestamp()
        if self._endpoints is None or now - self._endpoints.fetched_at > _DISCOVERY_TTL:
            self._endpoints = await self._discover(now)
        return self._endpoints

    async def _discover(self, now: float) -> Endpoints:
        issuer = self.provider.issuer
        assert issuer is not None
        document = await self._get_json(f"{issuer.rstrip('/')}/.well-known/openid-configuration")
        # OpenID Connect Discovery §4.3: the document must name exactly the issuer it was
        # fetched for, or tokens of another issuer could pass for this one's.
        if document.get("issuer") != issuer:
            raise UpstreamUnavailable("discovery names another issuer")
        try:
            offered = document.get("id_token_signing_alg_values_supported") or ["RS256"]
            return Endpoints(
                authorization=str(document["authorization_endpoint"]),
                token=str(document["token_endpoint"]),
                issuer=issuer,
                jwks_uri=str(document["jwks_uri"]),
                userinfo=document.get("userinfo_endpoint"),
                algorithms=tuple(a for a in offered if a in _ALGORITHMS) or ("RS256",),
                iss_parameter=document.get("authorization_response_iss_parameter_supported")
                is True,
                fetched_at=now,
            )
        except KeyError as missing:
            raise UpstreamUnavailable(f"discovery lacks {missing}") from None

    def authorization_url(
        self,
        endpoints: Endpoints,
        *,
        state: str,
        nonce: str,
        verifier: str,
        redirect_uri: str,
    ) -> str:
        params = {
            "response_type": "code",
            "client_id": self.provider.client_id,
            "redirect_uri": redirect_uri,
            "scope": " ".join(self.provider.requested_scopes),
            "state": state,
            "code_challenge": pkce_challenge(verifier),
            "code_challenge_method": "S256",
        }
        if self.provider.kind == "oidc":
            params["nonce"] = nonce
        separator = "&" if "?" in endpoints.authorization else "?"
        return f"{endpoints.authorization}{separator}{urlencode(params)}"

    async def identify(
        self, endpoints: Endpoints, *, code: str, verifier: str, nonce: str, redirect_uri: str
    ) -> Identity:
        """Exchange the code and prove who it belongs to."""
        tokens = await self._post_token(
            endpoints, code=code, verifier=verifier, redirect_uri=redirect_uri
        )
        access_token = tokens.get("access_token")
        if not isinstance(access_token, str) or not access_token:
            raise UpstreamRejected("token response without an access token")
        if self.provider.kind == "github":
            return await self._github_identity(access_token)
        id_token = tokens.get("id_token")
        if not isinstance(id_token, str):
            raise UpstreamRejected("token response without an ID token")
        claims = await self.verify_id_token(endpoints, id_token, nonce=nonce)
        if "email" not in claims and endpoints.userinfo:
            info = await self._get_json(endpoints.userinfo, token=access_token)
            # OpenID Connect Core §5.3.2: the user info of another subject is refused.
            if info.get("sub") != claims["sub"]:
                raise UpstreamRejected("user info of another subject")
            claims = {**info, **claims}
        email = claims.get("email")
        return Identity(
            provider=self.provider.name,
            subject=str(claims["sub"]),
            email=email if isinstance(email, str) and email else None,
            # Only a JSON true counts: "true" as a string, or no claim, is no proof.
            email_verified=claims.get("email_verified") is True,
            username=_text(claims.get("preferred_username")) or _text(claims.get("nickname")),
        )

    async def verify_id_token(
        self, endpoints: Endpoints, id_token: str, *, nonce: str
    ) -> dict[str, Any]:
        """OpenID Connect Core §3.1.3.7: signature (the provider's JWKS), `iss`, `aud`
        (and `azp`), `exp`, `iat` and `nonce`; raises UpstreamRejected."""
        try:
            header = jwt.get_unverified_header(id_token)
        except jwt.PyJWTError as bad:
            raise UpstreamRejected(f"malformed ID token: {bad}") from None
        algorithm = header.get("alg")
        if algorithm not in endpoints.algorithms:
            raise UpstreamRejected(f"ID token algorithm {algorithm!r} not accepted")
        key = await self._signing_key(endpoints, header.get("kid"), algorithm)
        try:
            claims: dict[str, Any] = jwt.decode(
                id_token,
                key=key,
                algorithms=[algorithm],
                audience=self.provider.client_id,
                issuer=endpoints.issuer,
                # Time is checked below against the service's clock.
                options={
                    "require": ["iss", "sub", "aud", "exp", "iat"],
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                },
            )
        except jwt.PyJWTError as bad:
            raise UpstreamRejected(f"ID token rejected: {bad}") from None
        now = self.clock().timestamp()
        if not isinstance(claims["exp"], int | float) or claims["exp"] + _LEEWAY <= now:
            raise UpstreamRejected("ID token expired")
        if not isinstance(claims["iat"], int | float) or claims["iat"] - _LEEWAY > now:
            raise UpstreamRejected("ID token issued in the future")
        audience = claims["aud"]
        several = isinstance(audience, list) and len(audience) > 1
        if several and claims.get("azp") != self.provider.client_id:
            raise UpstreamRejected("ID token for several audiences without our azp")
        sent = claims.get("nonce")
        if not isinstance(sent, str) or not hmac.compare_digest(sent.encode(), nonce.encode()):
            raise UpstreamRejected("ID token nonce does not match")
        if not isinstance(claims["sub"], str) or not claims["sub"]:
            raise UpstreamRejected("ID token without a subject")
        return claims

    async def _signing_key(self, endpoints: Endpoints, kid: object, algorithm: str) -> jwt.PyJWK:
        assert endpoints.jwks_uri is not None
        for attempt in range(2):
            if attempt == 1 or not self._jwks:
                # Once more on an unknown kid: the provider may have rotated its keys.
                self._jwks = await self._get_json(endpoints.jwks_uri)
            keys = [k for k in self._jwks.get("keys", []) if isinstance(k, dict)]
            candidates = [
                k
                for k in keys
                if (kid is None or k.get("kid") == kid) and k.get("use", "sig") == "sig"
            ]
            if kid is None and len(candidates) != 1:
                candidates = []  # without a kid only a one-key set is unambiguous
            if candidates:
                try:
                    return jwt.PyJWK(candidates[0], algorithm=algorithm)
                except jwt.PyJWTError as bad:
                    raise UpstreamRejected(f"unusable provider key: {bad}") from None
        raise UpstreamRejected("ID token signed with a key the provider does not publish")

    async def _github_identity(self, access_token: str) -> Identity:
        api = (self.provider.api_url or GITHUB_API_URL).rstrip("/")
        user = await self._get_json(f"{api}/user", token=access_token)
        emails = await self._get_json_list(f"{api}/user/emails", token=access_token)
        subject = user.get("id")
        # The numeric id is the account; the login can be renamed and then taken by others.
        if not isinstance(subject, int) or isinstance(subject, bool):
            raise UpstreamRejected("GitHub user without a numeric id")
        primary = next(
            (
                e
                for e in emails
                if isinstance(e, dict) and e.get("primary") is True and e.get("verified") is True
            ),
            None,
        )
        email = primary.get("email") if primary is not None else None
        return Identity(
            provider=self.provider.name,
            subject=str(subject),
            email=email if isinstance(email, str) and email else None,
            email_verified=primary is not None,
            username=_text(user.get("login")),
        )

    async def _post_token(
        self, endpoints: Endpoints, *, code: str, verifier: str, redirect_uri: str
    ) -> dict[str, Any]:
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
        }
        auth = (self.provider.client_id, self.provider.client_secret.get_secret_value())
        response = await self._send("POST", endpoints.token, data=form, auth=auth)
        body = _json(response)
        if response.status_code != 200 or not isinstance(body, dict) or "error" in body:
            error = body.get("error") if isinstance(body, dict) else None
            raise UpstreamRejected(
                f"code refused by the provider ({error or response.status_code})"
            )
        return body

    async def _get_json(self, url: str, *, token: str | None = None) -> dict[str, Any]:
        response = await self._send("GET", url, token=token)
        body = _json(response)
        if response.status_code != 200 or not isinstance(body, dict):
            raise UpstreamUnavailable(f"GET {url}: {response.status_code}")
        return body

    async def _get_json_list(self, url: str, *, token: str) -> list[Any]:
        response = await self._send("GET", url, token=token)
        body = _json(response)
        if response.status_code != 200 or not isinstance(body, list):
            raise UpstreamUnavailable(f"GET {url}: {response.status_code}")
        return body

    async def _send(
        self,
        method: str,
        url: str,
        *,
        token: str | None = None,
        data: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
    ) -> httpx.Response:
        headers = {"Accept": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        import httpx

        async with self.breaker.guard():
            try:
                response = await self.http.request(
                    method, url, headers=headers, data=data, auth=auth
                )
            except httpx.HTTPError as failed:
                log.warning(
                    "provider unreachable", provider=self.provider.name, error=type(failed).__name__
                )
                raise UpstreamUnavailable(str(failed)) from None
            if response.status_code >= 500:
                raise UpstreamUnavailable(f"{method} {url}: {response.status_code}")
            return response


def _json(response: httpx.Response) -> Any:
    try:
        return json.loads(response.content)
    except ValueError:
        return None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
