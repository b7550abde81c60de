"""The real server: `authsvc serve` under uvicorn, its stdout read as a log shipper would."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import prepare_schema
from tests.support.markers import starts
from tests.support.processes import runner_env
from tests.support.servers import free_port

SECRET = "server-canary-signing-key-5b0d1c7e9a3f42e8b6d0"
PASSWORD = "Saffron-Walrus-Harbour-9e21"
START_DEADLINE_SECONDS = 30.0


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    stdout: Path
    stderr: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def lines(self) -> list[dict[str, Any]]:
        text = self.stdout.read_text("utf-8")
        return [json.loads(line) for line in text.split("\n") if line]


@pytest.fixture
@starts("process")
def server(tmp_path: Path) -> Iterator[Server]:
    env = runner_env()
    env.update(
        DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'auth.db'}",
        SECRET_KEY=SECRET,
        ENVIRONMENT="development",
        LOG_LEVEL="INFO",
        ARGON2_MEMORY_KIB="1024",
        ARGON2_TIME_COST="1",
    )
    command = [sys.executable, "-m", "app"]
    # Migrated here, not by `authsvc migrate` in a process of its own (tested elsewhere).
    asyncio.run(prepare_schema(env["DATABASE_URL"]))
    port = free_port()
    stdout, stderr = tmp_path / "stdout.log", tmp_path / "stderr.log"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = subprocess.Popen(
            [*command, "serve", "--port", str(port)], cwd=tmp_path, env=env, stdout=out, stderr=err
        )
    running = Server(f"http://127.0.0.1:{port}", process, stdout, stderr)
    try:
        deadline = time.monotonic() + START_DEADLINE_SECONDS
        while True:
            assert process.poll() is None, stderr.read_text()
            try:
                if httpx.get(f"{running.url}/health/live", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server did not come up"
            time.sleep(0.1)  # polling a real process until it listens, with a deadline
        yield running
    finally:
        running.stop()


def test_the_server_writes_only_json_lines_one_per_request_without_secrets(
    server: Server,
) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        registered = client.post(
            "/auth/register",
            json={"email": "srv@example.com", "username": "server_user", "password": PASSWORD},
        )
        assert registered.status_code == 201
        tokens = [registered.json()["access_token"], registered.json()["refresh_token"]]
        login = client.post(
            "/auth/login",
            json={"username": "server_user", "password": PASSWORD},
            headers={"X-Request-ID": "srv-login-1"},
        )
        assert login.status_code == 200
        tokens.append(login.json()["access_token"])
        assert client.get("/users/me", headers={"Authorization": f"Bearer {tokens[2]}"}).is_success
        assert (
            client.post("/auth/login", json={"username": "x", "password": PASSWORD}).status_code
            == 401
        )
        assert client.get("/health").status_code == 200
        assert client.get("/metrics").status_code == 200
    server.stop()

    lines = server.lines()  # every line of stdout is one JSON object
    messages = [line["message"] for line in lines]
    pid = server.process.pid
    assert f"Started server process [{pid}]" in messages  # uvicorn's own, before the app
    assert "Application startup complete." in messages
    assert "service started" in messages
    assert "service stopped" in messages
    assert all(line["logger"] != "uvicorn.access" for line in lines)
    requests = [line for line in lines if line["message"] == "request completed"]
    assert [(r["method"], r["endpoint"], r["status_code"]) for r in requests] == [
        ("POST", "/auth/register", 201),
        ("POST", "/auth/login", 200),
        ("GET", "/users/me", 200),
        ("POST", "/auth/login", 401),
    ]
    login_lines = [line for line in lines if line["request_id"] == "srv-login-1"]
    assert [line["message"] for line in login_lines] == ["login succeeded", "request completed"]
    assert login_lines[1]["client_ip"] == "127.0.0.1"

    output = server.stdout.read_text("utf-8") + server.stderr.read_text("utf-8")
    for secret in [PASSWORD, SECRET, *tokens]:
        assert secret not in output
