"""`oauth_clients`: the registered clients. Resource servers that call introspection (a
secret, no redirect URI) and OpenID Connect applications (redirect URIs; confidential with
a secret, or public without one; first-party ones skip the consent page).

Only a SHA-256 hash of each secret is kept. The secrets are 256-bit random values, so a
fast hash is the right tool (as for API keys): a slow password hash protects guessable
secrets, and nobody guesses 2^256 values.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, UTCDateTime


class OAuthClient(Base):
    __tablename__ = "oauth_clients"

    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    # None for a public client: it has no secret to prove.
    secret_hash: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    redirect_uris: Mapped[list[str]] = mapped_column(JSON, default=list)
    post_logout_redirect_uris: Mapped[list[str]] = mapped_column(JSON, default=list)
    public: Mapped[bool] = mapped_column(Boolean, default=False)
    first_party: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)

    def __repr__(self) -> str:  # never the hash
        return f"OAuthClient(client_id={self.client_id!r}, name={self.name!r})"
