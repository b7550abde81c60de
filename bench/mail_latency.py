"""Time from enqueue to delivery: a request's answer until the message is in a local SMTP
server's hands (aiosmtpd), through the real sender of one service instance.

    .venv/bin/python bench/mail_latency.py [--samples 30] [--database-url URL]

Two paths: `POST /auth/register` (its verification mail wakes the sender at the commit)
and `POST /auth/password/forgot` (left to the sender's poll, MAIL_POLL_INTERVAL_SECONDS,
so that the request's timing cannot depend on the address).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support import build_settings, prepare_schema, running_app
from tests.support.mailbox import Mailbox


async def main(samples: int, database_url: str | None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        url = database_url or f"sqlite+aiosqlite:///{Path(tmp) / 'auth.db'}"
        await prepare_schema(url)
        box = Mailbox()
        box.start()
        settings = build_settings(
            url,
            Path(tmp),
            mail_backend="smtp",
            smtp_host="127.0.0.1",
            smtp_port=box.port,
            smtp_tls="none",
            mail_sender_enabled=True,
            **{"rate_limit_password_reset": "100000/hour"},
            **{"rate_limit_password_reset_ip": "100000/hour"},
            environment="production",
            public_url="https://auth.example.com",
            log_level="WARNING",
        )
        try:
            async with running_app(settings) as (_, client):
                woken, polled = [], []
                for n in range(samples):
                    started = time.monotonic()
                    await client.post(
                        "/auth/register",
                        json={"email": f"b{n}@example.com", "username": f"bench{n}",
                              "password": "a long one!"},
                    )  # fmt: skip
                    arrived = await box.wait_for(count=2 * n + 1)
                    woken.append((arrived[-1].received_at - started) * 1000)
                    started = time.monotonic()
                    await client.post("/auth/password/forgot", json={"email": f"b{n}@example.com"})
                    arrived = await box.wait_for(count=2 * n + 2)
                    polled.append((arrived[-1].received_at - started) * 1000)
        finally:
            box.stop()
    backend = "sqlite" if database_url is None else "given database"
    for name, delays in (("register (woken)", woken), ("forgot (polled)", polled)):
        delays.sort()
        p95 = delays[max(0, int(len(delays) * 0.95) - 1)]
        print(
            f"{name}, {backend}, {samples} samples: median {statistics.median(delays):.1f} ms,"
            f" p95 {p95:.1f} ms, max {delays[-1]:.1f} ms"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    asyncio.run(main(args.samples, args.database_url))
