"""Other providers for the tests: panva's oidc-provider (a certified OpenID provider, run
with the dev lock's Node.js) and a person going through its login and consent pages over
HTTP, as a browser's form posts would."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx

from tests.support.processes import BIN, NODE, ServerProcess
from tests.support.servers import free_port

PROVIDER_DIR = Path(__file__).resolve().parents[1] / "interop" / "oidc-provider"
CLIENT_ID = "authsvc"
CLIENT_SECRET = "interop-client-secret-of-the-tests-only"
_DEADLINE_S = 30.0
_SUBMIT = re.compile(r'<form[^>]*action="([^"]+)"')


@contextmanager
def oidc_provider(
    workdir: Path, *, redirect_uris: list[str], accounts: Mapping[str, Mapping[str, Any]]
) -> Iterator[ServerProcess]:
    """oidc-provider on a loopback port, with authsvc as its client, until the block ends."""
    import subprocess

    port = free_port()
    config = {
        "port": port,
        "client": {
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "redirect_uris": redirect_uris,
        },
        "accounts": dict(accounts),
    }
    log = workdir / "oidc-provider.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(NODE), str(PROVIDER_DIR / "provider.mjs")],
            env={"PROVIDER_CONFIG": json.dumps(config), "PATH": str(BIN)},
            cwd=PROVIDER_DIR,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = ServerProcess("oidc-provider", port, process, log)
    try:
        deadline = time.monotonic() + _DEADLINE_S
        while True:
            assert process.poll() is None, server.output()
            assert time.monotonic() < deadline, server.output()
            try:
                if httpx.get(f"{server.url}/.well-known/openid-configuration").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.05)  # a polling interval, not a synchronisation
        yield server
    finally:
        server.stop()


async def person_at_provider(authorization_url: str, login: str, *, stop_at: str) -> str:
    """A person at the provider: signs in as `login` on its login page and allows on its
    consent page; returns the URL the provider sends the browser back to (under
    `stop_at`)."""
    async with httpx.AsyncClient(timeout=10) as browser:
        url = authorization_url
        for _ in range(12):
            response = await browser.get(url)
            while response.is_redirect:
                location = urljoin(str(response.url), response.headers["location"])
                if location.startswith(stop_at):
                    return location
                response = await browser.get(location)
            form = _SUBMIT.search(response.text)
            assert form is not None, response.text
            action = urljoin(str(response.url), form.group(1))
            fields = {"prompt": "login", "login": login, "password": "any"}
            if 'name="prompt" value="consent"' in response.text:
                fields = {"prompt": "consent"}
            response = await browser.post(action, data=fields)
            assert response.is_redirect, response.text
            url = urljoin(str(response.url), response.headers["location"])
            if url.startswith(stop_at):
                return url
        raise AssertionError("the provider never sent the browser back")


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
