"""forgot and verify-email/resend tell nobody whether an address has an account.

The same status and body for a known, an unknown and an inactive address; about the same
(median) time, since the request only enqueues a job whatever the address; and a throttle
that counts unknown addresses too, so a 429 says nothing either.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import httpx
import pytest

from tests.support import CliInvoker, UserFactory, assert_error

SAMPLES = 25


def _comparable(response: httpx.Response) -> tuple[int, dict[str, Any], set[str]]:
    headers = set(response.headers) - {"x-request-id", "content-length", "date"}
    return response.status_code, response.json(), headers


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    # The real sender runs (file backend): its work for a known address happens beside the
    # requests, as in production, and must not show in their timing either.
    return {
        "rate_limit_password_reset": "1000/hour",
        "rate_limit_password_reset_ip": "1000/hour",
        "mail_sender_enabled": True,
        "mail_poll_interval_seconds": 0.2,
    }


@pytest.mark.parametrize("path", ["/auth/password/forgot", "/auth/verify-email/resend"])
async def test_known_unknown_and_inactive_addresses_get_the_same_answer(
    path: str, client: httpx.AsyncClient, user_factory: UserFactory, run_cli: CliInvoker
) -> None:
    known = await user_factory()
    inactive = await user_factory()
    await run_cli("users", "deactivate", inactive.email)

    answers = [
        _comparable(await client.post(path, json={"email": email}))
        for email in (known.email, "nobody@example.com", inactive.email)
    ]

    assert answers[0][0] == 202
    assert answers[0] == answers[1] == answers[2]


async def test_known_and_unknown_addresses_take_about_as_long(
    client: httpx.AsyncClient, user_factory: UserFactory, run_cli: CliInvoker
) -> None:
    known = await user_factory()
    inactive = await user_factory()
    await run_cli("users", "deactivate", inactive.email)
    kinds: dict[str, list[float]] = {"known": [], "unknown": [], "inactive": []}
    emails = {"known": known.email, "unknown": "nobody@example.com", "inactive": inactive.email}
    await client.post("/auth/password/forgot", json={"email": "warm-up@example.com"})
    # Interleaved, so that load from elsewhere on the machine hits every kind alike.
    for _ in range(SAMPLES):
        for kind, email in emails.items():
            started = time.perf_counter()
            response = await client.post("/auth/password/forgot", json={"email": email})
            kinds[kind].append(time.perf_counter() - started)
            assert response.status_code == 202
    medians = {kind: statistics.median(samples) for kind, samples in kinds.items()}
    print(f"forgot-password medians (ms): { {k: round(v * 1000, 2) for k, v in medians.items()} }")
    for kind in ("unknown", "inactive"):
        ratio = medians[kind] / medians["known"]
        # Loose on purpose (a shared machine); a design that hashed or mailed inside the
        # request for known addresses only would be several times slower for them.
        assert 1 / 2 < ratio < 2, f"{kind}/known median ratio {ratio:.2f}"


class TestThrottle:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, Any]:
        return {"rate_limit_password_reset": "3/hour", "rate_limit_password_reset_ip": "8/hour"}

    async def test_an_address_is_throttled_after_three_requests_known_or_not(
        self, client: httpx.AsyncClient, user_factory: UserFactory
    ) -> None:
        known = await user_factory()
        for email in (known.email, "nobody@example.com"):
            for _ in range(3):
                ok = await client.post("/auth/password/forgot", json={"email": email})
                assert ok.status_code == 202
            refused = await client.post("/auth/password/forgot", json={"email": email.upper()})
            assert_error(refused, 429, "RATE_LIMITED")
            assert int(refused.headers["Retry-After"]) > 60

    async def test_a_client_is_throttled_across_addresses(self, client: httpx.AsyncClient) -> None:
        for n in range(8):
            ok = await client.post("/auth/password/forgot", json={"email": f"a{n}@example.com"})
            assert ok.status_code == 202
        refused = await client.post("/auth/password/forgot", json={"email": "b@example.com"})
        assert_error(refused, 429, "RATE_LIMITED")

    async def test_resend_and_forgot_count_apart(
        self, client: httpx.AsyncClient, user_factory: UserFactory
    ) -> None:
        known = await user_factory()
        for _ in range(3):
            await client.post("/auth/password/forgot", json={"email": known.email})
        resend = await client.post("/auth/verify-email/resend", json={"email": known.email})
        assert resend.status_code == 202
