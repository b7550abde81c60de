"""The provider's metadata: OpenID Connect Discovery 1.0 §3 and RFC 8414 §2 (one document
for both, every URL absolute and built from PUBLIC_URL)."""

from __future__ import annotations

from typing import Any

from app.config import Settings
from app.oidc.id_tokens import CLAIMS_SUPPORTED, SUPPORTED_SCOPES


def grant_types(settings: Settings) -> list[str]:
    """The grants of `POST /auth/token`; the password grant only while it is on."""
    grants = ["authorization_code", "refresh_token"]
    return [*grants, "password"] if settings.oauth2_password_grant else grants


def provider_metadata(settings: Settings) -> dict[str, Any]:
    base = settings.public_url.rstrip("/")
    algorithms = ["RS256"]
    if settings.id_token_algorithm not in algorithms:
        algorithms.insert(0, settings.id_token_algorithm)
    client_auth = ["client_secret_basic", "client_secret_post", "none"]
    metadata: dict[str, Any] = {
        "issuer": settings.jwt_issuer,
        "authorization_endpoint": f"{base}/oauth2/authorize",
        "token_endpoint": f"{base}/auth/token",
        "userinfo_endpoint": f"{base}/oauth2/userinfo",
        "jwks_uri": f"{base}/.well-known/jwks.json",
        "end_session_endpoint": f"{base}/oauth2/logout",
        "revocation_endpoint": f"{base}/auth/revoke",
        "introspection_endpoint": f"{base}/auth/introspect",
        "scopes_supported": list(SUPPORTED_SCOPES),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": grant_types(settings),
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": algorithms,
        "token_endpoint_auth_methods_supported": client_auth,
        "revocation_endpoint_auth_methods_supported": client_auth,
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic"],
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": list(CLAIMS_SUPPORTED),
        "prompt_values_supported": ["none", "login", "consent"],
        "authorization_response_iss_parameter_supported": True,
        "claims_parameter_supported": False,
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
    }
    if settings.docs_enabled:
        metadata["service_documentation"] = f"{base}/docs"
    return metadata
