"""Discovery for other services: the public signing keys and the RFC 8414 metadata."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from app.dependencies import KeyRingDep, SettingsDep
from app.oauth2.schemas import AuthorizationServerMetadata, JWKSet
from app.oauth2.token_request import GRANT_TYPES
from app.openapi import error_responses

router = APIRouter(prefix="/.well-known", tags=["discovery"])

# Long enough to spare the service, short enough that a new key is fetched soon after a
# rotation (a verifier meeting an unknown `kid` refetches at once anyway).
JWKS_CACHE_CONTROL = "public, max-age=300"


@router.get(
    "/jwks.json",
    status_code=status.HTTP_200_OK,
    response_model=JWKSet,
    response_model_exclude_none=True,
    summary="Public signing keys (JWKS)",
    responses=error_responses(),
)
async def jwks(keyring: KeyRingDep, response: Response) -> dict[str, list[dict[str, str]]]:
    """The public keys (RFC 7517) of every signing key that may still have unexpired
    tokens: the current one and recently retired ones, never a revoked one. Only public
    parameters. Empty with an HS algorithm: a shared secret is never published."""
    response.headers["Cache-Control"] = JWKS_CACHE_CONTROL
    return await keyring.fresh_jwks() if keyring is not None else {"keys": []}


@router.get(
    "/oauth-authorization-server",
    status_code=status.HTTP_200_OK,
    response_model=AuthorizationServerMetadata,
    response_model_exclude_none=True,
    summary="Authorization server metadata (RFC 8414)",
    responses=error_responses(),
)
async def metadata(settings: SettingsDep, response: Response) -> AuthorizationServerMetadata:
    """Where the service's endpoints and keys are, as absolute URLs built from
    `PUBLIC_URL`; `issuer` is `JWT_ISSUER`."""
    response.headers["Cache-Control"] = "public, max-age=3600"
    base = settings.public_url
    return AuthorizationServerMetadata(
        issuer=settings.jwt_issuer,
        jwks_uri=f"{base}/.well-known/jwks.json",
        token_endpoint=f"{base}/auth/token",
        revocation_endpoint=f"{base}/auth/revoke",
        introspection_endpoint=f"{base}/auth/introspect",
        grant_types_supported=list(GRANT_TYPES),
        response_types_supported=[],
        token_endpoint_auth_methods_supported=["none"],
        revocation_endpoint_auth_methods_supported=["none", "client_secret_basic"],
        introspection_endpoint_auth_methods_supported=["client_secret_basic"],
        scopes_supported=[],
        service_documentation=f"{base}/docs" if settings.docs_enabled else None,
    )
