"""A PostgreSQL cluster of the tests' own (initdb + pg_ctl), which they may stop and start.

The cluster lives in a temporary directory and listens on 127.0.0.1 at a free port only.
PostgreSQL refuses to run as root, so under root (CI) every server command runs as the
`postgres` OS user, which owns the directory.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import asyncpg

from tests.support.servers import free_port

SERVER_USER = "postgres"


def find_bindir() -> Path | None:
    """The newest installed PostgreSQL's bin directory holding initdb and pg_ctl, if any."""
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    for bindir in candidates:
        if (bindir / "initdb").is_file() and (bindir / "pg_ctl").is_file():
            return bindir
    on_path = shutil.which("pg_ctl")
    if on_path and shutil.which("initdb"):
        return Path(on_path).parent
    return None


class ThrowawayPostgres:
    """One disposable cluster: `create()`, `start()`, `stop()`, `destroy()`."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="authsvc-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            server_user = pwd.getpwnam(SERVER_USER)  # KeyError: no `postgres` user to run as
            os.chown(self.root, server_user.pw_uid, server_user.pw_gid)
            self._as_user = ["runuser", "-u", SERVER_USER, "--"]

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def create(self) -> None:
        """initdb: trust authentication for the local `postgres` role, no fsync (disposable)."""
        self._run(
            "initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
            "--no-sync", "--no-instructions",
        )  # fmt: skip

    def start(self, *, timeout: float = 60) -> None:
        """Start the server and wait (pg_ctl -w) until it accepts connections."""
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} "
            "-c fsync=off -c full_page_writes=off -c max_connections=100"
        )
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"),
            "-o", options, "-w", "-t", str(int(timeout)), "start",
        )  # fmt: skip

    def stop(self, mode: str = "immediate") -> None:
        """Stop the server; `immediate` is a crash: connections drop without goodbye."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def is_running(self) -> bool:
        status = subprocess.run(
            [*self._as_user, str(self.bindir / "pg_ctl"), "-D", str(self.data), "status"],
            capture_output=True,
            check=False,
        )
        return status.returncode == 0

    async def wait_until_accepting(self, *, deadline_s: float = 30) -> None:
        """Poll with a deadline until a real connection and `SELECT 1` succeed."""
        deadline = time.monotonic() + deadline_s
        while True:
            try:
                connection = await asyncpg.connect(
                    host="127.0.0.1", port=self.port, user="postgres", timeout=2
                )
                try:
                    await connection.fetchval("SELECT 1")
                    return
                finally:
                    await connection.close()
            except (OSError, asyncpg.PostgresError, TimeoutError):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)

    def destroy(self) -> None:
        if self.data.exists() and self.is_running():
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def server_log(self) -> str:
        log = self.root / "server.log"
        return log.read_text(errors="replace") if log.exists() else ""

    def _run(self, program: str, *args: str) -> None:
        result = subprocess.run(
            [*self._as_user, str(self.bindir / program), *args],
            capture_output=True,
            text=True,
            check=False,
            cwd=self.root,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"{program} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}\n"
                f"{self.server_log()}"
            )
