"""Signing keys across processes: two real `authsvc serve` processes on one database with
EdDSA, started at the same moment on an empty key table, make one key and both sign with
it; after `authsvc keys rotate` both switch within the refresh interval; a revocation or
introspection at one holds at the other; a key revoked with `authsvc keys revoke` is
refused by both at once."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import jwt
import pytest

from tests.support import BACKENDS, PASSWORD, prepare_schema, prepared
from tests.support.markers import starts
from tests.support.processes import ServerProcess, runner_env, serve_pair

pytestmark = pytest.mark.timeout(300)

REFRESH_SECONDS = 1
SWITCH_DEADLINE_S = REFRESH_SECONDS * 10 + 5


@dataclass
class Pair:
    a: ServerProcess
    b: ServerProcess
    env: dict[str, str]
    workdir: Path


@pytest.fixture(scope="module", params=BACKENDS)
@starts("process")
def pair(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Pair]:
    workdir = tmp_path_factory.mktemp(f"scale-out-keys-{request.param}")
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{workdir / 'auth.db'}"
    else:
        url = os.environ["TEST_DATABASE_URL"]
    import asyncio

    asyncio.run(prepare_schema(url))  # an empty database: no signing key yet
    prepared.add(url)
    env = runner_env()
    env.update(
        DATABASE_URL=url,
        ENVIRONMENT="development",
        SECRET_KEY_FILE=str(workdir / "keys" / ".secret_key"),
        JWT_ALGORITHM="EdDSA",
        SIGNING_KEY_REFRESH_SECONDS=str(REFRESH_SECONDS),
        LOG_LEVEL="WARNING",
        ARGON2_MEMORY_KIB="1024",
        ARGON2_TIME_COST="1",
        RATE_LIMIT_LOGIN_IP="10000/minute",
        RATE_LIMIT_REGISTER_IP="10000/minute",
        RATE_LIMIT_REFRESH_IP="10000/minute",
    )
    with serve_pair(env, workdir) as (a, b):
        yield Pair(a, b, env, workdir)


def _cli(pair: Pair, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "app", *args],
        env=pair.env,
        cwd=pair.workdir,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def _kid(token: str) -> str:
    kid: str = jwt.get_unverified_header(token)["kid"]
    return kid


def _sign_in(node: ServerProcess, name: str) -> dict[str, str]:
    response = httpx.post(
        f"{node.url}/auth/login", json={"username": name, "password": PASSWORD}, timeout=30
    )
    assert response.status_code == 200, response.text
    body: dict[str, str] = response.json()
    return body


def _register(node: ServerProcess, name: str) -> dict[str, str]:
    response = httpx.post(
        f"{node.url}/auth/register",
        json={"email": f"{name}@example.com", "username": name, "password": PASSWORD},
        timeout=30,
    )
    assert response.status_code == 201, response.text
    body: dict[str, str] = response.json()
    return body


def test_both_sign_with_the_one_key_the_first_start_created(pair: Pair) -> None:
    keys = json.loads(_cli(pair, "keys", "list", "--json"))
    assert len(keys) == 1
    assert keys[0]["status"] == "current"

    token_a = _register(pair.a, "alpha")["access_token"]
    token_b = _register(pair.b, "bravo")["access_token"]

    assert _kid(token_a) == _kid(token_b) == keys[0]["kid"]
    jwks_a = httpx.get(f"{pair.a.url}/.well-known/jwks.json").json()
    jwks_b = httpx.get(f"{pair.b.url}/.well-known/jwks.json").json()
    assert jwks_a == jwks_b
    assert httpx.get(f"{pair.b.url}/users/me", headers=_bearer(token_a)).status_code == 200


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_after_a_rotation_through_the_cli_both_switch_within_the_refresh_interval(
    pair: Pair,
) -> None:
    before = _register(pair.a, "charlie")["access_token"]
    new_kid = json.loads(_cli(pair, "keys", "rotate", "--json"))["kid"]

    deadline = time.monotonic() + SWITCH_DEADLINE_S
    switched: dict[str, str] = {}
    while len(switched) < 2:
        assert time.monotonic() < deadline, f"not switched in time: {sorted(switched)}"
        for name, node in (("a", pair.a), ("b", pair.b)):
            if name not in switched:
                token = _sign_in(node, "charlie")["access_token"]
                if _kid(token) == new_kid:
                    switched[name] = token
        time.sleep(0.1)

    for token in (before, switched["a"], switched["b"]):
        for node in (pair.a, pair.b):
            assert httpx.get(f"{node.url}/users/me", headers=_bearer(token)).status_code == 200


def test_a_token_revoked_at_one_is_refused_and_inactive_at_the_other(pair: Pair) -> None:
    created = json.loads(_cli(pair, "clients", "create", "scale-rs", "--json"))
    secret = f"{created['client_id']}:{created['client_secret']}".encode()
    basic = {"Authorization": f"Basic {base64.b64encode(secret).decode()}"}
    tokens = _register(pair.a, "delta")

    revoked = httpx.post(f"{pair.a.url}/auth/revoke", data={"token": tokens["access_token"]})
    assert revoked.status_code == 200

    me = httpx.get(f"{pair.b.url}/users/me", headers=_bearer(tokens["access_token"]))
    assert me.status_code == 401
    introspected = httpx.post(
        f"{pair.b.url}/auth/introspect", data={"token": tokens["refresh_token"]}, headers=basic
    )
    assert introspected.json() == {"active": False}


def test_a_key_revoked_through_the_cli_is_refused_and_unpublished_at_both_at_once(
    pair: Pair,
) -> None:
    tokens = _register(pair.a, "echo")
    kid = _kid(tokens["access_token"])
    assert httpx.get(f"{pair.b.url}/users/me", headers=_bearer(tokens["access_token"])).is_success

    revoked = json.loads(_cli(pair, "keys", "revoke", "--json", "--", kid))

    # No waiting for the refresh interval: each worker asks the database.
    for node in (pair.b, pair.a):
        me = httpx.get(f"{node.url}/users/me", headers=_bearer(tokens["access_token"]))
        assert me.status_code == 401
        assert me.json()["error_code"] == "INVALID_TOKEN"
    for node in (pair.a, pair.b):
        published = httpx.get(f"{node.url}/.well-known/jwks.json").json()["keys"]
        assert kid not in {key["kid"] for key in published}
        assert revoked["replaced_by"] in {key["kid"] for key in published}
        fresh = _sign_in(node, "echo")["access_token"]
        assert _kid(fresh) == revoked["replaced_by"]
        assert httpx.get(f"{pair.b.url}/users/me", headers=_bearer(fresh)).status_code == 200
