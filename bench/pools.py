"""One-use requests for wrk, made in advance: authorization codes and passkey assertions.

wrk's Lua cannot sign a WebAuthn assertion nor walk an authorization request, and each
code or challenge works once (a second use is a 4xx, which the bench counts as a failure).
So before such a scenario the orchestrator makes a *pool*: one line per request that wrk
will send, written to a file that bench/lua/common.lua's `once` reads, each line used by
exactly one request. The pool is made right before its scenario, because what it holds
expires: a code 60 s after it was issued (app/oidc/authorization.py, CODE_TTL), a
challenge after 5 minutes (app/signin/methods/passkey/challenges.py, CHALLENGE_TTL).

Browser sessions: the service runs in production mode (an https PUBLIC_URL), so its
cookies are `__Host-` and `Secure`, which httpx will not send over the plain http the
bench talks; each browser here keeps its cookies itself and sends the Cookie header.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import html
import json
import re
import secrets
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

from testkit.webauthn import SoftAuthenticator, SoftCredential

REDIRECT_URI = "https://app.example.com/callback"
SCOPE = "openid profile email"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


class SetupError(SystemExit):
    """The bench could not make what a scenario needs (a bench bug, not a measurement)."""


@dataclass
class Browser:
    """A browser of one account: its cookies, kept by hand (see the module docstring)."""

    client: httpx.AsyncClient
    cookies: dict[str, str] = field(default_factory=dict)

    def header(self) -> dict[str, str]:
        return {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}

    def keep(self, response: httpx.Response) -> httpx.Response:
        for line in response.headers.get_list("set-cookie"):
            name, _, rest = line.partition("=")
            value = rest.split(";", 1)[0]
            if "max-age=0" in rest.lower() or not value.strip('"'):
                self.cookies.pop(name.strip(), None)
            else:
                self.cookies[name.strip()] = value
        return response

    async def get(self, url: str) -> httpx.Response:
        return self.keep(await self.client.get(url, headers=self.header()))

    async def post(self, url: str, form: dict[str, str]) -> httpx.Response:
        return self.keep(await self.client.post(url, data=form, headers=self.header()))


def _csrf(page: httpx.Response) -> str:
    found = _CSRF.search(page.text)
    if page.status_code != 200 or found is None:
        raise SetupError(f"setup: {page.url} answered {page.status_code} without a form")
    return html.unescape(found.group(1))


def _query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


async def mint(
    make: Callable[[int], Awaitable[str]],
    count: int,
    *,
    concurrency: int,
    deadline_s: float,
) -> list[str]:
    """Up to `count` lines made by `make(n)`, `concurrency` at a time, in the order they
    were made (the oldest first, so that wrk uses them first); fewer when `deadline_s`
    passes first."""
    lines: list[str] = []
    stop_at = time.monotonic() + deadline_s
    numbers = iter(range(count))

    async def worker() -> None:
        for n in numbers:
            if time.monotonic() > stop_at:
                return
            lines.append(await make(n))

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return lines


# --------------------------------------------------------------------------- codes


@dataclass(frozen=True)
class CodeClient:
    """The application whose codes are exchanged: confidential, client_secret_basic."""

    client_id: str
    secret: str

    def basic(self) -> str:
        pair = f"{self.client_id}:{self.secret}".encode()
        return "Basic " + base64.b64encode(pair).decode()


def create_client(authsvc: Path, env: dict[str, str], cwd: Path) -> CodeClient:
    """A confidential client that is not first-party (so each account consents once), made
    with the CLI as an operator would."""
    done = subprocess.run(
        [str(authsvc), "clients", "create", "bench-app", "--redirect-uri", REDIRECT_URI, "--json"],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SetupError(f"setup: authsvc clients create failed: {done.stderr or done.stdout}")
    created = json.loads(done.stdout)
    return CodeClient(created["client_id"], created["client_secret"])


def pkce() -> tuple[str, str]:
    """(code_verifier, S256 code_challenge), RFC 7636 §4.1-4.2."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class CodeMinter:
    """Signed-in browsers of the bench accounts, each having consented to the client once,
    that make authorization codes on request: `GET /oauth2/authorize` with the session
    cookie answers 302 to the redirect URI with the code. Each call runs its own HTTP
    client, so that each can run in an event loop of its own (asyncio.run)."""

    def __init__(self, base_url: str, app: CodeClient) -> None:
        self.base_url = base_url
        self.app = app
        self.sessions: list[dict[str, str]] = []  # each browser's cookies

    async def sign_in(self, identifiers: list[str], password: str, concurrency: int) -> None:
        semaphore = asyncio.Semaphore(concurrency)
        async with httpx.AsyncClient(base_url=self.base_url, timeout=60) as client:
            browsers = await asyncio.gather(
                *(self._sign_in(Browser(client), i, password, semaphore) for i in identifiers)
            )
        self.sessions = [browser.cookies for browser in browsers]

    async def _sign_in(
        self, browser: Browser, identifier: str, password: str, semaphore: asyncio.Semaphore
    ) -> Browser:
        async with semaphore:
            form = await browser.get("/login")
            answer = await browser.post(
                "/login",
                {"csrf_token": _csrf(form), "identifier": identifier, "password": password},
            )
            if answer.status_code != 303:
                raise SetupError(
                    f"setup: signing in {identifier} on /login answered {answer.status_code}"
                )
            await self.code(browser, consent=True)  # the one consent of this account
        return browser

    async def code(self, browser: Browser, *, consent: bool = False) -> str:
        """A new code for `browser`'s account, as `code<TAB>verifier`."""
        verifier, challenge = pkce()
        params = {
            "response_type": "code",
            "client_id": self.app.client_id,
            "redirect_uri": REDIRECT_URI,
            "scope": SCOPE,
            "state": "bench",
            "nonce": "bench",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        answer = await browser.get(f"/oauth2/authorize?{urlencode(params)}")
        location = answer.headers.get("location", "")
        if consent and answer.status_code == 302 and location.startswith("/consent"):
            page = await browser.get(location)
            answer = await browser.post(
                "/consent",
                {
                    "csrf_token": _csrf(page),
                    "request": _query(location)["request"],
                    "decision": "allow",
                },
            )
            location = answer.headers.get("location", "")
        code = _query(location).get("code") if location.startswith(REDIRECT_URI) else None
        if answer.status_code != 302 or code is None:
            raise SetupError(
                f"setup: /oauth2/authorize answered {answer.status_code} to {location[:120]!r}"
            )
        return f"{code}\t{verifier}"

    async def pool(self, count: int, *, concurrency: int, deadline_s: float) -> list[str]:
        async with httpx.AsyncClient(base_url=self.base_url, timeout=60) as client:
            browsers = [Browser(client, dict(cookies)) for cookies in self.sessions]

            async def make(n: int) -> str:
                return await self.code(browsers[n % len(browsers)])

            return await mint(make, count, concurrency=concurrency, deadline_s=deadline_s)


async def exchange_one_by_one(base_url: str, app: CodeClient, lines: list[str]) -> None:
    """Exchange codes one after the other, not measured: each worker's first exchange
    opens its ID-token key ring (the first one also makes the key) on a pooled connection
    of its own while the request holds another, so a first burst of exchanges on a cold
    worker waits out the pool's timeout (SQLite's pool has 5 connections). A deployment
    meets that once; the scenario measures the exchanges after it."""
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
        for line in lines:
            code, verifier = line.split("\t")
            answer = await client.post(
                "/auth/token",
                data={
                    "grant_type": "authorization_code",
                    "code": code,
                    "redirect_uri": REDIRECT_URI,
                    "code_verifier": verifier,
                },
                headers={"Authorization": app.basic()},
            )
            if answer.status_code != 200:
                raise SetupError(f"setup: a code exchange answered {answer.status_code}")


# --------------------------------------------------------------------------- passkeys


class PasskeyMinter:
    """A synced passkey for each bench account, and signed assertions answering fresh
    sign-in challenges, one per request.

    Synced (backup eligible and backed up) because its signature counter stays 0: the
    service accepts such an assertion in any order, as it does for the synced passkeys of
    phones and password managers. A device-bound credential must show a counter above the
    last one seen, so assertions made in advance would have to arrive in the order they
    were signed, which wrk's concurrent connections do not keep (a refused one is 401
    INVALID_CREDENTIALS and recorded as a suspected clone).
    """

    def __init__(self, base_url: str, origin: str) -> None:
        self.base_url = base_url
        self.authenticator = SoftAuthenticator(origin=origin)
        self.credentials: list[SoftCredential] = []

    async def register(self, access_tokens: list[str], password: str, concurrency: int) -> None:
        semaphore = asyncio.Semaphore(concurrency)
        async with httpx.AsyncClient(base_url=self.base_url, timeout=60) as client:
            await asyncio.gather(
                *(self._register(client, t, password, semaphore) for t in access_tokens)
            )
        self.credentials = list(self.authenticator.credentials)

    async def _register(
        self,
        client: httpx.AsyncClient,
        token: str,
        password: str,
        semaphore: asyncio.Semaphore,
    ) -> None:
        auth = {"Authorization": f"Bearer {token}"}
        async with semaphore:
            options = await client.post(
                "/users/me/passkeys/registration-options",
                json={"current_password": password},
                headers=auth,
            )
            if options.status_code != 200:
                raise SetupError(
                    f"setup: registration-options answered {options.status_code}:"
                    f" {options.text[:300]}"
                )
            credential = self.authenticator.create(options.json(), synced=True)
            added = await client.post(
                "/users/me/passkeys",
                json={"credential": credential, "name": "bench"},
                headers=auth,
            )
        if added.status_code != 201:
            raise SetupError(
                f"setup: adding a passkey answered {added.status_code}: {added.text[:300]}"
            )

    async def assertion(self, client: httpx.AsyncClient, n: int) -> str:
        """`{"credential": ...}` for POST /auth/passkey, answering a new challenge."""
        options = await client.post("/auth/passkey/options")
        if options.status_code != 200:
            raise SetupError(
                f"setup: /auth/passkey/options answered {options.status_code}: {options.text}"
            )
        credential = self.credentials[n % len(self.credentials)]
        signed = self.authenticator.get(options.json(), credential=credential)
        return json.dumps({"credential": signed}, separators=(",", ":"))

    async def pool(self, count: int, *, concurrency: int, deadline_s: float) -> list[str]:
        async with httpx.AsyncClient(base_url=self.base_url, timeout=60) as client:

            async def make(n: int) -> str:
                return await self.assertion(client, n)

            return await mint(make, count, concurrency=concurrency, deadline_s=deadline_s)


def logged_requests(log_path: Path, offset: int) -> Iterator[dict[str, Any]]:
    """The service's "request completed" log lines since `offset`, parsed."""
    with log_path.open("rb") as log:
        log.seek(offset)
        for line in log:
            if b'"request completed"' not in line:
                continue
            try:
                entry: dict[str, Any] = json.loads(line)
            except ValueError:
                continue
            yield entry


def log_time_span(log_path: Path, offset: int, path: str) -> tuple[int, float]:
    """(requests, seconds between the first and the last) that the service logged for
    `path` since `offset`: the rate of a run whose wrk threads may have stopped early."""
    stamps = [
        _seconds(entry["timestamp"])
        for entry in logged_requests(log_path, offset)
        if entry.get("route") == path and isinstance(entry.get("timestamp"), str)
    ]
    return len(stamps), (max(stamps) - min(stamps)) if len(stamps) > 1 else 0.0


def _seconds(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
