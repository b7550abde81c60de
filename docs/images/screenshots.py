"""Take the README's screenshots of the hosted pages in Debian's headless Chromium.

    .venv/bin/python docs/images/screenshots.py

Starts `authsvc serve` on a free port of localhost (passkeys need a host name, not an
IP address) with a throwaway SQLite file, opens the pages and writes PNG files beside
this script.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from playwright.async_api import async_playwright

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]
FLAGS += ["--disable-background-networking", "--disable-component-update", "--disable-sync"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def serve(workdir: Path, port: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_"))}
    env.update(
        ENVIRONMENT="development",
        PUBLIC_URL=f"http://localhost:{port}",
        DATABASE_URL=f"sqlite+aiosqlite:///{workdir / 'auth.db'}",
        MAIL_FILE_DIR=str(workdir / "mail"),
    )
    command = [str(BIN / "authsvc"), "serve", "--host", "127.0.0.1", "--port", str(port)]
    server = subprocess.Popen(command, env=env, cwd=workdir, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health/live").status_code == 200:
                return server
        except httpx.TransportError:
            time.sleep(0.2)
    server.kill()
    raise SystemExit("the server did not start")


async def shoot(base_url: str) -> None:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = await browser.new_page(viewport={"width": 760, "height": 540})
        await page.goto(f"{base_url}/login")
        await page.get_by_role("button", name="Sign in with a passkey").wait_for()
        await page.screenshot(path=HERE / "signin-passkey.png")
        await browser.close()


def main() -> None:
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="authsvc-shots-") as tmp:
        server = serve(Path(tmp), port)
        try:
            asyncio.run(shoot(f"http://localhost:{port}"))
        finally:
            server.terminate()
            server.wait(20)
    print(f"wrote {HERE / 'signin-passkey.png'}")


if __name__ == "__main__":
    main()
