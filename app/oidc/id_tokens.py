"""ID tokens (OpenID Connect Core §2): always signed with a key pair of the ID-token key
ring (ID_TOKEN_ALGORITHM), whatever JWT_ALGORITHM the access tokens use, so that relying
parties verify them with the published JWKS.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import jwt

from app.core.jwt import ASYMMETRIC_ALGORITHMS
from app.keys.keyring import LazyKeyRing
from app.models.user import User
from app.utils.clock import Clock, utc_now

SUPPORTED_SCOPES = ("openid", "profile", "email")
CLAIMS_SUPPORTED = (
    "iss",
    "sub",
    "aud",
    "azp",
    "exp",
    "iat",
    "auth_time",
    "nonce",
    "amr",
    "sid",
    "at_hash",
    "email",
    "email_verified",
    "preferred_username",
    "updated_at",
)


def user_claims(user: User, scopes: Sequence[str]) -> dict[str, Any]:
    """The claims about the person that the scopes allow (OIDC Core §5.4), `sub` first."""
    claims: dict[str, Any] = {"sub": str(user.id)}
    if "email" in scopes:
        claims["email"] = user.email
        claims["email_verified"] = bool(user.email_verified)
    if "profile" in scopes:
        claims["preferred_username"] = user.username
        claims["updated_at"] = int(user.updated_at.timestamp())
    return claims


def token_hash(value: str, algorithm: str) -> str:
    """`at_hash` (OIDC Core §3.1.3.6): the left half of the hash the signature uses, in
    base64url; SHA-512 for EdDSA with Ed25519 (as the OpenID Foundation's suite expects)."""
    digest = (hashlib.sha512 if algorithm == "EdDSA" else hashlib.sha256)(value.encode()).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode()


@dataclass(frozen=True, slots=True)
class IdTokenFacts:
    """What an ID token says besides the user's claims."""

    client_id: str
    browser_session_id: str
    auth_time: datetime
    amr: Sequence[str]
    scopes: Sequence[str]
    access_token: str
    nonce: str | None = None


class IdTokens:
    """Signs ID tokens and reads an `id_token_hint`."""

    def __init__(
        self, keys: LazyKeyRing, *, issuer: str, ttl: timedelta, clock: Clock = utc_now
    ) -> None:
        self.keys = keys
        self.issuer = issuer
        self.ttl = ttl
        self.clock = clock

    async def prepare(self) -> None:
        """Open the key ring (its first key made, in a transaction of its own) before the
        caller's transaction writes: on SQLite that one would hold the only write lock.
        Whether its key is still unrevoked is asked by `issue`, right before signing."""
        await self.keys.ring()

    async def issue(self, user: User, facts: IdTokenFacts) -> str:
        """Raises DatabaseException when the key ring cannot be opened or checked."""
        ring = await self.keys.ring()
        await ring.ensure_signing_key()
        kid, algorithm, private_key = ring.signing_key()
        now = self.clock()
        claims: dict[str, Any] = {
            **user_claims(user, facts.scopes),
            "iss": self.issuer,
            "aud": facts.client_id,
            "azp": facts.client_id,
            "iat": int(now.timestamp()),
            "exp": int((now + self.ttl).timestamp()),
            "auth_time": int(facts.auth_time.timestamp()),
            "amr": list(facts.amr),
            "sid": facts.browser_session_id,
            "at_hash": token_hash(facts.access_token, algorithm),
        }
        if facts.nonce is not None:
            claims["nonce"] = facts.nonce
        return jwt.encode(claims, private_key, algorithm=algorithm, headers={"kid": kid})

    async def read_hint(self, token: str) -> Mapping[str, Any] | None:
        """The claims of an ID token this service issued (its signature and issuer checked,
        its expiry not: RP-Initiated Logout §2 lets an expired one name the session), or
        None for anything else."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            return None
        kid = header.get("kid")
        if not isinstance(kid, str) or header.get("alg") not in ASYMMETRIC_ALGORITHMS:
            return None
        ring = await self.keys.ring()
        found = ring.verification_key(kid)
        if found is None and await ring.reload_for_unknown_kid():
            found = ring.verification_key(kid)
        if found is None:
            return None
        algorithm, key = found
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                issuer=self.issuer,
                options={
                    # Times say nothing here (an old hint still names its session), and
                    # they would be read from the system clock, not the service's.
                    "verify_aud": False,
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                    "require": ["iss", "sub", "aud", "iat"],
                },
            )
        except jwt.PyJWTError:
            return None
        if not await ring.confirm(kid):
            return None
        return claims
