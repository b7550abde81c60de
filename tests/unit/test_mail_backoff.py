"""The outbox's retry delay: exponential, jittered, capped at MAIL_RETRY_MAX_SECONDS."""

from __future__ import annotations

from collections.abc import Callable

from app.mail.sender import retry_delay


def _fixed(value: float) -> Callable[[], float]:
    return lambda: value


def test_delay_doubles_per_try_within_its_jitter_band() -> None:
    for tries, step in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0)]:
        low = retry_delay(tries, base=1, cap=60, rand=lambda: 0.0)
        high = retry_delay(tries, base=1, cap=60, rand=lambda: 1.0)
        assert (low, high) == (step / 2, step)


def test_jitter_spreads_senders_that_failed_together() -> None:
    values = {retry_delay(5, base=1, cap=60, rand=_fixed(r / 10)) for r in range(10)}
    assert len(values) == 10
    assert all(8.0 <= v <= 16.0 for v in values)


def test_delay_never_exceeds_the_cap() -> None:
    assert retry_delay(10, base=1, cap=60, rand=lambda: 1.0) == 60
    assert retry_delay(1000, base=1, cap=60, rand=lambda: 1.0) == 60
    assert retry_delay(1000, base=1, cap=60, rand=lambda: 0.0) == 30
