"""panva's openid-client (an OpenID Certified relying party), in Node.js as a separate
process, against a real authsvc server: discovery, the code flow with PKCE (signing in on
the hosted page like a browser), ID-token validation, userinfo, refresh, end session.
The JavaScript is tests/interop/openid-client/rp.mjs; `make test` installs its lock."""

from __future__ import annotations

import asyncio
import json
import os
import socket
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import PASSWORD, CliInvoker
from tests.support.processes import NODE

RP_DIR = Path(__file__).resolve().parents[1] / "interop" / "openid-client"
REDIRECT_URI = "https://rp.example/callback"
LOGOUT_URI = "https://rp.example/signed-out"


pytestmark = pytest.mark.process  # the relying party runs in Node.js


@pytest.fixture
def settings_overrides(live_socket: socket.socket) -> dict[str, Any]:
    # The issuer the relying party discovers is the address it talks to.
    return {"public_url": f"http://127.0.0.1:{live_socket.getsockname()[1]}"}


async def run_rp(env: dict[str, str]) -> dict[str, Any]:
    process = await asyncio.create_subprocess_exec(
        str(NODE),
        "rp.mjs",
        cwd=RP_DIR,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode == 0, err.decode()
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return result


async def test_openid_client_signs_in_refreshes_and_signs_out(
    live_server: str, run_cli: CliInvoker
) -> None:
    assert (RP_DIR / "node_modules" / "openid-client").is_dir(), "run: make test (npm ci)"
    async with httpx.AsyncClient(base_url=live_server) as http:
        registered = await http.post(
            "/auth/register",
            json={"email": "carol@example.com", "username": "carol", "password": PASSWORD},
        )
        assert registered.status_code == 201, registered.text
    result = await run_cli(
        "clients", "create", "Node RP", "--first-party", "--json",
        "--redirect-uri", REDIRECT_URI, "--post-logout-redirect-uri", LOGOUT_URI,
    )  # fmt: skip
    created = json.loads(result.stdout)
    seen = await run_rp(
        {
            "ISSUER": live_server,
            "CLIENT_ID": created["client_id"],
            "CLIENT_SECRET": created["client_secret"],
            "REDIRECT_URI": REDIRECT_URI,
            "POST_LOGOUT_REDIRECT_URI": LOGOUT_URI,
            "USERNAME": "carol",
            "PASSWORD": PASSWORD,
        }
    )
    assert seen["issuer"] == live_server
    assert seen["iss"] == live_server
    assert seen["email"] == "carol@example.com"
    assert seen["amr"] == ["pwd"]
    assert seen["userinfo"]["sub"] == seen["sub"]
    assert seen["userinfo"]["preferred_username"] == "carol"
    assert seen["refreshed_sub"] == seen["sub"]
    assert seen["refreshed_auth_time_same"] is True
    assert seen["logout_status"] == 302
    assert seen["logout_location"] == f"{LOGOUT_URI}?state=signed-out"
    # The end session ended the tokens: openid-client reads the 401's Bearer challenge.
    assert seen["userinfo_after_logout"] == "OAUTH_WWW_AUTHENTICATE_CHALLENGE"
