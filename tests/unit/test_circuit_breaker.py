"""Circuit breaker state machine with a fake clock: no test sleeps."""

from __future__ import annotations

import asyncio

import pytest

from app.core.errors import CircuitBreakerOpenException
from app.utils.circuit_breaker import BreakerState, CircuitBreaker


class Infra(Exception):
    """Stands for a database outage."""


class Business(Exception):
    """Stands for a business outcome such as a duplicate user."""


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def transitions() -> list[tuple[str, str]]:
    return []


@pytest.fixture
def breaker(clock: FakeClock, transitions: list[tuple[str, str]]) -> CircuitBreaker:
    return CircuitBreaker(
        "db",
        failure_threshold=3,
        recovery_timeout=60,
        half_open_max_calls=1,
        is_failure=lambda e: isinstance(e, Infra),
        clock=clock,
        on_state_change=lambda _, old, new: transitions.append((old.value, new.value)),
    )


async def _fail(breaker: CircuitBreaker, error: Exception | None = None) -> None:
    with pytest.raises(type(error or Infra())):
        async with breaker.guard():
            raise error or Infra()


async def _succeed(breaker: CircuitBreaker) -> str:
    return await breaker.call(_ok)


async def _ok() -> str:
    return "ok"


def _state(breaker: CircuitBreaker) -> BreakerState:
    """The state read afresh: mypy would keep a property narrowed across clock moves."""
    return breaker.state


async def _open(breaker: CircuitBreaker) -> None:
    for _ in range(breaker.failure_threshold):
        await _fail(breaker)


def test_initial_state_is_closed(breaker: CircuitBreaker) -> None:
    assert breaker.state is BreakerState.CLOSED
    assert breaker.failure_count == 0
    assert breaker.retry_after() == 0


async def test_closed_breaker_lets_calls_through(breaker: CircuitBreaker) -> None:
    assert await _succeed(breaker) == "ok"
    assert breaker.state is BreakerState.CLOSED


async def test_failures_are_counted_and_a_success_resets_them(breaker: CircuitBreaker) -> None:
    await _fail(breaker)
    await _fail(breaker)
    assert breaker.failure_count == 2
    await _succeed(breaker)
    assert breaker.failure_count == 0
    await _fail(breaker)
    await _fail(breaker)
    assert breaker.state is BreakerState.CLOSED  # not three *consecutive* failures


async def test_opens_after_threshold_consecutive_failures(
    breaker: CircuitBreaker, transitions: list[tuple[str, str]]
) -> None:
    await _open(breaker)
    assert breaker.state is BreakerState.OPEN
    assert transitions == [("closed", "open")]


