"""`auth_sessions`: one row per signed-in session, the revocation state of its tokens.

An access/refresh token pair shares a session id (`sid`); a token is honoured only while
its session row exists, so deleting the row (logout, reuse detection, deactivation)
revokes every token of that session at once. `refresh_jti` is the one refresh token of the
session that may still be used: with rotation on, a refresh swaps it in a conditional
UPDATE, which makes concurrent refreshes with the same token race for one row.

`ip` and `user_agent` are those of the sign-in, so a user can tell their devices apart;
`last_used_at` moves when the session is refreshed, never on a bearer request (the read
path writes nothing).

A browser session (the hosted pages' cookie, app.sessions.browser) is a row like any
other, so it is listed, ended and purged with the rest; it also has `browser_key`, the
SHA-256 of its cookie's value (the cookie is never the row's id, which the sessions list
shows), and it remembers when it signed in (`auth_time`) and how (`amr`, RFC 8176), which
the OpenID provider needs for `max_age`, `prompt=login` and the ID token.

A session an application received through OpenID Connect (`client_id` set) is a child of
the browser session it was signed in with (`parent_id`): deleting the browser session's
row deletes its children (ON DELETE CASCADE), so every token of that sign-in ends with it.
Children are not listed or counted as sessions of their own.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, UTCDateTime


class AuthSession(Base):
    __tablename__ = "auth_sessions"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    refresh_jti: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # When the current refresh token expires; the clean-up deletes rows past it.
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    # Nullable only for rows older than the column; every new session sets it.
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ip: Mapped[str | None] = mapped_column(String(45))
    user_agent: Mapped[str | None] = mapped_column(String(256))
    # Browser sessions only (null for the JSON API's token sessions).
    browser_key: Mapped[str | None] = mapped_column(String(64), unique=True, index=True)
    auth_time: Mapped[datetime | None] = mapped_column(UTCDateTime)
    amr: Mapped[list[str] | None] = mapped_column(JSON)
    parent_id: Mapped[str | None] = mapped_column(
        String(32), ForeignKey("auth_sessions.id", ondelete="CASCADE"), index=True, default=None
    )
    client_id: Mapped[str | None] = mapped_column(
        String(64), ForeignKey("oauth_clients.client_id", ondelete="CASCADE"), default=None
    )

    def __repr__(self) -> str:
        return f"AuthSession(user_id={self.user_id!r})"
