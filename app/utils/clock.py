"""The wall clock, and the type of the clocks that services take instead of reading it:
tests and the time-travelling parts of the suite inject their own."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)
