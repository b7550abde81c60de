"""Scale-out: two server processes on one database (and one Redis) give the same answers.

Each test talks to two real `authsvc serve` processes on two ports, started at the same
moment without a SECRET_KEY, the way `serve --workers 2` or two containers would start.
They share only what a deployment shares: the database, Redis when TEST_REDIS_URL is set,
and the directory of the generated development key.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import jwt
import pytest
import redis

from testkit.webauthn import SoftAuthenticator
from tests.support import BACKENDS, PASSWORD, prepare_schema, prepared
from tests.support.markers import starts
from tests.support.mfa import enable_mfa, password_step, second_step, totp_code
from tests.support.processes import ServerProcess, runner_env, serve_pair

pytestmark = pytest.mark.timeout(300)

ACCOUNT_LIMIT = 5  # failed logins per (account, client) in the window (RATE_LIMIT_LOGIN_ACCOUNT)
CEILING = 12  # failed logins per account from all clients (RATE_LIMIT_LOGIN_ACCOUNT_CEILING)
WRONG = "not the right password"

# Variables of the test runner's own environment that must not leak into the servers.


@dataclass
class Cluster:
    a: ServerProcess
    b: ServerProcess
    key_file: Path
    names: Iterator[int]
    env: dict[str, str]
    workdir: Path

    def new_identity(self) -> tuple[str, str]:
        n = next(self.names)
        return f"scale{n}@example.com", f"scale{n}"


@pytest.fixture(scope="module", params=BACKENDS)
@starts("process")
def cluster(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    workdir = tmp_path_factory.mktemp(f"scale-out-{request.param}")
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{workdir / 'auth.db'}"
    else:
        url = os.environ["TEST_DATABASE_URL"]
    asyncio.run(prepare_schema(url))
    prepared.add(url)

    key_file = workdir / "keys" / ".secret_key"
    redis_prefix = f"authsvc-scale-out-{os.urandom(6).hex()}"
    env = runner_env()
    env.update(
        DATABASE_URL=url,
        ENVIRONMENT="development",
        SECRET_KEY_FILE=str(key_file),
        LOG_LEVEL="WARNING",
        ARGON2_MEMORY_KIB="1024",
        ARGON2_TIME_COST="1",
        REFRESH_TOKEN_ROTATION="true",
        REDIS_KEY_PREFIX=redis_prefix,
        RATE_LIMIT_LOGIN_ACCOUNT=f"{ACCOUNT_LIMIT}/hour",
        RATE_LIMIT_LOGIN_ACCOUNT_CEILING=f"{CEILING}/hour",
        # The test client is the local "proxy": X-Forwarded-For plays the rotating clients.
        TRUSTED_PROXIES="127.0.0.1",
        # Every request of the suite comes from 127.0.0.1: per-client limits out of the way.
        RATE_LIMIT_LOGIN_IP="10000/minute",
        RATE_LIMIT_REGISTER_IP="10000/minute",
        RATE_LIMIT_REFRESH_IP="10000/minute",
        # No background commits (a verification mail marked sent): the tests of the
        # bearer cache must know that nothing but their own requests moved the database.
        MAIL_SENDER_ENABLED="false",
    )
    redis_url = os.environ.get("TEST_REDIS_URL")
    if redis_url:
        env["REDIS_URL"] = redis_url

    # Both start at once with no key yet: they race to generate it, as workers do.
    try:
        with serve_pair(env, workdir) as (a, b):
            yield Cluster(a, b, key_file, iter(range(1, 1_000_000)), env, workdir)
    finally:
        if redis_url:
            with redis.Redis.from_url(redis_url) as client:
                stale = list(client.scan_iter(match=f"{redis_prefix}*"))
                if stale:
                    client.delete(*stale)


async def _register(worker: ServerProcess, email: str, username: str) -> httpx.Response:
    async with worker.client() as client:
        return await client.post(
            "/auth/register", json={"email": email, "username": username, "password": PASSWORD}
        )


async def test_token_issued_by_one_worker_is_accepted_by_the_other(cluster: Cluster) -> None:
    email, username = cluster.new_identity()
    registered = await _register(cluster.a, email, username)
    assert registered.status_code == 201, registered.text
    token = registered.json()["access_token"]

    async with cluster.b.client() as client:
        me = await client.get("/users/me", headers={"Authorization": f"Bearer {token}"})

    assert me.status_code == 200, me.text
    assert me.json()["email"] == email


async def test_user_registered_through_one_worker_logs_in_through_the_other(
    cluster: Cluster,
) -> None:
    email, username = cluster.new_identity()
    assert (await _register(cluster.b, email, username)).status_code == 201

    async with cluster.a.client() as client:
        by_email = await client.post("/auth/login", json={"email": email, "password": PASSWORD})
        by_username = await client.post(
            "/auth/login", json={"username": username.upper(), "password": PASSWORD}
        )
        wrong = await client.post(
            "/auth/login", json={"email": email, "password": "not " + PASSWORD}
        )

    assert by_email.status_code == 200, by_email.text
    assert by_username.status_code == 200, by_username.text
    assert by_email.json()["user"]["id"] == by_username.json()["user"]["id"]
    assert wrong.status_code == 401


async def test_refresh_token_of_one_worker_refreshes_at_the_other(cluster: Cluster) -> None:
    email, username = cluster.new_identity()
    registered = await _register(cluster.a, email, username)
    refresh_token = registered.json()["refresh_token"]

    async with cluster.b.client() as client:
        refreshed = await client.post("/auth/refresh", json={"refresh_token": refresh_token})
        me = await client.get(
            "/users/me", headers={"Authorization": f"Bearer {refreshed.json()['access_token']}"}
        )

    assert refreshed.status_code == 200, refreshed.text
    assert me.status_code == 200
    assert me.json()["username"] == username


async def test_workers_sign_with_the_one_generated_key_file(cluster: Cluster) -> None:
    key = cluster.key_file.read_text().strip()
    tokens = []
    for worker in (cluster.a, cluster.b):
        email, username = cluster.new_identity()
        response = await _register(worker, email, username)
        tokens.append(response.json()["access_token"])

    for token in tokens:
        # Raises if the signature was made with any other key.
        claims = jwt.decode(token, key, algorithms=["HS256"], audience="authsvc")
        assert claims["type"] == "access"
    leftovers = [p.name for p in cluster.key_file.parent.iterdir() if p != cluster.key_file]
    assert leftovers == []


async def test_same_account_registered_at_both_workers_at_once_is_created_once(
    cluster: Cluster,
) -> None:
    email, username = cluster.new_identity()
    first, second = await asyncio.gather(
        _register(cluster.a, email, username), _register(cluster.b, email.upper(), username)
    )

    assert sorted([first.status_code, second.status_code]) == [201, 409]
    loser = first if first.status_code == 409 else second
    assert loser.json()["error_code"] == "USER_ALREADY_EXISTS"


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_refresh_token_logged_out_through_one_worker_is_refused_by_the_other(
    cluster: Cluster,
) -> None:
    email, username = cluster.new_identity()
    tokens = (await _register(cluster.a, email, username)).json()

    async with cluster.a.client() as client:
        logout = await client.post("/auth/logout", json={"refresh_token": tokens["refresh_token"]})
    async with cluster.b.client() as client:
        refresh = await client.post(
            "/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
        )
        me = await client.get("/users/me", headers=_bearer(tokens["access_token"]))

    assert logout.status_code == 204
    assert refresh.status_code == 401
    assert refresh.json()["error_code"] == "INVALID_TOKEN"
    assert me.status_code == 401


async def test_rotated_refresh_token_replayed_at_the_other_worker_revokes_the_family(
    cluster: Cluster,
) -> None:
    email, username = cluster.new_identity()
    original = (await _register(cluster.a, email, username)).json()["refresh_token"]
    async with cluster.a.client() as client:
        rotated = (await client.post("/auth/refresh", json={"refresh_token": original})).json()
    assert rotated["refresh_token"] != original

    async with cluster.b.client() as client:
        replay = await client.post("/auth/refresh", json={"refresh_token": original})
    async with cluster.a.client() as client:
        newer = await client.post("/auth/refresh", json={"refresh_token": rotated["refresh_token"]})
        me = await client.get("/users/me", headers=_bearer(rotated["access_token"]))

    assert replay.status_code == 401
    # Reuse detection (RFC 9700 §4.14.2): the replay ended the family everywhere.
    assert newer.status_code == 401
    assert me.status_code == 401


async def test_look_alike_addresses_registered_at_both_workers_at_once_make_one_account(
    cluster: Cluster,
) -> None:
    email, username = cluster.new_identity()
    # The same address in fullwidth letters (NFKC makes it the plain one).
    look_alike = "".join(chr(ord(c) + 0xFEE0) if c.isalpha() else c for c in email)
    assert look_alike != email
    first, second = await asyncio.gather(
        _register(cluster.a, email, username), _register(cluster.b, look_alike, username + "x")
    )

    assert sorted([first.status_code, second.status_code]) == [201, 409]


async def test_refreshes_alternating_between_workers_never_move_the_sessions_end(
    cluster: Cluster,
) -> None:
    """Rotation is on in the cluster: every refresh token of the session, from either
    worker, expires at the sign-in plus REFRESH_TOKEN_EXPIRE_DAYS (the default lifetime)."""
    email, username = cluster.new_identity()
    token = (await _register(cluster.a, email, username)).json()["refresh_token"]
    signed_in = jwt.decode(token, options={"verify_signature": False})
    session_end = signed_in["auth_time"] + 7 * 24 * 3600
    assert signed_in["exp"] == session_end

    for worker in (cluster.b, cluster.a, cluster.b):
        async with worker.client() as client:
            response = await client.post("/auth/refresh", json={"refresh_token": token})
        assert response.status_code == 200, response.text
        token = response.json()["refresh_token"]
        claims = jwt.decode(token, options={"verify_signature": False})
        assert (claims["auth_time"], claims["exp"]) == (signed_in["auth_time"], session_end)


@pytest.mark.redis
@pytest.mark.skipif(
    not os.environ.get("TEST_REDIS_URL"),
    reason="shared throttling counters need a Redis server (TEST_REDIS_URL)",
)
async def test_failed_logins_through_both_workers_count_against_one_account_limit(
    cluster: Cluster,
) -> None:
    email, username = cluster.new_identity()
    assert (await _register(cluster.a, email, username)).status_code == 201
    # Neither worker alone sees the limit: 3 failures at one, the rest at the other.
    failures_at_a = 3
    async with cluster.a.client() as a, cluster.b.client() as b:
        for n in range(ACCOUNT_LIMIT):
            client = a if n < failures_at_a else b
            failed = await client.post("/auth/login", json={"email": email, "password": WRONG})
            assert failed.status_code == 401, failed.text
        at_b = await b.post("/auth/login", json={"email": email, "password": PASSWORD})
        at_a = await a.post("/auth/login", json={"email": email, "password": PASSWORD})

    for response in (at_b, at_a):
        assert response.status_code == 429, response.text
        assert response.json()["error_code"] == "RATE_LIMITED"
        assert int(response.headers["Retry-After"]) >= 1


def _authsvc(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    """`authsvc ARGS...` as an operator runs it beside the workers (same environment)."""
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        env=cluster.env,
        cwd=cluster.workdir,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_a_session_ended_through_one_worker_is_dead_at_the_other_at_once(
    cluster: Cluster,
) -> None:
    email, username = cluster.new_identity()
    first = (await _register(cluster.a, email, username)).json()
    async with cluster.b.client() as b:
        second = (
            await b.post("/auth/login", json={"username": username, "password": PASSWORD})
        ).json()
        listed = (await b.get("/users/me/sessions", headers=_bearer(second["access_token"]))).json()
    target = next(s["id"] for s in listed if not s["current"])

    async with cluster.a.client() as a:
        ended = await a.delete(
            f"/users/me/sessions/{target}", headers=_bearer(second["access_token"])
        )
    async with cluster.b.client() as b:
        me = await b.get("/users/me", headers=_bearer(first["access_token"]))
        refresh = await b.post("/auth/refresh", json={"refresh_token": first["refresh_token"]})
        still = await b.get("/users/me", headers=_bearer(second["access_token"]))

    assert ended.status_code == 204
    assert me.status_code == 401
    assert refresh.status_code == 401
    assert still.status_code == 200


async def test_an_admin_demoted_at_one_worker_is_refused_at_the_other_next_request(
    cluster: Cluster,
) -> None:
    admins = []
    for _ in range(2):
        email, username = cluster.new_identity()
        assert (await _register(cluster.a, email, username)).status_code == 201
        granted = _authsvc(cluster, "users", "roles", username, "--add", "admin", "--json")
        assert granted.returncode == 0, granted.stderr
        async with cluster.a.client() as a:
            login = await a.post("/auth/login", json={"username": username, "password": PASSWORD})
        admins.append((int(login.json()["user"]["id"]), login.json()["access_token"]))
    (first_id, first_token), (second_id, second_token) = admins

    async with cluster.b.client() as b:
        assert (await b.get("/admin/users", headers=_bearer(second_token))).status_code == 200
    async with cluster.a.client() as a:
        demoted = await a.patch(
            f"/admin/users/{second_id}", json={"roles": []}, headers=_bearer(first_token)
        )
    async with cluster.b.client() as b:
        refused = await b.get("/admin/users", headers=_bearer(second_token))

    assert demoted.status_code == 200, demoted.text
    assert refused.status_code == 403
    assert refused.json()["error_code"] == "FORBIDDEN"
    assert first_id != second_id


async def test_two_admins_demoting_each_other_through_two_workers_leave_one_admin(
    cluster: Cluster,
) -> None:
    admins = []
    for _ in range(2):
        email, username = cluster.new_identity()
        assert (await _register(cluster.a, email, username)).status_code == 201
        assert _authsvc(cluster, "users", "roles", username, "--add", "admin").returncode == 0
        async with cluster.a.client() as a:
            login = await a.post("/auth/login", json={"username": username, "password": PASSWORD})
        admins.append((int(login.json()["user"]["id"]), login.json()["access_token"]))
    (x_id, x_token), (y_id, y_token) = admins
    # Other tests of this module leave admins behind; they must not count here.
    for extra in await _admin_ids(cluster, x_token) - {x_id, y_id}:
        async with cluster.a.client() as a:
            await a.patch(f"/admin/users/{extra}", json={"roles": []}, headers=_bearer(x_token))

    async with cluster.a.client() as a, cluster.b.client() as b:
        at_a, at_b = await asyncio.gather(
            a.patch(f"/admin/users/{y_id}", json={"roles": []}, headers=_bearer(x_token)),
            b.patch(f"/admin/users/{x_id}", json={"roles": []}, headers=_bearer(y_token)),
        )

    assert sorted([at_a.status_code, at_b.status_code]) in ([200, 403], [200, 409])
    survivor = x_token if at_a.status_code == 200 else y_token
    assert len(await _admin_ids(cluster, survivor)) == 1


async def _admin_ids(cluster: Cluster, token: str) -> set[int]:
    async with cluster.b.client() as b:
        listed = await b.get("/admin/users", params={"role": "admin"}, headers=_bearer(token))
    assert listed.status_code == 200, listed.text
    return {int(item["id"]) for item in listed.json()["items"]}


async def _mfa_account(cluster: Cluster) -> tuple[str, str, list[str]]:
    """An account with two-factor on (enrolled through worker a); its username, key and
    recovery codes. The confirming code is of the current 30 s step."""
    email, username = cluster.new_identity()
    registered = await _register(cluster.a, email, username)
    assert registered.status_code == 201, registered.text
    async with cluster.a.client() as client:
        enabled = await enable_mfa(client, registered.json()["access_token"], datetime.now(UTC))
    return username, enabled.secret, enabled.recovery_codes


def _next_step_code(secret: str) -> str:
    # One step ahead: later than the confirming code's step, and inside the ±1 window.
    return totp_code(secret, datetime.now(UTC) + timedelta(seconds=30))


async def test_a_two_factor_code_accepted_by_one_worker_is_refused_by_the_other(
    cluster: Cluster,
) -> None:
    username, secret, _ = await _mfa_account(cluster)
    code = _next_step_code(secret)

    async with cluster.a.client() as a, cluster.b.client() as b:
        at_a = await second_step(a, await password_step(a, username), code)
        at_b = await second_step(b, await password_step(b, username), code)

    assert at_a.status_code == 200, at_a.text
    assert at_b.status_code == 401, at_b.text
    assert at_b.json()["error_code"] == "INVALID_MFA_CODE"


async def test_one_code_sent_to_both_workers_at_once_signs_in_once(cluster: Cluster) -> None:
    username, secret, recovery = await _mfa_account(cluster)

    async with cluster.a.client() as a, cluster.b.client() as b:
        for code in (_next_step_code(secret), recovery[0]):
            tokens = [await password_step(a, username), await password_step(b, username)]
            answers = await asyncio.gather(
                second_step(a, tokens[0], code), second_step(b, tokens[1], code)
            )
            assert sorted(r.status_code for r in answers) == [200, 401], [r.text for r in answers]


def _from(address: str) -> dict[str, str]:
    return {"X-Forwarded-For": address}


@pytest.mark.redis
@pytest.mark.skipif(
    not os.environ.get("TEST_REDIS_URL"),
    reason="shared throttling counters need a Redis server (TEST_REDIS_URL)",
)
async def test_rotating_addresses_through_both_workers_neither_lock_out_nor_pass_the_ceiling(
    cluster: Cluster,
) -> None:
    email, username = cluster.new_identity()
    assert (await _register(cluster.a, email, username)).status_code == 201
    wrong = {"email": email, "password": WRONG}
    async with cluster.a.client() as a, cluster.b.client() as b:
        # Past the per-(account, client) limit from elsewhere: the owner still gets in.
        for n in range(ACCOUNT_LIMIT + 1):
            client = a if n % 2 else b
            failed = await client.post("/auth/login", json=wrong, headers=_from(f"198.51.100.{n}"))
            assert failed.status_code == 401, failed.text
        home = await a.post(
            "/auth/login", json={"email": email, "password": PASSWORD}, headers=_from("192.0.2.9")
        )
        assert home.status_code == 200, home.text
        # The success cleared the ceiling (NIST counts consecutive failures): fill it again,
        # spread over both workers and many addresses; the next attempt is refused anywhere.
        for n in range(CEILING):
            client = a if n % 2 else b
            failed = await client.post("/auth/login", json=wrong, headers=_from(f"203.0.113.{n}"))
            assert failed.status_code == 401, failed.text
        refused = [
            await client.post("/auth/login", json=wrong, headers=_from("198.18.0.1"))
            for client in (a, b)
        ]
    for response in refused:
        assert response.status_code == 429, response.text
        assert int(response.headers["Retry-After"]) >= 1


async def test_a_logout_at_one_worker_ends_the_token_the_other_just_served(
    cluster: Cluster,
) -> None:
    # On SQLite each worker keeps the users of live sessions it has served (LiveSessions):
    # the token is served twice at B first, so the second answer is B's remembered one.
    email, username = cluster.new_identity()
    tokens = (await _register(cluster.a, email, username)).json()
    async with cluster.b.client() as b:
        served = [await b.get("/users/me", headers=_bearer(tokens["access_token"])) for _ in "12"]

    async with cluster.a.client() as a:
        logout = await a.post("/auth/logout", json={"refresh_token": tokens["refresh_token"]})
    async with cluster.b.client() as b:
        after = await b.get("/users/me", headers=_bearer(tokens["access_token"]))

    assert [r.status_code for r in served] == [200, 200]
    assert served[0].json() == served[1].json()
    assert logout.status_code == 204
    assert after.status_code == 401
    assert after.json()["error_code"] == "INVALID_TOKEN"


async def test_the_cli_changing_an_account_shows_at_the_workers_next_request(
    cluster: Cluster,
) -> None:
    # Another admin, so that deactivating this one never meets the last-admin rule, whatever
    # the tests before it left in the shared database.
    other_email, other = cluster.new_identity()
    await _register(cluster.a, other_email, other)
    assert _authsvc(cluster, "users", "roles", other, "--add", "admin").returncode == 0
    email, username = cluster.new_identity()
    tokens = (await _register(cluster.a, email, username)).json()
    headers = _bearer(tokens["access_token"])
    async with cluster.b.client() as b:
        before = [await b.get("/users/me", headers=headers) for _ in "12"]

    granted = _authsvc(cluster, "users", "roles", username, "--add", "admin")
    async with cluster.b.client() as b:
        promoted = await b.get("/users/me", headers=headers)
        again = await b.get("/users/me", headers=headers)
    deactivated = _authsvc(cluster, "users", "deactivate", username)
    async with cluster.b.client() as b:
        refused = await b.get("/users/me", headers=headers)

    assert [r.json()["roles"] for r in before] == [[], []]
    assert granted.returncode == 0, granted.stderr
    assert promoted.json()["roles"] == ["admin"]
    assert again.json()["roles"] == ["admin"]
    assert deactivated.returncode == 0, deactivated.stderr
    assert refused.status_code == 401
    assert refused.json()["error_code"] == "USER_INACTIVE"


async def test_a_passkey_challenge_issued_by_one_worker_works_once_at_another(
    cluster: Cluster,
) -> None:
    """The challenge lives in the database: options from `a`, the assertion at `b`, and
    the same assertion again at either is refused."""
    email, username = cluster.new_identity()
    registered = await _register(cluster.a, email, username)
    assert registered.status_code == 201, registered.text
    auth = {"Authorization": f"Bearer {registered.json()['access_token']}"}
    authenticator = SoftAuthenticator()
    async with cluster.a.client() as a, cluster.b.client() as b:
        creation = await a.post("/users/me/passkeys/registration-options", headers=auth)
        assert creation.status_code == 200, creation.text
        added = await b.post(
            "/users/me/passkeys",
            json={"credential": authenticator.create(creation.json())},
            headers=auth,
        )
        assert added.status_code == 201, added.text

        options = (await a.post("/auth/passkey/options")).json()
        assertion = authenticator.get(options)
        signed_in = await b.post("/auth/passkey", json={"credential": assertion})
        again_at_a = await a.post("/auth/passkey", json={"credential": assertion})
        again_at_b = await b.post("/auth/passkey", json={"credential": assertion})

    assert signed_in.status_code == 200, signed_in.text
    assert jwt.decode(signed_in.json()["access_token"], options={"verify_signature": False})[
        "amr"
    ] == ["hwk", "mfa"]
    assert again_at_a.status_code == 401, again_at_a.text
    assert again_at_b.status_code == 401, again_at_b.text
    assert (
        again_at_a.json()["error_code"]
        == again_at_b.json()["error_code"]
        == ("INVALID_CREDENTIALS")
    )
