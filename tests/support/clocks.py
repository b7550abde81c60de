"""Clocks the tests move by hand, so time-dependent logic is tested without sleeping."""

from __future__ import annotations

from datetime import datetime, timedelta

from app.utils.jwt import TokenCodec
from tests.support.settings import TEST_SECRET


class FakeClock:
    """A monotonic clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 5_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def codec_at(when: datetime) -> TokenCodec:
    """A token codec with the test key whose clock stands still at `when`."""
    return TokenCodec(
        key=TEST_SECRET,
        issuer="authsvc",
        audience="authsvc",
        access_ttl=timedelta(minutes=30),
        refresh_ttl=timedelta(days=7),
        clock=lambda: when,
    )
