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

from tests.support import UserFactory

SAMPLES = 15


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {
        "argon2_memory_kib": 19_456,  # the production defaults
        "argon2_time_cost": 2,
        "rate_limit_login_account": "1000/minute",  # the timing, not the throttle, is tested
    }


async def _timed_failure(client: httpx.AsyncClient, payload: dict[str, str]) -> float:
    started = time.perf_counter()
    response = await client.post("/auth/login", json=payload)
    elapsed = time.perf_counter() - started
    assert response.status_code == 401
    return elapsed


async def test_unknown_user_and_wrong_password_take_about_as_long(
    client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    user = await user_factory()
    known = {"username": user.username, "password": "not the password"}
    unknown = {"username": "nobody-here", "password": "not the password"}
    await _timed_failure(client, unknown)  # warm-up
    # Interleaved, so that load from elsewhere on the machine hits both kinds alike.
    wrong_password, unknown_user = [], []
    for _ in range(SAMPLES):
        wrong_password.append(await _timed_failure(client, known))
        unknown_user.append(await _timed_failure(client, unknown))
    ratio = statistics.median(unknown_user) / statistics.median(wrong_password)
    # Without the dummy hash the ratio is about 0.1 (no argon2 work at all).
    assert 1 / 3 < ratio < 3, f"unknown/wrong median ratio {ratio:.2f}"
