"""A chaos run: two workers under load while a worker, PostgreSQL, Redis and the SMTP server
fail in turn; reports refusals, heal times and every mail lost or doubled.

    .venv/bin/python bench/chaos.py [--seconds 80] [--threads 6] [--json out.json]

Everything is private and on 127.0.0.1, in a temporary directory: a PostgreSQL cluster of
its own (initdb + pg_ctl, tests/support/throwaway_postgres.py; never the machine's server),
a redis-server on a free port without persistence, an aiosmtpd server and two
`authsvc serve` workers on one configuration. Client threads register, sign in, refresh,
read /users/me, sign out (and check that the signed-out tokens are refused) and ask for
reset links, alternating between the workers. The faults, at fixed offsets:

- worker a SIGKILLed and started again at once;
- PostgreSQL stopped `-m fast` and started again (what `pg_ctl restart -m fast` does);
- Redis SIGKILLed and started again, empty;
- the SMTP server down for 15 s.

After the load the run waits (bounded) for the outbox to drain, then counts mails by
Message-ID at the SMTP server against the outbox rows. Not part of `make test`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx
import redis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import create_async_engine

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.models import OutboxMail
from tests.support import PASSWORD, ThrowawayPostgres, find_bindir, prepare_schema
from tests.support.mailbox import Mailbox
from tests.support.processes import serve_argv, server_env
from tests.support.servers import free_port

REQUEST_TIMEOUT_S = 30.0  # a request slower than this counts as hung
READY_DEADLINE_S = 60.0
DRAIN_DEADLINE_S = 120.0
MIN_GAP_S = 10.0  # between one part's return and the next fault
MAX_ITERATIONS = 100_000  # per thread: a bound besides the clock
MESSAGE_ID = re.compile(r"<mail-(\d+)\.")
FAILED = {"503", "error"}


# -- the parts -------------------------------------------------------------------------


class Worker:
    """One `authsvc serve` on a fixed port, so that a restart answers at the same address."""

    def __init__(self, name: str, env: Mapping[str, str], workdir: Path) -> None:
        self.name = name
        self.env = dict(env)
        self.workdir = workdir
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.starts += 1
        argv = [arg.replace("{port}", str(self.port)) for arg in serve_argv()]
        with (self.workdir / f"{self.name}-{self.starts}.log").open("wb") as out:
            self.process = subprocess.Popen(
                argv, env=self.env, cwd=self.workdir, stdout=out, stderr=subprocess.STDOUT
            )

    def wait_ready(self) -> float:
        """Seconds until /health answers 200 (raises at the deadline)."""
        started = time.monotonic()
        while time.monotonic() - started < READY_DEADLINE_S:
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return time.monotonic() - started
            except httpx.TransportError:
                pass
            time.sleep(0.05)  # a polling interval
        raise RuntimeError(f"worker {self.name} not ready within {READY_DEADLINE_S}s")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()


class RedisServer:
    """A private redis-server without persistence: a restart comes back empty."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed")
        argv = [binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        argv += ["--save", "", "--appendonly", "no", "--dir", str(self.workdir)]
        self.process = subprocess.Popen(
            argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=self.workdir
        )
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1)
        deadline = time.monotonic() + READY_DEADLINE_S
        while True:
            try:
                if client.ping():
                    client.close()
                    return
            except redis.RedisError:
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.05)  # a polling interval

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()


# -- the load --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Record:
    started: float  # seconds since the run began
    ended: float
    worker: str
    op: str
    status: str  # the HTTP status, or "error" (no answer: refused, reset, timed out)
    retry_after: bool
    hung: bool = False


@dataclass
class Account:
    name: str
    access: str
    refresh: str


@dataclass
class Violations:
    """What must never happen, whatever fails."""

    server_errors: int = 0  # 5xx other than 503
    no_retry_after: int = 0  # a 503 without Retry-After
    hung: int = 0
    signed_out_token_accepted: int = 0
    accounts_lost: int = 0


