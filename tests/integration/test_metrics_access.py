"""Who may read /metrics: its `reason` labels tell which accounts exist.

Without METRICS_TOKEN only loopback peers; with it, only `Authorization: Bearer <token>`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import ValidationError

from tests.support import LogCapture, assert_error, build_settings
from tests.support.backends import backend_independent

pytestmark = backend_independent

TOKEN = "metrics-canary-token-6c1f0e2b9d8a4f37"
PeerClient = Callable[[str], AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def peer(app: FastAPI) -> PeerClient:
    """A client whose socket peer is `ip`."""

    @asynccontextmanager
    async def make(ip: str) -> AsyncIterator[httpx.AsyncClient]:
        transport = httpx.ASGITransport(app=app, client=(ip, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c

    return make


def _is_exposition(response: httpx.Response) -> bool:
    return response.status_code == 200 and "authsvc_login_failures_total" in response.text


@pytest.mark.parametrize("ip", ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"])
async def test_without_a_token_loopback_peers_are_served(peer: PeerClient, ip: str) -> None:
    async with peer(ip) as local:
        assert _is_exposition(await local.get("/metrics"))


@pytest.mark.parametrize("ip", ["203.0.113.7", "10.0.0.5", "2001:db8::1", "::ffff:192.0.2.1"])
async def test_without_a_token_other_peers_are_refused_with_403(peer: PeerClient, ip: str) -> None:
    async with peer(ip) as remote:
        response = await remote.get("/metrics")
    body = assert_error(response, 403, "FORBIDDEN")
    assert "METRICS_TOKEN" in str(body["detail"])
    assert "authsvc_" not in response.text


@pytest.mark.parametrize(
    "settings_overrides", [{"trusted_proxies": "127.0.0.1"}], ids=["local-proxy"]
)
async def test_a_forwarded_header_does_not_make_a_remote_client_local(peer: PeerClient) -> None:
    """A local proxy forwarding a public client is not the client: its forwarded address
    counts, and a loopback address in the header from a remote peer counts for nothing."""
    async with peer("127.0.0.1") as proxy:
        forwarded = await proxy.get("/metrics", headers={"X-Forwarded-For": "198.51.100.3"})
    assert_error(forwarded, 403, "FORBIDDEN")
    async with peer("203.0.113.7") as remote:
        spoofed = await remote.get("/metrics", headers={"X-Forwarded-For": "127.0.0.1"})
    assert_error(spoofed, 403, "FORBIDDEN")


WITH_TOKEN = pytest.mark.parametrize("settings_overrides", [{"metrics_token": TOKEN}])


@WITH_TOKEN
async def test_with_a_token_the_right_bearer_is_served_from_anywhere(peer: PeerClient) -> None:
    async with peer("203.0.113.7") as remote:
        response = await remote.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert _is_exposition(response)


@WITH_TOKEN
@pytest.mark.parametrize("ip", ["203.0.113.7", "127.0.0.1"])
async def test_with_a_token_a_missing_bearer_is_401_even_from_loopback(
    peer: PeerClient, ip: str
) -> None:
    async with peer(ip) as anyone:
        for headers in ({}, {"Authorization": f"Basic {TOKEN}"}, {"Authorization": "Bearer "}):
            response = await anyone.get("/metrics", headers=headers)
            assert_error(response, 401, "NOT_AUTHENTICATED")
            assert response.headers["WWW-Authenticate"] == "Bearer"


@WITH_TOKEN
async def test_with_a_token_a_wrong_bearer_is_401_invalid_token(peer: PeerClient) -> None:
    async with peer("203.0.113.7") as remote:
        for wrong in (TOKEN[:-1], TOKEN + "x", TOKEN.upper(), TOKEN[::-1]):
            response = await remote.get("/metrics", headers={"Authorization": f"Bearer {wrong}"})
            assert_error(response, 401, "INVALID_TOKEN")
            assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
            assert "authsvc_" not in response.text


@WITH_TOKEN
async def test_the_metrics_token_never_reaches_the_log(peer: PeerClient, logs: LogCapture) -> None:
    async with peer("203.0.113.7") as remote:
        await remote.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        await remote.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}x"})
        await remote.get(f"/nowhere?scrape={TOKEN}", headers={"X-Note": TOKEN})
    assert logs.lines()
    assert TOKEN not in logs.text


@pytest.mark.parametrize("token", ["short", "x" * 15])
def test_a_short_metrics_token_is_refused(tmp_path: Path, token: str) -> None:
    with pytest.raises(ValidationError, match="METRICS_TOKEN must be at least 16"):
        build_settings("sqlite+aiosqlite:///:memory:", tmp_path, metrics_token=token)


def test_an_empty_metrics_token_means_loopback_only(tmp_path: Path) -> None:
    settings: Any = build_settings("sqlite+aiosqlite:///:memory:", tmp_path, metrics_token="")
    assert settings.metrics_token is None
