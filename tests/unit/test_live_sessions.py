"""LiveSessions: what /users/me may answer without the database, and when it may not."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from app.services.bearer import LiveSessions, SessionUser, SqliteDataVersion


class Version:
    """A database version the test moves by hand; None plays an unreadable one."""

    def __init__(self) -> None:
        self.value: int | None = 1
        self.closed = False

    def __call__(self) -> int | None:
        return self.value

    def close(self) -> None:
        self.closed = True


def entry(sid: str, user_id: int = 1) -> SessionUser:
    return SessionUser(user_id=user_id, session_id=sid, body=b'{"id": %d}' % user_id)


def test_an_entry_is_served_while_the_version_stands() -> None:
    version = Version()
    cache = LiveSessions(version)
    cache.put(entry("s1"), read_at=cache.version())

    assert cache.get("s1", 1) == entry("s1")


def test_any_change_of_the_version_forgets_every_entry() -> None:
    version = Version()
    cache = LiveSessions(version)
    cache.put(entry("s1"), read_at=cache.version())
    cache.put(entry("s2", 2), read_at=cache.version())

    version.value = 2

    assert cache.get("s1", 1) is None
    assert cache.get("s2", 2) is None
    assert len(cache) == 0


def test_a_read_that_overlapped_a_change_is_not_kept() -> None:
    version = Version()
    cache = LiveSessions(version)
    read_at = cache.version()
    version.value = 2  # a commit landed while the row was being read

    cache.put(entry("s1"), read_at=read_at)

    assert cache.get("s1", 1) is None


def test_nothing_is_served_or_kept_while_the_version_is_unknown() -> None:
    version = Version()
    cache = LiveSessions(version)
    cache.put(entry("s1"), read_at=cache.version())

    version.value = None
    cache.put(entry("s2", 2), read_at=None)

    assert cache.get("s1", 1) is None
    version.value = 1
    assert cache.get("s1", 1) is None  # forgotten when the version went away
    assert cache.get("s2", 2) is None


def test_a_session_id_with_another_user_is_a_miss() -> None:
    cache = LiveSessions(Version())
    cache.put(entry("s1", user_id=1), read_at=cache.version())

    assert cache.get("s1", 2) is None


def test_the_oldest_entry_makes_room_at_capacity() -> None:
    cache = LiveSessions(Version(), capacity=2)
    for n in range(3):
        cache.put(entry(f"s{n}", n), read_at=cache.version())

    assert cache.get("s0", 0) is None
    assert cache.get("s1", 1) is not None
    assert cache.get("s2", 2) is not None


def test_closing_closes_the_version_source() -> None:
    version = Version()
    LiveSessions(version).close()

    assert version.closed


def test_the_sqlite_version_moves_with_a_commit_of_another_connection(tmp_path: Path) -> None:
    path = tmp_path / "auth.db"
    writer = sqlite3.connect(path)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("CREATE TABLE t (x)")
    writer.commit()
    version = SqliteDataVersion(str(path))
    try:
        first = version()
        writer.execute("INSERT INTO t VALUES (1)")
        uncommitted = version()
        writer.commit()
        committed = version()
    finally:
        version.close()
        writer.close()

    assert first is not None
    assert uncommitted == first
    assert committed is not None
    assert committed != first


def test_an_unreadable_sqlite_file_has_no_version(tmp_path: Path) -> None:
    version = SqliteDataVersion(str(tmp_path / "missing" / "auth.db"))

    assert version() is None
    version.close()


def test_only_a_sqlite_file_gets_a_version_reader() -> None:
    assert SqliteDataVersion.for_url("sqlite+aiosqlite:///./auth.db") is not None
    assert SqliteDataVersion.for_url("sqlite+aiosqlite:///:memory:") is None
    assert SqliteDataVersion.for_url("postgresql+asyncpg://u@localhost/db") is None
