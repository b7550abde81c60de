"""An asyncio circuit breaker: Closed → Open → Half-Open → Closed (or Open again).

Open periods grow: the first lasts `initial_timeout` (a second by default), each failed
trial doubles it, up to `recovery_timeout`. A blip therefore costs about a second of
refusals, while a sustained outage is tried once per `recovery_timeout`, as with a fixed
period. A breaker that reopens soon after closing (within `recovery_timeout`) resumes from
the period it had reached instead of starting over: a dependency that answers one trial
and then fails again is not healthy, and must not draw a burst of hung calls every second.
`initial_timeout == recovery_timeout` is the classic breaker with one fixed period.

State changes happen synchronously between awaits, so on one event loop there is nothing
to lock: concurrent coroutines can neither lose a count nor slip an extra trial call
through. Time comes from an injected monotonic clock, so tests never sleep.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from enum import StrEnum
from typing import TypeVar

from app.core.errors import CircuitBreakerOpenException

T = TypeVar("T")

HALF_OPEN_RETRY_AFTER = 1.0


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


StateListener = Callable[["CircuitBreaker", BreakerState, BreakerState], None]


class CircuitBreaker:
    """Counts consecutive infrastructure failures and sheds calls while the dependency is down."""

    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int = 5,
        recovery_timeout: float = 60.0,
        initial_timeout: float | None = None,
        half_open_max_calls: int = 1,
        is_failure: Callable[[BaseException], bool] = lambda exc: True,
        clock: Callable[[], float] = time.monotonic,
        on_state_change: StateListener | None = None,
    ) -> None:
        if failure_threshold < 1 or half_open_max_calls < 1 or recovery_timeout <= 0:
            raise ValueError("threshold and half-open calls must be >= 1, timeout > 0")
        if initial_timeout is not None and initial_timeout <= 0:
            raise ValueError("initial timeout must be > 0")
        self.name = name
        self.failure_threshold = failure_threshold
        self.recovery_timeout = recovery_timeout
        # None: one fixed period. Never longer than the longest one.
        self.initial_timeout = min(recovery_timeout, initial_timeout or recovery_timeout)
        self.half_open_max_calls = half_open_max_calls
        self._is_failure = is_failure
        self._clock = clock
        self._listeners: list[StateListener] = [on_state_change] if on_state_change else []
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._open_for = self.initial_timeout
        self._closed_at: float | None = None
        self._trials_in_flight = 0

    def add_listener(self, listener: StateListener) -> None:
        self._listeners.append(listener)

    @property
    def state(self) -> BreakerState:
        """The current state; an open breaker turns half-open once its period has passed."""
        if self._state is BreakerState.OPEN and self._clock() - self._opened_at >= self._open_for:
            self._transition(BreakerState.HALF_OPEN)
        return self._state

    @property
    def failure_count(self) -> int:
        return self._failures

    @property
    def open_period(self) -> float:
        """Seconds the current (or the next) open period lasts."""
        return self._open_for

    def retry_after(self) -> float:
        """Seconds until an open breaker lets a trial call through (0 when not open)."""
        if self.state is not BreakerState.OPEN:
            return 0.0
        return max(0.0, self._open_for - (self._clock() - self._opened_at))

    def reset(self) -> None:
        """Close the breaker and forget the failures (operator action).

        Trials still in flight keep their slots until they finish: zeroing the count here
        would let each of them free a slot it no longer holds.
        """
        self._failures = 0
        self._open_for = self.initial_timeout
        self._closed_at = None
        self._transition(BreakerState.CLOSED)

    @asynccontextmanager
    async def guard(self) -> AsyncIterator[bool]:
        """Run the body through the breaker; raises CircuitBreakerOpenException when shedding.

        Yields whether this call is a half-open trial, whose outcome closes or reopens it.
        """
        trial = self._admit()
        try:
            yield trial
        except asyncio.CancelledError:
            raise  # the caller went away: says nothing about the dependency
        except BaseException as exc:
            if self._is_failure(exc):
                self._record_failure()
            else:
                self._record_success()  # the dependency answered; the outcome was business
            raise
        else:
            self._record_success()
        finally:
            if trial:
                self._trials_in_flight -= 1

    async def call(self, func: Callable[[], Awaitable[T]]) -> T:
        """Await `func()` through the breaker."""
        async with self.guard():
            return await func()

    def _admit(self) -> bool:
        state = self.state
        if state is BreakerState.CLOSED:
            return False
        if state is BreakerState.HALF_OPEN and self._trials_in_flight < self.half_open_max_calls:
            self._trials_in_flight += 1
            return True
        if state is BreakerState.OPEN:
            raise CircuitBreakerOpenException(retry_after=self.retry_after())
        # Half-open with every trial slot taken: the verdict is one bounded call away, so
        # send the caller back soon rather than for a whole recovery timeout.
        raise CircuitBreakerOpenException(retry_after=HALF_OPEN_RETRY_AFTER)

    def _record_failure(self) -> None:
        self._failures += 1
        if self._state is BreakerState.HALF_OPEN:
            self._open(longer=True)
        elif self._state is BreakerState.CLOSED and self._failures >= self.failure_threshold:
            now = self._clock()
            # Closed only briefly: the trial that closed it was a fluke, keep growing.
            relapse = self._closed_at is not None and now - self._closed_at < self.recovery_timeout
            self._open(longer=relapse)

    def _open(self, *, longer: bool) -> None:
        self._open_for = (
            min(self.recovery_timeout, self._open_for * 2) if longer else self.initial_timeout
        )
        self._opened_at = self._clock()
        self._transition(BreakerState.OPEN)

    def _record_success(self) -> None:
        self._failures = 0
        if self._state is BreakerState.HALF_OPEN:
            self._closed_at = self._clock()
            self._transition(BreakerState.CLOSED)

    def _transition(self, new: BreakerState) -> None:
        old, self._state = self._state, new
        if old is not new:
            for listener in self._listeners:
                listener(self, old, new)
