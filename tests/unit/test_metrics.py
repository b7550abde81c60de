"""Metrics: the breaker gauge, including the half-open state reached by time alone."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.metrics import Metrics
from app.utils.circuit_breaker import CircuitBreaker


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def breaker_state(metrics: Metrics, name: str = "database") -> float:
    body, _ = metrics.exposition()
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            if sample.name == "authsvc_circuit_breaker_state" and sample.labels == {
                "breaker": name
            }:
                return sample.value
    raise AssertionError("no breaker gauge")


async def fail(breaker: CircuitBreaker) -> None:
    with pytest.raises(ConnectionRefusedError):
        async with breaker.guard():
            raise ConnectionRefusedError


async def test_the_gauge_shows_half_open_once_the_timeout_has_passed() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("database", failure_threshold=2, recovery_timeout=30, clock=clock)
    metrics = Metrics()
    metrics.watch_breaker(breaker)
    assert breaker_state(metrics) == 0

    await fail(breaker)
    await fail(breaker)
    assert breaker_state(metrics) == 2
    clock.now += 30
    assert breaker_state(metrics) == 1  # nobody called the database: the scrape noticed

    async with breaker.guard():
        pass
    assert breaker_state(metrics) == 0


async def test_a_replaced_breaker_no_longer_moves_the_gauge() -> None:
    metrics = Metrics()
    old = CircuitBreaker("database", failure_threshold=1)
    new = CircuitBreaker("database", failure_threshold=1)
    metrics.watch_breaker(old)
    metrics.watch_breaker(new)

    await fail(old)
    assert breaker_state(metrics) == 0
    await fail(new)
    assert breaker_state(metrics) == 2
