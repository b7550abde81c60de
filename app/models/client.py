"""`oauth_clients`: the registered clients (resource servers) that may call introspection.

Only a SHA-256 hash of each secret is kept. The secrets are 256-bit random values, so a
fast hash is the right tool (as for API keys): a slow password hash protects guessable
secrets, and nobody guesses 2^256 values.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, UTCDateTime


class OAuthClient(Base):
    __tablename__ = "oauth_clients"

    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    secret_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    def __repr__(self) -> str:  # never the hash
        return f"OAuthClient(client_id={self.client_id!r}, name={self.name!r})"
