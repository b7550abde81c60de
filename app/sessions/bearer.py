"""The read path's bearer check: an access token to the live session's user, answered by
one Core statement, or by no statement at all while the database has provably not changed.

`/users/me` is the route every client calls most. An ORM load, a session's COMMIT and the
services a write route needs cost it more CPU than the look-up itself, so it has this path
of its own; routes that change the account keep the ORM principal of SessionTokens.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from sqlalchemy import bindparam, select
from sqlalchemy.engine import make_url

from app.core.errors import UserInactiveException
from app.core.jwt import TokenCodec, TokenRejected, TokenType
from app.database import Database
from app.metrics import Metrics
from app.models.schemas import UserRead
from app.models.session import AuthSession
from app.models.user import User, parse_roles
from app.sessions.tokens import session_of, token_rejected, verified_claims
from app.utils.logger import bind_context

_USER_COLUMNS = (
    User.id,
    User.email,
    User.username,
    User.is_active,
    User.email_verified,
    User.created_at,
    User.last_login,
    User.roles_text.label("roles_text"),
    User.mfa_enabled,
    # Whether there is a password, never the hash itself.
    User.hashed_password.is_not(None).label("has_password"),
)


# Built once, with bound parameters: a statement made per request paid for its
# construction and its cache key each time.
_SESSION_USER = (
    select(*_USER_COLUMNS)
    .join(AuthSession, AuthSession.user_id == User.id)
    .where(User.id == bindparam("b_user"), AuthSession.id == bindparam("b_sid"))
)


@dataclass(frozen=True, slots=True)
class SessionUser:
    """The user of a live session as `/users/me` shows it, serialised once."""

    user_id: int
    session_id: str
    body: bytes  # UserRead as JSON


class VersionSource(Protocol):
    """A number that changes whenever the database commits a change; None: unknown."""

    def __call__(self) -> int | None: ...

    def close(self) -> None: ...


class SqliteDataVersion:
    """A generation number that moves whenever anyone commits to a SQLite file.

    Read from `PRAGMA data_version` on a read-only connection of its own: the value
    changes whenever any other connection (any worker, the CLI) commits, and in WAL mode
    it comes from the WAL index in shared memory — a few microseconds, no I/O, no waiting
    (busy_timeout 0). The raw value only means something on one connection (a new one
    starts over), so what is returned is a counter of its own, moved by every change of
    the value and by every (re)opening: a connection reopened after an error, or because
    the file at the path was replaced (a restore), never repeats an earlier generation.
    Any error reads as None: "unknown", and the caller asks the database itself.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        # An escaped file: URI (a '?' or '#' in the path must not cut it short), read only
        # (nothing is ever created or written through it).
        self._uri = f"{path.as_uri()}?mode=ro"
        self._connection: sqlite3.Connection | None = None
        self._file: tuple[int, int] | None = None
        self._raw: int | None = None
        self._generation = 0

    @classmethod
    def for_url(cls, database_url: str) -> SqliteDataVersion | None:
        """A reader for a SQLite file URL; None for PostgreSQL or an in-memory database.
        A relative path is taken from the working directory now, as the engine's is."""
        url = make_url(database_url)
        if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
            return None
        return cls(Path(url.database).resolve())

    def __call__(self) -> int | None:
        try:
            stat = self._path.stat()
            if self._connection is not None and (stat.st_dev, stat.st_ino) != self._file:
                self.close()  # another file at the path now: watch that one
            if self._connection is None:
                self._connection = sqlite3.connect(
                    self._uri, uri=True, isolation_level=None, check_same_thread=False, timeout=0
                )
                self._file = (stat.st_dev, stat.st_ino)
                self._raw = None
            raw = int(self._connection.execute("PRAGMA data_version").fetchone()[0])
        except (OSError, sqlite3.Error):
            self.close()
            return None
        if raw != self._raw:
            self._raw = raw
            self._generation += 1
        return self._generation

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


class LiveSessions:
    """Users of live sessions, kept only while the database's version has not moved.

    Exact by construction: any committed change anywhere (a logout, a revocation, a
    deactivation, a role change, an edit by the CLI) moves the version, and the first
    look-up after it empties the cache. An entry filled from a read that overlapped a
    change is not kept (`put` compares the version the read started at). While the
    version cannot be read, nothing is served from here.
    """

    def __init__(self, version: VersionSource, *, capacity: int) -> None:
        self._read_version = version
        self._capacity = capacity
        self._entries: dict[str, SessionUser] = {}
        self._version: int | None = None

    def __len__(self) -> int:
        return len(self._entries)

    def close(self) -> None:
        self._entries.clear()
        self._read_version.close()

    def version(self) -> int | None:
        """The database's version now; entries of an older one are dropped."""
        current = self._read_version()
        if current != self._version:
            self._entries.clear()
            self._version = current
        return current

    def get(self, session_id: str, user_id: int) -> tuple[SessionUser | None, int | None]:
        """The entry of the session, if it may be served, and the version it was looked up
        at: what `put` compares after a miss."""
        version = self.version()
        entry = self._entries.get(session_id) if version is not None else None
        if entry is None or entry.user_id != user_id:
            return None, version
        return entry, version

    def put(self, entry: SessionUser, read_at: int | None) -> None:
        """Keep `entry`, read at version `read_at`, if the database is still at it."""
        if read_at is None or self.version() != read_at:
            return
        if entry.session_id not in self._entries and len(self._entries) >= self._capacity:
            self._entries.pop(next(iter(self._entries)))  # the oldest: dicts keep order
        self._entries[entry.session_id] = entry


class BearerCheck:
    """Access token to SessionUser: the signature and claims, then the live session."""

    def __init__(
        self,
        database: Database,
        codec: TokenCodec,
        metrics: Metrics,
        cache: LiveSessions | None = None,
    ) -> None:
        self.database = database
        self.codec = codec
        self.metrics = metrics
        self.cache = cache

    def close(self) -> None:
        if self.cache is not None:
            self.cache.close()

    async def user(self, access_token: str) -> SessionUser:
        """Raises TokenExpiredException, InvalidTokenException or UserInactiveException."""
        claims = await verified_claims(self.codec, self.metrics, access_token, TokenType.ACCESS)
        user_id, sid = session_of(self.metrics, claims)
        cached, read_at = (None, None) if self.cache is None else self.cache.get(sid, user_id)
        if cached is None:
            cached = await self._load(sid, user_id, read_at)
        bind_context(user_id=user_id)
        return cached

    async def _load(self, sid: str, user_id: int, read_at: int | None) -> SessionUser:
        active: bool | None = None
        async with self.database.connection() as connection:
            row = (
                await connection.execute(_SESSION_USER, {"b_user": user_id, "b_sid": sid})
            ).first()
            if row is None or not row.is_active:
                # The rejection path only: a second look names a deactivated owner.
                active = await connection.scalar(select(User.is_active).where(User.id == user_id))
        if row is None or not row.is_active:
            if active is False:
                token_rejected(self.metrics, "inactive", TokenType.ACCESS, user_id=user_id)
                raise UserInactiveException()
            token_rejected(self.metrics, "revoked_or_unknown", TokenType.ACCESS)
            raise TokenRejected("revoked_or_unknown")
        fields = row._asdict()
        fields["roles"] = parse_roles(fields.pop("roles_text"))
        body = UserRead.model_validate(fields).model_dump_json().encode()
        entry = SessionUser(user_id=user_id, session_id=sid, body=body)
        if self.cache is not None:
            self.cache.put(entry, read_at)
        return entry
