"""Discovery for other services: the public signing keys and the RFC 8414 metadata."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response, status

from app.dependencies import IdTokenKeysDep, KeyRingDep, SettingsDep
from app.oauth2.schemas import AuthorizationServerMetadata, JWKSet
from app.oidc.discovery import provider_metadata
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
async def jwks(
    keyring: KeyRingDep, id_token_keys: IdTokenKeysDep, response: Response
) -> dict[str, list[dict[str, str]]]:
    """The public keys (RFC 7517) of every signing key that may still have unexpired
    tokens: the current one and recently retired ones, never a revoked one, of the access
    tokens and of the ID tokens (always a key pair). Only public parameters: with an HS
    algorithm for access tokens the shared secret is never published, only the ID-token
    keys are."""
    response.headers["Cache-Control"] = JWKS_CACHE_CONTROL
    published = await keyring.fresh_jwks() if keyring is not None else {"keys": []}
    id_ring = await id_token_keys.ring()
    if id_ring is not keyring:
        published = {"keys": [*published["keys"], *(await id_ring.fresh_jwks())["keys"]]}
    return published


@router.get(
    "/oauth-authorization-server",
    status_code=status.HTTP_200_OK,
    response_model=AuthorizationServerMetadata,
    response_model_exclude_none=True,
    summary="Authorization server metadata (RFC 8414)",
    responses=error_responses(),
)
async def metadata(settings: SettingsDep, response: Response) -> dict[str, Any]:
    """Where the service's endpoints and keys are, as absolute URLs built from
    `PUBLIC_URL`; `issuer` is `JWT_ISSUER`. The same document as
    `/.well-known/openid-configuration`."""
    response.headers["Cache-Control"] = "public, max-age=3600"
    return provider_metadata(settings)


@router.get(
    "/openid-configuration",
    status_code=status.HTTP_200_OK,
    response_model=AuthorizationServerMetadata,
    response_model_exclude_none=True,
    summary="OpenID Provider metadata (OpenID Connect Discovery 1.0)",
    responses=error_responses(),
)
async def openid_configuration(settings: SettingsDep, response: Response) -> dict[str, Any]:
    """Where the endpoints and keys are (absolute URLs built from `PUBLIC_URL`) and what
    the provider supports; `issuer` is `JWT_ISSUER`."""
    response.headers["Cache-Control"] = "public, max-age=3600"
    return provider_metadata(settings)
