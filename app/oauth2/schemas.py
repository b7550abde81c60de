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
    """RFC 8414 §2 and OpenID Connect Discovery 1.0 §3: one document for both."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "issuer": _BASE,
                    "authorization_endpoint": f"{_BASE}/oauth2/authorize",
                    "token_endpoint": f"{_BASE}/auth/token",
                    "userinfo_endpoint": f"{_BASE}/oauth2/userinfo",
                    "jwks_uri": f"{_BASE}/.well-known/jwks.json",
                    "end_session_endpoint": f"{_BASE}/oauth2/logout",
                    "revocation_endpoint": f"{_BASE}/auth/revoke",
                    "introspection_endpoint": f"{_BASE}/auth/introspect",
                    "scopes_supported": ["openid", "profile", "email"],
                    "response_types_supported": ["code"],
                    "response_modes_supported": ["query"],
                    "grant_types_supported": ["authorization_code", "refresh_token"],
                    "subject_types_supported": ["public"],
                    "id_token_signing_alg_values_supported": ["RS256"],
                    "token_endpoint_auth_methods_supported": [
                        "client_secret_basic",
                        "client_secret_post",
                        "none",
                    ],
                    "revocation_endpoint_auth_methods_supported": [
                        "client_secret_basic",
                        "client_secret_post",
                        "none",
                    ],
                    "introspection_endpoint_auth_methods_supported": ["client_secret_basic"],
                    "code_challenge_methods_supported": ["S256"],
                    "claims_supported": ["iss", "sub", "aud", "email", "preferred_username"],
                    "prompt_values_supported": ["none", "login", "consent"],
                    "authorization_response_iss_parameter_supported": True,
                    "claims_parameter_supported": False,
                    "request_parameter_supported": False,
                    "request_uri_parameter_supported": False,
                    "service_documentation": f"{_BASE}/docs",
                }
            ]
        }
    )

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    userinfo_endpoint: str
    jwks_uri: str
    end_session_endpoint: str
    revocation_endpoint: str
    introspection_endpoint: str
    scopes_supported: list[str]
    response_types_supported: list[str]
    response_modes_supported: list[str]
    grant_types_supported: list[str]
    subject_types_supported: list[str]
    id_token_signing_alg_values_supported: list[str]
    token_endpoint_auth_methods_supported: list[str]
    revocation_endpoint_auth_methods_supported: list[str]
    introspection_endpoint_auth_methods_supported: list[str]
    code_challenge_methods_supported: list[str]
    claims_supported: list[str]
    prompt_values_supported: list[str]
    authorization_response_iss_parameter_supported: bool
    claims_parameter_supported: bool
    request_parameter_supported: bool
    request_uri_parameter_supported: bool
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


class UserInfo(BaseModel):
    """OIDC Core §5.3.2: `sub` and the claims the access token's scopes allow (`email`,
    `email_verified` with `email`; `preferred_username`, `updated_at` with `profile`)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "sub": "42",
                    "email": "alice@example.com",
                    "email_verified": True,
                    "preferred_username": "alice",
                    "updated_at": 1765000000,
                }
            ]
        }
    )

    sub: str
    email: str | None = None
    email_verified: bool | None = None
    preferred_username: str | None = None
    updated_at: int | None = None
