"""Registered clients (resource servers that call introspection): create, list, delete,
authenticate.

A secret is 256 bits from the OS's CSPRNG, shown once and stored as its SHA-256: for a
secret nobody can guess, a fast hash is the standard choice (as for API keys), because
the slow password hashes exist to protect guessable secrets. Comparison is constant-time,
and an unknown client id costs the same comparison as a known one.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import CursorResult, delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models.client import OAuthClient

_SECRET_BYTES = 32
_DUMMY_HASH = hashlib.sha256(b"no such client").hexdigest()


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class NewClient:
    client: OAuthClient
    secret: str


class ClientService:
    """Data access for `oauth_clients`; flushes or executes, never commits."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def create(self, name: str, now: datetime) -> NewClient:
        secret = secrets.token_urlsafe(_SECRET_BYTES)
        client = OAuthClient(
            client_id=secrets.token_urlsafe(16),
            name=name,
            secret_hash=hash_secret(secret),
            created_at=now,
        )
        self.session.add(client)
        await self.session.flush()
        return NewClient(client, secret)

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
        client = await self.session.get(OAuthClient, client_id) if client_id else None
        expected = client.secret_hash if client is not None else _DUMMY_HASH
        matches = hmac.compare_digest(hash_secret(secret), expected)
        return client if matches and client is not None else None
