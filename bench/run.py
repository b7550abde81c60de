"""`make bench`: load the service the way users run it and hold it to the hashing limit.

What one run does, for each worker count (by default 1 and the number of cores):

1. a fresh database (a temporary SQLite file, or the PostgreSQL database of
   `--database-url` emptied first), migrated with `authsvc migrate`;
2. `authsvc serve --workers N`: production settings, JSON logs written to a file as a
   container's stdout would be, no reload, uvloop/httptools as installed;
3. pre-registers `--users` accounts (setup, not measured) and hands their credentials and
   tokens to wrk's Lua scripts in bench/lua/;
4. drives each scenario with `wrk` for `--duration` seconds over `--connections`
   connections: live, me, refresh, login, login+probe (login saturating the CPU while a
   slow probe samples /health/live), register, mixed, and mixed again (the leak check);
5. reads every worker's RSS after each scenario, and counts non-2xx answers.

Before any load it measures the hashing limit in this process: the median time of one hash
with the configured parameters on one thread, limit = cores / median (logins per second).

Results: a table on stdout, bench/results/<timestamp>.json and a PNG of latency percentiles
per scenario (bench/results/<timestamp>.png; `latest.*` copies of both).

With `--peer` (`make bench-peer`) the same run then measures the fastapi-users app of the
peer's folder (default: shared/peer beside the checkout; one worker, a fresh SQLite
file, the same wrk settings; its own venv in bench/.peer-venv) on the scenarios it has
(me, login, register), and prints the ratios of the goals against the peer, computed from
the runs with one worker.

Throttling stays enabled with its limits raised out of reach, by name, in BENCH_ENVIRONMENT:
the load comes from one address and logs into a few hundred accounts many times a second,
which the real limits would rightly answer with 429s. Everything else is the service's
default configuration (argon2id m=19 MiB t=2 p=1, JSON logs at INFO, production mode).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import math
import os
import platform
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # testkit/, the software authenticator that bench/pools.py uses

import pools  # noqa: E402 - bench/pools.py needs testkit/ on the path first

DEFAULT_PEER = ROOT.parent / "shared" / "peer"
PEER_VENV = Path(__file__).resolve().parent / ".peer-venv"
LUA_DIR = Path(__file__).resolve().parent / "lua"
RESULTS_DIR = Path(__file__).resolve().parent / "results"
BIN = Path(sys.executable).parent
PASSWORD = "bench-Horse-Battery-Staple-7"  # noqa: S105 - the benchmark accounts' password
PERCENTILES = ("50", "75", "90", "99", "99.9")

# Settings the benchmark changes from the defaults, and why (see the module docstring).
# Unknown names are ignored by Settings, so this list can name limits of any version.
BENCH_ENVIRONMENT = {
    "ENVIRONMENT": "production",
    "PUBLIC_URL": "https://auth.example.com",  # production refuses http
    "LOG_LEVEL": "INFO",
    "LOG_FORMAT": "json",
    # Throttling stays on, so its counters cost what they cost in production, but
    # with limits out of reach: all load comes from 127.0.0.1 and reuses a few hundred
    # accounts, which the real limits would rightly answer with 429s.
    "RATE_LIMIT_LOGIN_ACCOUNT": "1000000/minute",
    "RATE_LIMIT_LOGIN_ACCOUNT_CEILING": "1000000/minute",
    "RATE_LIMIT_LOGIN_IP": "1000000/minute",
    "RATE_LIMIT_REGISTER_IP": "1000000/minute",
    "RATE_LIMIT_REFRESH_IP": "1000000/minute",
    "RATE_LIMIT_PASSKEY_OPTIONS_IP": "1000000/minute",
}

# Targets against the hashing limit (ratios measured within one run, so they hold on any machine).
# The limit is what the cores sustain with every core hashing at once (hashing["parallel"]).
LOGIN_FRACTION_OF_LIMIT = 0.90
REGISTER_FRACTION_OF_LIMIT = 0.80
ME_FRACTION_OF_LIVE = 0.40
LIVE_P99_UNDER_LOGIN_MS = 50.0
RSS_LIMIT_MB = 150.0
# Allocators keep freed arenas; growth below this between two identical runs is not a leak.
RSS_GROWTH_TOLERANCE_MB = 5.0

# Goals against the peer in the same run (one worker each).
ME_OVER_PEER_ME = 2.5
REFRESH_OVER_PEER_ME = 1.0
REFRESH_CPU_MS = 2.5  # server CPU per /auth/refresh

# A load-balancer-like probe beside the login load: 2 connections, 20 ms apart each.
PROBE_CONNECTIONS = 2
PROBE_PAUSE_MS = 20

# Pooled scenarios (code, passkey: each request works once, see bench/pools.py). A pooled
# request waits at most this long between being made and being sent, below its lifetime.
POOL_LIFETIME_MARGIN_S = 10.0
CODE_LIFETIME_S = 60.0  # app/oidc/authorization.py CODE_TTL
CHALLENGE_LIFETIME_S = 300.0  # app/signin/methods/passkey/challenges.py CHALLENGE_TTL
# The calibration: this many requests per connection, sent for at most this long, give the
# rate a pool is sized by (x POOL_HEADROOM, so that it lasts the whole run).
CALIBRATION_PER_CONNECTION = 8
CALIBRATION_S = 2.0
POOL_HEADROOM = 1.5
MINT_CONCURRENCY = 16
# The goals of the pooled scenarios.
PASSKEY_OVER_LOGIN = 4.0  # a whole passkey sign-in (options + finish) against a login
CODE_CPU_OVER_REFRESH_MS = 1.0  # a code exchange's CPU at most a refresh's + this


def say(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- machine


def machine_info() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        mem_kb = 0
    wrk_version = subprocess.run(
        ["wrk", "--version"], capture_output=True, text=True, check=False
    ).stdout.splitlines()
    return {
        "cpu": cpu,
        "cores": cores(),
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "wrk": wrk_version[0] if wrk_version else "unknown",
        "load_average_at_start": list(os.getloadavg()),
    }


def cores() -> int:
    return len(os.sched_getaffinity(0))


# --------------------------------------------------------------------------- hashing limit


def hashing_limit(env: dict[str, str], samples: int) -> dict[str, Any]:
    """Median wall time of one hash with the service's configured parameters, one thread."""
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        from app.config import Settings
        from app.core.passwords import PasswordHasher

        settings = Settings(_env_file=None)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    hasher = PasswordHasher(
        settings.password_scheme,
        argon2_memory_kib=settings.argon2_memory_kib,
        argon2_time_cost=settings.argon2_time_cost,
        argon2_parallelism=settings.argon2_parallelism,
        bcrypt_rounds=settings.bcrypt_rounds,
    )
    hasher.hash_sync(PASSWORD)  # warm-up: first-touch page faults of the memory-hard buffer
    timings, cpu_timings = [], []
    for _ in range(samples):
        started, cpu_started = time.perf_counter(), time.thread_time()
        hasher.hash_sync(PASSWORD)
        timings.append(time.perf_counter() - started)
        cpu_timings.append(time.thread_time() - cpu_started)
    median = statistics.median(timings)
    parallel = parallel_hashing(hasher, threads=cores(), per_thread=max(4, samples // 2))
    return {
        "scheme": settings.password_scheme,
        "parameters": (
            {
                "memory_kib": settings.argon2_memory_kib,
                "time_cost": settings.argon2_time_cost,
                "parallelism": settings.argon2_parallelism,
            }
            if settings.password_scheme == "argon2id"  # noqa: S105 - a scheme name
            else {"rounds": settings.bcrypt_rounds}
        ),
        "samples": samples,
        "median_ms": round(median * 1000, 2),
        "min_ms": round(min(timings) * 1000, 2),
        # CPU time is what a busy machine does not inflate: compare it with the server's
        # CPU time per login when the wall-clock figures are noisy.
        "median_cpu_ms": round(statistics.median(cpu_timings) * 1000, 2),
        "cores": cores(),
        "limit_per_s": round(cores() / median, 1),
        # The same hash on every core at once: what the cores really sustain, below the
        # limit by what the hashes cost each other (memory bandwidth, shared cache).
        "parallel": parallel,
    }


def parallel_hashing(hasher: Any, *, threads: int, per_thread: int) -> dict[str, float]:
    """Hashes per second and median CPU ms per hash with `threads` threads hashing at once."""
    import threading

    cpu_timings: list[float] = []
    lock = threading.Lock()

    def work() -> None:
        for _ in range(per_thread):
            started = time.thread_time()
            hasher.hash_sync(PASSWORD)
            with lock:
                cpu_timings.append(time.thread_time() - started)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - started
    return {
        "threads": threads,
        "per_s": round(threads * per_thread / elapsed, 1),
        "median_cpu_ms": round(statistics.median(cpu_timings) * 1000, 2),
    }


# --------------------------------------------------------------------------- token costs


def token_costs(algorithm: str, samples: int = 2000) -> dict[str, Any]:
    """CPU cost of the service's own codec with `algorithm`, one thread: what a login adds
    (it signs an access and a refresh token) and what a `/users/me` adds (one verification).
    """
    import asyncio as _asyncio
    from datetime import timedelta

    from app.core.jwt import TokenCodec, TokenType
    from app.core.signing_keys import KeyCipher, generate_private_key, public_jwk, thumbprint
    from app.keys.keyring import KeyRing
    from app.keys.store import StoredKey
    from app.utils.clock import utc_now

    secret = secrets.token_urlsafe(48)
    ring = None
    if not algorithm.startswith("HS"):
        key = generate_private_key(algorithm)
        kid = thumbprint(key.public_key())
        cipher = KeyCipher(secret)
        row = StoredKey(
            kid=kid,
            algorithm=algorithm,
            public_jwk=public_jwk(key.public_key(), kid=kid, algorithm=algorithm),
            private_key_encrypted=cipher.encrypt(key, kid=kid, algorithm=algorithm),
            current=True,
            created_at=utc_now(),
            activated_at=utc_now(),
            retired_at=None,
        )

        async def load(_: Any) -> list[StoredKey]:
            return [row]

        ring = KeyRing(loader=load, cipher=cipher, max_token_lifetime=timedelta(days=8))
        _asyncio.run(ring.reload())
    codec = TokenCodec(
        key=secret,
        keys=ring,
        issuer="authsvc",
        audience="authsvc",
        access_ttl=timedelta(minutes=30),
        refresh_ttl=timedelta(days=7),
        algorithm=algorithm,
    )
    extra = {"sid": secrets.token_hex(16)}
    token = codec.issue("1", TokenType.ACCESS, extra=extra).token
    started = time.thread_time()
    for _ in range(samples):
        codec.issue("1", TokenType.ACCESS, extra=extra)
    sign = (time.thread_time() - started) / samples
    started = time.thread_time()
    for _ in range(samples):
        codec.decode(token, TokenType.ACCESS)
    verify = (time.thread_time() - started) / samples
    return {
        "algorithm": algorithm,
        "sign_us": round(sign * 1e6, 1),
        "verify_us": round(verify * 1e6, 1),
        "per_login_us": round(2 * sign * 1e6, 1),
        "per_me_us": round(verify * 1e6, 1),
        "token_bytes": len(token),
    }


# --------------------------------------------------------------------------- the server


def server_environment(options: argparse.Namespace) -> dict[str, str]:
    """This environment, minus its database and Redis, plus BENCH_ENVIRONMENT and a key."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_"))}
    env.update(BENCH_ENVIRONMENT, SECRET_KEY=secrets.token_urlsafe(48))
    if options.redis_url:
        env["REDIS_URL"] = options.redis_url
    env["JWT_ALGORITHM"] = options.jwt_algorithm
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def prepare_database(url: str | None, workdir: Path, env: dict[str, str]) -> str:
    """A migrated, empty database; PostgreSQL's public schema is dropped first."""
    if url is None:
        url = f"sqlite+aiosqlite:///{workdir / 'bench.db'}"
    else:
        say(f"emptying {url.rsplit('@', 1)[-1]} (DROP SCHEMA public CASCADE)")
        asyncio.run(_drop_schema(url))
    subprocess.run(
        [str(BIN / "authsvc"), "migrate"],
        env={**env, "DATABASE_URL": url},
        cwd=workdir,
        check=True,
        capture_output=True,
    )
    return url


async def _drop_schema(url: str) -> None:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(url)
    async with engine.begin() as conn:
        await conn.execute(text("DROP SCHEMA public CASCADE"))
        await conn.execute(text("CREATE SCHEMA public"))
    await engine.dispose()


@dataclass
class Server:
    """`authsvc serve --workers N` (or `command`, the peer), its log file, and its workers."""

    workers: int
    env: dict[str, str]
    log_path: Path
    port: int = field(default_factory=free_port)
    # The peer's own command line on `port`, the folder it runs in and a route that answers
    # once it is up; by default the service itself.
    command: list[str] | None = None
    cwd: Path | None = None
    ready_path: str = "/health/live"
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> None:
        command = self.command or [
            *(str(BIN / "authsvc"), "serve", "--host", "127.0.0.1"),
            *("--port", str(self.port), "--workers", str(self.workers)),
        ]
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            command,
            env=self.env,
            cwd=self.cwd or self.log_path.parent,  # a stray .env of the checkout is not read
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(
                    f"the server exited with {self.process.returncode}: {self.log_path}"
                )
            try:
                live = httpx.get(self.url + self.ready_path, timeout=1).status_code == 200
                if live and len(self.worker_pids()) >= self.workers:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.stop()
        raise SystemExit(f"the server did not answer within {timeout:.0f}s: {self.log_path}")

    def worker_pids(self) -> list[int]:
        """The processes that serve requests: the spawned workers, or the server itself."""
        assert self.process is not None
        if self.workers == 1:
            return [self.process.pid]
        pids = []
        for child in _children(self.process.pid):
            try:
                cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
            except OSError:
                continue
            if b"spawn_main" in cmdline:
                pids.append(child)
        return pids

    def rss_mb(self, field: str = "VmRSS") -> list[float]:
        """Each worker's resident memory now (VmRSS), or its peak so far (VmHWM)."""
        sizes = []
        for pid in self.worker_pids():
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith(f"{field}:"):
                        sizes.append(round(int(line.split()[1]) / 1024, 1))
            except OSError:
                continue
        return sizes

    def cpu_seconds(self) -> float:
        """User + system CPU time the workers have used so far (all their threads)."""
        ticks = 0
        for pid in self.worker_pids():
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime (man 5 proc)
        return ticks / os.sysconf("SC_CLK_TCK")

    def wait_idle(self, timeout: float = 60.0) -> None:
        """Wait until the requests wrk left in flight are done (the workers' CPU goes quiet).

        wrk stops counting at the deadline, but the server still finishes what it accepted:
        up to one queued hash per connection. Without this wait that work would be charged
        to the next scenario.
        """
        deadline = time.monotonic() + timeout
        before = self.cpu_seconds()
        while time.monotonic() < deadline:
            time.sleep(0.25)
            now = self.cpu_seconds()
            if now - before < 0.25 * 0.05 * self.workers:  # under 5% of a core each
                return
            before = now
        say(f"warning: the server was still busy {timeout:.0f}s after the load stopped")

    def stop(self, timeout: float = 20.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def _children(pid: int) -> list[int]:
    children = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        children += [int(c) for c in task.read_text().split()]
    return children


# --------------------------------------------------------------------------- data


async def register_users(base_url: str, count: int, prefix: str, concurrency: int) -> list[str]:
    """Register `count` accounts; one tab-separated line per user: email, password, tokens."""
    lines: list[str] = []
    semaphore = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:

        async def one(n: int) -> None:
            name = f"{prefix}u{n}"
            async with semaphore:
                response = await client.post(
                    "/auth/register",
                    json={
                        "email": f"{name}@bench.example.com",
                        "username": name,
                        "password": PASSWORD,
                    },
                )
            if response.status_code != 201:
                raise SystemExit(
                    f"setup: register answered {response.status_code}: {response.text}"
                )
            body = response.json()
            lines.append(
                "\t".join(
                    (
                        f"{name}@bench.example.com",
                        PASSWORD,
                        body["access_token"],
                        body["refresh_token"],
                    )
                )
            )

        await asyncio.gather(*(one(n) for n in range(count)))
    return lines


# --------------------------------------------------------------------------- wrk


@dataclass
class Pool:
    """How a scenario whose requests each work once gets them (bench/pools.py)."""

    route: str  # what wrk sends: its log lines time the calibration
    lifetime_s: float  # how long a pooled request stays usable after it was made
    make: Callable[[int, float], list[str]]  # (count, deadline s) -> lines, oldest first
    args: Callable[[Path, int], list[str]]  # (pool file, wrk threads) -> the script's args
    notes: list[str] = field(default_factory=list)  # printed below the scenario's table


@dataclass
class Scenario:
    name: str
    script: str
    args: list[str]
    should_succeed: bool = True
    probe: bool = False  # run a /health/live probe beside it
    pool: Pool | None = None  # one-use requests, made right before the run


@dataclass
class Result:
    name: str
    workers: int
    connections: int
    duration_s: float
    requests: int
    requests_per_s: float
    latency_ms: dict[str, float]
    non_2xx: int
    socket_errors: int
    statuses: dict[str, int]
    rss_mb: list[float]
    server_cpu_ms_per_request: float
    probe: dict[str, Any] | None = None
    rss_peak_mb: list[float] = field(default_factory=list)  # VmHWM
    pool_size: int | None = None  # one-use requests made for the run (pooled scenarios)
    notes: list[str] = field(default_factory=list)


def wrk_threads(connections: int) -> int:
    return max(1, min(connections, cores()))


def wrk_command(
    url: str, script: str, args: list[str], connections: int, duration: float
) -> list[str]:
    return [
        "wrk",
        f"--threads={wrk_threads(connections)}",
        f"--connections={connections}",
        f"--duration={duration:g}s",
        "--timeout=30s",
        f"--script={LUA_DIR / script}",
        url,
        "--",
        *args,
    ]


def parse_wrk(output: str) -> dict[str, Any]:
    for line in output.splitlines():
        if line.startswith("BENCH_JSON "):
            parsed: dict[str, Any] = json.loads(line.removeprefix("BENCH_JSON "))
            return parsed
    raise SystemExit(f"wrk printed no summary:\n{output}")


def start_wrk(command: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "BENCH_LUA_DIR": str(LUA_DIR)},
    )


def finish_wrk(process: subprocess.Popen[str]) -> dict[str, Any]:
    output, _ = process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"wrk failed ({process.returncode}):\n{output}")
    return parse_wrk(output)


def latency_ms(summary: dict[str, Any]) -> dict[str, float]:
    latency = summary["latency_us"]
    values = {f"p{p}": latency["percentiles"][p] / 1000 for p in PERCENTILES}
    values["max"] = latency["max"] / 1000
    return {k: round(v, 2) for k, v in values.items()}


def statuses_logged(log_path: Path, offset: int) -> Counter[str]:
    """Status codes of the requests the service logged since `offset` (not /health/*)."""
    return Counter(
        str(entry["status_code"])
        for entry in pools.logged_requests(log_path, offset)
        if "status_code" in entry
    )


def run_scenario(server: Server, scenario: Scenario, connections: int, duration: float) -> Result:
    offset = server.log_path.stat().st_size
    cpu_before = server.cpu_seconds()
    load = start_wrk(wrk_command(server.url, scenario.script, scenario.args, connections, duration))
    probe = None
    if scenario.probe:
        probe = start_wrk(
            wrk_command(server.url, "live.lua", [str(PROBE_PAUSE_MS)], PROBE_CONNECTIONS, duration)
        )
    summary = finish_wrk(load)
    probe_summary = finish_wrk(probe) if probe is not None else None
    cpu_at_deadline = server.cpu_seconds() - cpu_before
    server.wait_idle()
    cpu_used = server.cpu_seconds() - cpu_before
    probe_result = None
    if probe_summary is not None:
        probe_result = {
            "requests": probe_summary["requests"],
            "latency_ms": latency_ms(probe_summary),
            "non_2xx": probe_summary["errors"]["status"],
        }
    seconds = summary["duration_us"] / 1e6
    errors = summary["errors"]
    statuses = statuses_logged(server.log_path, offset)
    # CPU per request over everything the server did, including what wrk left in flight.
    served = sum(statuses.values())
    if not served:
        # Nothing logged (/health/live, the peer): wrk's completed requests, and the CPU up
        # to wrk's deadline. Charging them what the server finished after it as well (up to
        # one queued login per connection) would inflate a 3 s login run by a third.
        served, cpu_used = summary["requests"], cpu_at_deadline
    return Result(
        name=scenario.name,
        workers=server.workers,
        connections=connections,
        duration_s=round(seconds, 2),
        requests=summary["requests"],
        requests_per_s=round(summary["requests"] / seconds, 1),
        latency_ms=latency_ms(summary),
        # wrk counts the answers before its deadline; the log also has those after it
        # (a request that waited out a timeout answers its 503 when wrk has stopped).
        non_2xx=max(errors["status"], sum(n for s, n in statuses.items() if int(s) >= 400)),
        socket_errors=errors["connect"] + errors["read"] + errors["write"] + errors["timeout"],
        statuses=dict(sorted(statuses.items())),
        rss_mb=server.rss_mb(),
        rss_peak_mb=server.rss_mb("VmHWM"),
        server_cpu_ms_per_request=round(cpu_used * 1000 / max(served, 1), 3),
        probe=probe_result,
    )


# --------------------------------------------------------------------------- one run


def run_workers(
    options: argparse.Namespace, workers: int, hashing: dict[str, Any], base_env: dict[str, str]
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="authsvc-bench-") as tmp:
        workdir = Path(tmp)
        env = dict(base_env)
        if workers > 1 and not options.redis_url:
            # serve refuses several production workers without Redis (each would throttle on
            # its own counters). ENVIRONMENT changes nothing else, so say so and go on.
            say(
                f"workers={workers} without --redis-url: ENVIRONMENT=development for this run"
                " (production refuses per-worker throttling counters)"
            )
            env["ENVIRONMENT"] = "development"
        env["DATABASE_URL"] = prepare_database(options.database_url, workdir, env)
        server = Server(workers=workers, env=env, log_path=workdir / "server.log")
        say(f"workers={workers}: starting {server.url}")
        server.start()
        try:
            run_id = secrets.token_hex(3)
            users = asyncio.run(
                register_users(server.url, options.users, f"b{run_id}", concurrency=2 * cores())
            )
            server.wait_idle()
            data = workdir / "users.tsv"
            data.write_text("\n".join(users) + "\n")
            # The pooled scenarios' setup (a client, browser sessions, passkeys), once.
            code = code_pool(server, users) if "code" in options.scenarios else None
            passkey = passkey_pool(server, users) if "passkey" in options.scenarios else None
            server.wait_idle()
            scenarios = [
                Scenario("live", "live.lua", []),
                Scenario("me", "me.lua", [str(data)]),
                Scenario("refresh", "refresh.lua", [str(data)]),
                Scenario("code", "code.lua", [], pool=code),
                Scenario("login", "login.lua", [str(data)]),
                Scenario("login+probe", "login.lua", [str(data)], probe=True),
                Scenario("passkey-options", "passkey_options.lua", []),
                Scenario("passkey", "passkey.lua", [], pool=passkey),
                Scenario("register", "register.lua", [f"r{run_id}", PASSWORD]),
                Scenario("mixed", "mixed.lua", [str(data)]),
                Scenario("mixed (again)", "mixed.lua", [str(data)]),
            ]
            results = drive(server, scenarios, options, f"workers={workers}")
        finally:
            server.stop()
            if options.keep_logs:
                kept = RESULTS_DIR / f"server-{workers}w.log"
                shutil.copy(server.log_path, kept)
                say(f"server log kept: {kept}")
    return {
        "workers": workers,
        "environment": env["ENVIRONMENT"],
        "users": options.users,
        "scenarios": [asdict(r) for r in results],
        "targets": targets(results, hashing),
    }


def drive(
    server: Server, scenarios: list[Scenario], options: argparse.Namespace, label: str
) -> list[Result]:
    """Run the scenarios that `--scenarios` selects, one after the other."""
    results = []
    for scenario in scenarios:
        if scenario.name.split(" ")[0] not in options.scenarios:
            continue
        duration, pool_size = options.duration, None
        notes: list[str] = []
        if scenario.pool is not None:
            try:
                scenario, duration, notes, pool_size = fill_pool(server, scenario, options)
            except pools.SetupError as error:
                # The service refused what the pool needs (e.g. 503s): no figure, and
                # the run goes on with the next scenario.
                say(f"{label}: {scenario.name} skipped, its pool could not be made: {error}")
                server.wait_idle()
                continue
        say(f"{label}: {scenario.name} for {duration:g}s")
        result = run_scenario(server, scenario, options.connections, duration)
        if pool_size is not None:
            result.pool_size = pool_size
            if sum(result.statuses.values()) >= pool_size:
                # wrk's threads stopped once their share was used (nothing is reused), but
                # wrk still divides by the whole duration: the rate is understated.
                notes.append(
                    f"the pool of {pool_size} ran out before the end: req/s is understated"
                )
                say(f"  warning: {notes[-1]}")
        result.notes = notes
        results.append(result)
        say(
            f"  {result.requests_per_s:.1f} req/s, p99 {result.latency_ms['p99']} ms,"
            f" non-2xx {result.non_2xx}, RSS {result.rss_mb} MB"
        )
    return results


def fill_pool(
    server: Server, scenario: Scenario, options: argparse.Namespace
) -> tuple[Scenario, float, list[str], int]:
    """The scenario with its pool written, the duration it can run, its notes, the pool's
    size. A short calibration run on a small pool gives the rate (from the service's log:
    wrk's own figure counts the time its threads idle once their share is used), and the
    pool holds that rate x POOL_HEADROOM for the whole run. Nothing may wait past its
    lifetime: neither the making (the oldest is sent first) nor the run (the newest is sent
    last) may take longer than the lifetime less POOL_LIFETIME_MARGIN_S."""
    pool = scenario.pool
    assert pool is not None
    connections, threads = options.connections, wrk_threads(options.connections)
    budget = pool.lifetime_s - POOL_LIFETIME_MARGIN_S
    duration = min(options.duration, budget)  # whole seconds: wrk's --duration
    notes = list(pool.notes)
    if duration < options.duration:
        notes.append(
            f"duration capped at {duration:g}s (not {options.duration:g}s): what it sends"
            f" lives {pool.lifetime_s:g}s and the last one is sent at the end of the run"
        )
    path = server.log_path.parent / f"pool-{scenario.script}.tsv"

    path.write_text("\n".join(pool.make(CALIBRATION_PER_CONNECTION * connections, budget)))
    offset = server.log_path.stat().st_size
    command = wrk_command(
        server.url, scenario.script, pool.args(path, threads), connections, CALIBRATION_S
    )
    finish_wrk(start_wrk(command))
    server.wait_idle()
    calibrated, span = pools.log_time_span(server.log_path, offset, pool.route)
    rate = calibrated / span if span > 0 else 200.0 * server.workers
    wanted = math.ceil(rate * duration * POOL_HEADROOM) + connections

    started = time.monotonic()
    lines = pool.make(wanted, budget)
    making = time.monotonic() - started
    say(
        f"{scenario.name}: calibrated at {rate:.0f}/s; made {len(lines)} one-use requests"
        f" in {making:.1f}s"
    )
    if len(lines) < wanted:  # the making ran out of time: a shorter run, still in time
        duration = max(1.0, min(duration, (len(lines) - connections) // (rate * POOL_HEADROOM)))
        notes.append(
            f"duration cut to {duration:g}s: {len(lines)} made within {budget:g}s"
            f" of their {pool.lifetime_s:g}s lifetime"
        )
    notes.append(
        f"pool: {len(lines)} made in {making:.1f}s (calibrated at {rate:.0f}/s x"
        f" {POOL_HEADROOM:g}), each sent once"
    )
    path.write_text("\n".join(lines) + "\n")
    server.wait_idle()
    filled = Scenario(
        scenario.name, scenario.script, pool.args(path, threads), scenario.should_succeed
    )
    return filled, duration, notes, len(lines)


def code_pool(server: Server, users: list[str]) -> Pool:
    """The code exchange's pool: a confidential client, a browser session per account
    (consented once), and codes minted from them."""
    app = pools.create_client(BIN / "authsvc", server.env, server.log_path.parent)
    minter = pools.CodeMinter(server.url, app)
    emails = [line.split("\t")[0] for line in users]
    asyncio.run(minter.sign_in(emails, PASSWORD, concurrency=2 * cores()))

    def make(count: int, deadline_s: float) -> list[str]:
        return asyncio.run(minter.pool(count, concurrency=MINT_CONCURRENCY, deadline_s=deadline_s))

    # Every worker's first exchange, one at a time (see pools.exchange_one_by_one): a few
    # per worker, since which worker accepts a connection is up to the kernel.
    asyncio.run(pools.exchange_one_by_one(server.url, app, make(8 * server.workers, 60)))
    return Pool(
        route="/auth/token",
        lifetime_s=CODE_LIFETIME_S,
        make=make,
        args=lambda path, threads: [str(path), str(threads), app.basic(), pools.REDIRECT_URI],
        notes=[
            "client: confidential, client_secret_basic, with PKCE S256 (required of every"
            " client): a server-side web application, the usual OpenID Connect client. Its"
            " secret check is one SHA-256 beside the client look-up a public client needs"
            " too, so a public client's exchange costs the same",
            "warm-up, not measured: a few codes exchanged one at a time first, so that each"
            " worker has opened its ID-token key ring",
        ],
    )


def passkey_pool(server: Server, users: list[str]) -> Pool:
    """The passkey sign-in's pool: a synced passkey per account, then one assertion per
    request, each answering a challenge of its own (bench/pools.py says why synced)."""
    minter = pools.PasskeyMinter(server.url, passkey_origin(server.env))
    tokens = [line.split("\t")[2] for line in users]
    asyncio.run(minter.register(tokens, PASSWORD, concurrency=2 * cores()))

    def make(count: int, deadline_s: float) -> list[str]:
        return asyncio.run(minter.pool(count, concurrency=MINT_CONCURRENCY, deadline_s=deadline_s))

    return Pool(
        route="/auth/passkey",
        lifetime_s=CHALLENGE_LIFETIME_S,
        make=make,
        args=lambda path, threads: [str(path), str(threads)],
        notes=[
            "synced passkeys (backup eligible, backed up): their counter stays 0, so"
            " assertions made in advance are valid in any order; a device-bound one"
            " must show a growing counter, an order wrk's connections do not keep"
        ],
    )


def passkey_origin(env: dict[str, str]) -> str:
    """The origin whose ceremonies the service accepts: PUBLIC_URL's (WEBAUTHN_ORIGINS is
    not set). Its host must be a name: passkeys are off on an IP address."""
    parts = urlsplit(env["PUBLIC_URL"])
    return f"{parts.scheme}://{parts.netloc}"


def passkey_signin(results: dict[str, Result]) -> tuple[float, float] | None:
    """(2xx/s, server CPU ms) of a whole passkey sign-in, its options request then its
    finish, from the two scenarios: the time of one is the sum of the times of both."""
    options, finish = results.get("passkey-options"), results.get("passkey")
    if options is None or finish is None:
        return None
    rates = successes_per_s(options), successes_per_s(finish)
    per_s = 1 / sum(1 / r for r in rates) if all(rates) else 0.0
    cpu = options.server_cpu_ms_per_request + finish.server_cpu_ms_per_request
    return per_s, cpu


def pooled_goals(results: dict[str, Result]) -> list[tuple[str, float | None, float]]:
    """(figure, value, bound) of the goals of the code and passkey scenarios: a passkey
    sign-in against a login (at least), a code exchange's CPU against a refresh's (at
    most). None when a scenario it needs did not run."""
    signin, login = passkey_signin(results), results.get("login")
    code, refresh = results.get("code"), results.get("refresh")
    return [
        (
            "passkey sign-in (options + finish) 2xx/s ÷ login 2xx/s",
            signin[0] / successes_per_s(login) if signin and login else None,
            PASSKEY_OVER_LOGIN,
        ),
        (
            "code-exchange server CPU ms/req - (refresh's + 1 ms)",
            code.server_cpu_ms_per_request
            - (refresh.server_cpu_ms_per_request + CODE_CPU_OVER_REFRESH_MS)
            if code and refresh
            else None,
            0.0,
        ),
    ]


def targets(results: list[Result], hashing: dict[str, Any]) -> list[dict[str, Any]]:
    """The figures of the targets for one run; `met` is None when not measured."""
    by_name = {r.name: r for r in results}
    limit = hashing["parallel"]["per_s"]
    checks: list[dict[str, Any]] = []

    def check(name: str, value: float | None, bound: float, at_least: bool, unit: str) -> None:
        met = None if value is None else (value >= bound if at_least else value <= bound)
        checks.append(
            {
                "target": name,
                "value": None if value is None else round(value, 3),
                "bound": (">= " if at_least else "<= ") + f"{bound:g}{unit}",
                "met": met,
            }
        )

    for name, fraction in (
        ("login", LOGIN_FRACTION_OF_LIMIT),
        ("register", REGISTER_FRACTION_OF_LIMIT),
    ):
        result = by_name.get(name)
        check(
            f"{name} throughput / hashes per s with every core hashing",
            result.requests_per_s / limit if result else None,
            fraction,
            True,
            "",
        )
        # The same target in CPU time, which other load on the machine does not distort:
        # the share of the server's CPU per request that is the one hash.
        cpu = result.server_cpu_ms_per_request if result else 0
        check(
            f"{name}: hash CPU / server CPU per request",
            hashing["median_cpu_ms"] / cpu if cpu else None,
            LOGIN_FRACTION_OF_LIMIT,
            True,
            "",
        )
    me, live = by_name.get("me"), by_name.get("live")
    check(
        "/users/me throughput / /health/live throughput",
        me.requests_per_s / live.requests_per_s if me and live else None,
        ME_FRACTION_OF_LIVE,
        True,
        "",
    )
    probed = by_name.get("login+probe")
    check(
        "/health/live p99 under login load",
        probed.probe["latency_ms"]["p99"] if probed and probed.probe else None,
        LIVE_P99_UNDER_LOGIN_MS,
        False,
        " ms",
    )
    for figure, value, bound in pooled_goals(by_name):
        check(figure, value, bound, figure.startswith("passkey"), "")
    last = results[-1] if results else None
    check(
        "RSS per worker after the run",
        max(last.rss_mb) if last and last.rss_mb else None,
        RSS_LIMIT_MB,
        False,
        " MB",
    )
    first, again = by_name.get("mixed"), by_name.get("mixed (again)")
    growth = None
    if first and again and first.rss_mb and again.rss_mb:
        growth = max(
            b - a for a, b in zip(sorted(first.rss_mb), sorted(again.rss_mb), strict=False)
        )
    check("RSS growth, mixed then mixed again", growth, RSS_GROWTH_TOLERANCE_MB, False, " MB")
    failures = sum(r.non_2xx + r.socket_errors for r in results)
    probe_failures = sum(r.probe["non_2xx"] for r in results if r.probe)
    check("non-2xx answers and socket errors", failures + probe_failures, 0, False, "")
    return checks


# --------------------------------------------------------------------------- the peer


def main_checkout_peer() -> Path | None:
    """The peer's folder shared/peer beside the main checkout (also from a worktree)."""
    common = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--path-format=absolute", "--git-common-dir"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    peer = Path(common).parent.parent / "shared" / "peer" if common else None
    return peer if peer is not None and peer.is_dir() else None


def peer_venv(requirements: Path, venv: Path = PEER_VENV) -> Path:
    """The interpreter of a venv holding `requirements`, created again when they change."""
    python = venv / "bin" / "python"
    installed = venv / "bench-requirements.txt"
    wanted = requirements.read_bytes()
    if python.exists() and installed.exists() and installed.read_bytes() == wanted:
        return python
    say(f"creating the peer's venv {venv} from {requirements}")
    shutil.rmtree(venv, ignore_errors=True)  # an updated venv would keep dropped packages
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "-r", str(requirements)], check=True
    )
    installed.write_bytes(wanted)  # last, so that an interrupted install is done again
    return python


async def register_peer_users(
    base_url: str, count: int, prefix: str, concurrency: int
) -> list[str]:
    """Register `count` accounts on the peer and log each in: email, password, access token.

    The first columns of register_users' lines, so me.lua sends both servers the same request.
    """
    lines: list[str] = []
    semaphore = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:

        async def one(n: int) -> None:
            email = f"{prefix}u{n}@bench.example.com"
            async with semaphore:
                for _ in range(3):
                    response = await client.post(
                        "/auth/register", json={"email": email, "password": PASSWORD}
                    )
                    if response.status_code < 500:
                        break
                    # SQLite's "database is locked" under concurrent writers; the INSERT was
                    # rolled back, so the same account can be registered again.
                    say(f"peer setup: register answered {response.status_code}, once more")
                if response.status_code != 201:
                    raise SystemExit(
                        f"peer setup: register answered {response.status_code}: {response.text}"
                    )
                response = await client.post(
                    "/auth/jwt/login", data={"username": email, "password": PASSWORD}
                )
            if response.status_code != 200:
                raise SystemExit(
                    f"peer setup: login answered {response.status_code}: {response.text}"
                )
            lines.append("\t".join((email, PASSWORD, response.json()["access_token"])))

        await asyncio.gather(*(one(n) for n in range(count)))
    return lines


def run_peer(options: argparse.Namespace, python: Path) -> dict[str, Any]:
    """The peer's scenarios (it has no /health/live and no refresh token) with one worker."""
    peer_dir: Path = options.peer
    with tempfile.TemporaryDirectory(prefix="authsvc-bench-peer-") as tmp:
        workdir = Path(tmp)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "JWT_"))}
        env.update(
            DATABASE_URL=f"sqlite+aiosqlite:///{workdir / 'peer.db'}",
            JWT_SECRET=secrets.token_urlsafe(32),
            PYTHONDONTWRITEBYTECODE="1",  # the peer's folder is shared: leave no __pycache__
        )
        port = free_port()
        server = Server(
            workers=1,
            env=env,
            log_path=workdir / "peer.log",
            port=port,
            command=[
                *(str(python), "-m", "uvicorn", "fastapi_users_app:app"),
                *("--host", "127.0.0.1", "--port", str(port)),
                *("--workers", "1", "--log-level", "warning"),
            ],
            cwd=peer_dir,
            ready_path="/openapi.json",
        )
        say(f"peer: starting {peer_dir} on {server.url}")
        server.start()
        try:
            run_id = secrets.token_hex(3)
            users = asyncio.run(
                register_peer_users(
                    server.url, options.users, f"p{run_id}", concurrency=2 * cores()
                )
            )
            server.wait_idle()
            data = workdir / "users.tsv"
            data.write_text("\n".join(users) + "\n")
            scenarios = [
                Scenario("me", "me.lua", [str(data)]),
                Scenario("login", "peer_login.lua", [str(data)]),
                Scenario("register", "peer_register.lua", [f"r{run_id}", PASSWORD]),
            ]
            results = drive(server, scenarios, options, "peer")
        finally:
            server.stop()
            if options.keep_logs:
                kept = RESULTS_DIR / "server-peer.log"
                shutil.copy(server.log_path, kept)
                say(f"peer log kept: {kept}")
    return {
        "path": str(peer_dir),
        "python": str(python),
        "requirements_sha256": hashlib.sha256(
            (peer_dir / "requirements.txt").read_bytes()
        ).hexdigest(),
        "workers": 1,
        "users": options.users,
        "scenarios": [asdict(r) for r in results],
    }


