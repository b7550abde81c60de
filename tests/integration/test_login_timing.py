"""Login timing does not tell whether an account exists (OWASP ASVS 5.0 §6.3.x; STYLE 9).

Unknown users are verified against a dummy hash, so both failures cost one real password
verification. With production-strength argon2 that verification dominates a request; the
medians of the two kinds of failure are compared, loosely: without the dummy hash the
unknown-user path would be several times faster.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import httpx
import pytest

from tests.conftest import UserFactory

SAMPLES = 9


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {
        "argon2_memory_kib": 19_456,  # the production defaults
        "argon2_time_cost": 2,
        "rate_limit_login_account": "1000/minute",  # the timing, not the throttle, is tested
    }


async def _median_failure_seconds(client: httpx.AsyncClient, payload: dict[str, str]) -> float:
    durations = []
    for _ in range(SAMPLES):
        started = time.perf_counter()
        response = await client.post("/auth/login", json=payload)
        durations.append(time.perf_counter() - started)
        assert response.status_code == 401
    return statistics.median(durations)


async def test_unknown_user_and_wrong_password_take_about_as_long(
    client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    user = await user_factory()
    await client.post("/auth/login", json={"username": "warmup", "password": "x"})
    wrong_password = await _median_failure_seconds(
        client, {"username": user.username, "password": "not the password"}
    )
    unknown_user = await _median_failure_seconds(
        client, {"username": "nobody-here", "password": "not the password"}
    )
    ratio = unknown_user / wrong_password
    assert 0.5 < ratio < 2.0, f"unknown {unknown_user:.4f}s vs wrong {wrong_password:.4f}s"
