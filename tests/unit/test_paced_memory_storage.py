"""The throttle's memory store: limits' own decisions, with expiry passes paced."""

from __future__ import annotations

import asyncio
import contextlib
import time

from limits import parse
from limits.aio.strategies import MovingWindowRateLimiter

from app.services.throttle import PacedMemoryStorage


async def test_the_paced_store_decides_as_the_moving_window_does() -> None:
    storage = PacedMemoryStorage()
    limiter = MovingWindowRateLimiter(storage)
    three = parse("3/minute")

    outcomes = [await limiter.hit(three, "login", "k") for _ in range(4)]
    await limiter.clear(three, "login", "k")

    assert outcomes == [True, True, True, False]
    assert await limiter.hit(three, "login", "k")
    await _close(storage)


async def test_expired_entries_are_still_dropped() -> None:
    storage = PacedMemoryStorage()
    limiter = MovingWindowRateLimiter(storage)
    assert await limiter.hit(parse("1/second"), "short", "k")

    # Polled with a deadline: a pass runs when an attempt comes after the interval.
    deadline = time.monotonic() + 10
    while any("short" in key for key in storage.events) and time.monotonic() < deadline:
        await limiter.hit(parse("1000/second"), "other", "k")
        await asyncio.sleep(0.05)

    assert not any("short" in key for key in storage.events)
    await _close(storage)


async def _close(storage: PacedMemoryStorage) -> None:
    """As Throttle.close does: stop a running expiry pass before the reset."""
    if storage.timer is not None and not storage.timer.done():
        storage.timer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await storage.timer
    await storage.reset()
