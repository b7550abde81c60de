"""Registered clients: resource servers that call introspection, and OpenID Connect
applications (redirect URIs, public or confidential, first-party or not). Create, list,
update, delete, authenticate, and the rules of a redirect URI.

A secret is 256 bits from the OS's CSPRNG, shown once and stored as its SHA-256: for a
secret nobody can guess, a fast hash is the standard choice (as for API keys), because
the slow password hashes exist to protect guessable secrets. Comparison is constant-time,
and an unknown client id costs the same comparison as a known one.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from sqlalchemy import CursorResult, delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models.client import OAuthClient

_SECRET_BYTES = 32
_DUMMY_HASH = hashlib.sha256(b"no such client").hexdigest()


MAX_URI_LENGTH = 2048
MAX_URIS = 20
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "[::1]"})


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def redirect_uri_problem(uri: str) -> str | None:
    """Why `uri` cannot be a registered redirect URI, or None when it can.

    `https://`, a loopback `http://` (localhost, 127.0.0.1, [::1]: RFC 8252 §7.3), or a
    private-use scheme of a native app (`com.example.app:/cb`, RFC 8252 §7.1, a reverse
    domain name so that it names one app); never a fragment (RFC 6749 §3.1.2), nor
    credentials in the authority.
    """
    if not uri or len(uri) > MAX_URI_LENGTH or any(c.isspace() or ord(c) < 0x20 for c in uri):
        return "must be 1-2048 characters without spaces"
    if "#" in uri:
        return "must not contain a fragment"
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        return "is not a valid URI"
    scheme = parts.scheme.lower()
    if scheme == "https":
        if not parts.hostname or "@" in parts.netloc:
            return "must name a host (and no credentials)"
        return None
    if scheme == "http":
        if "@" in parts.netloc or loopback_parts(uri) is None:
            return "http:// is allowed for loopback addresses only (localhost, 127.0.0.1, [::1])"
        return None
    # A private-use scheme: a reverse domain name (RFC 8252 §7.1), then one slash.
    if "." in scheme and not parts.netloc and parts.path.startswith("/"):
        return None
    return (
        "must be https://, a loopback http:// address or a private-use scheme (com.example.app:/cb)"
    )


def loopback_parts(uri: str) -> tuple[str, str, str, str] | None:
    """(scheme, host, path, query) of a loopback http:// URI, the port left out; None for
    any other URI."""
    parts = urlsplit(uri)
    if parts.scheme.lower() != "http":
        return None
    host = (parts.hostname or "").lower()
    host = f"[{host}]" if ":" in host else host
    if host not in LOOPBACK_HOSTS:
        return None
    return "http", host, parts.path, parts.query


def redirect_uri_matches(registered: Sequence[str], presented: str) -> bool:
    """Exact string comparison (RFC 6749 §3.1.2.3, OIDC Core §3.1.2.1); for a loopback
    address any port (RFC 8252 §7.3: the app picks a free port when it starts)."""
    if presented in registered:
        return True
    if "#" in presented or "@" in presented:
        return False
    presented_loopback = loopback_parts(presented)
    if presented_loopback is None:
        return False
    return any(loopback_parts(uri) == presented_loopback for uri in registered)


def origin_of(uri: str) -> str | None:
    """The web origin of an https or http URI (`scheme://host[:port]`), None otherwise."""
    parts = urlsplit(uri)
    if parts.scheme.lower() not in ("https", "http") or not parts.netloc:
        return None
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"


@dataclass(frozen=True, slots=True)
class NewClient:
    client: OAuthClient
    secret: str | None


def new_client_id() -> str:
    """16 random bytes in base64url (22 characters), never starting with "-": a command
    line would read such an id as options (`authsvc clients delete -uCcd...`)."""
    while True:
        client_id = secrets.token_urlsafe(16)
        if not client_id.startswith("-"):
            return client_id


class ClientService:
    """Data access for `oauth_clients`; flushes or executes, never commits."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def create(
        self,
        name: str,
        now: datetime,
        *,
        redirect_uris: Sequence[str] = (),
        post_logout_redirect_uris: Sequence[str] = (),
        public: bool = False,
        first_party: bool = False,
    ) -> NewClient:
        """A new client; its secret (None for a public client) is in the answer only."""
        secret = None if public else secrets.token_urlsafe(_SECRET_BYTES)
        client = OAuthClient(
            client_id=new_client_id(),
            name=name,
            secret_hash=hash_secret(secret) if secret is not None else None,
            created_at=now,
            redirect_uris=list(redirect_uris),
            post_logout_redirect_uris=list(post_logout_redirect_uris),
            public=public,
            first_party=first_party,
        )
        self.session.add(client)
        await self.session.flush()
        return NewClient(client, secret)

    async def get(self, client_id: str) -> OAuthClient | None:
        if not client_id or len(client_id) > 64:
            return None
        return await self.session.get(OAuthClient, client_id)

    async def public_origins(self) -> set[str]:
        """The web origins of the public clients' redirect URIs (browser applications)."""
        rows = await self.session.scalars(
            select(OAuthClient.redirect_uris).where(OAuthClient.public.is_(True))
        )
        return {origin for uris in rows for uri in uris if (origin := origin_of(uri))}

    async def all(self) -> list[OAuthClient]:
        stmt = select(OAuthClient).order_by(OAuthClient.created_at, OAuthClient.client_id)
        return list((await self.session.scalars(stmt)).all())

    async def delete(self, client_id: str) -> bool:
        """False when there was no such client."""
        stmt = (
            delete(OAuthClient)
            .where(OAuthClient.client_id == client_id)
            .execution_options(synchronize_session=False)
        )
        result = await self.session.execute(stmt)
        assert isinstance(result, CursorResult)
        return result.rowcount > 0

    async def authenticate(self, client_id: str, secret: str) -> OAuthClient | None:
        """The client whose id and secret these are, or None."""
        client = await self.get(client_id)
        expected = client.secret_hash if client is not None else None
        matches = hmac.compare_digest(hash_secret(secret), expected or _DUMMY_HASH)
        return client if matches and client is not None and expected else None