def successes_per_s(result: Result) -> float:
    """2xx (and 3xx) answers per second: wrk counts a status >= 400 as an error."""
    return (result.requests - result.non_2xx) / result.duration_s


def peer_ratios(
    ours: list[Result], peer: list[Result], hashing: dict[str, Any]
) -> list[dict[str, Any]]:
    """The goals' figures from our run and the peer's, one worker each, in the same run.

    `met` is None when a figure was not measured; rows whose `goal` is None inform only.
    """
    mine, theirs = {r.name: r for r in ours}, {r.name: r for r in peer}
    rows: list[dict[str, Any]] = []

    def row(figure: str, value: float | None, goal: str | None, met: bool | None) -> None:
        rows.append(
            {
                "figure": figure,
                "value": None if value is None else round(value, 3),
                "goal": goal,
                "met": None if value is None or goal is None else met,
            }
        )

    def rate(results: dict[str, Result], name: str) -> float | None:
        return successes_per_s(results[name]) if name in results else None

    def over(value: float | None, by: float | None) -> float | None:
        return value / by if value is not None and by else None

    def at_least(figure: str, value: float | None, bound: float) -> None:
        row(figure, value, f">= {bound:g}", value is not None and value >= bound)

    def at_most(figure: str, value: float | None, bound: float, unit: str = "") -> None:
        row(figure, value, f"<= {bound:g}{unit}", value is not None and value <= bound)

    def cpu(results: dict[str, Result], name: str) -> float | None:
        return results[name].server_cpu_ms_per_request if name in results else None

    peer_me, parallel = rate(theirs, "me"), hashing["parallel"]
    at_least("/users/me 2xx/s, ours ÷ peer", over(rate(mine, "me"), peer_me), ME_OVER_PEER_ME)
    at_least(
        "/auth/refresh 2xx/s ÷ the peer's /users/me",
        over(rate(mine, "refresh"), peer_me),
        REFRESH_OVER_PEER_ME,
    )
    at_most("/auth/refresh server CPU, ms/req", cpu(mine, "refresh"), REFRESH_CPU_MS, " ms")
    # The limit: what the cores sustain with all of them hashing at once (the hashes slow
    # each other down: shared cache and memory bandwidth).
    for name, fraction in (
        ("login", LOGIN_FRACTION_OF_LIMIT),
        ("register", REGISTER_FRACTION_OF_LIMIT),
    ):
        at_least(
            f"{name} 2xx/s ÷ hashes/s with {parallel['threads']} threads hashing",
            over(rate(mine, name), parallel["per_s"]),
            fraction,
        )
    for name in ("login", "register"):
        # For information: against each core at its one-thread speed (cores ÷ one hash).
        row(
            f"{name} 2xx/s ÷ hashing limit (cores ÷ one hash)",
            over(rate(mine, name), hashing["limit_per_s"]),
            None,
            None,
        )

    # What a login costs besides its one hash (the same argon2id parameters on both sides).
    def beside_hash(results: dict[str, Result]) -> float | None:
        login = results.get("login")
        return login.server_cpu_ms_per_request - hashing["median_cpu_ms"] if login else None

    ours_beside, peer_beside = beside_hash(mine), beside_hash(theirs)
    row(
        "login CPU beside the hash, ms/req: ours",
        ours_beside,
        "<= the peer's" if peer_beside is None else f"<= {peer_beside:.3g} (the peer's)",
        ours_beside is not None and peer_beside is not None and ours_beside <= peer_beside,
    )
    row("login CPU beside the hash, ms/req: the peer's", peer_beside, None, None)
    if "login" in mine:
        # The peer hashes on its event loop, one at a time: its hash runs at one-thread
        # speed. Ours run on every core at once, and each then costs more CPU.
        row(
            "login CPU beside the hash, ms/req: ours, against a hash with all cores hashing",
            mine["login"].server_cpu_ms_per_request - parallel["median_cpu_ms"],
            None,
            None,
        )
    signin = passkey_signin(mine)
    login = rate(mine, "login")
    at_least(
        "passkey sign-in 2xx/s (options + finish) ÷ login 2xx/s",
        over(signin[0], login) if signin else None,
        PASSKEY_OVER_LOGIN,
    )
    row("passkey finish alone 2xx/s ÷ login 2xx/s", over(rate(mine, "passkey"), login), None, None)
    row(
        "passkey sign-in server CPU ms (options + finish)",
        signin[1] if signin else None,
        None,
        None,
    )
    code, refresh = cpu(mine, "code"), cpu(mine, "refresh")
    row(
        "code-exchange server CPU, ms/req",
        code,
        "<= refresh's + 1 ms"
        if refresh is None
        else f"<= {refresh + CODE_CPU_OVER_REFRESH_MS:.3g} (refresh's + 1 ms)",
        code is not None and refresh is not None and code <= refresh + CODE_CPU_OVER_REFRESH_MS,
    )
    mixed = [m for r in ours if r.name.startswith("mixed") for m in r.rss_mb]
    rss = max(mixed) if mixed else None
    row(
        "RSS per worker after the mixed scenario, MB",
        rss,
        f"<= {RSS_LIMIT_MB:g}",
        rss is not None and rss <= RSS_LIMIT_MB,
    )
    peaks = [m for r in ours for m in r.rss_peak_mb]
    row("peak RSS per worker over the run (VmHWM), MB", max(peaks) if peaks else None, None, None)

    def failures(results: list[Result]) -> int | None:
        if not results:
            return None
        probes = sum(int(r.probe["non_2xx"]) for r in results if r.probe)
        return sum(r.non_2xx + r.socket_errors for r in results) + probes

    ours_failed = failures(ours)
    row("non-2xx and socket errors, ours", ours_failed, "0", ours_failed == 0)
    row("non-2xx and socket errors, the peer's", failures(peer), None, None)
    return rows


