"""The client address under real servers: plain `uvicorn app.main:app`, `authsvc serve
--uds`, and uvicorn in this process. TRUSTED_PROXIES alone decides who the client is.

uvicorn believes X-Forwarded-For from 127.0.0.1 by default (its ProxyHeadersMiddleware) and
adds `server: uvicorn`; app/serving.py undoes both at start-up.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.config import Settings
from app.main import create_app
from tests.support import prepare_schema
from tests.support.processes import runner_env
from tests.support.servers import free_port, serve_in_thread

pytestmark = pytest.mark.timeout(180)

START_DEADLINE_SECONDS = 30.0
WRONG = {"password": "not the right password"}


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    stdout: Path
    stderr: Path
    transport: httpx.HTTPTransport
    base_url: str

    def client(self) -> httpx.Client:
        return httpx.Client(transport=self.transport, base_url=self.base_url, timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def lines(self) -> list[dict[str, Any]]:
        text = self.stdout.read_text("utf-8") + self.stderr.read_text("utf-8")
        return [json.loads(line) for line in text.splitlines() if line.startswith("{")]

    def requests(self) -> list[dict[str, Any]]:
        return [line for line in self.lines() if line["message"] == "request completed"]


@contextmanager
def serving(tmp_path: Path, args: list[str], uds: Path | None, **env_vars: str) -> Iterator[Server]:
    env = runner_env()
    env.update(
        DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'auth.db'}",
        SECRET_KEY="serving-test-signing-key-0f3c9b1e7d5a4c28",
        ENVIRONMENT="development",
        LOG_LEVEL="INFO",
        ARGON2_MEMORY_KIB="1024",
        ARGON2_TIME_COST="1",
        RATE_LIMIT_LOGIN_IP="3/minute",
        **env_vars,
    )
    python = [sys.executable, "-m"]
    # Migrated here rather than by `authsvc migrate` in a process of its own (that command
    # has its own tests): one interpreter start less per test.
    asyncio.run(prepare_schema(env["DATABASE_URL"]))
    if uds is None:
        port = free_port()
        args = [*args, "--port", str(port)]
        transport, base_url = httpx.HTTPTransport(), f"http://127.0.0.1:{port}"
    else:
        args = [*args, "--uds", str(uds)]
        transport, base_url = httpx.HTTPTransport(uds=str(uds)), "http://authsvc"
    stdout, stderr = tmp_path / "stdout.log", tmp_path / "stderr.log"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = subprocess.Popen([*python, *args], cwd=tmp_path, env=env, stdout=out, stderr=err)
    server = Server(process, stdout, stderr, transport, base_url)
    try:
        deadline = time.monotonic() + START_DEADLINE_SECONDS
        with server.client() as client:
            while True:
                assert process.poll() is None, stderr.read_text()
                try:
                    if client.get("/health/live").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "the server did not come up"
                time.sleep(0.1)  # polling a real process until it listens, with a deadline
        yield server
    finally:
        server.stop()


def _login(client: httpx.Client, n: int, forwarded_for: str) -> httpx.Response:
    return client.post(
        "/auth/login",
        json={"username": f"guess{n}", **WRONG},
        headers={"X-Forwarded-For": forwarded_for},
    )


@pytest.mark.process
def test_plain_uvicorn_ignores_a_spoofed_forwarded_for_and_sends_no_server_header(
    tmp_path: Path,
) -> None:
    # FORWARDED_ALLOW_IPS=* is uvicorn's "believe everybody": the worst case.
    args = ["uvicorn", "app.main:app", "--host", "127.0.0.1"]
    with (
        serving(tmp_path, args, None, FORWARDED_ALLOW_IPS="*") as server,
        server.client() as client,
    ):
        answers = [_login(client, n, f"198.51.100.{n + 1}") for n in range(4)]
        server.stop()

    assert [r.status_code for r in answers] == [401, 401, 401, 429]
    assert all("server" not in r.headers for r in answers)
    assert {line["client_ip"] for line in server.requests()} == {"127.0.0.1"}
    messages = [line["message"] for line in server.lines()]
    assert "uvicorn defaults overridden" in messages
    assert any("FORWARDED_ALLOW_IPS ignored" in message for message in messages)


@pytest.mark.process
def test_plain_uvicorn_believes_forwarded_for_from_trusted_proxies_only(tmp_path: Path) -> None:
    args = ["uvicorn", "app.main:app", "--host", "127.0.0.1"]
    with serving(tmp_path, args, None, TRUSTED_PROXIES="127.0.0.1") as server, server.client() as c:
        answers = [_login(c, n, "198.51.100.1") for n in range(3)]
        other = _login(c, 9, "198.51.100.2, 127.0.0.1")
        server.stop()

    assert [r.status_code for r in answers] == [401, 401, 401]
    assert other.status_code == 401  # its own budget: the forwarded client counts
    assert [line["client_ip"] for line in server.requests()] == ["198.51.100.1"] * 3 + [
        "198.51.100.2"
    ]


@pytest.mark.process
def test_over_a_unix_socket_every_client_shares_one_bucket_and_start_up_warns(
    tmp_path: Path,
) -> None:
    uds = tmp_path / "authsvc.sock"
    with serving(tmp_path, ["app", "serve"], uds) as server, server.client() as client:
        answers = [_login(client, n, f"198.51.100.{n + 1}") for n in range(4)]
        server.stop()

    # Before, no address meant no per-client limit at all: fail closed instead.
    assert [r.status_code for r in answers] == [401, 401, 401, 429]
    output = server.stdout.read_text() + server.stderr.read_text()
    assert "Unix socket" in output
    assert "TRUSTED_PROXIES" in output
    assert {line["client_ip"] for line in server.requests()} == {None}


@pytest.mark.process
def test_over_a_unix_socket_with_unix_trusted_the_forwarded_client_counts(
    tmp_path: Path,
) -> None:
    uds = tmp_path / "authsvc.sock"
    with serving(tmp_path, ["app", "serve"], uds, TRUSTED_PROXIES="unix") as server:
        with server.client() as client:
            answers = [_login(client, n, "198.51.100.1") for n in range(4)]
            other = _login(client, 9, "198.51.100.2")
        server.stop()

    assert [r.status_code for r in answers] == [401, 401, 401, 429]
    assert other.status_code == 401
    assert [line["client_ip"] for line in server.requests()][-2:] == [
        "198.51.100.1",
        "198.51.100.2",
    ]
    assert not [line for line in server.lines() if "shared bucket" in line["message"]]


@contextmanager
def uvicorn_in_process(settings: Settings, **options: Any) -> Iterator[str]:
    """uvicorn with its defaults (proxy headers on) serving the app object, in a thread."""
    with serve_in_thread(create_app(settings), **options) as server:
        yield server.url


@pytest.mark.parametrize("settings_overrides", [{"rate_limit_login_ip": "3/minute"}])
def test_an_app_object_handed_to_uvicorn_is_taken_over_too(settings: Settings) -> None:
    with (
        uvicorn_in_process(settings, forwarded_allow_ips="*") as url,
        httpx.Client(base_url=url, timeout=10) as client,
    ):
        answers = [_login(client, n, f"198.51.100.{n + 1}") for n in range(4)]
        # uvicorn refreshes its default headers once a second: still none after that.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and "date" not in client.get("/health/live").headers:
            time.sleep(0.1)
        late = client.get("/health/live")
    assert [r.status_code for r in answers] == [401, 401, 401, 429]
    assert "date" in late.headers
    assert "server" not in late.headers
