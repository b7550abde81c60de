"""The throttle's memory store: limits' own decisions, with expiry passes paced."""

from __future__ import annotations

import asyncio
import contextlib
import time

import time_machine
from limits import parse
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter

from app.throttle import PacedMemoryStorage


async def test_the_paced_store_decides_as_the_moving_window_does() -> None:
    storage = PacedMemoryStorage()
    limiter = MovingWindowRateLimiter(storage)
    three = parse("3/minute")

    outcomes = [await limiter.hit(three, "login", "k") for _ in range(4)]
    await limiter.clear(three, "login", "k")

    assert outcomes == [True, True, True, False]
    assert await limiter.hit(three, "login", "k")
    await _close(storage)


async def test_expired_entries_are_dropped_by_the_next_pass() -> None:
    storage = PacedMemoryStorage()
    limiter = MovingWindowRateLimiter(storage)
    assert await limiter.hit(parse("1/second"), "short", "k")
    assert await limiter.hit(parse("1/hour"), "long", "k")

    with time_machine.travel(time.time() + 5, tick=False):
        await storage._expire()

    assert not any("short" in key for key in storage.events)
    assert any("long" in key for key in storage.events)
    await _close(storage)


async def test_a_burst_of_attempts_starts_one_expiry_pass() -> None:
    # The override only works while upstream still calls the name it replaces.
    assert "_MemoryStorage__schedule_expiry" in vars(MemoryStorage)
    storage = PacedMemoryStorage()
    limiter = MovingWindowRateLimiter(storage)

    for n in range(50):
        await limiter.hit(parse("1000/minute"), "burst", str(n))
        if n == 0:
            first_pass = storage.timer

    assert first_pass is not None
    assert storage.timer is first_pass
    await _close(storage)


async def _close(storage: PacedMemoryStorage) -> None:
    """As Throttle.close does: stop a running expiry pass before the reset."""
    if storage.timer is not None and not storage.timer.done():
        storage.timer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await storage.timer
    await storage.reset()