# --------------------------------------------------------------------------- reporting


def table(run: dict[str, Any]) -> str:
    header = (
        "| scenario | workers | conns | req/s | p50 ms | p99 ms | non-2xx | RSS/worker MB "
        "| server CPU ms/req |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    )
    rows = [header]
    for s in run["scenarios"]:
        rss = ", ".join(f"{m:.0f}" for m in s["rss_mb"])
        rows.append(
            f"| {s['name']} | {s['workers']} | {s['connections']} | {s['requests_per_s']:.1f} "
            f"| {s['latency_ms']['p50']:.1f} | {s['latency_ms']['p99']:.1f} "
            f"| {s['non_2xx'] + s['socket_errors']} | {rss} "
            f"| {s['server_cpu_ms_per_request']:.2f} |"
        )
        if s["probe"]:
            p = s["probe"]
            rows.append(
                f"| ↳ /health/live probe | | {PROBE_CONNECTIONS} | "
                f"{p['requests'] / s['duration_s']:.1f} | {p['latency_ms']['p50']:.1f} "
                f"| {p['latency_ms']['p99']:.1f} | {p['non_2xx']} | | |"
            )
    notes = [f"- {s['name']}: {n}" for s in run["scenarios"] for n in s.get("notes", [])]
    signin = passkey_signin({s["name"]: Result(**s) for s in run["scenarios"]})
    if signin is not None:
        notes.append(
            f"- a whole passkey sign-in (options + finish): {signin[0]:.1f}/s,"
            f" {signin[1]:.2f} ms of server CPU"
        )
    return "\n".join(rows + (["", *notes] if notes else []))


def token_costs_table(costs: list[dict[str, Any]]) -> str:
    rows = [
        "| JWT_ALGORITHM | sign µs | verify µs | per login µs (2 signs) | per /users/me µs "
        "| access token bytes |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for c in costs:
        rows.append(
            f"| {c['algorithm']} | {c['sign_us']} | {c['verify_us']} | {c['per_login_us']} "
            f"| {c['per_me_us']} | {c['token_bytes']} |"
        )
    return "\n".join(rows)


def targets_table(run: dict[str, Any]) -> str:
    rows = ["| target | measured | bound | met |", "|---|---:|---|---|"]
    for t in run["targets"]:
        met = {True: "yes", False: "**no**", None: "not measured"}[t["met"]]
        value = "-" if t["value"] is None else f"{t['value']:g}"
        rows.append(f"| {t['target']} | {value} | {t['bound']} | {met} |")
    return "\n".join(rows)


def ratios_table(ratios: list[dict[str, Any]]) -> str:
    rows = ["| figure | value | goal | met |", "|---|---:|---|---|"]
    for r in ratios:
        value = "-" if r["value"] is None else f"{r['value']:g}"
        if r["goal"] is None:
            goal, met = "(for information)", ""
        else:
            goal = r["goal"]
            met = {True: "yes", False: "**no**", None: "not measured"}[r["met"]]
        rows.append(f"| {r['figure']} | {value} | {goal} | {met} |")
    return "\n".join(rows)


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [(f"{run['workers']} worker(s)", run) for run in report["runs"]]
    if "peer" in report:
        runs.append(("the peer (fastapi-users), 1 worker", report["peer"]))
    figure, axes = plt.subplots(1, len(runs), figsize=(6.5 * len(runs), 4.8), squeeze=False)
    for axis, (title, run) in zip(axes[0], runs, strict=True):
        for s in run["scenarios"]:
            values = [max(s["latency_ms"][f"p{p}"], 0.01) for p in PERCENTILES]
            axis.plot(
                PERCENTILES, values, marker="o", label=f"{s['name']} ({s['requests_per_s']:.0f}/s)"
            )
            if s["probe"]:
                probe = [max(s["probe"]["latency_ms"][f"p{p}"], 0.01) for p in PERCENTILES]
                axis.plot(
                    PERCENTILES, probe, marker="x", linestyle="--", label="/health/live under login"
                )
        axis.axhline(LIVE_P99_UNDER_LOGIN_MS, color="grey", linewidth=0.8, linestyle=":")
        axis.set_yscale("log")
        axis.set_xlabel("percentile")
        axis.set_ylabel("latency (ms, log scale)")
        axis.set_title(f"{title}, {report['config']['connections']} connections")
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=7)
    machine = report["machine"]
    figure.suptitle(
        f"authsvc latency per scenario — {machine['cpu']}, {machine['cores']} cores; "
        f"hashing limit {report['hashing']['limit_per_s']:.0f} logins/s",
        fontsize=9,
    )
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per scenario (20)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (32)")
    parser.add_argument(
        "--workers",
        help="comma-separated worker counts, one full run each (default: 1 and the core count;"
        " 1 with --peer)",
    )
    parser.add_argument(
        "--users", type=int, default=256, help="accounts registered for the run (256)"
    )
    parser.add_argument(
        "--scenarios",
        default="live,me,refresh,code,login,login+probe,passkey-options,passkey,register,mixed",
        help="comma-separated subset of the scenarios (all)",
    )
    parser.add_argument(
        "--database-url",
        help="PostgreSQL URL (postgresql+asyncpg://...), needs --wipe-database (default: SQLite)",
    )
    parser.add_argument(
        "--wipe-database",
        action="store_true",
        help="allow emptying --database-url (DROP SCHEMA public CASCADE) before each run",
    )
    parser.add_argument("--redis-url", help="REDIS_URL for the service (default: unset)")
    parser.add_argument(
        "--jwt-algorithm",
        default="HS256",
        choices=["HS256", "HS384", "HS512", "EdDSA", "ES256", "RS256"],
        help="JWT_ALGORITHM of the service (HS256); its token costs are measured beside HS256",
    )
    parser.add_argument(
        "--hash-samples", type=int, default=21, help="hashes timed for the limit (21)"
    )
    parser.add_argument(
        "--keep-logs", action="store_true", help="copy the server logs to bench/results/"
    )
    parser.add_argument(
        "--peer",
        nargs="?",
        const=DEFAULT_PEER,
        type=Path,
        metavar="PATH",
        help="then run the fastapi-users peer of PATH the same way and print"
        " the ratios of the goals against it (one worker each)",
    )
    parser.add_argument(
        "--peer-python",
        type=Path,
        metavar="PATH",
        help="the peer's interpreter (default: bench/.peer-venv, made from the peer's"
        " requirements.txt when missing or when they changed)",
    )
    options = parser.parse_args(argv)
    options.scenarios = {s.strip() for s in options.scenarios.split(",") if s.strip()}
    if options.workers is None:
        options.workers = "1" if options.peer else ",".join(sorted({"1", str(cores())}))
    options.worker_counts = [int(w) for w in options.workers.split(",") if w.strip()]
    if options.peer:
        if options.peer == DEFAULT_PEER and not DEFAULT_PEER.is_dir():
            options.peer = main_checkout_peer() or DEFAULT_PEER
        options.peer = options.peer.resolve()
        if not (options.peer / "fastapi_users_app.py").is_file():
            parser.error(f"--peer: no fastapi_users_app.py in {options.peer}")
        if 1 not in options.worker_counts:
            parser.error("--peer compares one worker with one: --workers must include 1")
    elif options.peer_python:
        parser.error("--peer-python goes with --peer")
    if options.database_url and not options.wipe_database:
        parser.error("--database-url empties that database first: add --wipe-database to confirm")
    if options.connections < 1 or options.duration <= 0 or options.users < 1:
        parser.error("--connections, --duration and --users must be positive")
    return options


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    if shutil.which("wrk") is None:
        say("wrk is not installed: `apt-get install wrk` (make bench does it when it can)")
        return 2
    RESULTS_DIR.mkdir(exist_ok=True)
    # Before any measurement: a first run installs the peer's packages.
    peer_python = None
    if options.peer:
        peer_python = options.peer_python or peer_venv(options.peer / "requirements.txt")
    machine = machine_info()
    if machine["load_average_at_start"][0] > 0.5 * machine["cores"]:
        say(
            f"warning: load average {machine['load_average_at_start'][0]:.1f} on "
            f"{machine['cores']} cores: another load shares the CPU, figures will be noisy"
        )
    base_env = server_environment(options)
    hashing = hashing_limit(base_env, options.hash_samples)
    say(
        f"hashing limit: {hashing['scheme']} {hashing['parameters']}: median "
        f"{hashing['median_ms']} ms x {hashing['cores']} cores -> {hashing['limit_per_s']} logins/s"
        f" (all cores at once: {hashing['parallel']['per_s']}/s)"
    )
    costs = [token_costs(a) for a in dict.fromkeys(["HS256", options.jwt_algorithm])]
    for cost in costs:
        say(
            f"tokens {cost['algorithm']}: sign {cost['sign_us']} us, verify {cost['verify_us']}"
            f" us CPU -> {cost['per_login_us']} us per login, {cost['per_me_us']} us per /users/me"
        )
    report: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine,
        "config": {
            "duration_s": options.duration,
            "connections": options.connections,
            "users": options.users,
            "database": "postgresql" if options.database_url else "sqlite (temporary file)",
            "redis": bool(options.redis_url),
            "environment": BENCH_ENVIRONMENT,
            "jwt_algorithm": options.jwt_algorithm,
            "peer": str(options.peer) if options.peer else None,
        },
        "hashing": hashing,
        "token_costs": costs,
        "runs": [],
    }
    for workers in options.worker_counts:
        report["runs"].append(run_workers(options, workers, hashing, base_env))
    if peer_python is not None:
        peer = run_peer(options, peer_python)
        ours = next(run for run in report["runs"] if run["workers"] == 1)
        peer["ratios"] = peer_ratios(results_of(ours), results_of(peer), hashing)
        report["peer"] = peer
    report["machine"]["load_average_at_end"] = list(os.getloadavg())

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    json_path = RESULTS_DIR / f"{stamp}.json"
    png_path = RESULTS_DIR / f"{stamp}.png"
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    plot(report, png_path)
    shutil.copy(json_path, RESULTS_DIR / "latest.json")
    shutil.copy(png_path, RESULTS_DIR / "latest.png")

    print(
        f"\n{machine['cpu']}, {machine['cores']} cores, {machine['memory_gb']} GB; "
        f"{report['config']['database']}; {options.duration:g}s per scenario, "
        f"{options.connections} connections\n"
        f"hashing limit: {hashing['median_ms']} ms per hash ({hashing['scheme']}) "
        f"-> {hashing['limit_per_s']} logins/s; with {hashing['parallel']['threads']} threads "
        f"hashing at once: {hashing['parallel']['per_s']} hashes/s, "
        f"{hashing['parallel']['median_cpu_ms']} ms CPU each\n"
    )
    print(token_costs_table(costs) + "\n")
    for run in report["runs"]:
        print(table(run) + "\n")
        print(targets_table(run) + "\n")
    if len(report["runs"]) > 1:
        print(scaling_table(report["runs"]) + "\n")
    if "peer" in report:
        print(f"the peer: {report['peer']['path']}, 1 worker\n")
        print(table(report["peer"]) + "\n")
        print("ratios against the peer, one worker each:\n")
        print(ratios_table(report["peer"]["ratios"]) + "\n")
    print(f"results: {json_path}\nplot:    {png_path}")
    return 0


def results_of(run: dict[str, Any]) -> list[Result]:
    return [Result(**s) for s in run["scenarios"]]


def scaling_table(runs: list[dict[str, Any]]) -> str:
    """Throughput of each scenario per worker count, relative to the first run."""
    names = [s["name"] for s in runs[0]["scenarios"]]
    header = "| scenario | " + " | ".join(f"{r['workers']} worker(s) req/s" for r in runs) + " |"
    rows = [header, "|---|" + "---:|" * len(runs)]
    for name in names:
        cells = []
        base = None
        for run in runs:
            match = next((s for s in run["scenarios"] if s["name"] == name), None)
            if match is None:
                cells.append("-")
                continue
            rps = match["requests_per_s"]
            base = base or rps
            cells.append(f"{rps:.1f}" + (f" (x{rps / base:.2f})" if run is not runs[0] else ""))
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


if __name__ == "__main__":
    sys.exit(main())