@dataclass
class Load:
    workers: dict[str, str]
    origin: float
    deadline: float
    records: list[Record] = field(default_factory=list)
    registered: list[str] = field(default_factory=list)
    violations: Violations = field(default_factory=Violations)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def now(self) -> float:
        return time.monotonic() - self.origin

    def call(
        self,
        client: httpx.Client,
        worker: str,
        op: str,
        method: str,
        path: str,
        *,
        json: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response | None:
        started = self.now()
        response: httpx.Response | None = None
        hung = False
        try:
            url = f"{self.workers[worker]}{path}"
            response = client.request(method, url, json=json, headers=headers)
        except httpx.TimeoutException:
            hung = True
        except httpx.TransportError:
            pass
        status = "error" if response is None else str(response.status_code)
        retry_after = response is not None and "retry-after" in response.headers
        record = Record(started, self.now(), worker, op, status, retry_after, hung)
        with self.lock:
            self.records.append(record)
            if hung:
                self.violations.hung += 1
            if response is not None and response.status_code >= 500:
                if response.status_code != 503:
                    self.violations.server_errors += 1
                elif not retry_after:
                    self.violations.no_retry_after += 1
        return response

    def client_thread(self, index: int) -> None:
        rng = random.Random(index)
        accounts: list[Account] = []
        names = list(self.workers)
        with httpx.Client(timeout=REQUEST_TIMEOUT_S) as client:
            for iteration in range(MAX_ITERATIONS):
                if time.monotonic() >= self.deadline:
                    return
                worker = names[iteration % len(names)]
                roll = rng.random()
                if not accounts or roll < 0.25:
                    self._register(client, worker, f"c{index}n{iteration}", accounts)
                elif roll < 0.45:
                    self._login(client, worker, rng.choice(accounts))
                elif roll < 0.65:
                    self._refresh(client, worker, rng.choice(accounts))
                elif roll < 0.80:
                    account = rng.choice(accounts)
                    self.call(client, worker, "me", "GET", "/users/me", headers=_bearer(account))
                elif roll < 0.90:
                    self._logout(client, worker, rng.choice(accounts))
                else:
                    email = f"{rng.choice(accounts).name}@example.com"
                    self.call(client, worker, "forgot", "POST", "/auth/password/forgot",
                              json={"email": email})  # fmt: skip

    def _register(
        self, client: httpx.Client, worker: str, name: str, accounts: list[Account]
    ) -> None:
        body = {"email": f"{name}@example.com", "username": name, "password": PASSWORD}
        response = self.call(client, worker, "register", "POST", "/auth/register", json=body)
        if response is not None and response.status_code == 201:
            tokens = response.json()
            accounts.append(Account(name, tokens["access_token"], tokens["refresh_token"]))
            with self.lock:
                self.registered.append(name)

    def _login(self, client: httpx.Client, worker: str, account: Account) -> None:
        body = {"username": account.name, "password": PASSWORD}
        response = self.call(client, worker, "login", "POST", "/auth/login", json=body)
        if response is not None and response.status_code == 200:
            tokens = response.json()
            account.access, account.refresh = tokens["access_token"], tokens["refresh_token"]

    def _refresh(self, client: httpx.Client, worker: str, account: Account) -> None:
        body = {"refresh_token": account.refresh}
        response = self.call(client, worker, "refresh", "POST", "/auth/refresh", json=body)
        if response is not None and response.status_code == 200:
            tokens = response.json()
            account.access = tokens["access_token"]
            account.refresh = tokens.get("refresh_token") or account.refresh

    def _logout(self, client: httpx.Client, worker: str, account: Account) -> None:
        old = Account(account.name, account.access, account.refresh)
        body = {"refresh_token": old.refresh}
        response = self.call(client, worker, "logout", "POST", "/auth/logout", json=body)
        if response is None or response.status_code != 204:
            return
        # Signed out: neither token may work again, at either worker.
        for other in self.workers:
            me = self.call(client, other, "me-after-logout", "GET", "/users/me",
                           headers=_bearer(old))  # fmt: skip
            again = self.call(client, other, "refresh-after-logout", "POST", "/auth/refresh",
                              json=body)  # fmt: skip
            for answer in (me, again):
                if answer is not None and answer.status_code == 200:
                    with self.lock:
                        self.violations.signed_out_token_accepted += 1
        self._login(client, worker, account)  # signs in again, for the next rounds


def _bearer(account: Account) -> dict[str, str]:
    return {"Authorization": f"Bearer {account.access}"}


# -- the faults ------------------------------------------------------------------------


@dataclass
class Fault:
    name: str
    at: float  # when it was injected, seconds since the run began
    back: float  # when the failed part was back (restarted, answering)
    heal: dict[str, float] = field(default_factory=dict)
    refusals: dict[str, float] = field(default_factory=dict)
    failures: dict[str, dict[str, int]] = field(default_factory=dict)
    share_503: float = 0.0  # of the requests between the fault and the last worker healed
    requests_during: int = 0
    requests: int = 0  # until the next fault
    failed: int = 0


def run_faults(
    load: Load,
    offsets: dict[str, float],
    worker_a: Worker,
    cluster: ThrowawayPostgres,
    redis_server: RedisServer,
    box: Mailbox,
    smtp_down_s: float,
) -> list[Fault]:
    """Inject each fault at its offset; returns when and how long each part was away."""

    def restart_worker() -> None:
        worker_a.kill()
        worker_a.start()
        worker_a.wait_ready()

    def restart_postgres() -> None:
        cluster.stop("fast")
        cluster.start()

    def restart_redis() -> None:
        redis_server.kill()
        redis_server.start()

    def smtp_outage() -> None:
        box.stop()
        stopped = load.now()
        while load.now() < stopped + smtp_down_s:
            time.sleep(0.05)  # the outage's length, not a synchronisation
        box.start()

    actions: dict[str, Callable[[], None]] = {
        "worker a SIGKILL + restart": restart_worker,
        "PostgreSQL stop -m fast + start": restart_postgres,
        "Redis SIGKILL + restart (empty)": restart_redis,
        "SMTP server down": smtp_outage,
    }
    faults: list[Fault] = []
    for name, offset in sorted(offsets.items(), key=lambda item: item[1]):
        # A slow restart must not squeeze the next fault into this one's window.
        at = max(offset, faults[-1].back + MIN_GAP_S if faults else offset)
        while load.now() < at:
            time.sleep(0.05)  # the schedule's clock, not a synchronisation
        injected = load.now()
        actions[name]()
        faults.append(Fault(name, injected, load.now()))
    return faults


def measure(load: Load, faults: list[Fault], box: Mailbox, end: float) -> None:
    """Refusals and heal times within each fault's window (until the next fault)."""
    ordered = sorted(load.records, key=lambda r: r.started)
    for index, fault in enumerate(faults):
        until = faults[index + 1].at if index + 1 < len(faults) else end
        # By when a request ended: one that started just before a fault and met it counts
        # towards that fault.
        window = [r for r in ordered if fault.at <= r.ended < until]
        fault.requests = len(window)
        fault.failed = sum(r.status in FAILED for r in window)
        for worker in load.workers:
            mine = [r for r in window if r.worker == worker]
            failures = [r for r in mine if r.status in FAILED]
            fault.failures[worker] = dict(Counter(f"{r.op} {r.status}" for r in failures))
            if not failures:
                fault.heal[worker] = 0.0
                fault.refusals[worker] = 0.0
                continue
            last = failures[-1]
            healed = next(
                (r.ended for r in mine if r.started >= last.ended and r.status not in FAILED),
                until,
            )
            fault.heal[worker] = round(healed - fault.at, 2)
            fault.refusals[worker] = round(last.ended - failures[0].started, 2)
        healed_at = fault.at + max(fault.heal.values(), default=0.0)
        during = [r for r in window if r.ended <= max(healed_at, fault.back)]
        fault.requests_during = len(during)
        fault.share_503 = round(sum(r.status == "503" for r in during) / max(1, len(during)), 3)
        if fault.name == "SMTP server down":
            back_at = load.origin + fault.back
            first = min((m.received_at for m in box.received() if m.received_at >= back_at),
                        default=None)  # fmt: skip
            fault.heal["first mail after the server's return"] = (
                round(first - back_at, 2) if first is not None else -1.0
            )


# -- the mails -------------------------------------------------------------------------


async def outbox(url: str) -> dict[int, str]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            rows = (await connection.execute(select(OutboxMail.id, OutboxMail.status))).all()
            return {row.id: row.status for row in rows}
    finally:
        await engine.dispose()


def drain(url: str, box: Mailbox) -> tuple[dict[int, str], float]:
    """Wait (bounded) until no mail is pending or in flight; the outbox and the wait."""
    started = time.monotonic()
    while True:
        rows = asyncio.run(outbox(url))
        if all(status in ("sent", "failed") for status in rows.values()):
            return rows, time.monotonic() - started
        if time.monotonic() - started > DRAIN_DEADLINE_S:
            return rows, time.monotonic() - started
        time.sleep(0.2)  # a polling interval


def count_mails(rows: dict[int, str], box: Mailbox, origin: float) -> dict[str, object]:
    arrivals: dict[int, list[float]] = {}
    for m in box.received():
        if match := MESSAGE_ID.match(str(m.message["Message-ID"])):
            arrivals.setdefault(int(match.group(1)), []).append(round(m.received_at - origin, 2))
    received = Counter({i: len(times) for i, times in arrivals.items()})
    return {
        "outbox": len(rows),
        "statuses": dict(Counter(rows.values())),
        "received": sum(received.values()),
        "lost": sorted(i for i in rows if received[i] == 0),
        "doubled": sorted(i for i, n in received.items() if n > 1),
        # When each copy arrived (seconds since the run began): which fault it met.
        "doubled_at": {i: arrivals[i] for i, n in received.items() if n > 1},
        "unknown": sorted(i for i in received if i not in rows),
    }


def accounts_check(load: Load, sample: int) -> int:
    """Sign in as a sample of the registered accounts at each worker: how many fail."""
    names = load.registered[:: max(1, len(load.registered) // sample)][:sample]
    lost = 0
    with httpx.Client(timeout=REQUEST_TIMEOUT_S) as client:
        for n, name in enumerate(names):
            url = list(load.workers.values())[n % len(load.workers)]
            body = {"username": name, "password": PASSWORD}
            if client.post(f"{url}/auth/login", json=body).status_code != 200:
                lost += 1
    return lost


# -- the run ---------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=80.0)
    parser.add_argument("--threads", type=int, default=6)
    parser.add_argument("--smtp-down", type=float, default=15.0)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    if not 20 <= args.seconds <= 600 or not 1 <= args.threads <= 32:
        parser.error("--seconds 20..600, --threads 1..32")
    bindir = find_bindir()
    if bindir is None:
        sys.exit("PostgreSQL server binaries (initdb, pg_ctl) are not installed")

    with tempfile.TemporaryDirectory(prefix="authsvc-chaos-") as tmp:
        workdir = Path(tmp)
        cluster = ThrowawayPostgres(bindir)
        redis_server = RedisServer(workdir)
        box = Mailbox()
        workers: list[Worker] = []
        try:
            cluster.create()
            cluster.start()
            asyncio.run(prepare_schema(cluster.url))
            redis_server.start()
            box.start()
            env = server_env(
                cluster.url,
                REDIS_URL=redis_server.url,
                LOG_LEVEL="WARNING",
                MAIL_BACKEND="smtp",
                SMTP_HOST="127.0.0.1",
                SMTP_PORT=str(box.port),
                SMTP_TLS="none",
                MAIL_RETRY_MAX_SECONDS="10",
                RATE_LIMIT_LOGIN_ACCOUNT="100000/minute",
                RATE_LIMIT_LOGIN_ACCOUNT_CEILING="100000/day",
                RATE_LIMIT_REFRESH_IP="100000/minute",
                **{"RATE_LIMIT_PASSWORD_RESET": "100000/hour"},
                **{"RATE_LIMIT_PASSWORD_RESET_IP": "100000/hour"},
            )
            workers = [Worker("a", env, workdir), Worker("b", env, workdir)]
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.wait_ready()

            seconds = args.seconds
            offsets = {
                "worker a SIGKILL + restart": seconds * 0.10,
                "PostgreSQL stop -m fast + start": seconds * 0.28,
                "Redis SIGKILL + restart (empty)": seconds * 0.46,
                "SMTP server down": seconds * 0.64,
            }
            origin = time.monotonic()
            load = Load({w.name: w.url for w in workers}, origin, origin + seconds)
            threads = [
                threading.Thread(target=load.client_thread, args=(n,), daemon=True)
                for n in range(args.threads)
            ]
            for thread in threads:
                thread.start()
            faults = run_faults(
                load, offsets, workers[0], cluster, redis_server, box, args.smtp_down
            )
            for thread in threads:
                thread.join(seconds + REQUEST_TIMEOUT_S * 4)
            end = load.now()
            measure(load, faults, box, end)
            rows, drained = drain(cluster.url, box)
            mails = count_mails(rows, box, origin)
            load.violations.accounts_lost = accounts_check(load, sample=200)
        finally:
            for worker in workers:
                worker.stop()
            box.stop()
            redis_server.kill()
            cluster.destroy()

    statuses = Counter(r.status for r in load.records)
    report = {
        "seconds": round(end, 1),
        "threads": args.threads,
        "requests": len(load.records),
        "statuses": dict(sorted(statuses.items())),
        "registered": len(load.registered),
        "violations": asdict(load.violations),
        "faults": [asdict(f) for f in faults],
        "mail": {**mails, "drain_seconds": round(drained, 1)},
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
    }
    print_report(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


def print_report(report: dict[str, object]) -> None:
    print(f"requests: {report['requests']} in {report['seconds']} s, "
          f"{report['threads']} threads; statuses {report['statuses']}")  # fmt: skip
    print(f"violations: {report['violations']}")
    faults = report["faults"]
    assert isinstance(faults, list)
    for fault in faults:
        print(
            f"- {fault['name']} at {fault['at']:.1f} s (back after "
            f"{fault['back'] - fault['at']:.1f} s): {fault['requests']} requests until the "
            f"next, failed {fault['failed']}; until healed {fault['requests_during']} requests, "
            f"503 share {fault['share_503']:.1%}; "
            f"heal {fault['heal']}; refusals {fault['refusals']}"
        )
    mail = report["mail"]
    assert isinstance(mail, dict)
    print(
        f"mail: outbox {mail['outbox']} {mail['statuses']}, received {mail['received']}, "
        f"lost {len(mail['lost'])} {mail['lost'][:10]}, doubled {len(mail['doubled'])} "
        f"{mail['doubled_at']}, unknown {len(mail['unknown'])}, "
        f"drained in {mail['drain_seconds']} s"
    )
    print(f"machine: {report['cpus']} CPUs, load average {report['load_average']}")


if __name__ == "__main__":
    main()
