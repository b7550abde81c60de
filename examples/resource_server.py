"""A resource server that accepts authsvc's access tokens without holding any secret.

It verifies each token locally with the public keys authsvc publishes at
`/.well-known/jwks.json` (PyJWT's `PyJWKClient` fetches them, caches them and refetches
once when a token names a key it has not seen: a rotation needs no restart). Issuer,
audience and algorithm are pinned. With `AUTHSVC_INTROSPECT=true` it also asks authsvc's
`/auth/introspect` about every token, so a token whose session was revoked (logout) is
refused at once instead of living until its `exp`; that costs one call per request.

    AUTHSVC_URL=http://localhost:8000 AUTHSVC_ALGORITHM=EdDSA \\
        uvicorn examples.resource_server:app --port 9000

| variable | default | meaning |
|---|---|---|
| `AUTHSVC_URL` | `http://localhost:8000` | where authsvc answers (its `PUBLIC_URL`) |
| `AUTHSVC_JWKS_URL` | `{AUTHSVC_URL}/.well-known/jwks.json` | |
| `AUTHSVC_ISSUER` | `{AUTHSVC_URL}` | its `JWT_ISSUER` (which defaults to its `PUBLIC_URL`) |
| `AUTHSVC_AUDIENCE` | `authsvc` | its `JWT_AUDIENCE` |
| `AUTHSVC_ALGORITHM` | `EdDSA` | authsvc's `JWT_ALGORITHM` (only this one is accepted) |
| `AUTHSVC_JWKS_REFETCH_COOLDOWN` | `5` | seconds between refetches for unknown kids |
| `AUTHSVC_INTROSPECT` | `false` | also ask `/auth/introspect` (needs the two below) |
| `AUTHSVC_CLIENT_ID` / `AUTHSVC_CLIENT_SECRET` | unset | from `authsvc clients create NAME` |
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any

import httpx
import jwt
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

REQUIRED_CLAIMS = ["sub", "exp", "iat", "iss", "aud", "type"]


@dataclass(frozen=True)
class Config:
    authsvc_url: str = "http://localhost:8000"
    jwks_url: str = ""
    issuer: str = ""  # empty: authsvc_url, as authsvc's JWT_ISSUER defaults to its PUBLIC_URL
    audience: str = "authsvc"
    algorithm: str = "EdDSA"
    # After any fetch, an unknown kid refetches the JWKS only once this many seconds passed
    # (PyJWKClient's own default is 30): a bound on what garbage kids cost authsvc, and the
    # longest a token of a freshly rotated key may be refused here.
    jwks_refetch_cooldown: float = 5.0
    introspect: bool = False
    client_id: str | None = None
    client_secret: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Config:
        url = env.get("AUTHSVC_URL", cls.authsvc_url).rstrip("/")
        return cls(
            authsvc_url=url,
            jwks_url=env.get("AUTHSVC_JWKS_URL", f"{url}/.well-known/jwks.json"),
            issuer=env.get("AUTHSVC_ISSUER", url),
            audience=env.get("AUTHSVC_AUDIENCE", cls.audience),
            algorithm=env.get("AUTHSVC_ALGORITHM", cls.algorithm),
            jwks_refetch_cooldown=float(
                env.get("AUTHSVC_JWKS_REFETCH_COOLDOWN", cls.jwks_refetch_cooldown)
            ),
            introspect=env.get("AUTHSVC_INTROSPECT", "false").lower() in {"1", "true", "yes"},
            client_id=env.get("AUTHSVC_CLIENT_ID"),
            client_secret=env.get("AUTHSVC_CLIENT_SECRET"),
        )


def _refuse(detail: str) -> HTTPException:
    # RFC 6750 §3: a bearer challenge that names the problem, never why exactly.
    return HTTPException(
        status_code=401,
        detail=detail,
        headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
    )


class TokenVerifier:
    """Local verification with the JWKS, and optionally introspection on top of it."""

    def __init__(self, config: Config, http: httpx.AsyncClient) -> None:
        if config.algorithm.startswith("HS"):
            raise ValueError("an HS algorithm has no public key: verify with introspection")
        self.config = config
        self.http = http
        # Keys are cached for 5 minutes (authsvc's Cache-Control); an unknown kid refetches.
        self.jwks = jwt.PyJWKClient(
            config.jwks_url,
            cache_keys=True,
            lifespan=300,
            timeout=5,
            cooldown_duration=config.jwks_refetch_cooldown,
        )

    async def verify(self, token: str) -> dict[str, Any]:
        """The token's claims; raises HTTPException 401 for anything not acceptable."""
        try:
            # PyJWKClient does blocking I/O on a cache miss: keep it off the event loop.
            signing_key = await asyncio.to_thread(self.jwks.get_signing_key_from_jwt, token)
            claims: dict[str, Any] = jwt.decode(
                token,
                signing_key.key,
                algorithms=[self.config.algorithm],  # pinned: no alg confusion, no `none`
                issuer=self.config.issuer or self.config.authsvc_url,
                audience=self.config.audience,
                options={"require": REQUIRED_CLAIMS},
            )
        except jwt.PyJWKClientConnectionError:
            raise HTTPException(503, "The signing keys cannot be fetched") from None
        except jwt.PyJWTError:
            raise _refuse("Invalid token") from None
        if claims["type"] != "access":  # a refresh token is not a credential here
            raise _refuse("Invalid token")
        if self.config.introspect and not await self._active(token):
            raise _refuse("Token revoked")
        return claims

    async def _active(self, token: str) -> bool:
        auth = (self.config.client_id or "", self.config.client_secret or "")
        try:
            response = await self.http.post(
                f"{self.config.authsvc_url}/auth/introspect",
                data={"token": token, "token_type_hint": "access_token"},
                auth=auth,
            )
        except httpx.HTTPError:
            raise HTTPException(503, "Introspection is unavailable") from None
        if response.status_code != 200:
            raise HTTPException(503, "Introspection refused this service's credentials")
        return response.json().get("active") is True


def create_app(config: Config | None = None) -> FastAPI:
    config = config or Config.from_env()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with httpx.AsyncClient(timeout=5) as http:
            app.state.verifier = TokenVerifier(config, http)
            yield

    app = FastAPI(title="Example resource server", lifespan=lifespan)
    app.get("/hello")(hello)
    return app


bearer = HTTPBearer(auto_error=False)


async def claims_of(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> dict[str, Any]:
    """The verified claims of the request's bearer token; raises HTTPException 401."""
    if credentials is None:
        raise HTTPException(401, "Not authenticated", headers={"WWW-Authenticate": "Bearer"})
    verifier: TokenVerifier = request.app.state.verifier
    return await verifier.verify(credentials.credentials)


Claims = Annotated[dict[str, Any], Depends(claims_of)]


async def hello(claims: Claims) -> dict[str, Any]:
    """Greets the user of the access token."""
    return {"hello": claims["sub"], "roles": claims.get("roles", [])}


app = create_app()