async def test_open_breaker_rejects_at_once_with_retry_after(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    await _open(breaker)
    clock.now += 20
    called = False

    async def never() -> None:
        nonlocal called
        called = True

    with pytest.raises(CircuitBreakerOpenException) as caught:
        await breaker.call(never)
    assert not called
    assert caught.value.headers["Retry-After"] == "40"
    assert breaker.retry_after() == pytest.approx(40)


async def test_turns_half_open_after_the_timeout(breaker: CircuitBreaker, clock: FakeClock) -> None:
    await _open(breaker)
    clock.now += 59.9
    assert breaker.state is BreakerState.OPEN
    clock.now += 0.1
    assert _state(breaker) is BreakerState.HALF_OPEN


async def test_half_open_admits_only_the_configured_number_of_trials(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    await _open(breaker)
    clock.now += 60
    release = asyncio.Event()
    admitted = 0

    async def trial() -> None:
        nonlocal admitted
        admitted += 1
        await release.wait()

    first = asyncio.create_task(breaker.call(trial))
    await asyncio.sleep(0)  # let the first trial enter
    with pytest.raises(CircuitBreakerOpenException):
        await breaker.call(trial)
    release.set()
    await first
    assert admitted == 1


async def test_successful_trial_closes_the_breaker(
    breaker: CircuitBreaker, clock: FakeClock, transitions: list[tuple[str, str]]
) -> None:
    await _open(breaker)
    clock.now += 60
    await _succeed(breaker)
    assert breaker.state is BreakerState.CLOSED
    assert transitions == [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]


async def test_failed_trial_opens_it_again_for_a_full_timeout(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    await _open(breaker)
    clock.now += 60
    await _fail(breaker)
    assert breaker.state is BreakerState.OPEN
    assert breaker.retry_after() == pytest.approx(60)


async def test_manual_reset_closes_and_forgets(breaker: CircuitBreaker) -> None:
    await _open(breaker)
    breaker.reset()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.failure_count == 0
    assert await _succeed(breaker) == "ok"


async def test_business_errors_never_count(breaker: CircuitBreaker) -> None:
    for _ in range(10):
        await _fail(breaker, Business())
    assert breaker.state is BreakerState.CLOSED
    assert breaker.failure_count == 0


async def test_business_error_in_a_trial_proves_the_dependency_answers(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    await _open(breaker)
    clock.now += 60
    await _fail(breaker, Business())
    assert breaker.state is BreakerState.CLOSED


async def test_cancelled_trial_frees_its_slot_without_a_verdict(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    await _open(breaker)
    clock.now += 60
    started = asyncio.Event()

    async def hang() -> None:
        started.set()
        await asyncio.Event().wait()

    task = asyncio.create_task(breaker.call(hang))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert breaker.state is BreakerState.HALF_OPEN
    assert await _succeed(breaker) == "ok"  # the slot is free again


async def test_concurrent_failures_are_all_counted(clock: FakeClock) -> None:
    breaker = CircuitBreaker(
        "db", failure_threshold=50, recovery_timeout=5, is_failure=lambda e: True, clock=clock
    )
    gate = asyncio.Event()

    async def failing() -> None:
        await gate.wait()
        raise Infra()

    tasks = [asyncio.create_task(breaker.call(failing)) for _ in range(49)]
    await asyncio.sleep(0)
    gate.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(r, Infra) for r in results)
    assert breaker.failure_count == 49
    assert breaker.state is BreakerState.CLOSED
    await _fail(breaker)
    assert _state(breaker) is BreakerState.OPEN


async def test_concurrent_callers_in_half_open_get_exactly_n_trials(clock: FakeClock) -> None:
    breaker = CircuitBreaker(
        "db", failure_threshold=1, recovery_timeout=5, half_open_max_calls=3, clock=clock
    )
    await _fail(breaker)
    clock.now += 5
    gate = asyncio.Event()
    entered = 0

    async def trial() -> None:
        nonlocal entered
        entered += 1
        await gate.wait()

    tasks = [asyncio.create_task(breaker.call(trial)) for _ in range(20)]
    await asyncio.sleep(0)
    gate.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert entered == 3
    assert sum(isinstance(r, CircuitBreakerOpenException) for r in results) == 17
    assert breaker.state is BreakerState.CLOSED


def test_invalid_configuration_is_refused() -> None:
    with pytest.raises(ValueError, match="threshold"):
        CircuitBreaker("db", failure_threshold=0)


async def test_half_open_turns_extra_callers_back_for_a_second_not_a_timeout(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    await _open(breaker)
    clock.now += 60
    release = asyncio.Event()

    async def trial() -> None:
        await release.wait()

    first = asyncio.create_task(breaker.call(trial))
    await asyncio.sleep(0)
    with pytest.raises(CircuitBreakerOpenException) as caught:
        await _succeed(breaker)
    assert caught.value.headers["Retry-After"] == "1"
    release.set()
    await first


async def test_reset_during_a_trial_frees_no_extra_slot(clock: FakeClock) -> None:
    breaker = CircuitBreaker("db", failure_threshold=1, recovery_timeout=5, clock=clock)
    await _fail(breaker)
    clock.now += 5
    release = asyncio.Event()

    async def trial() -> None:
        await release.wait()

    first = asyncio.create_task(breaker.call(trial))
    await asyncio.sleep(0)
    breaker.reset()
    release.set()
    await first
    # Open it again: the next half-open period must admit exactly one trial again.
    await _fail(breaker)
    clock.now += 5
    gate = asyncio.Event()
    entered = 0

    async def counted() -> None:
        nonlocal entered
        entered += 1
        await gate.wait()

    tasks = [asyncio.create_task(breaker.call(counted)) for _ in range(3)]
    await asyncio.sleep(0)
    gate.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert entered == 1
    assert sum(isinstance(r, CircuitBreakerOpenException) for r in results) == 2


async def test_refused_calls_are_not_counted_as_failures(breaker: CircuitBreaker) -> None:
    await _open(breaker)
    for _ in range(5):
        with pytest.raises(CircuitBreakerOpenException):
            await _succeed(breaker)
    assert breaker.failure_count == breaker.failure_threshold


async def test_a_late_success_of_an_old_call_does_not_close_an_open_breaker(
    breaker: CircuitBreaker,
) -> None:
    release = asyncio.Event()

    async def slow() -> str:
        await release.wait()
        return "late"

    straggler = asyncio.create_task(breaker.call(slow))
    await asyncio.sleep(0)  # admitted while closed
    await _open(breaker)
    release.set()
    assert await straggler == "late"
    assert breaker.state is BreakerState.OPEN


@pytest.fixture
def growing(clock: FakeClock) -> CircuitBreaker:
    """The database breaker with its default settings: open 1 s at first, at most 60 s."""
    return CircuitBreaker(
        "db",
        failure_threshold=3,
        recovery_timeout=60,
        initial_timeout=1,
        is_failure=lambda e: isinstance(e, Infra),
        clock=clock,
    )


async def test_a_blip_costs_about_a_second_of_refusals(
    growing: CircuitBreaker, clock: FakeClock
) -> None:
    await _open(growing)
    with pytest.raises(CircuitBreakerOpenException) as caught:
        await _succeed(growing)
    assert caught.value.headers["Retry-After"] == "1"
    clock.now += 1
    assert await _succeed(growing) == "ok"  # the trial: the dependency is back
    assert growing.state is BreakerState.CLOSED


async def test_each_failed_trial_doubles_the_open_period_up_to_the_timeout(
    growing: CircuitBreaker, clock: FakeClock
) -> None:
    await _open(growing)
    periods = []
    for _ in range(9):
        periods.append(growing.retry_after())
        clock.now += growing.retry_after()
        assert _state(growing) is BreakerState.HALF_OPEN
        await _fail(growing)  # the trial meets the outage
    assert periods == [1, 2, 4, 8, 16, 32, 60, 60, 60]
    # A sustained outage: one trial per timeout, everything else refused without a call.
    clock.now += 59
    with pytest.raises(CircuitBreakerOpenException) as caught:
        await _succeed(growing)
    assert caught.value.headers["Retry-After"] == "1"


async def test_after_recovery_the_next_outage_starts_short_again(
    growing: CircuitBreaker, clock: FakeClock
) -> None:
    await _open(growing)
    for _ in range(3):
        clock.now += growing.retry_after()
        await _fail(growing)
    clock.now += growing.retry_after()
    await _succeed(growing)
    clock.now += 60  # a whole timeout closed: healthy
    await _open(growing)
    assert growing.retry_after() == 1


async def test_a_relapse_soon_after_closing_keeps_growing(
    growing: CircuitBreaker, clock: FakeClock
) -> None:
    """A dependency that answers each trial and fails right after does not draw a burst of
    failing calls every second: its open periods grow as if the trials had failed."""
    await _open(growing)
    periods = []
    for _ in range(8):
        periods.append(growing.retry_after())
        clock.now += growing.retry_after()
        await _succeed(growing)  # the trial passes ...
        clock.now += 0.5
        await _open(growing)  # ... and the next calls fail again
    assert periods == [1, 2, 4, 8, 16, 32, 60, 60]


async def test_reset_starts_the_next_outage_short(
    growing: CircuitBreaker, clock: FakeClock
) -> None:
    await _open(growing)
    for _ in range(4):
        clock.now += growing.retry_after()
        await _fail(growing)
    growing.reset()
    await _open(growing)
    assert growing.retry_after() == 1


def test_the_initial_period_is_never_longer_than_the_timeout(clock: FakeClock) -> None:
    assert CircuitBreaker("db", recovery_timeout=0.5, initial_timeout=1).initial_timeout == 0.5
    with pytest.raises(ValueError, match="initial"):
        CircuitBreaker("db", initial_timeout=0)
