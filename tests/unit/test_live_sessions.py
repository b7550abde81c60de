"""LiveSessions: what /users/me may answer without the database, and when it may not."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from app.sessions.bearer import LiveSessions, SessionUser, SqliteDataVersion


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
    cache = LiveSessions(version, capacity=100)
    cache.put(entry("s1"), read_at=cache.version())

    assert cache.get("s1", 1)[0] == entry("s1")


def test_any_change_of_the_version_forgets_every_entry() -> None:
    version = Version()
    cache = LiveSessions(version, capacity=100)
    cache.put(entry("s1"), read_at=cache.version())
    cache.put(entry("s2", 2), read_at=cache.version())

    version.value = 2

    assert cache.get("s1", 1)[0] is None
    assert cache.get("s2", 2)[0] is None
    assert len(cache) == 0


def test_a_read_that_overlapped_a_change_is_not_kept() -> None:
    version = Version()
    cache = LiveSessions(version, capacity=100)
    read_at = cache.version()
    version.value = 2  # a commit landed while the row was being read

    cache.put(entry("s1"), read_at=read_at)

    assert cache.get("s1", 1)[0] is None


def test_nothing_is_served_or_kept_while_the_version_is_unknown() -> None:
    version = Version()
    cache = LiveSessions(version, capacity=100)
    cache.put(entry("s1"), read_at=cache.version())

    version.value = None
    cache.put(entry("s2", 2), read_at=None)

    assert cache.get("s1", 1)[0] is None
    version.value = 1
    assert cache.get("s1", 1)[0] is None  # forgotten when the version went away
    assert cache.get("s2", 2)[0] is None


def test_a_session_id_with_another_user_is_a_miss() -> None:
    cache = LiveSessions(Version(), capacity=100)
    cache.put(entry("s1", user_id=1), read_at=cache.version())

    assert cache.get("s1", 2)[0] is None


def test_the_oldest_entry_makes_room_at_capacity() -> None:
    cache = LiveSessions(Version(), capacity=2)
    for n in range(3):
        cache.put(entry(f"s{n}", n), read_at=cache.version())

    assert cache.get("s0", 0)[0] is None
    assert cache.get("s1", 1)[0] is not None
    assert cache.get("s2", 2)[0] is not None


def test_closing_closes_the_version_source() -> None:
    version = Version()
    LiveSessions(version, capacity=100).close()

    assert version.closed


def test_the_sqlite_version_moves_with_a_commit_of_another_connection(tmp_path: Path) -> None:
    path = tmp_path / "auth.db"
    writer = sqlite3.connect(path)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("CREATE TABLE t (x)")
    writer.commit()
    version = SqliteDataVersion(path)
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
    version = SqliteDataVersion(tmp_path / "missing" / "auth.db")

    assert version() is None
    version.close()


def test_only_a_sqlite_file_gets_a_version_reader() -> None:
    assert SqliteDataVersion.for_url("sqlite+aiosqlite:///./auth.db") is not None
    assert SqliteDataVersion.for_url("sqlite+aiosqlite:///:memory:") is None
    assert SqliteDataVersion.for_url("postgresql+asyncpg://u@localhost/db") is None


def test_replacing_an_entry_at_capacity_keeps_the_others() -> None:
    cache = LiveSessions(Version(), capacity=2)
    cache.put(entry("s1", 1), read_at=cache.version())
    cache.put(entry("s2", 2), read_at=cache.version())

    cache.put(entry("s2", 2), read_at=cache.version())

    assert cache.get("s1", 1)[0] is not None
    assert cache.get("s2", 2)[0] is not None


def _wal_file(path: Path) -> sqlite3.Connection:
    writer = sqlite3.connect(path)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("CREATE TABLE IF NOT EXISTS t (x)")
    writer.commit()
    return writer


def test_a_reopened_connection_never_repeats_a_generation(tmp_path: Path) -> None:
    # PRAGMA data_version starts over on every connection: after an error and a reopen,
    # the raw value may equal one read before, while a commit landed in between.
    path = tmp_path / "auth.db"
    writer = _wal_file(path)
    version = SqliteDataVersion(path)
    try:
        before = version()
        version.close()  # what an sqlite3 error does
        writer.execute("INSERT INTO t VALUES (1)")
        writer.commit()
        after = version()
    finally:
        version.close()
        writer.close()

    assert before is not None
    assert after is not None
    assert after != before


def test_a_file_replaced_at_the_path_is_watched_from_then_on(tmp_path: Path) -> None:
    path = tmp_path / "auth.db"
    _wal_file(path).close()
    version = SqliteDataVersion(path)
    try:
        before = version()
        restored = tmp_path / "restored.db"
        _wal_file(restored).close()
        restored.replace(path)  # a restore from a backup
        replaced = version()
        writer = sqlite3.connect(path)
        writer.execute("INSERT INTO t VALUES (2)")
        writer.commit()
        writer.close()
        committed = version()
    finally:
        version.close()

    assert replaced != before
    assert committed != replaced


@pytest.mark.parametrize("folder", ["a?b", "a#b", "a b%3F"])
def test_a_path_with_uri_characters_is_the_file_watched(tmp_path: Path, folder: str) -> None:
    (tmp_path / folder).mkdir()
    path = tmp_path / folder / "auth.db"
    writer = _wal_file(path)
    version = SqliteDataVersion(path)
    try:
        first = version()
        writer.execute("INSERT INTO t VALUES (1)")
        writer.commit()
        second = version()
    finally:
        version.close()
        writer.close()

    assert first is not None
    assert second != first
    assert sorted(p.name for p in tmp_path.iterdir()) == [folder]  # nothing created beside
