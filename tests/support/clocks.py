"""Clocks the tests move by hand, so time-dependent logic is tested without sleeping."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from app.core.jwt import TokenCodec
from tests.support.settings import TEST_SECRET


class FakeClock:
    """A monotonic clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 5_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def codec_on(clock: Callable[[], datetime], *, key: str = TEST_SECRET) -> TokenCodec:
    """A token codec with the default issuer, audience and lifetimes, on the given clock."""
    return TokenCodec(
        key=key,
        issuer="http://localhost:8000",  # the default JWT_ISSUER: PUBLIC_URL
        audience="authsvc",
        access_ttl=timedelta(minutes=30),
        refresh_ttl=timedelta(days=7),
        clock=clock,
    )


def codec_at(when: datetime) -> TokenCodec:
    """A token codec with the test key whose clock stands still at `when`."""
    return codec_on(lambda: when)
