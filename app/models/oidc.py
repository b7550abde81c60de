"""The OpenID provider's state between requests, in the database so that every worker sees
the same: authorization requests waiting for a sign-in or a consent, authorization codes,
and the consents people gave.

- `oauth_authorization_requests`: a validated authorization request, kept while the person
  signs in or consents. Only its id travels (in `return_to` and the consent form), as the
  SHA-256 of a 256-bit token: nothing the browser carries can change what was asked.
- `oauth_codes`: an authorization code (stored as its SHA-256), bound to the client, the
  redirect URI, the PKCE challenge, the nonce and the browser session (deleted with it).
  `used_at` makes it single use (a conditional UPDATE); `grant_session_id` is the session
  its tokens belong to, ended when the code is presented again.
- `oauth_consents`: the scopes a person allowed a client, once per set.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, UTCDateTime


class AuthorizationRequest(Base):
    __tablename__ = "oauth_authorization_requests"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # SHA-256 of the token
    client_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("oauth_clients.client_id", ondelete="CASCADE")
    )
    redirect_uri: Mapped[str] = mapped_column(String(2048))
    scope: Mapped[str] = mapped_column(String(1024))
    state: Mapped[str | None] = mapped_column(String(2048), default=None)
    nonce: Mapped[str | None] = mapped_column(String(512), default=None)
    code_challenge: Mapped[str] = mapped_column(String(128))
    prompt: Mapped[str | None] = mapped_column(String(64), default=None)
    max_age: Mapped[int | None] = mapped_column(Integer, default=None)
    login_hint: Mapped[str | None] = mapped_column(String(320), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class AuthorizationCode(Base):
    __tablename__ = "oauth_codes"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # SHA-256 of the code
    client_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("oauth_clients.client_id", ondelete="CASCADE")
    )
    redirect_uri: Mapped[str] = mapped_column(String(2048))
    scope: Mapped[str] = mapped_column(String(1024))
    nonce: Mapped[str | None] = mapped_column(String(512), default=None)
    code_challenge: Mapped[str] = mapped_column(String(128))
    user_id: Mapped[int] = mapped_column(Integer, ForeignKey("users.id", ondelete="CASCADE"))
    browser_session_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("auth_sessions.id", ondelete="CASCADE"), index=True
    )
    auth_time: Mapped[datetime] = mapped_column(UTCDateTime)
    amr: Mapped[list[str]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    grant_session_id: Mapped[str | None] = mapped_column(String(32), default=None)


class Consent(Base):
    __tablename__ = "oauth_consents"

    user_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    client_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("oauth_clients.client_id", ondelete="CASCADE"), primary_key=True
    )
    scopes: Mapped[list[str]] = mapped_column(JSON)
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime)
