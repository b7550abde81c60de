"""Bodies of the endpoints other services use: JWKS, metadata, revocation, introspection."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from app.models.schemas import REFRESH_TOKEN_MAX

_JWT_EXAMPLE = "eyJhbGciOiJFZERTQSIsImtpZCI6Ii4uLiIsInR5cCI6IkpXVCJ9..."


class TokenForm(BaseModel):
    """RFC 7009 §2.1 / RFC 7662 §2.1. Unrecognised parameters (e.g. a public client's
    `client_id`) are ignored, as RFC 6749 §3.2 asks of every OAuth2 endpoint."""

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "examples": [{"token": _JWT_EXAMPLE, "token_type_hint": "access_token"}]
        },
    )

    token: str = Field(min_length=1, max_length=REFRESH_TOKEN_MAX)
    token_type_hint: str | None = Field(
        None,
        max_length=64,
        description="`access_token` or `refresh_token`: which kind to try first (RFC 7009 §2.1)",
    )


class JWK(BaseModel):
    """A public key (RFC 7517 §4): `kty`, `kid`, `alg`, `use` and its public parameters."""

    model_config = ConfigDict(extra="allow")

    kty: Literal["OKP", "EC", "RSA"]
    kid: str
    alg: Literal["EdDSA", "ES256", "RS256"]
    use: Literal["sig"]
    crv: str | None = Field(None, description="OKP and EC keys: `Ed25519` or `P-256`")
    x: str | None = Field(None, description="OKP and EC keys")
    y: str | None = Field(None, description="EC keys")
    n: str | None = Field(None, description="RSA keys: the modulus")
    e: str | None = Field(None, description="RSA keys: the public exponent")


class JWKSet(BaseModel):
    """RFC 7517 §5; empty with an HS algorithm (a shared secret is never published)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "keys": [
                        {
                            "kty": "OKP",
                            "crv": "Ed25519",
                            "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
                            "kid": "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k",
                            "alg": "EdDSA",
                            "use": "sig",
                        }
                    ]
                }
            ]
        }
    )

    keys: list[JWK]


_BASE = "https://auth.example.com"


class AuthorizationServerMetadata(BaseModel):
    """RFC 8414 §2, for the endpoints this service has."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "issuer": _BASE,
                    "jwks_uri": f"{_BASE}/.well-known/jwks.json",
                    "token_endpoint": f"{_BASE}/auth/token",
                    "revocation_endpoint": f"{_BASE}/auth/revoke",
                    "introspection_endpoint": f"{_BASE}/auth/introspect",
                    "grant_types_supported": ["password", "refresh_token"],
                    "response_types_supported": [],
                    "token_endpoint_auth_methods_supported": ["none"],
                    "revocation_endpoint_auth_methods_supported": ["none", "client_secret_basic"],
                    "introspection_endpoint_auth_methods_supported": ["client_secret_basic"],
                    "scopes_supported": [],
                    "service_documentation": f"{_BASE}/docs",
                }
            ]
        }
    )

    issuer: str
    jwks_uri: str
    token_endpoint: str
    revocation_endpoint: str
    introspection_endpoint: str
    grant_types_supported: list[str]
    response_types_supported: list[str]
    token_endpoint_auth_methods_supported: list[str]
    revocation_endpoint_auth_methods_supported: list[str]
    introspection_endpoint_auth_methods_supported: list[str]
    scopes_supported: list[str]
    service_documentation: str | None = None


class IntrospectionResponse(BaseModel):
    """RFC 7662 §2.2: `{"active": false}` alone, or the token's facts when it is active."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "active": True,
                    "sub": "1",
                    "username": "alice",
                    "token_type": "access_token",
                    "exp": 1765000000,
                    "iat": 1764998200,
                    "iss": "https://auth.example.com",
                    "aud": "authsvc",
                    "sid": "4f0c0a6a2a1e4b6f9d5c8e7b3a2f1d0c",
                    "roles": [],
                    "scope": "",
                },
                {"active": False},
            ]
        }
    )

    active: bool
    sub: str | None = None
    username: str | None = None
    token_type: Literal["access_token", "refresh_token"] | None = None
    exp: int | None = None
    iat: int | None = None
    iss: str | None = None
    aud: str | None = None
    sid: str | None = None
    roles: list[str] | None = None
    scope: str | None = None
