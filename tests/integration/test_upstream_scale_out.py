"""Scale-out: a sign-in with another provider started at one `authsvc serve` process
completes at another (the state lives in the shared database), once."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.support import BACKENDS
from tests.support.fake_upstream import CLIENT_ID, CLIENT_SECRET, FakeUpstream, fake_upstream
from tests.support.processes import fresh_postgres_database, serve_pair, server_env

pytestmark = [pytest.mark.process, pytest.mark.timeout(300)]


@pytest.fixture(params=BACKENDS)
async def shared_database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'auth.db'}"
        return
    async with fresh_postgres_database("upstream_scale") as url:
        yield url


async def test_a_flow_started_at_one_process_completes_at_the_other_once(
    shared_database: str, tmp_path: Path
) -> None:
    with fake_upstream() as fake:
        fake.claims = {"email": "scaled@example.com", "email_verified": True}
        env = server_env(
            shared_database,
            DB_AUTO_MIGRATE="true",
            PUBLIC_URL="http://127.0.0.1:8000",
            UPSTREAM_PROVIDERS=json.dumps(
                [
                    {
                        "name": "idp",
                        "display_name": "IdP",
                        "kind": "oidc",
                        "issuer": fake.url,
                        "client_id": CLIENT_ID,
                        "client_secret": CLIENT_SECRET,
                    }
                ]
            ),
        )
        env.pop("TEST_DATABASE_URL", None)
        with serve_pair(env, tmp_path) as (a, b):
            await _across(fake, a.url, b.url)


async def _across(fake: FakeUpstream, a: str, b: str) -> None:
    # One browser: cookies of 127.0.0.1 go to both ports, as to two workers behind one host.
    async with httpx.AsyncClient(timeout=30) as browser:
        leave = await browser.get(f"{a}/login/idp")
        assert leave.status_code == 303, leave.text
        location = leave.headers["location"]
        params = {"code": fake.authorize(location), "state": httpx.URL(location).params["state"]}
        done = await browser.get(f"{b}/login/idp/callback", params=params)
        assert done.status_code == 303, done.text
        assert (await browser.get(f"{a}/account")).status_code == 200
        again = await browser.get(f"{a}/login/idp/callback", params=params)
        assert again.status_code == 400
        assert "already used" in again.text
